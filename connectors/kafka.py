"""Kafka adapters: client construction, topic names, topic creation, the producer,
changelog reads, lag.

:func:`new_producer`, :func:`new_consumer` and :func:`new_admin` are the only
places that construct kafka-python clients: each applies the connection's TLS
and SASL options (:class:`pipeline.settings.KafkaAccess`). A plain ``str`` of
addresses means PLAINTEXT.

The stage worker loop that uses them is :mod:`connectors.worker`; the
dead-letter topic's readers are :mod:`connectors.dead_letters`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.errors import RetriableError
from pipeline.settings import KafkaAccess

log = logging.getLogger(__name__)

#: Where a Kafka client connects: the full access, or bare addresses (PLAINTEXT).
Bootstrap = KafkaAccess | str


class _LastConnectionFailure(logging.Handler):
    """Remembers why kafka-python's last connection attempts failed.

    kafka-python retries a refused connection until its bootstrap timeout and then
    raises only "Unable to bootstrap"; the reason (TLS, SASL) is in what it logs on
    each attempt. :func:`explain` turns that into one line. A telling reason (an
    untrusted certificate, refused credentials) is not overwritten by the plain
    disconnects that follow it.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.error: str | None = None
        self._telling = False

    @staticmethod
    def telling(text: str) -> bool:
        return (
            "SaslAuthenticationFailed" in text
            or "certificate verify failed" in text.lower()
            or answered_in_tls(text)
        )

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            return
        args = record.args if isinstance(record.args, tuple) else ()
        errors = [a for a in args if isinstance(a, BaseException)]
        text = " ".join(f"{type(e).__name__}: {e}" for e in errors) or record.getMessage()
        # The final "Unable to bootstrap" is the symptom, not the reason.
        if "Unable to bootstrap" in text or not (errors or "failed" in text or "lost" in text):
            return
        if self.telling(text) or not self._telling:
            self.error, self._telling = text, self.telling(text)


_last_failure = _LastConnectionFailure()
logging.getLogger("kafka.net").addHandler(_last_failure)


def answered_in_tls(text: str) -> bool:
    """Whether kafka-python's "Invalid frame length: N" is a TLS record read as a
    Kafka frame: a client without TLS, a listener with it. The broker answers the
    first bytes with a TLS alert or handshake record (type 0x15 or 0x16, version
    0x03..), whose first four bytes kafka-python takes for a frame's length."""
    found = re.search(r"Invalid frame length: (-?\d+)", text)
    if found is None:
        return False
    head = (int(found.group(1)) & 0xFFFFFFFF).to_bytes(4, "big")
    return head[0] in (0x15, 0x16) and head[1] == 0x03


