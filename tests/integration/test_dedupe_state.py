"""The dedupe state topic is bounded by the window, on the real broker.

A restart reads back only the entries written within the window; older ones
are neither in the exact-key state nor in the near-duplicate index. The topic
is compacted and deletes what left the window, and an existing topic is
brought to those settings.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from connectors.dedupe_state import KafkaDedupeState
from connectors.kafka import (
    Bootstrap,
    Producer,
    Topics,
    delete_namespace,
    ensure_topics,
    new_admin,
    new_producer,
)
from pipeline.dedupe import DedupeEntry, Deduper
from pipeline.neardup import (
    NearDupConfig,
    NearDuplicateIndex,
    encode_signature,
    signature,
    words_of,
)
from tests.fixtures.dedupe.labelled import HERE, load_group

pytestmark = pytest.mark.integration

TEXTS, _ = load_group(HERE / "01-sednaya.yaml")
DAY = 86_400_000


@pytest.fixture
def topics(kafka_bootstrap: Bootstrap, unique: str) -> Iterator[Topics]:
    topics = Topics(f"test-{unique}")
    yield topics
    delete_namespace(kafka_bootstrap, topics, [])


def topic_config(bootstrap: Bootstrap, topic: str) -> dict[str, str]:
    admin = new_admin(bootstrap)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        return {name: c["value"] for name, c in found["topic"][topic].items()}
    finally:
        admin.close()


def entry_for(article_id: str, text: str, written: datetime) -> DedupeEntry:
    config = NearDupConfig()
    sig = signature(words_of(text), config)
    assert sig is not None
    return DedupeEntry(
        article_id,
        article_id,
        first_seen=written.isoformat(),
        index_name=f"rasd-articles-{written:%Y.%m}",
        signature=encode_signature(sig),
    )


def test_the_topic_is_compacted_and_deletes_what_left_the_window(
    kafka_bootstrap: Bootstrap, topics: Topics
) -> None:
    ensure_topics(kafka_bootstrap, topics, 1, dedupe_window=timedelta(days=7))
    configs = topic_config(kafka_bootstrap, topics.dedupe_state)
    assert configs["cleanup.policy"] == "compact,delete"
    assert int(configs["retention.ms"]) == 8 * DAY  # the window and a day
    assert int(configs["segment.ms"]) == DAY

    # An existing topic is brought to another window's settings.
    ensure_topics(kafka_bootstrap, topics, 1, dedupe_window=timedelta(days=2))
    configs = topic_config(kafka_bootstrap, topics.dedupe_state)
    assert configs["cleanup.policy"] == "compact,delete"
    assert int(configs["retention.ms"]) == 3 * DAY


def test_a_restart_reads_back_only_what_is_inside_the_window(
    kafka_bootstrap: Bootstrap, topics: Topics
) -> None:
    ensure_topics(kafka_bootstrap, topics, 2, dedupe_window=timedelta(days=7))
    now = datetime.now(UTC)
    # Entries as the cluster worker wrote them at three times: ten days ago (outside
    # the 7-day window), two days ago and an hour ago (inside).
    written = {
        "old": (TEXTS["agency"], now - timedelta(days=10)),
        "recent": (TEXTS["other_detainees"], now - timedelta(days=2)),
        "fresh": (TEXTS["rewrite"], now - timedelta(hours=1)),
    }
    raw = new_producer(kafka_bootstrap, acks="all")
    for key, (text, when) in written.items():
        entry = entry_for(key, text, when)
        ms = int(when.timestamp() * 1000)
        for kind, k, e in (("url", key, entry), ("body", f"hash-{key}", DedupeEntry(key, key))):
            value = json.dumps(dataclasses.asdict(e)).encode()
            raw.send(topics.dedupe_state, key=f"{kind}:{k}".encode(), value=value, timestamp_ms=ms)
    raw.flush()
    raw.close()

    # A write through the state itself, then the restart.
    producer = Producer(kafka_bootstrap, client_id="test-dedupe-state")
    first = KafkaDedupeState(
        kafka_bootstrap, topics.dedupe_state, producer, window=timedelta(days=7)
    )
    first.load()
    first.put("url", "now", entry_for("now", TEXTS["wire_tv"], now))
    producer.flush()
    first.close()

    index = NearDuplicateIndex(NearDupConfig(window=timedelta(days=7)))
    restored: list[str] = []

    def on_entry(kind: str, key: str, entry: DedupeEntry) -> None:
        restored.append(f"{kind}:{key}")
        deduper.remember(kind, key, entry)  # type: ignore[arg-type]

    started = time.monotonic()
    again = KafkaDedupeState(
        kafka_bootstrap, topics.dedupe_state, producer, on_entry=on_entry, window=timedelta(days=7)
    )
    deduper = Deduper(again, index)
    again.load()
    assert time.monotonic() - started < 30
    assert sorted(restored) == [
        "body:hash-fresh",
        "body:hash-recent",
        "url:fresh",
        "url:now",
        "url:recent",
    ]
    assert again.get("url", "old") is None and again.get("body", "hash-old") is None
    assert again.get("url", "recent") is not None
    assert "recent" in index and "fresh" in index and "now" in index and "old" not in index
    assert len(index) == 3

    # Without a window (the former behaviour) everything is read back.
    whole = KafkaDedupeState(kafka_bootstrap, topics.dedupe_state, producer)
    assert whole.load() == 7
    assert whole.get("url", "old") is not None
    whole.close()
    again.close()
    producer.close()
