"""The dead-letter topic: what a stage could not process, with the reason, and replaying it.

A dead letter keeps the original key and value; its headers name the stage,
the reason, the error and the source topic, partition and offset
(:func:`dead_letter_headers`). ``rasd dlq show`` reads them
(:func:`read_dead_letters`) and ``rasd dlq replay`` sends them back to their
source topic (:func:`replay_dead_letters`), starting where the last replay
ended (:class:`DeadLetterReader` with a cursor group).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import TopicPartition

from pipeline.errors import PermanentError, RetriableError

from .kafka import Bootstrap, Producer, committed_offset, new_consumer

__all__ = [
    "DeadLetter",
    "DeadLetterReader",
    "dead_letter_headers",
    "read_dead_letters",
    "replay_dead_letters",
]


def dead_letter_headers(stage: str, record: Any, error: PermanentError) -> list[tuple[str, bytes]]:
    """The headers of the dead letter of consumer ``record``, refused by ``stage``."""
    return [
        ("rasd.stage", stage.encode()),
        ("rasd.reason", error.reason.encode()),
        ("rasd.error", str(error)[:2000].encode()),
        ("rasd.source.topic", record.topic.encode()),
        ("rasd.source.partition", str(record.partition).encode()),
        ("rasd.source.offset", str(record.offset).encode()),
        ("rasd.failed_at", datetime.now(UTC).isoformat().encode()),
    ]


@dataclass(frozen=True)
class DeadLetter:
    """A record of the dead-letter topic, with its headers decoded."""

    offset: int
    partition: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def stage(self) -> str:
        return self.headers.get("rasd.stage", "?")

    @property
    def reason(self) -> str:
        return self.headers.get("rasd.reason", "?")


class DeadLetterReader:
    """Reads the dead-letter topic to its current end.

    Without ``cursor_group`` it reads everything. With one it starts where the
    last :meth:`mark_done` of that group left off, so ``rasd dlq replay`` sends
    each letter once, not every letter ever dead-lettered on every replay.
    """

    def __init__(self, bootstrap: Bootstrap, topic: str, cursor_group: str | None = None) -> None:
        self.topic = topic
        self.cursor_group = cursor_group
        self._consumer = new_consumer(
            bootstrap,
            group_id=cursor_group,
            enable_auto_commit=False,
            client_id="rasd-dlq",
        )
        self._ends: dict[TopicPartition, int] = {}

    def read(self, timeout: float = 30.0) -> list[DeadLetter]:
        consumer = self._consumer
        partitions = consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        for tp in tps:
            committed = consumer.committed(tp) if self.cursor_group else None
            if committed is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        self._ends = consumer.end_offsets(tps)
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < self._ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise RetriableError(f"reading {self.topic} took longer than {timeout:.0f}s")
            for batch in consumer.poll(timeout_ms=1000).values():
                letters.extend(
                    DeadLetter(
                        r.offset,
                        r.partition,
                        r.key,
                        r.value or b"",
                        {k: v.decode("utf-8", "replace") for k, v in r.headers},
                    )
                    for r in batch
                    if r.offset < self._ends[TopicPartition(r.topic, r.partition)]
                )
        return letters

    def mark_done(self) -> None:
        """Move the cursor past everything :meth:`read` returned."""
        if self.cursor_group and self._ends:
            self._consumer.commit({tp: committed_offset(end) for tp, end in self._ends.items()})

    def close(self) -> None:
        self._consumer.close()


def read_dead_letters(bootstrap: Bootstrap, topic: str, timeout: float = 30.0) -> list[DeadLetter]:
    """Every record currently in the dead-letter ``topic``, oldest first per partition."""
    reader = DeadLetterReader(bootstrap, topic)
    try:
        return reader.read(timeout)
    finally:
        reader.close()


def replay_dead_letters(
    producer: Producer,
    letters: Iterable[DeadLetter],
    dlq_topic: str,
    advance: Callable[[int], None] = lambda n: None,
) -> int:
    """Send dead letters back to the topic they came from; return how many were sent
    (``advance(1)`` after each letter).

    The replayed record keeps its key and value and gains a ``rasd.replayed_from``
    header; idempotent sinks make a replay of something already processed harmless.
    """
    sent = 0
    for letter in letters:
        advance(1)
        source = letter.headers.get("rasd.source.topic")
        if not source:
            continue
        producer.send(
            source,
            letter.key,
            letter.value,
            [("rasd.replayed_from", f"{dlq_topic}:{letter.partition}@{letter.offset}".encode())],
        )
        sent += 1
    producer.flush()
    return sent