def explain(exc: BaseException, target: Bootstrap) -> str:
    """One line on why a Kafka call failed: refused credentials, an untrusted
    certificate, a listener that speaks another protocol, missing rights."""
    from kafka.errors import (
        AuthorizationError,
        KafkaConnectionError,
        KafkaTimeoutError,
        SaslAuthenticationFailedError,
    )

    access = target if isinstance(target, KafkaAccess) else KafkaAccess(target)
    where = f"Kafka at {access.bootstrap}"
    text = f"{type(exc).__name__}: {exc}"
    reported = _last_failure.error
    if isinstance(exc, KafkaTimeoutError | KafkaConnectionError) and reported is not None:
        text = reported
    if isinstance(exc, SaslAuthenticationFailedError) or "SaslAuthenticationFailed" in text:
        return (
            f"{where} refused the login as {access.username!r} "
            f"({access.sasl_mechanism}): check RASD_KAFKA_USERNAME and RASD_KAFKA_PASSWORD"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        reason = text.split("certificate verify failed:")[-1].split("(_ssl")[0].strip()
        return (
            f"{where}: the broker's certificate is not trusted ({reason}): set "
            "RASD_KAFKA_CA_FILE to the CA that signed it"
        )
    if answered_in_tls(text) and not access.tls:
        return (
            f"{where} answered in TLS: its listener does not speak {access.security_protocol}; "
            "set RASD_KAFKA_SECURITY_PROTOCOL to SASL_SSL (or SSL)"
        )
    if isinstance(exc, AuthorizationError) or "Authorization failed" in text:
        return (
            f"{where}: user {access.username!r} may not do this ({type(exc).__name__}); "
            "its ACLs cover the namespace's topics and groups only"
        )
    if "disconnected" in text and access.sasl:
        # The broker answers refused SCRAM credentials by closing the connection,
        # and kafka-python often reports only the close.
        return (
            f"{where} closed the connection at login as {access.username!r} "
            f"({access.sasl_mechanism}): check RASD_KAFKA_USERNAME and RASD_KAFKA_PASSWORD, "
            f"and that its listener speaks {access.security_protocol} "
            "(RASD_KAFKA_SECURITY_PROTOCOL)"
        )
    if "disconnected" in text:
        return (
            f"{where} closed every connection: does its listener expect another "
            f"RASD_KAFKA_SECURITY_PROTOCOL than {access.security_protocol}, or SASL credentials?"
        )
    return f"{where}: {exc!r} (is it running? `rasd stack up`)"


def client_options(target: Bootstrap) -> dict[str, Any]:
    """The connection options (addresses, TLS, SASL) of every client for ``target``."""
    access = target if isinstance(target, KafkaAccess) else KafkaAccess(target)
    return access.options()


def quick(target: Bootstrap, seconds: float = 5.0) -> KafkaAccess:
    """``target`` with a shorter connection timeout: for probes that must answer fast."""
    access = target if isinstance(target, KafkaAccess) else KafkaAccess(target)
    return replace(access, connect_timeout=min(access.connect_timeout, seconds))


def new_producer(target: Bootstrap, **options: Any) -> KafkaProducer:
    return KafkaProducer(**client_options(target), **options)


def new_consumer(target: Bootstrap, *topics: str, **options: Any) -> KafkaConsumer:
    """A consumer that reads only committed records (``read_committed``): the stage
    workers write their topics in transactions, and what an aborted or unfinished
    transaction wrote must never be seen downstream."""
    options.setdefault("isolation_level", "read_committed")
    return KafkaConsumer(*topics, **client_options(target), **options)


def new_admin(target: Bootstrap, **options: Any) -> KafkaAdminClient:
    return KafkaAdminClient(**client_options(target), **options)


class _Topic:
    """A topic of the namespace: ``Topics(ns).items`` is ``"<ns>.items"``."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def __get__(self, topics: Topics, owner: type[Topics] | None = None) -> str:
        return f"{topics.namespace}.{self.suffix}"


@dataclass(frozen=True)
class Topics:
    """Every topic and consumer-group name, derived from one namespace."""

    namespace: str

    items = _Topic("items")
    articles = _Topic("articles")
    #: Articles with their dedupe keys: one partition, the dedupe decision's single writer.
    signed = _Topic("signed")
    #: Every article with its dedupe verdict: duplicates are marked, not dropped. The
    #: topic keeps its first name, ``<ns>.unique``, so that records in flight survive.
    deduped = _Topic("unique")
    enriched = _Topic("enriched")
    alerts = _Topic("alerts")
    dlq = _Topic("dlq")
    dedupe_state = _Topic("dedupe-state")
    #: The feed catalogue, keyed by feed URL (compacted): what poller instances share out.
    feeds = _Topic("feeds")
    #: Each feed's poller state, keyed by feed URL (compacted; same partitions as ``feeds``).
    feeds_state = _Topic("feeds-state")

    def group(self, stage: str) -> str:
        return f"{self.namespace}.{stage}"

    def pipeline(self) -> list[str]:
        return [self.items, self.articles, self.deduped, self.enriched, self.alerts, self.dlq]

    def all(self) -> list[str]:
        """Every topic of the namespace."""
        return [*self.pipeline(), self.dedupe_state, self.signed, self.feeds, self.feeds_state]


def ensure_topics(
    bootstrap: Bootstrap, topics: Topics, partitions: int, *, dedupe_window: timedelta | None = None
) -> list[str]:
    """Create the pipeline's topics if missing (idempotent); return the ones created.

    Given the dedupe ``window``, the dedupe state is also bounded by time
    (:func:`dedupe_state_configs`), on an existing topic too.
    """
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
    if dedupe_window is not None:
        specs[topics.dedupe_state]["configs"] = dedupe_state_configs(dedupe_window)
    # One partition on purpose: every dedupe decision is made by its one consumer,
    # in order, so two copies of a story can never both be "first" (docs/dedupe.md).
    specs[topics.signed] = {
        "num_partitions": 1,
        "replication_factor": -1,
        "configs": {"max.message.bytes": str(MAX_MESSAGE_BYTES)},
    }
    admin = new_admin(bootstrap, client_id="rasd-admin")
    try:
        existing = set(admin.list_topics())
        missing = {k: v for k, v in specs.items() if k not in existing}
        if missing:
            # Another process may create them between our list and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing, wait_for_metadata=True)
        if dedupe_window is not None and topics.dedupe_state in existing:
            state = specs[topics.dedupe_state]["configs"]
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topics.dedupe_state, state)]
            )
        return sorted(missing)
    finally:
        admin.close()


def dedupe_state_configs(window: timedelta) -> dict[str, str]:
    """The dedupe state topic's settings: compacted, and emptied of what left the window.

    Compaction keeps the latest entry per key; deletion drops a log segment
    once its newest entry is a day older than the window (``retention.ms``),
    and segments roll daily at most (``segment.ms``), so the topic holds about
    the window plus two days. A restart reads less still: only the entries
    written within the window (:class:`connectors.dedupe_state.KafkaDedupeState`).
    """
    segment = max(timedelta(hours=1), min(timedelta(days=1), window / 7))
    return {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(int((window + timedelta(days=1)).total_seconds() * 1000)),
        "segment.ms": str(int(segment.total_seconds() * 1000)),
        "max.message.bytes": str(MAX_MESSAGE_BYTES),
    }


#: The largest record rasd produces, and the topics' ``max.message.bytes``: an
#: article body with its metadata stays far below it, but the broker's 1 MB
#: default is within reach of a long page.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class SendFailed(RetriableError):
    """Some sent records were not acknowledged; ``failures`` pairs each with its error."""

    def __init__(self, failures: list[tuple[int, Exception]], sent: bool = True) -> None:
        super().__init__(f"{len(failures)} record(s) not acknowledged: {failures[0][1]!r}")
        self.failures = failures
        #: False when every failed record was refused before it was sent (too large):
        #: then an open transaction is unharmed.
        self.sent = sent


class TransactionFailed(RetriableError):
    """A transaction could not be committed and was aborted: nothing it wrote is
    visible, and its input offsets were not committed. ``fenced``: another producer
    took over this transactional id, so this one must stop. ``uncertain``: the
    commit was asked for but not answered in time, so the transaction may yet be
    committed (the next producer with this id finishes it, one way or the other):
    only the group's committed offsets tell where to go on from."""

    def __init__(self, message: str, fenced: bool = False, uncertain: bool = False) -> None:
        super().__init__(message)
        self.fenced = fenced
        self.uncertain = uncertain


#: How long a transaction may stay open (the producer's ``transaction.timeout.ms``):
#: the broker aborts one open longer, and ``read_committed`` readers of its
#: partitions wait for it until then when its worker died.
TRANSACTION_TIMEOUT_SECONDS = 60.0

#: How long a step of a transaction (offsets, commit, abort) may wait for the
#: broker. kafka-python's own calls wait without a limit, so a broker that dies
#: while a step is in flight would hang the worker; under the transaction timeout.
TRANSACTION_STEP_SECONDS = 30.0


#: What a record may weigh, key, value and headers together, before it is sent:
#: the topics' ``max.message.bytes`` less room for the batch and record framing.
MAX_RECORD_BYTES = MAX_MESSAGE_BYTES - 4096


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """The bytes of a record's key, value and headers (framing not counted)."""
    return (
        len(key or b"")
        + len(value or b"")
        + sum(len(k.encode()) + len(v or b"") for k, v in headers)
    )


class Producer:
    """A lazily created producer with ``acks=all``.

    ``flush`` checks every record sent since the previous flush: the producer's
    own flush only waits, it does not report a record the broker rejected.

    Given a ``transactional_id``, every send belongs to a transaction, begun by
    the first send after the previous :meth:`commit` or :meth:`abort`:
    :meth:`commit` adds the consumer's offsets to it and commits both at once
    (exactly once between the stages), and :meth:`abort` discards it. A record
    heavier than :data:`MAX_RECORD_BYTES` is refused before it is sent, so that
    it can be dead-lettered without failing the rest of the transaction.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        client_id: str = "rasd",
        transactional_id: str | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self.transactional_id = transactional_id
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._topics: list[str] = []  # the topic of each pending record
        self._pending_lock = threading.Lock()
        self._in_transaction = False
        self._began = 0.0  # when the open transaction began (monotonic)
        #: The record size limit of a topic that takes less than rasd's own topics,
        #: learnt when the broker refused a record as too large.
        self._limits: dict[str, int] = {}

    @property
    def transactional(self) -> bool:
        return self.transactional_id is not None

    @property
    def producer(self) -> KafkaProducer:
        """The raw kafka-python producer (created on first use)."""
        with self._lock:
            if self._producer is None:
                self._producer = self._make()
            return self._producer

    def _make(self) -> KafkaProducer:
        if self.transactional_id is None:
            return new_producer(
                self._bootstrap,
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
        # Transactions need the idempotent producer; records over the size limit
        # never reach it (send refuses them first), so none can poison it.
        producer = new_producer(
            self._bootstrap,
            client_id=self._client_id,
            acks="all",
            transactional_id=self.transactional_id,
            transaction_timeout_ms=int(TRANSACTION_TIMEOUT_SECONDS * 1000),
            linger_ms=5,
            max_request_size=MAX_MESSAGE_BYTES,
        )
        try:
            # Fences any earlier producer with this id and aborts what it left open.
            producer.init_transactions()
        except KafkaError as exc:
            producer.close(timeout=5)
            raise RetriableError(f"transactions for {self.transactional_id}: {exc!r}") from exc
        return producer

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> Any:
        """Queue one record (``partition``: this one, instead of the key's hash)."""
        from kafka.errors import MessageSizeTooLargeError

        raw_key = key.encode() if isinstance(key, str) else key
        size = record_size(raw_key, value, headers)
        limit = self._limits.get(topic, MAX_RECORD_BYTES)
        future: Any
        if size > limit:
            future = _FailedSend(MessageSizeTooLargeError(f"{size} bytes, more than {limit}"))
        else:
            try:
                producer = self.producer
                if self.transactional and not self._in_transaction:
                    producer.begin_transaction()
                    self._in_transaction = True
                    self._began = time.monotonic()
                future = producer.send(
                    topic, key=raw_key, value=value, headers=list(headers), partition=partition
                )
            except KafkaError as exc:
                # e.g. a record over max_request_size, rejected before it is queued.
                future = _FailedSend(exc)
        with self._pending_lock:  # one sink may be shared by several threads
            self._pending.append(future)
            self._topics.append(topic)
        return future

    def flush(self, timeout: float = 60.0) -> None:
        """Block until every record sent since the last flush is acknowledged.

        Raises :class:`SendFailed` (retriable) naming, by position in send order
        since the last flush, each record that failed and why.
        """
        with self._pending_lock:
            pending, self._pending = self._pending, []
            topics, self._topics = self._topics, []
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
            refused = [
                i
                for i, f in enumerate(pending)
                if not f.succeeded() and not isinstance(f, _FailedSend)
            ]
            if refused:
                self._learn_limits({topics[i] for i, error in failures if too_large(error)})
                # A record the broker refused: start the next batch with a producer in
                # a known state. (A transactional one cannot go on either: a new one
                # fences it and aborts its transaction.)
                self._reset()
            raise SendFailed(failures, sent=bool(refused))

    def _learn_limits(self, topics: set[str]) -> None:
        """Read the ``max.message.bytes`` of topics whose broker refused a record as
        too large, so that later sends refuse such records before sending them."""
        if not topics:
            return
        try:
            admin = new_admin(self._bootstrap, client_id=f"{self._client_id}-limits")
        except KafkaError as exc:
            self._guess_limits(topics, exc)
            return
        try:
            resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in sorted(topics)]
            for topic, limit in topic_limits(admin.describe_configs(resources)).items():
                self._limits[topic] = min(MAX_RECORD_BYTES, limit - 4096)
        except KafkaError as exc:
            self._guess_limits(topics, exc)
        finally:
            admin.close()

    def _guess_limits(self, topics: set[str], exc: Exception) -> None:
        """The limits could not be read: take the broker's default, then half of
        the last guess, so that a record the broker keeps refusing is refused
        here in the end (and dead-lettered), not sent for ever."""
        log.warning("reading the size limits of %s: %r; guessing", sorted(topics), exc)
        default = BROKER_MESSAGE_BYTES - 4096
        for topic in topics:
            known = self._limits.get(topic, MAX_RECORD_BYTES)
            self._limits[topic] = default if known > default else known // 2

    def commit(self, offsets: dict[TopicPartition, Any], group_metadata: Any) -> None:
        """Commit the open transaction with the consumer group's ``offsets``.

        ``group_metadata`` is the consumer's :meth:`KafkaConsumer.group_metadata`
        from when the records were polled: a member that has since lost its
        partitions to a rebalance is refused by the broker (KIP-447), and its
        transaction is aborted. Raises :class:`TransactionFailed` after aborting.
        """
        from kafka.errors import ProducerFencedError

        if not self.transactional:
            raise RuntimeError("commit() needs a transactional producer")
        try:
            producer = self.producer
            if not self._in_transaction:
                producer.begin_transaction()
                self._in_transaction = True
                self._began = time.monotonic()
            manager = producer._transaction_manager
            self._await(
                producer,
                manager.send_offsets_to_transaction(offsets, group_metadata),
                "sending the offsets",
            )
            self._await(producer, manager.begin_commit(), "the commit")
            self._in_transaction = False
        except _StepTimedOut as exc:
            if exc.step != "the commit":
                self.abort()
                raise TransactionFailed(str(exc)) from exc
            # Asked for, not answered: a new producer with this id (made on the next
            # send) waits for the broker to finish it, then goes on.
            self._reset()
            raise TransactionFailed(str(exc), uncertain=True) from exc
        except RetriableError as exc:
            self.abort()
            raise TransactionFailed(str(exc)) from exc
        except KafkaError as exc:
            fenced = isinstance(exc, ProducerFencedError)
            if fenced and time.monotonic() - self._began >= TRANSACTION_TIMEOUT_SECONDS * 0.9:
                # The broker aborted a transaction open too long and bumped the epoch,
                # which kafka-python reports as a fence: a new producer goes on.
                self._reset()
                raise TransactionFailed(
                    f"open longer than the transaction timeout "
                    f"({TRANSACTION_TIMEOUT_SECONDS:.0f} s): {type(exc).__name__}"
                ) from exc
            self.abort()
            raise TransactionFailed(f"{type(exc).__name__}: {exc}", fenced=fenced) from exc

    def commit_sends(self) -> None:
        """Commit the open transaction, which has records but no input offsets (the
        poller: a feed's new items and its state). Nothing open: nothing to do.
        Raises :class:`TransactionFailed` as :meth:`commit` does."""
        if not self.transactional:
            raise RuntimeError("commit_sends() needs a transactional producer")
        if not self._in_transaction:
            return
        from kafka.errors import ProducerFencedError

        producer = self.producer
        try:
            self._await(producer, producer._transaction_manager.begin_commit(), "the commit")
            self._in_transaction = False
        except _StepTimedOut as exc:
            self._reset()
            raise TransactionFailed(str(exc), uncertain=True) from exc
        except KafkaError as exc:
            self.abort()
            fenced = isinstance(exc, ProducerFencedError)
            raise TransactionFailed(f"{type(exc).__name__}: {exc}", fenced=fenced) from exc

    def _await(self, producer: Any, result: Any, step: str) -> None:
        """Wait for a transaction step, at most :data:`TRANSACTION_STEP_SECONDS`.

        What ``commit_transaction`` and friends do, less their unbounded wait:
        the step's result is the transaction manager's, and the sender thread
        is woken to send it.
        """
        producer._sender.wakeup()
        if not result.wait(timeout_ms=int(TRANSACTION_STEP_SECONDS * 1000)):
            raise _StepTimedOut(step, self.transactional_id)

    def abort(self) -> None:
        """Discard what was sent since the last commit: abort the transaction (a
        plain producer has already sent it, and forgets the records' futures)."""
        with self._pending_lock:
            self._pending = []
            self._topics = []
        if not self.transactional:
            return
        was_open, self._in_transaction = self._in_transaction, False
        with self._lock:
            producer = self._producer
        if producer is None or not was_open:
            return
        try:
            self._await(producer, producer._transaction_manager.begin_abort(), "the abort")
        except (KafkaError, _StepTimedOut) as exc:
            # Fenced, or a fatal state: a new producer with the same id fences this
            # one on the broker, which aborts the transaction it left open.
            log.warning("aborting the transaction of %s: %r", self.transactional_id, exc)
            self._reset()

    def _reset(self) -> None:
        self._in_transaction = False
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=30)
                self._producer = None


