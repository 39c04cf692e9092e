"""What an operator sees: `rasd run`'s /metrics against its own summary, and `rasd status`.

The demo site goes through a continuous `rasd run` with a metrics port; once
the pipeline has drained, /metrics is scraped over HTTP, then SIGTERM makes
the run print its summary: every counter the summary prints must be on
/metrics with the same value, and the lag of every group and partition 0.
`rasd status --json` then names every stage group, the demo's 404 in the
dead letters and the feed that is broken on purpose; a record that no worker
consumes makes it exit 1.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.kafka import Producer, Topics
from rasd.stages import STAGES

from .conftest import Run, free_port

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:  # not listening yet
        return 0, str(exc)


def scrape(base: str) -> Samples:
    status, text = get(f"{base}/metrics")
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def select(samples: Samples, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of ``name`` whose labels include ``labels``."""
    return {
        key[1]: v
        for key, v in samples.items()
        if key[0] == name and all(dict(key[1]).get(k) == x for k, x in labels.items())
    }


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_metrics_match_the_summary_and_status_names_what_is_wrong(
    run: Run, expectations: dict[str, Any], kafka_bootstrap: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"RASD_METRICS_PORT": str(port), "RASD_POLL_INTERVAL": "3600"}
    proc = run.start(env)
    try:
        wait_for(lambda: get(f"{base}/healthz")[0] == 200, 120, "/healthz")
        wait_for(lambda: get(f"{base}/readyz")[0] == 200, 120, "/readyz (groups joined)")
        ready = json.loads(get(f"{base}/readyz")[1])
        assert ready == {"ok": True, "problems": []}

        polled = len(expectations["feeds"])
        state: dict[str, Any] = {"quiet": 0}

        def drained() -> bool:
            samples = scrape(base)
            lag = select(samples, "rasd_consumer_lag")
            feeds = sum(select(samples, "rasd_feeds").values())
            done = (
                bool(lag)
                and not any(lag.values())
                and value(samples, "rasd_consumer_lag_up") == 1
                and value(samples, "rasd_messages_total", stage="poll", outcome="items") > 0
                and feeds == polled
            )
            state["quiet"] = state["quiet"] + 1 if done else 0
            state["samples"] = samples
            return bool(state["quiet"] >= 3)  # lag is read every 5 s: three scrapes, 6 s apart

        def settle() -> bool:
            ok = drained()
            if not ok:
                time.sleep(5)
            return ok

        wait_for(settle, 240, "the pipeline to drain")
        samples: Samples = state["samples"]
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)

    # Every counter the summary prints, with the same value.
    def messages(stage: str, outcome: str) -> int:
        return int(value(samples, "rasd_messages_total", stage=stage, outcome=outcome))

    assert summary["items"] == messages("poll", "items") > 0
    assert summary["articles_extracted"] == messages("extract", "ok") > 0
    assert summary["articles_indexed"] == messages("index", "indexed") > 0
    assert summary["duplicates"] == messages("cluster", "duplicate")
    assert summary["alerts"] == messages("alert", "alerts") == 1
    dlq = sum(select(samples, "rasd_messages_total", outcome="dlq").values())
    assert summary["dlq"] == dlq >= 1
    assert summary["feeds_ok"] == value(samples, "rasd_feeds", state="ok")
    assert summary["feeds_failed"] == value(samples, "rasd_feeds", state="failing") + value(
        samples, "rasd_feeds", state="dead"
    )
    assert value(samples, "rasd_feeds", state="failing") >= 1  # the broken feed

    # The lag of every stage's group, per partition, is 0 after the drain.
    lag = select(samples, "rasd_consumer_lag")
    groups = {dict(labels)["group"] for labels in lag}
    assert groups == {s.group_id(Topics(run.namespace)) for s in STAGES}
    assert not any(lag.values())

    # The other families are there, with values that fit the run.
    indexed = value(samples, "rasd_freshness_seconds_count", until="indexed")
    assert indexed == messages("index", "indexed")
    assert value(samples, "rasd_freshness_seconds_count", until="alerted") == 1
    assert value(samples, "rasd_stage_batch_seconds_count", stage="extract") >= 1
    assert value(samples, "rasd_http_fetches_total", outcome="ok") >= summary["items"]
    assert value(samples, "rasd_alert_deliveries_total", destination="log", outcome="delivered")
    assert value(samples, "rasd_dedupe_window_articles") >= 1
    assert value(samples, "process_resident_memory_bytes") > 10_000_000

    # `rasd status` on what the run left: every stage group, the 404, the broken feed.
    done = run.rasd("status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert {g["stage"] for g in report["groups"]} == {s.name for s in STAGES}
    assert all(g["lag"] == 0 and g["members"] == 0 for g in report["groups"]), report["groups"]
    assert report["dead_letters"]["extract"]["http_404"] == 1
    broken = [f for f in report["worst_feeds"] if f["url"].endswith("/broken/feed.xml")]
    assert broken and broken[0]["health"] == "failing", report["worst_feeds"]
    # Documents, not writes: a copy of an article under the same URL is one document.
    assert report["articles"]["last_hour"] == expectations["counts"]["unique_articles"]
    assert report["kafka"]["ok"] and report["elasticsearch"]["ok"]

    # A record waiting on a topic with nobody consuming it is a problem: exit 1.
    producer = Producer(kafka_bootstrap)
    try:
        producer.send(Topics(run.namespace).enriched, "waiting", b"{}")
        producer.flush()
    finally:
        producer.close()
    done = run.rasd("status", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["healthy"] is False
    waiting = {g["stage"] for g in report["groups"] if g["lag"]}
    assert waiting == {"index", "alert"}, report["groups"]
    assert any("index" in p and "no worker" in p for p in report["problems"]), report
