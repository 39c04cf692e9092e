"""The dedupe stage's state, kept in a compacted Kafka topic so that it survives restarts.

Every new entry is written to ``<ns>.dedupe-state`` (key ``kind:key``, value
the entry as JSON) through the worker's own producer, so it is acknowledged
before the worker commits the input that produced it. On start a worker reads
the whole topic back into memory; before each batch it catches up with what
other workers wrote. Memory is bounded by :class:`InMemoryDedupeState`'s LRU
limit, and compaction bounds the topic.

Limit (issue 6 replaces this): two workers that see copies of one story in the
same instant can both win ``put``; the catch-up makes the window short, not
zero.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from pipeline.stages import DedupeEntry, InMemoryDedupeState, KeyKind

from .kafka import KafkaSink

log = logging.getLogger(__name__)


class KafkaDedupeState:
    """A :class:`pipeline.stages.DedupeState` with a Kafka changelog behind it."""

    def __init__(
        self, bootstrap: str, topic: str, sink: KafkaSink, max_entries: int = 1_000_000
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.sink = sink
        self.memory = InMemoryDedupeState(max_entries)
        self._consumer: KafkaConsumer | None = None

    def _reader(self) -> KafkaConsumer:
        if self._consumer is None:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                client_id="rasd-dedupe-state",
            )
            partitions = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            self._consumer = consumer
        return self._consumer

    def load(self) -> int:
        """Read the changelog to its end; return how many entries were restored."""
        consumer = self._reader()
        ends = consumer.end_offsets(list(consumer.assignment()))
        restored = 0
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            restored += self._apply(consumer.poll(timeout_ms=1000))
        log.info("dedupe state: %d entries restored from %s", restored, self.topic)
        return restored

    def catch_up(self) -> int:
        """Apply what other workers wrote since the last call (non-blocking)."""
        return self._apply(self._reader().poll(timeout_ms=0))

    def _apply(self, polled: dict[Any, list[Any]]) -> int:
        n = 0
        for records in polled.values():
            for record in records:
                if record.value is None or record.key is None:
                    continue
                kind, _, key = record.key.decode().partition(":")
                try:
                    data = json.loads(record.value)
                    self.memory.put(kind, key, DedupeEntry(**data))
                    n += 1
                except (ValueError, TypeError) as exc:
                    log.warning("dedupe state: skipping bad entry %r: %s", record.key, exc)
        return n

    def get(self, kind: KeyKind, key: str) -> DedupeEntry | None:
        return self.memory.get(kind, key)

    def put(self, kind: KeyKind, key: str, entry: DedupeEntry) -> DedupeEntry:
        stored = self.memory.put(kind, key, entry)
        if stored is entry:
            value = json.dumps(dataclasses.asdict(entry))
            self.sink.send(self.topic, f"{kind}:{key}", value.encode())
        return stored

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
