"""The dedupe stage's state, kept in a compacted Kafka topic so that it survives restarts.

Every new entry is written to ``<ns>.dedupe-state`` (key ``kind:key``, value
the entry as JSON, with the article's MinHash under its own id) through the
worker's own producer, so it is acknowledged before the worker commits the
input that produced it. On start a worker reads the topic back into memory,
from the first entry written within the ``window`` (the record timestamps,
through ``offsets_for_times``), and hands each entry to ``on_entry`` (the
deduper rebuilds its LSH index from the signatures); before each batch it reads
the topic to its end again, so a worker that takes over the single clustering
partition from another one decides with everything its predecessor wrote
(``docs/dedupe.md``). Memory is bounded by :class:`InMemoryDedupeState`'s LRU
limit and the LSH index's time window; compaction and the topic's retention
(:func:`connectors.kafka.dedupe_state_configs`) bound the topic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition

from pipeline.dedupe import DedupeEntry, InMemoryDedupeState, KeyKind

from .kafka import Bootstrap, Producer, new_consumer, read_to_end

log = logging.getLogger(__name__)


class _Memory(Protocol):
    """Where the entries are held: in the process, or on local disk
    (:class:`connectors.dedupe_store.DiskDedupeKeys`)."""

    def get(self, kind: KeyKind, key: str) -> DedupeEntry | None: ...

    def put(
        self, kind: KeyKind, key: str, entry: DedupeEntry, at: float | None = None
    ) -> DedupeEntry: ...


class KafkaDedupeState:
    """A :class:`pipeline.dedupe.DedupeState` with a Kafka changelog behind it."""

    def __init__(
        self,
        bootstrap: Bootstrap,
        topic: str,
        producer: Producer,
        max_entries: int = 1_000_000,
        on_entry: Callable[[KeyKind, str, DedupeEntry], None] | None = None,
        window: timedelta | None = None,
    ) -> None:
        """``window``: entries written longer ago than this are not read back
        (``None``: the whole topic)."""
        self.bootstrap = bootstrap
        self.topic = topic
        self.producer = producer
        self.max_entries = max_entries
        self.memory: _Memory = InMemoryDedupeState(max_entries)
        self.on_entry = on_entry
        #: Called after each entry read back (a store on disk writes what it has
        #: buffered when that grows large).
        self.after_apply: Callable[[], None] | None = None
        self.window = window
        self._since = 0  # record timestamps (ms) before this are outside the window
        self._consumer: KafkaConsumer | None = None
        #: Entries sent in the current batch: memory holds them, the topic not yet.
        self._open: set[tuple[str, str]] = set()
        #: A batch that sent entries was aborted: memory is ahead of the topic.
        self.stale = False

    def new_batch(self) -> None:
        """A batch begins (the previous one was committed or aborted)."""
        self._open.clear()

    def committed(self) -> None:
        """The batch is committed: what it sent is on the topic."""
        self._open.clear()

    def in_batch(self) -> bool:
        """Whether the current batch has sent entries the topic may not hold yet."""
        return bool(self._open)

    def settled(self) -> bool:
        """Whether the topic holds everything in :attr:`memory` (no batch open or aborted)."""
        return not self._open and not self.stale

    def aborted(self) -> None:
        """The batch's transaction was aborted: what it sent is not on the topic, so
        memory must be read again from the topic (:meth:`reset`) before the next
        decision."""
        if self._open:
            self.stale = True
        self._open.clear()

    def reset(self) -> None:
        """Forget everything in memory; the next read starts from the window again
        (:attr:`stale` stays as it is until the caller has read it)."""
        self.close()
        self.memory = InMemoryDedupeState(self.max_entries)
        self._open.clear()
        self._since = 0

    def _reader(self) -> KafkaConsumer:
        if self._consumer is None:
            consumer = new_consumer(
                self.bootstrap,
                enable_auto_commit=False,
                client_id="rasd-dedupe-state",
                # A whole state at a restart: the default 500 is many round trips.
                max_poll_records=10_000,
            )
            partitions = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            self._seek_to_window(consumer, tps)
            self._consumer = consumer
        return self._consumer

    def end_offsets(self) -> dict[int, int]:
        """Each partition's end offset now (a snapshot ahead of it is of another topic)."""
        consumer = self._reader()
        ends = consumer.end_offsets(list(consumer.assignment()))
        return {tp.partition: int(end) for tp, end in ends.items()}

    def positions(self) -> dict[int, int]:
        """Each partition's next offset to read: the state holds everything before it."""
        consumer = self._reader()
        return {tp.partition: int(consumer.position(tp)) for tp in consumer.assignment()}

    def _seek_to_window(self, consumer: KafkaConsumer, tps: list[TopicPartition]) -> None:
        """Each partition at its first entry written within the window, or at its end."""
        if self.window is None or not tps:
            consumer.seek_to_beginning(*tps)
            return
        since = self._since = int((time.time() - self.window.total_seconds()) * 1000)
        found = consumer.offsets_for_times(dict.fromkeys(tps, since))
        for tp in tps:
            at = found.get(tp)
            if at is None:  # nothing written since: all of it is outside the window
                consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, at.offset)

    def load(self, after: Mapping[int, int] | None = None) -> int:
        """Read the changelog to its end; return how many entries were restored.

        ``after``: the offsets of a snapshot already in :attr:`memory` (see
        :mod:`connectors.dedupe_snapshot`); only what was written from them on
        is read (a reader already past them stays where it is).
        """
        began = time.monotonic()
        consumer = self._reader()
        if after is not None:
            for tp in consumer.assignment():
                # The snapshot holds everything before its offsets.
                if after.get(tp.partition, 0) > (consumer.position(tp) or 0):
                    consumer.seek(tp, after[tp.partition])
        restored = read_to_end(consumer, self._apply)
        log.info(
            "dedupe state: %d entries restored from %s%s in %.1f s",
            restored,
            self.topic,
            " after the snapshot" if after is not None else "",
            time.monotonic() - began,
        )
        return restored

    def catch_up(self) -> int:
        """Apply what was written since the last call, up to the topic's current end.

        Blocking until the end offsets read now: a worker that has just been
        given the clustering partition must see every entry its predecessor
        had acknowledged before deciding anything.
        """
        return read_to_end(self._reader(), self._apply)

    def _apply(self, record: Any) -> None:
        if record.value is None or record.key is None or record.timestamp < self._since:
            return  # a tombstone, or an entry written before the window (out of order)
        kind, _, key = record.key.decode().partition(":")
        try:
            entry = DedupeEntry(**json.loads(record.value))
        except (ValueError, TypeError) as exc:
            log.warning("dedupe state: skipping bad entry %r: %s", record.key, exc)
            return
        stored = self.memory.put(kind, key, entry, record.timestamp / 1000)
        if self.on_entry is not None and stored is entry:
            self.on_entry(kind, key, entry)
        if self.after_apply is not None:
            self.after_apply()

    def get(self, kind: KeyKind, key: str) -> DedupeEntry | None:
        return self.memory.get(kind, key)

    def put(self, kind: KeyKind, key: str, entry: DedupeEntry) -> DedupeEntry:
        stored = self.memory.put(kind, key, entry)
        if stored is entry:
            value = json.dumps(dataclasses.asdict(entry)).encode()
            self.producer.send(self.topic, f"{kind}:{key}", value)
            self._open.add((kind, key))
        return stored

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
