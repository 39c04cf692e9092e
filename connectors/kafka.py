"""Kafka adapters: topic names, topic creation, a producer sink, and the stage worker loop.

A stage worker consumes one topic in its own consumer group, hands each batch
to a pure stage, produces the outputs with ``acks=all``, waits until the broker
has acknowledged them, and only then commits its offsets. A record the stage
cannot process (``PermanentError``, or a ``RetriableError`` that outlived its
retries) goes to the dead-letter topic, with the original key and value and
headers naming the stage, the reason, the error and the source offset. A sink
that is down (``RetriableError`` from a batch flush) is retried with backoff
and never commits past the failed batch. Every outcome is counted in
:class:`connectors.metrics.Stats`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.errors import PermanentError, RetriableError

from .metrics import Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topics:
    """Every topic and consumer-group name, derived from one namespace."""

    namespace: str

    def _t(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    @property
    def items(self) -> str:
        return self._t("items")

    @property
    def articles(self) -> str:
        return self._t("articles")

    @property
    def unique(self) -> str:
        return self._t("unique")

    @property
    def enriched(self) -> str:
        return self._t("enriched")

    @property
    def alerts(self) -> str:
        return self._t("alerts")

    @property
    def dlq(self) -> str:
        return self._t("dlq")

    @property
    def dedupe_state(self) -> str:
        return self._t("dedupe-state")

    @property
    def feeds(self) -> str:
        """The feed catalogue, keyed by feed URL (compacted): what poller instances share out."""
        return self._t("feeds")

    @property
    def feeds_state(self) -> str:
        """Each feed's poller state, keyed by feed URL (compacted; same partitions as ``feeds``)."""
        return self._t("feeds-state")

    @property
    def signed(self) -> str:
        """Articles with their dedupe keys: one partition, the clustering step's single writer."""
        return self._t("signed")

    def group(self, stage: str) -> str:
        return self._t(stage)

    def pipeline(self) -> list[str]:
        return [self.items, self.articles, self.unique, self.enriched, self.alerts, self.dlq]

    def all(self) -> list[str]:
        """Every topic of the namespace."""
        return [*self.pipeline(), self.dedupe_state, self.signed, self.feeds, self.feeds_state]


def ensure_topics(bootstrap: str, topics: Topics, partitions: int) -> list[str]:
    """Create the pipeline's topics if missing (idempotent); return the ones created."""
    specs: dict[str, dict[str, Any]] = {
        name: {
            "num_partitions": partitions,
            "replication_factor": -1,
            "configs": {"max.message.bytes": str(MAX_MESSAGE_BYTES)},
        }
        for name in topics.pipeline()
    }
    # The dedupe state is a changelog: only the latest value per key matters.
    # So are the feed catalogue and the feeds' poller state; those two share a
    # partition count so that a feed's state lives in the partition number of
    # the feed itself (docs/polling.md, "Sharding").
    for name in (topics.dedupe_state, topics.feeds, topics.feeds_state):
        specs[name] = {
            "num_partitions": partitions,
            "replication_factor": -1,
            "configs": {"cleanup.policy": "compact", "max.message.bytes": str(MAX_MESSAGE_BYTES)},
        }
    # One partition on purpose: every dedupe decision is made by its one consumer,
    # in order, so two copies of a story can never both be "first" (docs/dedupe.md).
    specs[topics.signed] = {
        "num_partitions": 1,
        "replication_factor": -1,
        "configs": {"max.message.bytes": str(MAX_MESSAGE_BYTES)},
    }
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rasd-admin")
    try:
        existing = set(admin.list_topics())
        missing = {k: v for k, v in specs.items() if k not in existing}
        if missing:
            # Another process may create them between our list and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing, wait_for_metadata=True)
        return sorted(missing)
    finally:
        admin.close()


#: The largest record rasd produces, and the topics' ``max.message.bytes``: an
#: article body with its metadata stays far below it, but the broker's 1 MB
#: default is within reach of a long page.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class SendFailed(RetriableError):
    """Some sent records were not acknowledged; ``failures`` pairs each with its error."""

    def __init__(self, failures: list[tuple[int, Exception]]) -> None:
        super().__init__(f"{len(failures)} record(s) not acknowledged: {failures[0][1]!r}")
        self.failures = failures


