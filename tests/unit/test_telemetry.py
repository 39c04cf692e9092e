"""The metrics registry, the health endpoints, the commit-rate metadata, JSON logs and
`rasd status`'s verdict, each on its own (the real-stack tests are in e2e/ and
integration/)."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.logcontext import ContextFilter, log_context
from connectors.metrics import Stats
from connectors.telemetry import FeedHealthCollector, Telemetry
from connectors.throughput import CommitSample, RateWindow, recent_rate
from pipeline.schedule import FeedState
from rasd.cli.status import render
from rasd.logs import json_handler
from rasd.status import GroupRow, Status, _judge


@dataclass
class FakeLoop:
    stage: str
    heartbeat: float = field(default_factory=time.monotonic)
    ready: threading.Event = field(default_factory=threading.Event)


def get(url: str) -> tuple[int, dict[str, object] | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


# --- the registry ----------------------------------------------------------------------


def test_counts_are_the_prometheus_counters() -> None:
    stats = Stats(process=False)
    stats.inc("extract", "ok", 3)
    stats.inc("extract", "dlq")
    stats.inc("index", "indexed", 0)  # nothing counted, no series
    assert stats.get("extract", "ok") == 3
    assert stats.snapshot() == {"extract": {"dlq": 1, "ok": 3}}
    value = stats.registry.get_sample_value(
        "rasd_messages_total", {"stage": "extract", "outcome": "ok"}
    )
    assert value == 3


def test_zeroed_outcomes_are_served_but_not_summarised() -> None:
    stats = Stats(process=False)
    stats.zero("index", ("dlq", "indexed"))
    assert (
        stats.registry.get_sample_value(
            "rasd_messages_total", {"stage": "index", "outcome": "indexed"}
        )
        == 0
    )
    assert stats.snapshot() == {}  # a summary lists what happened, not what could


def test_only_a_cluster_worker_serves_the_window_size() -> None:
    stats = Stats(process=False)
    assert stats.registry.get_sample_value("rasd_dedupe_window_articles") is None
    stats.window_size(42)
    assert stats.registry.get_sample_value("rasd_dedupe_window_articles") == 42


def test_two_registries_never_share_a_count() -> None:
    a, b = Stats(process=False), Stats(process=False)
    a.inc("poll", "items", 5)
    assert b.get("poll", "items") == 0


def test_feed_health_gauges() -> None:
    now = time.time()
    states = [
        FeedState("https://a/feed", new_item_times=(now - 120,)),
        FeedState("https://b/feed", consecutive_failures=2),
        FeedState("https://c/feed", dead=True, consecutive_failures=9),
    ]
    stats = Stats(process=False)
    stats.register(FeedHealthCollector(lambda: states))
    get = stats.registry.get_sample_value
    assert get("rasd_feeds", {"state": "ok"}) == 1
    assert get("rasd_feeds", {"state": "failing"}) == 1
    assert get("rasd_feeds", {"state": "dead"}) == 1
    since = get("rasd_feed_last_new_item_timestamp_seconds", {"feed": "https://a/feed"})
    assert since == now - 120
    assert get("rasd_feed_last_new_item_timestamp_seconds", {"feed": "https://b/feed"}) is None


# --- the endpoints -------------------------------------------------------------------


def test_health_and_readiness_over_http() -> None:
    stats = Stats(process=False)
    stats.inc("index", "indexed", 2)
    loop = FakeLoop("index")
    broken: dict[str, str | None] = {"kafka": None}
    loops: list[FakeLoop] = []
    telemetry = Telemetry(
        stats,
        lambda: loops,
        {"kafka": lambda: broken["kafka"]},
        stall_seconds=30,
        check_ttl=0,
        expected=1,
    )
    port = telemetry.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        # Before the worker exists, the process is alive but not ready.
        assert get(f"{base}/healthz") == (200, {"ok": True, "problems": []})
        assert get(f"{base}/readyz") == (
            503,
            {"ok": False, "problems": ["starting: 0 of 1 loop(s) running"]},
        )
        loops.append(loop)
        assert get(f"{base}/readyz") == (
            503,
            {"ok": False, "problems": ["index is not a member of its group"]},
        )
        loop.ready.set()
        assert get(f"{base}/readyz") == (200, {"ok": True, "problems": []})

        broken["kafka"] = "unreachable at 127.0.0.1:1"
        assert get(f"{base}/readyz") == (
            503,
            {"ok": False, "problems": ["kafka: unreachable at 127.0.0.1:1"]},
        )
        broken["kafka"] = None

        loop.heartbeat -= 31  # the loop has not turned for 31 s
        status, body = get(f"{base}/healthz")
        assert status == 503 and isinstance(body, dict)
        assert body["problems"] == ["index has not turned for 31s"]
        assert get(f"{base}/readyz")[0] == 503

        status, text = get(f"{base}/metrics")
        assert status == 200 and isinstance(text, str)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {"rasd_messages", "rasd_stage_batch_seconds", "rasd_freshness_seconds"} <= set(
            families
        )
        (beat,) = families["rasd_loop_heartbeat_timestamp_seconds"].samples
        assert beat.labels == {"loop": "index"}
        assert abs(beat.value - (time.time() - 31)) < 5
    finally:
        telemetry.stop()


def test_a_check_that_raises_is_a_problem_not_a_crash() -> None:
    def boom() -> str | None:
        raise OSError("no route")

    telemetry = Telemetry(Stats(process=False), lambda: [], {"elasticsearch": boom}, check_ttl=0)
    assert telemetry.readiness() == {
        "ok": False,
        "problems": ["elasticsearch: OSError: no route"],
    }


def test_a_port_in_use_is_one_clear_error() -> None:
    first = Telemetry(Stats(process=False))
    port = first.start("127.0.0.1", 0)
    try:
        with pytest.raises(Exception, match=f"127.0.0.1:{port}.*RASD_METRICS_PORT"):
            Telemetry(Stats(process=False)).start("127.0.0.1", port)
    finally:
        first.stop()


# --- throughput from the commits' metadata ------------------------------------------------


def test_the_rate_over_the_last_minute() -> None:
    window = RateWindow()
    t0 = 1_000_000.0
    window.commit(100, t0)
    for i in range(1, 13):  # 10 messages every 10 s for two minutes: 1 per second
        metadata = window.commit(100 + 10 * i, t0 + 10 * i)
    sample = CommitSample.decode(metadata)
    assert sample is not None and sample.base_time == t0 + 60  # a minute before the commit
    assert recent_rate(220, metadata, now=t0 + 120) == pytest.approx(1.0)
    # The reader's clock 30 s ahead of the worker's changes nothing within the minute.
    assert recent_rate(220, metadata, now=t0 + 150) == pytest.approx(1.0)
    # Idle for more than a minute since that commit: 0.
    assert recent_rate(220, metadata, now=t0 + 181) == 0.0


def test_foreign_or_missing_metadata_is_no_rate() -> None:
    assert recent_rate(5, "", now=1.0) == 0.0
    assert recent_rate(5, "written by another tool", now=1.0) == 0.0
    assert recent_rate(None, CommitSample(0, 0, 1).encode(), now=1.0) == 0.0
    assert CommitSample.decode("rate:x:y:z") is None


# --- JSON logs -------------------------------------------------------------------------------


def test_json_log_lines_name_stage_and_article() -> None:
    stream = io.StringIO()
    handler = json_handler(stream)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("rasd.test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with log_context(stage="extract"), log_context(article_id="a1"):
            logger.warning("قيصر to the DLQ")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "قيصر to the DLQ"
    assert (first["stage"], first["article_id"], first["level"]) == ("extract", "a1", "WARNING")
    assert first["logger"] == "rasd.test-json"
    assert first["timestamp"].endswith("+00:00")
    assert (second["stage"], second["article_id"]) == (None, None)


# --- rasd status's verdict ----------------------------------------------------------------


def _status(**parts: object) -> Status:
    status = Status("t", "2026-12-02T00:00:00+00:00")
    status.kafka = {"ok": True, "brokers": 1}
    status.elasticsearch = {"ok": True, "status": "green"}
    for name, value in parts.items():
        setattr(status, name, value)
    return status


def test_lag_without_members_is_unhealthy_lag_with_members_is_not() -> None:
    busy = _status(groups=[GroupRow("extract", "t.extract", "t.items", 2, 50, 3.0)])
    _judge(busy)
    assert busy.healthy and not busy.problems

    orphan = _status(groups=[GroupRow("index", "t.index", "t.enriched", 0, 7, 0.0)])
    _judge(orphan)
    assert not orphan.healthy
    assert orphan.problems == ["index: 7 message(s) waiting and no worker in t.index"]
    assert "UNHEALTHY" in str(render(orphan).renderables[0])


def test_servers_down_are_problems_and_dead_feeds_warnings() -> None:
    status = _status(
        kafka={"ok": False, "detail": "unreachable at 127.0.0.1:1"},
        elasticsearch={"ok": True, "status": "yellow"},
        feeds={"ok": 3, "failing": 0, "dead": 2},
        dead_letters={"extract": {"http_404": 4}},
        undelivered={"ops-webhook": 1},
    )
    _judge(status)
    assert status.problems == ["Kafka: unreachable at 127.0.0.1:1"]
    assert status.warnings == [
        "Elasticsearch: the cluster is yellow (a replica is unassigned)",
        "2 feed(s) dead",
        "4 dead letter(s)",
        "1 undelivered alert(s)",
    ]


def test_status_with_both_servers_down_exits_1_naming_each() -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "RASD_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "RASD_ES_URL": "http://127.0.0.1:1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rasd", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["healthy"] is False
    kafka, es = report["problems"]
    assert kafka.startswith("Kafka: unreachable at 127.0.0.1:1")
    assert es.startswith("Elasticsearch: unreachable at http://127.0.0.1:1")
    assert "Traceback" not in done.stderr


def test_freshness_is_observed_once_per_document_written() -> None:
    """A batch that carries one article twice (a redelivery) writes one document: the
    freshness histogram and the ``indexed`` count must agree, as /metrics shows both."""
    from datetime import UTC, datetime, timedelta

    from connectors.elastic import WriteReport
    from connectors.elastic_sinks import ArticleSink
    from pipeline.matching import RuleMatcher
    from tests.unit.helpers import enriched

    now = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    matcher = RuleMatcher([])
    first, other = (
        enriched(
            i,
            i,
            "نص",
            title="عنوان",
            when=now - timedelta(minutes=5),
            namespace="t",
            matcher=matcher,
        )
        for i in ("a1", "a2")
    )

    class Store:
        def write(self, articles: list[object], stamp: datetime) -> WriteReport:
            unique = list({a.id: a for a in articles}.values())  # type: ignore[attr-defined]
            return WriteReport(written=unique)

    sink = ArticleSink(Store(), lambda: now)  # type: ignore[arg-type]
    sink.write([("r1", first), ("r2", first), ("r3", other)])
    result = sink.flush()
    assert result.outcomes["indexed"] == 2
    assert result.freshness["indexed"] == [300.0, 300.0]
