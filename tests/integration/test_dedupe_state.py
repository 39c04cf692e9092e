"""The dedupe state topic is bounded by the window, on the real broker.

A restart reads back only the entries written within the window; older ones
are neither in the exact-key state nor in the near-duplicate index. The topic
is compacted and deletes what left the window, and an existing topic is
brought to those settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from connectors.dedupe_snapshot import SnapshotSink, _Capture, offsets_of, save, snapshot_path
from connectors.dedupe_state import KafkaDedupeState
from connectors.dedupe_store import store_path
from connectors.kafka import (
    Bootstrap,
    Producer,
    Topics,
    delete_namespace,
    ensure_topics,
    new_admin,
    new_producer,
)
from pipeline.dedupe import DedupeEntry, Deduper, sign
from pipeline.errors import RetriableError
from pipeline.neardup import (
    NearDupConfig,
    NearDuplicateIndex,
    encode_signature,
    signature,
    words_of,
)
from pipeline.settings import Settings
from rasd.stages import cluster
from rasd.stages.base import StageContext, StageParts
from tests.fixtures.dedupe.labelled import HERE, load_group
from tests.unit.helpers import article
from tests.unit.test_dedupe import _bodies

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


# --- the snapshot: a restart reads only the tail --------------------------------


class _Unsent:
    """A producer for deciding probes without writing them to the state topic, so
    that two restarts of one topic decide the same articles from the same state."""

    def send(self, *args: object, **kwargs: object) -> None:
        pass


def _records(bodies: list[str], start: int, now: datetime) -> list[SimpleNamespace]:
    """Signed articles as the cluster worker polls them (the body's number is its URL)."""
    out = []
    for i, body in enumerate(bodies, start=start):
        a = article(f"https://example.org/snap/{i}", body=body)
        a = a.model_copy(update={"first_seen": now - timedelta(minutes=600 - i)})
        signed = sign(a, NearDupConfig())
        out.append(
            SimpleNamespace(
                topic="signed", partition=0, offset=i, key=a.id.encode(), value=signed.to_json()
            )
        )
    return out


def _verdicts(parts: StageParts, records: list[SimpleNamespace]) -> list[tuple[str, Any, Any]]:
    result = parts.handler(records)
    assert not result.failed
    return [
        (v["id"], v["duplicate_kind"], v["cluster_id"])
        for v in (json.loads(o.value) for o in result.outputs)
    ]


def _restored(caplog: pytest.LogCaptureFixture) -> int:
    found = re.findall(r"dedupe state: (\d+) entries restored", caplog.text)
    assert len(found) == 1, caplog.text
    caplog.clear()
    return int(found[0])


def test_a_restart_from_the_snapshot_reads_only_the_tail_and_decides_as_a_full_replay(
    kafka_bootstrap: Bootstrap,
    topics: Topics,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ensure_topics(kafka_bootstrap, topics, 1, dedupe_window=timedelta(days=7))
    snapshots = tmp_path / "snapshots"
    settings = Settings(
        namespace=topics.namespace, dedupe_snapshot_dir=snapshots, dedupe_snapshot_seconds=1e-6
    )
    now = datetime.now(UTC)
    bodies = _bodies(200, seed=21)
    caplog.set_level(logging.INFO)

    # The worker decides 120 articles, snapshots after them, then 50 more (the tail,
    # never snapshotted: it stops without a clean shutdown).
    producer = Producer(kafka_bootstrap, client_id="test-snapshot")
    first = cluster.build(StageContext(settings), producer)
    assert _restored(caplog) == 0
    (sink,) = first.sinks
    assert isinstance(sink, SnapshotSink)
    _verdicts(first, _records(bodies[:120], 0, now))
    producer.flush()
    sink.flush()
    assert sink._thread is None  # the batch is not committed yet
    assert first.on_commit is not None
    first.on_commit()
    assert sink._thread is not None
    sink._thread.join()
    saved = offsets_of(snapshot_path(snapshots, topics.dedupe_state), topics.dedupe_state)
    assert saved is not None and saved[0] > 0
    decided = _verdicts(first, _records(bodies[120:170], 120, now))
    producer.flush()
    producer.close()

    # Re-deliveries from before and after the snapshot, and 30 new articles.
    probes = bodies[100:140] + bodies[170:200]
    probe_records = _records(bodies[100:140], 100, now) + _records(bodies[170:200], 170, now)
    assert len(probe_records) == len(probes)

    def restart(s: Settings) -> tuple[int, list[tuple[str, Any, Any]]]:
        parts = cluster.build(StageContext(s), _Unsent())  # type: ignore[arg-type]
        return _restored(caplog), _verdicts(parts, probe_records)

    tail, from_snapshot = restart(settings)
    full, replayed = restart(settings.model_copy(update={"dedupe_snapshot_seconds": 0}))
    assert full == saved[0] + tail  # the snapshot's offset, then only what came after it
    assert 0 < tail < full / 2
    assert from_snapshot == replayed
    kinds = [kind for _, kind, _ in replayed]
    assert kinds.count("near") > 5  # the probes met near-duplicates on both sides
    assert replayed[20:40] == [d for d in decided if d[0] in {r[0] for r in replayed[20:40]}]

    # A damaged snapshot is not used: the whole window is read instead.
    path = snapshot_path(snapshots, topics.dedupe_state)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    restored, damaged = restart(settings)
    assert restored == full and damaged == replayed

    # A snapshot ahead of the topic (the topic was deleted and made again) is not used.
    empty = NearDuplicateIndex(NearDupConfig()).to_arrays()
    save(path, topics.dedupe_state, _Capture(empty, [], {0: full + 1_000}))
    parts = cluster.build(StageContext(settings), _Unsent())  # type: ignore[arg-type]
    assert "is ahead of" in caplog.text
    assert _restored(caplog) == full
    assert _verdicts(parts, probe_records) == replayed


def test_a_batch_aborted_after_its_decisions_is_decided_again_from_the_topic(
    kafka_bootstrap: Bootstrap,
    topics: Topics,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cluster worker decides a batch, its transaction is aborted (the broker
    away, a fence), and the batch is redone: the aborted decisions are not on the
    topic, so they are read again from it and made again, and the redone batch's
    entries reach the topic. Nothing the topic lacks stays in memory."""
    ensure_topics(kafka_bootstrap, topics, 1, dedupe_window=timedelta(days=7))
    settings = Settings(
        namespace=topics.namespace,
        dedupe_snapshot_dir=tmp_path / "snapshots",
        dedupe_snapshot_seconds=1e-6,
    )
    now = datetime.now(UTC)
    bodies = _bodies(60, seed=33)
    first, batch = _records(bodies[:30], 0, now), _records(bodies[30:], 30, now)
    producer = Producer(kafka_bootstrap, transactional_id=f"{topics.namespace}.cluster.test")
    parts = cluster.build(StageContext(settings), producer)
    assert parts.on_abort is not None and parts.on_commit is not None
    (sink,) = parts.sinks
    assert isinstance(sink, SnapshotSink)
    decided_first = _verdicts(parts, first)
    producer.commit({}, f"{topics.namespace}.cluster")
    parts.on_commit()

    # The batch is decided, then its transaction aborted.
    decided = _verdicts(parts, batch)
    producer.abort()
    parts.on_abort()
    caplog.set_level(logging.INFO)
    sink.flush()
    sink.tick()
    sink.close()  # not while memory holds decisions the topic lacks
    assert "not taken while a batch is uncommitted" in caplog.text
    redone = _verdicts(parts, batch)
    assert redone == decided  # the same decisions, made again from the topic
    producer.commit({}, f"{topics.namespace}.cluster")
    parts.on_commit()
    producer.close()

    # On the topic (read_committed): an entry for every article of both batches,
    # once, so a restart decides re-deliveries as the running worker did.
    state = KafkaDedupeState(kafka_bootstrap, topics.dedupe_state, _Unsent())  # type: ignore[arg-type]
    state.load()
    for i in range(60):
        assert state.get("url", article(f"https://example.org/snap/{i}").id) is not None, i
    state.close()
    restarted = cluster.build(
        StageContext(settings.model_copy(update={"dedupe_snapshot_seconds": 0})),
        _Unsent(),  # type: ignore[arg-type]
    )
    assert _verdicts(restarted, first + batch) == decided_first + decided
    assert "reading the dedupe state again" in caplog.text


# --- the window on disk (RASD_DEDUPE_STORE=disk) ---------------------------------


def _crash(parts: StageParts) -> None:
    """Stop a cluster worker as a crash would: its store's file is left as it is
    (nothing buffered is written), and freed for the next worker."""
    (sink,) = parts.sinks
    window = sink.window  # type: ignore[attr-defined]
    window.store.close()
    window.store = None


def _keys_on_disk(path: Path, ids: list[str]) -> int:
    """How many of ``ids`` have an entry of their own in the store's file (read
    beside the worker, as SQLite lets a second reader)."""
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        listed = db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'keys_%'")
        tables = [name for (name,) in listed]
        found = 0
        for article_id in ids:
            for table in tables:
                found += db.execute(
                    f"SELECT count(*) FROM {table} WHERE kind = 'url' AND key = ?", (article_id,)
                ).fetchone()[0]
        return int(found)
    finally:
        db.close()


@pytest.fixture
def on_disk(kafka_bootstrap: Bootstrap, topics: Topics, tmp_path: Path) -> tuple[Settings, Path]:
    """The settings of a cluster worker with its window on disk, and its store's path."""
    ensure_topics(kafka_bootstrap, topics, 1, dedupe_window=timedelta(days=7))
    settings = Settings(
        namespace=topics.namespace, dedupe_store="disk", dedupe_snapshot_dir=tmp_path / "store"
    )
    return settings, store_path(tmp_path / "store", topics.dedupe_state)


def test_with_the_window_on_disk_a_restart_reads_only_the_tail_and_decides_as_a_full_replay(
    kafka_bootstrap: Bootstrap,
    topics: Topics,
    on_disk: tuple[Settings, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, path = on_disk
    now = datetime.now(UTC)
    bodies = _bodies(200, seed=21)
    caplog.set_level(logging.INFO)

    # Three committed batches; the file is written after each commit, complete up to
    # the entries the worker had read back before it.
    producer = Producer(kafka_bootstrap, client_id="test-store")
    first = cluster.build(StageContext(settings), producer)
    assert _restored(caplog) == 0
    assert first.on_commit is not None
    decided = []
    for start, end in ((0, 100), (100, 150), (150, 170)):
        decided += _verdicts(first, _records(bodies[start:end], start, now))
        producer.flush()
        first.on_commit()
    producer.close()
    _crash(first)
    ids = [article(f"https://example.org/snap/{i}").id for i in range(170)]
    assert _keys_on_disk(path, ids) == 170

    probe_records = _records(bodies[100:140], 100, now) + _records(bodies[170:200], 170, now)

    def restart(s: Settings) -> tuple[int, list[tuple[str, Any, Any]], StageParts]:
        parts = cluster.build(StageContext(s), _Unsent())  # type: ignore[arg-type]
        return _restored(caplog), _verdicts(parts, probe_records), parts

    tail, from_disk, parts = restart(settings)
    _crash(parts)
    full, replayed, _ = restart(
        settings.model_copy(update={"dedupe_store": "memory", "dedupe_snapshot_seconds": 0})
    )
    assert 0 < tail < full / 2  # only what the last batch wrote (and read back) after it
    assert from_disk == replayed
    assert [k for _, k, _ in replayed].count("near") > 5
    assert replayed[:40] == decided[100:140]  # re-deliveries keep their first verdicts

    # A file ahead of the topic (the topic deleted and made again) is not used.
    delete_namespace(kafka_bootstrap, topics, [])
    ensure_topics(kafka_bootstrap, topics, 1, dedupe_window=timedelta(days=7))
    parts = cluster.build(StageContext(settings), _Unsent())  # type: ignore[arg-type]
    assert "is ahead of" in caplog.text
    assert _restored(caplog) == 0
    anew = _verdicts(parts, probe_records)
    _crash(parts)
    _, empty, _ = restart(
        settings.model_copy(update={"dedupe_store": "memory", "dedupe_snapshot_seconds": 0})
    )
    assert anew == empty != replayed  # decided as by a worker that knows nothing

    # A damaged file is not used either: a new one is made from the topic.
    path.write_bytes(b"not a database" * 100)
    parts = cluster.build(StageContext(settings), _Unsent())  # type: ignore[arg-type]
    assert "is unusable" in caplog.text
    parts.sinks[0].close()


def test_with_the_window_on_disk_an_aborted_batch_never_reaches_the_file(
    kafka_bootstrap: Bootstrap,
    topics: Topics,
    on_disk: tuple[Settings, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, path = on_disk
    now = datetime.now(UTC)
    bodies = _bodies(60, seed=33)
    first, batch = _records(bodies[:30], 0, now), _records(bodies[30:], 30, now)
    batch_ids = [article(f"https://example.org/snap/{i}").id for i in range(30, 60)]
    producer = Producer(kafka_bootstrap, transactional_id=f"{topics.namespace}.cluster.test")
    parts = cluster.build(StageContext(settings), producer)
    assert parts.on_abort is not None and parts.on_commit is not None
    decided_first = _verdicts(parts, first)
    producer.commit({}, f"{topics.namespace}.cluster")
    parts.on_commit()

    decided = _verdicts(parts, batch)
    producer.abort()
    parts.on_abort()
    parts.on_commit()  # even a stray commit call writes nothing the topic lacks
    assert _keys_on_disk(path, batch_ids) == 0
    caplog.set_level(logging.INFO)
    redone = _verdicts(parts, batch)
    assert "reading the dedupe state again" in caplog.text
    assert redone == decided
    assert _keys_on_disk(path, batch_ids) == 0  # decided, not committed yet
    producer.commit({}, f"{topics.namespace}.cluster")
    parts.on_commit()
    producer.close()
    assert _keys_on_disk(path, batch_ids) == 30
    parts.sinks[0].close()  # a clean stop

    restarted = cluster.build(StageContext(settings), _Unsent())  # type: ignore[arg-type]
    assert _verdicts(restarted, first + batch) == decided_first + decided
    _crash(restarted)


def test_with_the_window_on_disk_a_failing_store_fails_the_batch_not_its_articles(
    on_disk: tuple[Settings, Path],
) -> None:
    """The file unreadable (here: its connection gone) is no article's fault: the
    batch is to be retried whole (RetriableError), no verdict is dead-lettered."""
    settings, _ = on_disk
    parts = cluster.build(StageContext(settings), _Unsent())  # type: ignore[arg-type]
    assert parts.on_commit is not None
    (sink,) = parts.sinks
    records = _records(_bodies(6, seed=8), 0, datetime.now(UTC))
    assert len(_verdicts(parts, records[:3])) == 3
    parts.on_commit()  # written: the next verdicts read the file
    sink.window.store.near.connection.close()  # type: ignore[attr-defined]
    with pytest.raises(RetriableError, match="the dedupe store failed"):
        parts.handler(records[3:])
    sink.window.store.close()  # type: ignore[attr-defined]