class KafkaSink:
    """A lazily created producer with ``acks=all``.

    ``flush`` checks every record sent since the previous flush: the producer's
    own flush only waits, it does not report a record the broker rejected.
    """

    def __init__(self, bootstrap: str, client_id: str = "rasd") -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._pending_lock = threading.Lock()

    @property
    def producer(self) -> KafkaProducer:
        """The raw kafka-python producer (created on first use)."""
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    client_id=self._client_id,
                    acks="all",
                    # Not the idempotent producer: after one record is rejected as too
                    # large, kafka-python's idempotent producer fails every later send
                    # to that partition. Duplicates from retries are absorbed by the
                    # consumers, which are idempotent by article id anyway.
                    enable_idempotence=False,
                    linger_ms=5,
                    max_request_size=MAX_MESSAGE_BYTES,
                )
            return self._producer

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> Any:
        """Queue one record (``partition``: this one, instead of the key's hash)."""
        raw_key = key.encode() if isinstance(key, str) else key
        try:
            future = self.producer.send(
                topic, key=raw_key, value=value, headers=list(headers), partition=partition
            )
        except KafkaError as exc:
            # e.g. a record over max_request_size, rejected before it is queued.
            future = _FailedSend(exc)
        with self._pending_lock:  # one sink may be shared by several threads
            self._pending.append(future)
        return future

    def flush(self, timeout: float = 60.0) -> None:
        """Block until every record sent since the last flush is acknowledged.

        Raises :class:`SendFailed` (retriable) naming, by position in send order
        since the last flush, each record that failed and why.
        """
        with self._pending_lock:
            pending, self._pending = self._pending, []
        with self._lock:
            producer = self._producer
        if producer is not None:
            try:
                producer.flush(timeout=timeout)
            except KafkaError as exc:
                raise SendFailed([(i, exc) for i in range(len(pending))]) from exc
        failures = [
            (i, f.exception if f.exception is not None else KafkaError("not delivered"))
            for i, f in enumerate(pending)
            if not f.succeeded()
        ]
        if failures:
            self._reset()  # start the next batch with a producer in a known state
            raise SendFailed(failures)

    def _reset(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=30)
                self._producer = None


class _FailedSend:
    """Stands in for the future of a send that failed before it was queued."""

    def __init__(self, exc: Exception) -> None:
        self.exception = exc

    def succeeded(self) -> bool:
        return False


def too_large(exc: Exception) -> bool:
    from kafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

    return isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError)


@dataclass(frozen=True)
class Output:
    """A record a stage wants produced; ``source`` is the input record it came from."""

    topic: str
    key: str
    value: bytes
    source: Any = None


