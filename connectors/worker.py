"""The stage worker loop, and the two kinds of outputs a stage has: topics and sinks.

A stage worker consumes one topic in its own consumer group and hands each
batch to the stage's handler, which returns a :class:`BatchResult`: records
for Kafka topics (:class:`Output`), values for the stage's :class:`Sink`\\ s
(Elasticsearch, the alert ledger, an alert destination), the records that
failed for good, and outcome counts. The worker then, in this order:

1. produces the outputs and the dead letters with ``acks=all`` and waits until
   the broker has acknowledged every one;
2. writes each sink its batch and flushes it (a sink comes after the topics:
   the alerts index records an alert only once it is on the alerts topic);
3. commits the offsets.

With a transactional :class:`connectors.kafka.Producer` (the default,
``RASD_TRANSACTIONS``), steps 1 to 3 are one Kafka transaction: the outputs,
the dead letters and the input offsets become visible together or not at all,
and every consumer reads ``read_committed``. A batch that fails, or a worker
that dies, before the commit leaves nothing on the topics; the batch is
redone, and only the sinks outside Kafka see it twice (they are idempotent).
The offsets are committed with the group metadata of the poll that returned
the records, so a worker that lost its partitions in a rebalance (a zombie) is
refused by the broker and its transaction aborted (KIP-447).

A record the stage cannot process (``PermanentError``, or a ``RetriableError``
that outlived its retries) goes to the dead-letter topic with its reason
(:mod:`connectors.dead_letters`); so does a value a sink refuses for good. A
``RetriableError`` for the whole batch (a broker or a sink that is down) is
retried with backoff and never commits past the failed batch. Every outcome is
counted in :class:`connectors.metrics.Stats` under the stage's name.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pipeline.errors import PermanentError, RetriableError

from .dead_letters import dead_letter_headers
from .kafka import (
    Bootstrap,
    Producer,
    SendFailed,
    TransactionFailed,
    committed_offset,
    new_consumer,
    too_large,
)
from .logcontext import log_context
from .metrics import Stats
from .throughput import RateWindow

__all__ = [
    "BatchHandler",
    "BatchResult",
    "BufferedSink",
    "Output",
    "Sink",
    "StageWorker",
    "backoff",
    "per_record",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    """A record a stage wants produced; ``source`` is the input record it came from."""

    topic: str
    key: str
    value: bytes
    source: Any = None


@dataclass
class BatchResult:
    """What a stage made of a batch: outputs, sink writes, failures and outcome counts.

    ``writes`` maps a sink's name to ``(source record, value)`` pairs for it.
    """

    outputs: list[Output] = field(default_factory=list)
    failed: list[tuple[Any, PermanentError]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    writes: dict[str, list[tuple[Any, Any]]] = field(default_factory=dict)
    #: Seconds from first sighting, per milestone (``indexed``, ``alerted``): the
    #: worker records them once the batch is committed, so a retry counts nothing twice.
    freshness: dict[str, list[float]] = field(default_factory=dict)

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n

    def fresh(self, until: str, seconds: float) -> None:
        self.freshness.setdefault(until, []).append(seconds)

    def write(self, sink: str, source: Any, value: Any) -> None:
        self.writes.setdefault(sink, []).append((source, value))

    def merge(self, other: BatchResult) -> None:
        self.outputs.extend(other.outputs)
        self.failed.extend(other.failed)
        for outcome, n in other.outcomes.items():
            self.count(outcome, n)
        for sink, items in other.writes.items():
            self.writes.setdefault(sink, []).extend(items)
        for until, seconds in other.freshness.items():
            self.freshness.setdefault(until, []).extend(seconds)


class Sink(Protocol):
    """An output other than a Kafka topic: written a batch at a time, then flushed.

    ``write`` takes ``(source record, value)`` pairs; ``flush`` makes them
    durable and reports, as a :class:`BatchResult`, the sources whose value was
    refused for good (``failed``) and the outcome counts. ``flush`` raises
    ``RetriableError`` when the whole batch must be tried again; the worker
    then commits nothing, so a sink must be idempotent.
    """

    name: str

    def write(self, batch: list[tuple[Any, Any]]) -> None: ...

    def flush(self) -> BatchResult: ...

    def close(self) -> None: ...


class BufferedSink:
    r"""A sink's buffer: ``write`` keeps the pairs until ``flush`` :meth:`take`\ s them."""

    name: str

    def __init__(self) -> None:
        self._batch: list[tuple[Any, Any]] = []

    def write(self, batch: list[tuple[Any, Any]]) -> None:
        self._batch.extend(batch)

    def take(self) -> list[tuple[Any, Any]]:
        """The pairs written since the last flush, and an empty buffer."""
        batch, self._batch = self._batch, []
        return batch

    def close(self) -> None:
        """Nothing to release by default."""