class _StepTimedOut(Exception):
    """A transaction step the broker did not answer in time."""

    def __init__(self, step: str, transactional_id: str | None) -> None:
        super().__init__(
            f"{step} of the transaction of {transactional_id} not answered after "
            f"{TRANSACTION_STEP_SECONDS:.0f} s"
        )
        self.step = step


class _FailedSend:
    """Stands in for the future of a send that failed before it was queued."""

    def __init__(self, exc: Exception) -> None:
        self.exception = exc

    def succeeded(self) -> bool:
        return False


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


def delete_namespace(bootstrap: Bootstrap, topics: Topics, stages: Iterable[str]) -> list[str]:
    """Delete the namespace's topics and consumer groups; return what was deleted."""
    admin = new_admin(bootstrap, client_id="rasd-admin")
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


@dataclass(frozen=True)
class PartitionLag:
    """One partition of a group's topic: its end, the group's committed offset, and
    the throughput sample the stage worker stored in the commit's metadata."""

    group: str
    topic: str
    partition: int
    end: int
    committed: int | None
    metadata: str = ""
    #: The earliest offset still kept (where a group that never committed starts).
    start: int = 0

    @property
    def lag(self) -> int:
        return self.end - (self.committed if self.committed is not None else self.start)


def group_offsets(admin: KafkaAdminClient, groups: dict[str, str]) -> list[PartitionLag]:
    """Every partition of each group's topic ({group: topic}), with its lag."""
    from kafka.admin import OffsetSpec

    partitions = {
        topic: [
            TopicPartition(topic, p["partition_index"])
            for t in admin.describe_topics([topic])
            for p in t["partitions"]
        ]
        for topic in set(groups.values())
    }
    every = [tp for tps in partitions.values() for tp in tps]
    ends = admin.list_partition_offsets(dict.fromkeys(every, OffsetSpec.LATEST))
    committed = admin.list_group_offsets({g: partitions[t] for g, t in groups.items()})
    # A group that never committed starts at the earliest record still kept
    # (auto_offset_reset=earliest), not at 0, which retention may have deleted.
    starts: dict[TopicPartition, Any] = {}
    if any(
        (c := committed.get(g, {}).get(tp)) is None or c.offset < 0
        for g, t in groups.items()
        for tp in partitions[t]
    ):
        starts = admin.list_partition_offsets(dict.fromkeys(every, OffsetSpec.EARLIEST))
    rows = []
    for group, topic in groups.items():
        mine = committed.get(group, {})
        for tp in sorted(partitions[topic], key=lambda tp: tp.partition):
            done = mine.get(tp)
            has = done is not None and done.offset >= 0
            rows.append(
                PartitionLag(
                    group,
                    topic,
                    tp.partition,
                    ends[tp].offset,
                    done.offset if has else None,
                    (done.metadata or "") if done is not None else "",
                    start=starts[tp].offset if tp in starts else 0,
                )
            )
    return rows