@dataclass
class BatchResult:
    """What a stage made of a batch: outputs, and the records that failed for good."""

    outputs: list[Output] = field(default_factory=list)
    failed: list[tuple[Any, PermanentError]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n


#: A stage's batch function: consumer records in, a BatchResult out. It may raise
#: RetriableError for the whole batch (a sink that is down); it is then retried.
BatchHandler = Callable[[list[Any]], BatchResult]


def per_record(
    handle: Callable[[Any], Iterable[Output]], retries: int = 3, base_delay: float = 0.5
) -> BatchHandler:
    """Adapt a one-record stage to a batch handler.

    ``PermanentError`` sends the record to the DLQ; ``RetriableError`` is retried
    with exponential backoff and jitter, and after ``retries`` attempts the
    record goes to the DLQ with reason ``retries_exhausted`` (``rasd dlq replay``
    can bring it back once the cause is fixed).
    """

    def handler(records: list[Any]) -> BatchResult:
        result = BatchResult()
        for record in records:
            for attempt in range(retries + 1):
                try:
                    produced = list(handle(record))
                except PermanentError as exc:
                    result.failed.append((record, exc))
                    break
                except RetriableError as exc:
                    if attempt == retries:
                        result.failed.append(
                            (record, PermanentError("retries_exhausted", str(exc)))
                        )
                        break
                    time.sleep(backoff(attempt, base_delay))
                except Exception as exc:
                    # A bug, or a library failing on this input: the record goes to
                    # the DLQ (replayable once fixed) instead of blocking the partition.
                    log.exception(
                        "unexpected error on %s:%s@%s",
                        record.topic,
                        record.partition,
                        record.offset,
                    )
                    result.count("unexpected")
                    result.failed.append((record, PermanentError("unexpected", repr(exc))))
                    break
                else:
                    result.outputs.extend(Output(o.topic, o.key, o.value, record) for o in produced)
                    result.count("ok" if produced else "dropped")
                    break
        return result

    return handler


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


class StageWorker:
    """Consume ``source`` in ``group``, run ``handler``, produce, flush, then commit.

    ``on_flushed`` runs after the outputs are acknowledged and before the commit,
    for side effects that must follow them (the alerts index after the alerts
    topic); a RetriableError there retries the batch.
    """

    def __init__(
        self,
        stage: str,
        bootstrap: str,
        group: str,
        source: str,
        handler: BatchHandler,
        sink: KafkaSink,
        dlq_topic: str,
        stats: Stats,
        stop: threading.Event,
        max_records: int = 200,
        on_flushed: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.stage = stage
        self.bootstrap = bootstrap
        self.group = group
        self.source = source
        self.handler = handler
        self.sink = sink
        self.dlq_topic = dlq_topic
        self.stats = stats
        self.stop = stop
        self.max_records = max_records
        self.on_flushed = on_flushed
        #: Set once the group has assigned this worker its partitions.
        self.ready = threading.Event()
        self._consumer: KafkaConsumer | None = None

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                self.source,
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                client_id=f"rasd-{self.stage}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self.max_records,
                # trafilatura on a large page can take seconds; a batch may take minutes.
                max_poll_interval_ms=600_000,
            )
        return self._consumer

    def run(self) -> None:
        """Loop until ``stop`` is set; never dies on a bad record."""
        log.info("%s worker started (group %s, topic %s)", self.stage, self.group, self.source)
        try:
            while not self.stop.is_set():
                polled = self.consumer.poll(timeout_ms=500)
                if not self.ready.is_set() and self.consumer.assignment():
                    self.ready.set()
                records = [r for batch in polled.values() for r in batch]
                if records:
                    self.process(records)
        finally:
            self.close()

    def process(self, records: list[Any]) -> None:
        attempt = 0
        while True:
            try:
                result = self._handle(records)
                self._deliver(result)
                if self.on_flushed is not None:
                    self.on_flushed(result)
                break
            except RetriableError as exc:
                # The whole batch failed (a sink is down): nothing is committed, and
                # the batch is tried again; idempotent sinks make the retry safe.
                self.stats.inc(self.stage, "retried")
                delay = backoff(attempt, 1.0, 30.0)
                log.warning(
                    "%s: batch of %d failed (%s); retrying in %.1fs",
                    self.stage,
                    len(records),
                    exc,
                    delay,
                )
                attempt += 1
                if self.stop.wait(delay):
                    return  # shutting down: uncommitted, so redelivered on restart
        for outcome, n in result.outcomes.items():
            self.stats.inc(self.stage, outcome, n)
        self.stats.inc(self.stage, "dlq", len(result.failed))
        self._commit(records)

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
                record = records[0]
                log.exception(
                    "%s: unexpected error on %s:%s@%s",
                    self.stage,
                    record.topic,
                    record.partition,
                    record.offset,
                )
                alone = BatchResult()
                alone.count("unexpected")
                alone.failed.append((record, PermanentError("unexpected", repr(exc))))
                return alone
            merged = BatchResult()
            for record in records:
                part = self._handle([record])
                merged.outputs.extend(part.outputs)
                merged.failed.extend(part.failed)
                for outcome, n in part.outcomes.items():
                    merged.count(outcome, n)
            return merged

    def _deliver(self, result: BatchResult) -> None:
        """Produce the outputs and the dead letters and wait for every acknowledgement."""
        outputs = list(result.outputs)
        for out in outputs:
            self.sink.send(out.topic, out.key, out.value)
        for record, error in result.failed:
            self._dead_letter(record, error)
        try:
            self.sink.flush()
        except SendFailed as exc:
            # An output too big for Kafka is a permanent failure of the record it came
            # from; anything else (a broker down, a timeout) retries the batch.
            sources = [
                outputs[i].source
                for i, error in exc.failures
                if i < len(outputs) and too_large(error)
            ]
            if len(sources) != len(exc.failures) or any(s is None for s in sources):
                raise
            for source in {id(s): s for s in sources}.values():
                error = PermanentError(
                    "output_too_large", f"an output exceeds {MAX_MESSAGE_BYTES} bytes"
                )
                result.failed.append((source, error))
                self._dead_letter(source, error)
            self.sink.flush()

    def _dead_letter(self, record: Any, error: PermanentError) -> None:
        log.warning(
            "%s: %s:%d@%d to the DLQ: %s",
            self.stage,
            record.topic,
            record.partition,
            record.offset,
            error,
        )
        headers = [
            ("rasd.stage", self.stage.encode()),
            ("rasd.reason", error.reason.encode()),
            ("rasd.error", str(error)[:2000].encode()),
            ("rasd.source.topic", record.topic.encode()),
            ("rasd.source.partition", str(record.partition).encode()),
            ("rasd.source.offset", str(record.offset).encode()),
            ("rasd.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        self.sink.send(self.dlq_topic, record.key, record.value or b"", headers)

    def _commit(self, records: list[Any]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        try:
            self.consumer.commit({tp: _offset(o) for tp, o in offsets.items()})
        except KafkaError as exc:
            # A rebalance took the partitions away (CommitFailed, RebalanceInProgress)
            # or the coordinator did not answer in time: the batch is redelivered to
            # whoever owns the partitions next, and idempotent sinks absorb it.
            self.stats.inc(self.stage, "commit_failed")
            log.warning("%s: commit failed: %r", self.stage, exc)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _offset(offset: int) -> Any:
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, "", -1)


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

    def __init__(self, bootstrap: str, topic: str, cursor_group: str | None = None) -> None:
        self.topic = topic
        self.cursor_group = cursor_group
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
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
            self._consumer.commit({tp: _offset(end) for tp, end in self._ends.items()})

    def close(self) -> None:
        self._consumer.close()


def read_dead_letters(bootstrap: str, topic: str, timeout: float = 30.0) -> list[DeadLetter]:
    """Every record currently in the dead-letter ``topic``, oldest first per partition."""
    reader = DeadLetterReader(bootstrap, topic)
    try:
        return reader.read(timeout)
    finally:
        reader.close()


def replay_dead_letters(sink: KafkaSink, letters: Iterable[DeadLetter], dlq_topic: str) -> int:
    """Send dead letters back to the topic they came from; return how many were sent.

    The replayed record keeps its key and value and gains a ``rasd.replayed_from``
    header; idempotent sinks make a replay of something already processed harmless.
    """
    sent = 0
    for letter in letters:
        source = letter.headers.get("rasd.source.topic")
        if not source:
            continue
        sink.send(
            source,
            letter.key,
            letter.value,
            [("rasd.replayed_from", f"{dlq_topic}:{letter.partition}@{letter.offset}".encode())],
        )
        sent += 1
    sink.flush()
    return sent


def read_to_end(
    consumer: KafkaConsumer, apply: Callable[[Any], None], timeout: float | None = None
) -> int:
    """Hand every record of the consumer's assigned partitions, up to their current
    end offsets, to ``apply``; return how many there were.

    The end offsets are read once, at the call: what a changelog's reader needs
    to be sure it has seen everything acknowledged before it started. Given a
    ``timeout`` (seconds), raises :class:`RetriableError` when the end is not
    reached by then.
    """
    deadline = None if timeout is None else time.monotonic() + timeout

    def left_ms() -> int | None:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise RetriableError(f"not at the end of {sorted(ends)} after {timeout:.0f} s")
        return max(1, int(left * 1000))

    ends: dict[Any, int] = {}
    try:
        ends = consumer.end_offsets(list(consumer.assignment()), timeout_ms=left_ms())
        n = 0
        while True:
            # A position not known yet (None) is not at the end.
            behind = [
                tp for tp, end in ends.items() if (consumer.position(tp, left_ms()) or 0) < end
            ]
            if not behind:
                return n
            for records in consumer.poll(timeout_ms=min(1000, left_ms() or 1000)).values():
                for record in records:
                    apply(record)
                    n += 1
    except KafkaError as exc:  # e.g. KafkaTimeoutError from end_offsets or position
        raise RetriableError(f"reading {sorted(ends) or 'the topic'} to its end: {exc}") from exc


def delete_namespace(bootstrap: str, topics: Topics, stages: Iterable[str]) -> list[str]:
    """Delete the namespace's topics and consumer groups; return what was deleted."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rasd-admin")
    try:
        existing = set(admin.list_topics())
        doomed = [t for t in topics.all() if t in existing]
        if doomed:
            admin.delete_topics(doomed)
        names = {g["group_id"] for g in admin.list_groups()}
        groups = [topics.group(s) for s in stages if topics.group(s) in names]
        if groups:
            outcome = admin.delete_groups(groups)
            # A group that still has members is not deleted; do not claim it was.
            groups = [g for g in groups if outcome.get(g) in (None, "OK")]
        return doomed + groups
    finally:
        admin.close()


def consumer_lag(bootstrap: str, groups: dict[str, str]) -> dict[str, int]:
    """Records not yet committed, per group, over its topic ({group: topic})."""
    from kafka.admin import OffsetSpec

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rasd-lag")
    try:
        partitions = {
            topic: [
                TopicPartition(topic, p["partition_index"])
                for t in admin.describe_topics([topic])
                for p in t["partitions"]
            ]
            for topic in set(groups.values())
        }
        ends = admin.list_partition_offsets(
            {tp: OffsetSpec.LATEST for tps in partitions.values() for tp in tps}
        )
        committed = admin.list_group_offsets({g: partitions[t] for g, t in groups.items()})
        lag: dict[str, int] = {}
        for group, topic in groups.items():
            mine = committed.get(group, {})
            total = 0
            for tp in partitions[topic]:
                end = ends[tp].offset
                done = mine.get(tp)
                total += end - (done.offset if done is not None and done.offset >= 0 else 0)
            lag[group] = total
        return lag
    finally:
        admin.close()
