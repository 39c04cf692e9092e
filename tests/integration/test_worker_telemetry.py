"""One `rasd worker` on the real stack, scraped over HTTP, logging JSON.

The index worker is started as an operator starts it; /healthz and /readyz
answer 200 once it has joined its group; a poison record produced to its
topic is dead-lettered and shows on /metrics as a dlq count with the lag back
to 0; and with RASD_LOG_FORMAT=json every line of its log is one JSON object
naming the stage, and the dead letter's line the article id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.kafka import Producer, Topics
from pipeline.settings import Settings
from rasd.app import reset_namespace

from ..e2e.conftest import free_port

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_worker_serves_metrics_health_and_json_logs(
    es: object, kafka_bootstrap: str, unique: str
) -> None:
    namespace = f"tel-{unique}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RASD_NAMESPACE": namespace,
        "RASD_METRICS_PORT": str(port),
        "RASD_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rasd", "worker", "index"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        until(lambda: get(f"{base}/healthz")[0] == 200, 60, "/healthz")
        until(lambda: get(f"{base}/readyz")[0] == 200, 90, "/readyz")
        code, body = get(f"{base}/nowhere")
        assert code == 404 and "/metrics" in body

        producer = Producer(kafka_bootstrap)
        try:
            producer.send(Topics(namespace).enriched, "poison-article", b"not json")
            producer.flush()
        finally:
            producer.close()

        group = Topics(namespace).group("index")
        seen: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

        def dead_lettered() -> bool:
            code, text = get(f"{base}/metrics")
            assert code == 200
            seen.clear()
            seen.update(samples(text))
            dlq = seen.get(
                ("rasd_messages_total", frozenset({("stage", "index"), ("outcome", "dlq")}))
            )
            lags = [
                v
                for (n, labels), v in seen.items()
                if n == "rasd_consumer_lag" and ("group", group) in labels
            ]
            return dlq == 1 and bool(lags) and not any(lags)  # fmt: skip

        until(dead_lettered, 60, "the poison record on /metrics as a dlq count, lag 0")
        assert seen[("process_resident_memory_bytes", frozenset())] > 10_000_000
        assert seen[("rasd_stage_batch_seconds_count", frozenset({("stage", "index")}))] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        reset_namespace(Settings(namespace=namespace))
    assert proc.returncode == 0, stderr[-2000:]

    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= line.keys(), line
        assert line["timestamp"].endswith("+00:00") and "T" in line["timestamp"]
    started = [x for x in lines if "worker started" in x["message"]]
    assert started and started[0]["stage"] == "index"
    letters = [x for x in lines if "to the DLQ" in x["message"]]
    assert letters and letters[0]["article_id"] == "poison-article", letters
    assert letters[0]["level"] == "WARNING"