def consumer_lag(bootstrap: Bootstrap, groups: dict[str, str]) -> dict[str, int]:
    """Records not yet committed, per group, over its topic ({group: topic})."""
    admin = new_admin(bootstrap, client_id="rasd-lag")
    try:
        lag = dict.fromkeys(groups, 0)
        for row in group_offsets(admin, groups):
            lag[row.group] += row.lag
        return lag
    finally:
        admin.close()


def group_members(admin: KafkaAdminClient, groups: Iterable[str]) -> dict[str, int]:
    """The number of members of each consumer group (0: nobody consumes it)."""
    described = admin.describe_groups(list(groups))
    return {g: len(d.get("members") or ()) for g, d in described.items()}


#: The broker's default ``max.message.bytes``, for a topic that does not set its own.
BROKER_MESSAGE_BYTES = 1048588


def topic_limits(described: dict[str, Any]) -> dict[str, int]:
    """Each topic's ``max.message.bytes`` from ``KafkaAdminClient.describe_configs``."""
    return {
        topic: int((configs.get("max.message.bytes") or {}).get("value") or BROKER_MESSAGE_BYTES)
        for topic, configs in described.get("topic", {}).items()
    }


def too_large(exc: Exception) -> bool:
    from kafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

    return isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError)


def committed_offset(offset: int, metadata: str = "") -> Any:
    """The value ``KafkaConsumer.commit`` takes for ``offset`` (with ``metadata``)."""
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, metadata, -1)