#: A stage's batch function: consumer records in, a BatchResult out. It may raise
#: RetriableError for the whole batch (a sink that is down); it is then retried.
BatchHandler = Callable[[list[Any]], BatchResult]


def article_key(record: Any) -> str | None:
    """The article id a record is keyed by (None on the alerts topic: an alert id)."""
    key = getattr(record, "key", None)
    if not isinstance(key, bytes) or str(getattr(record, "topic", "")).endswith(".alerts"):
        return None
    return key.decode("utf-8", "replace")


def _unexpected(stage: str, record: Any, exc: Exception) -> BatchResult:
    """A bug, or a library failing on this input: the record goes to the DLQ
    (replayable once fixed) instead of blocking the partition."""
    log.exception(
        "%s: unexpected error on %s:%s@%s", stage, record.topic, record.partition, record.offset
    )
    result = BatchResult()
    result.count("unexpected")
    result.failed.append((record, PermanentError("unexpected", repr(exc))))
    return result


def per_record(
    handle: Callable[[Any], Iterable[Output]],
    retries: int = 3,
    base_delay: float = 0.5,
    batch_errors: tuple[type[Exception], ...] = (),
) -> BatchHandler:
    """Adapt a one-record stage to a batch handler.

    ``PermanentError`` sends the record to the DLQ; ``RetriableError`` is retried
    with exponential backoff and jitter, and after ``retries`` attempts the
    record goes to the DLQ with reason ``retries_exhausted`` (``rasd dlq replay``
    can bring it back once the cause is fixed). ``batch_errors`` are not the
    record's fault (a store of the stage's own that fails): they are raised out
    of the handler, for the stage to fail the whole batch with.
    """

    def one(record: Any) -> BatchResult:
        with log_context(article_id=article_key(record)):
            return attempts(record)

    def attempts(record: Any) -> BatchResult:
        result = BatchResult()
        for attempt in range(retries + 1):
            try:
                produced = list(handle(record))
            except batch_errors:
                raise
            except PermanentError as exc:
                result.failed.append((record, exc))
            except RetriableError as exc:
                if attempt < retries:
                    time.sleep(backoff(attempt, base_delay))
                    continue
                result.failed.append((record, PermanentError("retries_exhausted", str(exc))))
            except Exception as exc:
                return _unexpected("per_record", record, exc)
            else:
                result.outputs.extend(Output(o.topic, o.key, o.value, record) for o in produced)
                result.count("ok" if produced else "dropped")
            return result
        return result

    def handler(records: list[Any]) -> BatchResult:
        result = BatchResult()
        for record in records:
            result.merge(one(record))
        return result

    return handler


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


