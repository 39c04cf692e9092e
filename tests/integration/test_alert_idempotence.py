"""Two alert workers on the real stack, one killed mid-stream, syndicated copies and a
repeated message: exactly one alert per (rule, story cluster), delivered once per
destination; a dead destination holds nothing up and its alerts are kept as undelivered;
a rule's realert window throttles it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from connectors.kafka import Bootstrap, consumer_lag, new_admin, new_consumer, new_producer
from pipeline.matching import RuleMatcher
from pipeline.models import EnrichedArticle, alert_id
from pipeline.rules import load_rules
from pipeline.settings import Settings
from rasd.app import reset_namespace
from tests.unit.helpers import enriched

from .test_alert_delivery import WebhookServer

CLUSTERS = 20
NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)


def story(k: int) -> str:
    body = f"قال المتحدث في التقرير رقم {k} إن شهادة «قيصر» وثقت الانتهاكات."
    if k % 2 == 0:
        body += " وزار الصحفيون سجن صيدنايا."
    if k % 5 == 0:
        body += " وعثر على مقبرة جماعية قرب الطريق."
    return body


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout}s")
        time.sleep(0.5)


@pytest.fixture
def setup(
    es: Any, kafka_bootstrap: Bootstrap, unique: str, tmp_path: Path
) -> Iterator[tuple[dict[str, str], Settings, WebhookServer]]:
    hook = WebhookServer()
    dead = WebhookServer()
    dead_url = dead.url
    dead.close()  # nothing listens there: every delivery to "dead" fails
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"""
rules:
  - {{id: caesar, name: قيصر, any: [قيصر, Caesar], destinations: [log, hook, dead]}}
  - {{id: sednaya, name: صيدنايا, any: [صيدنايا], destinations: [hook]}}
  - {{id: graves, name: مقابر, any: [{{term: مقبرة جماعية, mode: stem}}], realert: 1d,
      destinations: [hook]}}
destinations:
  hook: {{type: webhook, url: "{hook.url}", secret_env: T7_HOOK_SECRET, backoff: 0.05}}
  dead: {{type: webhook, url: "{dead_url}", retries: 2, backoff: 0.05, timeout: 2}}
""",
        encoding="utf-8",
    )
    settings = Settings(namespace=f"t7-{unique}", rules_file=rules)
    env = {
        **os.environ,
        "RASD_NAMESPACE": settings.namespace,
        "RASD_RULES_FILE": str(rules),
        "T7_HOOK_SECRET": "s3cret",
    }
    try:
        yield env, settings, hook
    finally:
        hook.close()
        reset_namespace(settings)


def rasd(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rasd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def worker(env: dict[str, str], stage: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rasd", "worker", stage, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def group_members(bootstrap: str, group: str) -> int:
    admin = new_admin(bootstrap, client_id="t7-test")
    try:
        info = admin.describe_groups([group]).get(group) or {}
        return len(info.get("members") or [])
    finally:
        admin.close()


def topic_keys(bootstrap: str, topic: str) -> Counter[str]:
    consumer = new_consumer(bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        keys: Counter[str] = Counter()
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                keys.update(r.key.decode() for r in records)
        return keys
    finally:
        consumer.close()


def test_two_workers_a_kill_and_syndicated_copies_give_one_alert_per_rule_and_cluster(
    es: Any, kafka_bootstrap: Bootstrap, setup: tuple[dict[str, str], Settings, WebhookServer]
) -> None:
    env, settings, hook = setup
    ns = settings.namespace
    rasd(env, "topics", "create")
    rasd(env, "index", "create")
    workers = {
        "a": worker(env, "alert"),
        "b": worker(env, "alert"),
        "hook": worker(env, "deliver", "--destination", "hook"),
        "dead": worker(env, "deliver", "--destination", "dead"),
    }
    producer = new_producer(kafka_bootstrap, acks="all")
    try:
        wait_for("two alert workers", lambda: group_members(kafka_bootstrap, f"{ns}.alert") == 2)

        matcher = RuleMatcher(load_rules(settings.rules_path))

        def story_of(article_id: str, k: int) -> EnrichedArticle:
            cluster = f"c{k:02d}"
            return enriched(
                article_id,
                cluster,
                story(k),
                title=f"خبر {cluster}",
                when=NOW,
                namespace="t7",
                matcher=matcher,
            )

        def send(articles: list[EnrichedArticle]) -> None:
            for a in articles:
                producer.send(f"{ns}.enriched", key=a.id.encode(), value=a.to_json())
            producer.flush()

        originals = [story_of(f"c{k:02d}", k) for k in range(CLUSTERS)]
        copies = [story_of(f"c{k:02d}-copy1", k) for k in range(CLUSTERS)]
        send(originals + copies)

        def ledger_count() -> int:
            es.indices.refresh(index=f"{ns}-alerts")
            return int(es.count(index=f"{ns}-alerts")["count"])

        # Kill one worker as soon as alerts start landing: its uncommitted batch is
        # redelivered to the other one after the group rebalances.
        wait_for("the first alert", lambda: ledger_count() > 0)
        workers["a"].send_signal(signal.SIGKILL)
        assert workers["a"].wait(30) == -signal.SIGKILL
        assert workers["b"].poll() is None  # the survivor takes over the partitions

        later = [story_of(f"c{k:02d}-copy2", k) for k in range(CLUSTERS)]
        send(later + originals)  # new syndicated copies, and every original a second time

        groups = {f"{ns}.{g}": f"{ns}.enriched" for g in ("alert",)}
        groups |= {f"{ns}.deliver-{d}": f"{ns}.alerts" for d in ("hook", "dead")}
        wait_for(
            "the alert and delivery groups to drain",
            lambda: sum(consumer_lag(kafka_bootstrap, groups).values()) == 0,
            timeout=240,
        )
    finally:
        producer.close()
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()

    clusters = [f"c{k:02d}" for k in range(CLUSTERS)]
    expected = {alert_id("caesar", c) for c in clusters}
    expected |= {alert_id("sednaya", c) for k, c in enumerate(clusters) if k % 2 == 0}
    expected |= {alert_id("graves", c) for k, c in enumerate(clusters) if k % 5 == 0}

    # The ledger (Kibana): exactly one document per (rule, cluster).
    es.indices.refresh(index=f"{ns}-alerts")
    docs = es.search(index=f"{ns}-alerts", size=1000)["hits"]["hits"]
    assert sorted(d["_id"] for d in docs) == sorted(expected)
    # The realert window of "graves" (1 day) lets one of its 4 clusters through.
    throttled = {d["_id"] for d in docs if d["_source"].get("throttled")}
    assert len(throttled) == 3
    assert all(d["_source"]["rule_id"] == "graves" for d in docs if d["_id"] in throttled)

    # The topic carries every alert (a kill between the topic and the ledger may
    # repeat one there: consumers deduplicate by key, as the delivery groups do).
    keys = topic_keys(kafka_bootstrap, f"{ns}.alerts")
    assert set(keys) == expected

    # The webhook got each delivered alert exactly once, signed; the throttled ones never.
    delivered = Counter(h["X-Rasd-Alert-Id"] for h, _ in hook.requests)
    assert set(delivered) == expected - throttled
    assert set(delivered.values()) == {1}

    # The dead destination held nothing up; its alerts are kept as undelivered.
    listed = subprocess.run(
        [sys.executable, "-m", "rasd", "alerts", "undelivered", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["alert_id"] for r in rows} == {alert_id("caesar", c) for c in clusters}
    assert {(r["destination"], r["attempts"]) for r in rows} == {("dead", 2)}