class StageWorker:
    """Consume ``source`` in ``group``, run ``handler``, produce and flush, write and
    flush the ``sinks``, then commit."""

    def __init__(
        self,
        stage: str,
        bootstrap: Bootstrap,
        group: str,
        source: str,
        handler: BatchHandler,
        producer: Producer,
        dlq_topic: str,
        stats: Stats,
        stop: threading.Event,
        max_records: int = 200,
        sinks: Iterable[Sink] = (),
        on_abort: Callable[[], None] | None = None,
        on_commit: Callable[[], None] | None = None,
        max_poll_interval_ms: int = 600_000,
        session_timeout_ms: int | None = None,
    ) -> None:
        """``on_abort`` is called when a batch's transaction is aborted, before the
        batch is redone (a stage that keeps state in memory re-sends it);
        ``on_commit`` once a batch's outputs and offsets are committed.
        ``session_timeout_ms``: how long the group waits for a worker that stopped
        heartbeating (killed, its host lost) before its partitions go to another
        (default: the client's, 45 s)."""
        self.stage = stage
        self.bootstrap = bootstrap
        self.group = group
        self.source = source
        self.handler = handler
        self.producer = producer
        self.dlq_topic = dlq_topic
        self.stats = stats
        self.stop = stop
        self.max_records = max_records
        self.sinks = {sink.name: sink for sink in sinks}
        self.on_abort = on_abort
        self.on_commit = on_commit
        self.max_poll_interval_ms = max_poll_interval_ms
        self.session_timeout_ms = session_timeout_ms
        #: Set while this worker is a member of its group (with partitions, or as a
        #: standby with none); cleared when a rebalance takes them away.
        self.ready = threading.Event()
        #: The partitions the group gave this worker (empty: a standby).
        self.assigned: set[TopicPartition] = set()
        #: ``time.monotonic()`` of the loop's last turn (``/healthz`` checks it).
        self.heartbeat = time.monotonic()
        self._consumer: KafkaConsumer | None = None
        self._rates: dict[TopicPartition, RateWindow] = {}
        #: The offsets this worker last committed, per partition.
        self._committed: dict[TopicPartition, int] = {}
        self._idle_check = 0.0
        #: The group membership of the poll whose records are being processed.
        self._generation: Any = None

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            consumer = new_consumer(
                self.bootstrap,
                group_id=self.group,
                client_id=f"rasd-{self.stage}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self.max_records,
                # trafilatura on a large page can take seconds; a batch may take minutes.
                max_poll_interval_ms=self.max_poll_interval_ms,
                **(
                    {}
                    if self.session_timeout_ms is None
                    else {
                        "session_timeout_ms": self.session_timeout_ms,
                        "heartbeat_interval_ms": max(1000, self.session_timeout_ms // 5),
                    }
                ),
            )
            consumer.subscribe([self.source], listener=_Membership(self))
            self._consumer = consumer
        return self._consumer

    def _assigned(self, partitions: Iterable[TopicPartition]) -> None:
        self.assigned = set(partitions)
        self.ready.set()

    def _revoked(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._rates.pop(tp, None)  # a partition that comes back starts a new window
            self._committed.pop(tp, None)
        self.assigned -= set(partitions)
        self.ready.clear()

    def run(self) -> None:
        """Loop until ``stop`` is set; never dies on a bad record."""
        with log_context(stage=self.stage):
            log.info("%s worker started (group %s, topic %s)", self.stage, self.group, self.source)
            try:
                while not self.stop.is_set():
                    self.heartbeat = time.monotonic()
                    try:
                        consumer = self.consumer
                    except KafkaError as exc:
                        # Joining again after a rejoin, while the broker is away.
                        log.warning("%s: cannot join group %s: %r", self.stage, self.group, exc)
                        self.stop.wait(2.0)
                        continue
                    polled = consumer.poll(timeout_ms=500)
                    records = [r for batch in polled.values() for r in batch]
                    if records:
                        if self.producer.transactional:
                            self._generation = consumer.group_metadata()
                        self.process(records)
                    else:
                        self._commit_idle()
            finally:
                self.close()

    def process(self, records: list[Any]) -> None:
        began = time.monotonic()
        attempt = 0
        while True:
            try:
                result = self._handle(records)
                self._deliver(result)
                self._flush_sinks(result)
                break
            except RetriableError as exc:
                # The whole batch failed (a sink is down): nothing is committed, and
                # the batch is tried again; idempotent sinks make the retry safe.
                self._abort()
                self.stats.batch_retries.labels(self.stage).inc()
                delay = backoff(attempt, 1.0, 30.0)
                log.warning(
                    "%s: batch of %d failed (%s); retrying in %.1fs",
                    self.stage,
                    len(records),
                    exc,
                    delay,
                )
                attempt += 1
                self.heartbeat = time.monotonic()  # retrying is not hanging
                if self.stop.wait(delay):
                    return  # shutting down: uncommitted, so redelivered on restart
        if self.producer.transactional:
            if not self._commit_transaction(records):
                return  # aborted: the batch is polled again, and counted then
        else:
            self._commit(records)
        if self.on_commit is not None:
            self.on_commit()
        for outcome, n in result.outcomes.items():
            self.stats.inc(self.stage, outcome, n)
        self.stats.inc(self.stage, "dlq", len(result.failed))
        for until, seconds in result.freshness.items():
            self.stats.fresh(until, seconds)
        self.stats.batch_took(self.stage, time.monotonic() - began)

    def _handle(self, records: list[Any]) -> BatchResult:
        """The handler's result. An unexpected exception (a bug, a library failing on
        one input) is narrowed down by handling each record alone; the record that
        still fails goes to the DLQ, so one poison record never blocks a partition."""
        try:
            return self.handler(records)
        except RetriableError:
            raise
        except Exception as exc:
            if len(records) == 1:
                return _unexpected(self.stage, records[0], exc)
            merged = BatchResult()
            for record in records:
                merged.merge(self._handle([record]))
            return merged

    def _deliver(self, result: BatchResult) -> None:
        """Produce the outputs and the dead letters and wait for every acknowledgement."""
        outputs = list(result.outputs)
        for out in outputs:
            self.producer.send(out.topic, out.key, out.value)
        for record, error in result.failed:
            self._dead_letter(record, error)
        try:
            self.producer.flush()
        except SendFailed as exc:
            # An output too big for Kafka is a permanent failure of the record it came
            # from; anything else (a broker down, a timeout) retries the batch. The
            # producer refuses a record over the size limit before sending it; one the
            # broker refused (a topic that takes less) has made the producer learn the
            # topic's limit, and the batch is redone, so that the check applies.
            sources = [
                outputs[i].source
                for i, error in exc.failures
                if i < len(outputs) and too_large(error)
            ]
            if exc.sent or len(sources) != len(exc.failures) or any(s is None for s in sources):
                raise
            for source in {id(s): s for s in sources}.values():
                error = PermanentError(
                    "output_too_large", f"an output exceeds what its topic takes ({exc})"
                )
                result.failed.append((source, error))
                self._dead_letter(source, error)
            self.producer.flush()

    def _flush_sinks(self, result: BatchResult) -> None:
        """Write and flush every sink; what a sink refuses for good is dead-lettered."""
        refused: list[tuple[Any, PermanentError]] = []
        for name, sink in self.sinks.items():
            sink.write(result.writes.get(name, []))
            report = sink.flush()
            refused.extend(report.failed)
            for outcome, n in report.outcomes.items():
                result.count(outcome, n)
            for until, seconds in report.freshness.items():
                result.freshness.setdefault(until, []).extend(seconds)
        if refused:
            for record, error in refused:
                self._dead_letter(record, error)
            self.producer.flush()
            result.failed.extend(refused)

    def _dead_letter(self, record: Any, error: PermanentError) -> None:
        with log_context(article_id=article_key(record)):
            log.warning(
                "%s: %s:%d@%d to the DLQ: %s",
                self.stage,
                record.topic,
                record.partition,
                record.offset,
                error,
            )
        headers = dead_letter_headers(self.stage, record, error)
        self.producer.send(self.dlq_topic, record.key, record.value or b"", headers)

    def _offsets(self, records: list[Any]) -> dict[TopicPartition, Any]:
        """What to commit after ``records``: past the last of them on each partition,
        or past what the consumer skipped after it (transaction markers, aborted
        records), and the throughput sample as metadata."""
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        assigned = self.consumer.assignment()
        for tp, o in offsets.items():
            if tp in assigned:
                with contextlib.suppress(KafkaError):
                    offsets[tp] = max(o, self.consumer.position(tp, timeout_ms=1000) or 0)
        return {
            tp: committed_offset(o, self._rates.setdefault(tp, RateWindow()).commit(o))
            for tp, o in offsets.items()
        }

    def _commit_transaction(self, records: list[Any]) -> bool:
        """Commit the batch's transaction with its offsets; False if it was aborted
        (the consumer is then back at the batch's first records)."""
        offsets = self._offsets(records)
        try:
            self.producer.commit(offsets, self._generation)
        except TransactionFailed as exc:
            self.stats.inc(self.stage, "commit_failed")
            log.warning("%s: transaction aborted: %s", self.stage, exc)
            if exc.uncertain:
                # It may be committed after all: start again from what the group has
                # committed, read by a new member (a read_committed fetch of the
                # offsets waits until that transaction is finished).
                self._rejoin()
            else:
                self._rewind(records)
            if self.on_abort is not None:
                self.on_abort()
            if exc.fenced:
                # Another process has this worker's transactional id: two processes
                # were given the same RASD_INSTANCE_ID. This one stands down.
                log.error(
                    "%s: fenced by another producer with transactional id %s; stopping",
                    self.stage,
                    self.producer.transactional_id,
                )
                self.stop.set()
            return False
        self._committed.update({tp: o.offset for tp, o in offsets.items()})
        return True

    def _abort(self) -> None:
        """Discard what the batch sent so far (its transaction), before it is redone."""
        self.producer.abort()
        if self.on_abort is not None:
            self.on_abort()

    def _rejoin(self) -> None:
        """Leave the group; the next poll joins it again with a new consumer, which
        starts from the group's committed offsets."""
        self.ready.clear()
        if self._consumer is not None:
            with contextlib.suppress(KafkaError):
                self._consumer.close()
            self._consumer = None

    def _rewind(self, records: list[Any]) -> None:
        """Put the consumer back at the first record of the batch on each partition it
        still owns, so that an aborted batch is polled again (a partition it lost is
        read by its new owner from the last committed offset)."""
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        assigned = self.consumer.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                self.consumer.seek(tp, offset)

    def _commit_idle(self) -> None:
        """When nothing came: commit a position the consumer moved past transaction
        markers or aborted records, so that the group's lag reaches zero."""
        now = time.monotonic()
        if now - self._idle_check < 1.0 or self._consumer is None:
            return
        self._idle_check = now
        consumer = self._consumer
        moved: dict[TopicPartition, Any] = {}
        try:
            for tp in consumer.assignment():
                position = consumer.position(tp, timeout_ms=1000)
                if position is None:
                    continue
                if tp not in self._committed:
                    done = consumer.committed(tp, timeout_ms=1000)
                    self._committed[tp] = done if done is not None else -1
                # (-1: the group has committed nothing here; markers alone moved it.)
                if position > self._committed[tp]:
                    moved[tp] = committed_offset(position)
            if moved:
                consumer.commit(moved)
                self._committed.update({tp: o.offset for tp, o in moved.items()})
        except KafkaError as exc:
            log.debug("%s: idle commit: %r", self.stage, exc)

    def _commit(self, records: list[Any]) -> None:
        offsets = self._offsets(records)
        try:
            self.consumer.commit(offsets)
            self._committed.update({tp: o.offset for tp, o in offsets.items()})
        except KafkaError as exc:
            # A rebalance took the partitions away (CommitFailed, RebalanceInProgress)
            # or the coordinator did not answer in time: the batch is redelivered to
            # whoever owns the partitions next, and idempotent sinks absorb it.
            self.stats.inc(self.stage, "commit_failed")
            log.warning("%s: commit failed: %r", self.stage, exc)

    def close(self) -> None:
        self.ready.clear()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class _Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells a :class:`StageWorker` when the group gives and takes its partitions."""

    def __init__(self, worker: StageWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker._revoked(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker._assigned(assigned)
