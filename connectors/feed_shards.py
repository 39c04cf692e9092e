"""Poller instances that share the feeds out between them, on Kafka.

The catalogue is published to the compacted topic ``<ns>.feeds`` (key: feed
URL, value: the feed as JSON; a removed feed gets a tombstone). Every poller
instance joins the consumer group ``<ns>.poll`` on that topic, so Kafka gives
each partition, and so each feed, to exactly one instance, and moves partitions
when an instance joins or leaves. An instance schedules only the feeds of the
partitions it holds.

A feed's poller state (validators, seen items, health, next due time) lives in
the compacted topic ``<ns>.feeds-state`` under the same key, in the partition
with the same number: the state is always written to the partition number
of the feed's catalogue record, and a feed's catalogue record never changes
partition (an update goes where the feed already is), so adding partitions
later moves no feed. Both topics must have the same partition count
(:func:`check_partitions`). The handover of a partition is therefore clean:

1. Kafka revokes the partition from its old owner before it assigns it to the
   new one (the group's rebalance protocol). On revocation the old owner
   removes the feeds' jobs, waits for a poll in flight to end, and flushes the
   feeds' state to ``<ns>.feeds-state``.
2. On assignment the new owner reads those partitions of ``<ns>.feeds-state``
   to their end, then reads the catalogue partitions from the beginning and
   schedules each feed at the due time its state records.

So no feed is polled twice for one due time, and none waits longer than the
rebalance. kafka-python runs the rebalance callbacks on its network thread,
where they hold up the group heartbeats; each callback is therefore bounded by
:data:`HANDOVER_TIMEOUT`, well under :data:`SESSION_TIMEOUT_MS`. A poll still
in flight when that runs out writes no state (it is dropped), so the new owner may
poll that feed once early. An instance that dies without revoking
(``kill -9``) loses at most the state written since its last flush (every
few seconds), with the same effect. The dedupe stage drops any item polled
twice. ``docs/polling.md`` has the details.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any, Final

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from pipeline.errors import ConfigError, RetriableError
from pipeline.feeds import Feed
from pipeline.schedule import FeedState

from .feed_state import FeedStateStore, state_from_json
from .kafka import Bootstrap, Producer, Topics, new_consumer, read_to_end
from .poller import FeedPoller, FeedScheduler

__all__ = [
    "HANDOVER_TIMEOUT",
    "SESSION_TIMEOUT_MS",
    "KafkaFeedStateStore",
    "ShardedPoller",
    "catalogue_partitions",
    "check_partitions",
    "publish_catalogue",
    "read_catalogue",
]

log = logging.getLogger(__name__)

#: How long the poller group waits for a silent member (killed, or stuck) before
#: it moves that member's partitions to the others.
SESSION_TIMEOUT_MS: Final = 30_000
#: The most each rebalance callback may take (waiting for polls in flight and
#: flushing the state; reading the state). The callbacks block the heartbeats,
#: so this must stay well under the session timeout.
HANDOVER_TIMEOUT: Final = 10.0


def _reader(bootstrap: Bootstrap, topic: str, partitions: Iterable[int] | None, name: str) -> Any:
    consumer = new_consumer(bootstrap, enable_auto_commit=False, client_id=f"rasd-{name}")
    if partitions is None:
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if tps:
        consumer.seek_to_beginning(*tps)
    return consumer


def check_partitions(bootstrap: Bootstrap, topics: Topics) -> int:
    """The partition count of ``<ns>.feeds``.

    Raises :class:`ConfigError` unless ``<ns>.feeds-state`` has as many.
    """
    consumer = new_consumer(bootstrap, client_id="rasd-check")
    try:
        feeds = consumer.partitions_for_topic(topics.feeds) or set()
        states = consumer.partitions_for_topic(topics.feeds_state) or set()
    finally:
        consumer.close()
    if not feeds:
        raise ConfigError(f"{topics.feeds} does not exist: run `rasd topics create`")
    if len(feeds) != len(states):
        raise ConfigError(
            f"{topics.feeds} has {len(feeds)} partition(s) but {topics.feeds_state} has "
            f"{len(states)}: a feed's state is kept in the partition number of the feed, "
            "so give both topics the same count (kafka-topics.sh --alter --partitions N)"
        )
    return len(feeds)


def _catalogue(bootstrap: Bootstrap, topics: Topics) -> dict[str, tuple[int, bytes]]:
    current: dict[str, tuple[int, bytes]] = {}

    def apply(record: Any) -> None:
        url = record.key.decode()
        if record.value is None:
            current.pop(url, None)
        else:
            current[url] = (record.partition, record.value)

    consumer = _reader(bootstrap, topics.feeds, None, "catalogue")
    try:
        read_to_end(consumer, apply, timeout=120)
    finally:
        consumer.close()
    return current


def catalogue_partitions(bootstrap: Bootstrap, topics: Topics) -> dict[str, int]:
    """The partition of each feed in ``<ns>.feeds`` (see :meth:`KafkaFeedStateStore.route`)."""
    return {url: partition for url, (partition, _) in _catalogue(bootstrap, topics).items()}


def read_catalogue(bootstrap: Bootstrap, topics: Topics) -> dict[str, bytes]:
    """The feeds currently published in ``<ns>.feeds``: URL to the record's value."""
    return {url: value for url, (_, value) in _catalogue(bootstrap, topics).items()}


def feed_value(feed: Feed) -> bytes:
    return feed.model_dump_json(exclude_none=True).encode()


def publish_catalogue(
    bootstrap: Bootstrap, topics: Topics, feeds: Sequence[Feed], producer: Producer
) -> tuple[int, int]:
    """Make ``<ns>.feeds`` hold exactly ``feeds``; return (upserted, removed).

    Only changed feeds are written, so instances that start with the same
    catalogue do not disturb each other. The catalogue file is the source of
    truth: every instance of one namespace must be given the same file.
    """
    current = _catalogue(bootstrap, topics)
    upserted = 0
    for feed in feeds:
        value = feed_value(feed)
        where = current.get(feed.url)
        if where is None or where[1] != value:
            # A known feed stays where it is, even if partitions were added since.
            partition = where[0] if where is not None else None
            producer.send(topics.feeds, feed.url, value, partition=partition)
            upserted += 1
    listed = {feed.url for feed in feeds}
    removed = [url for url in current if url not in listed]
    for url in removed:
        producer.send(topics.feeds, url, None, partition=current[url][0])
    producer.flush()
    return upserted, len(removed)


class KafkaFeedStateStore(FeedStateStore):
    """:class:`FeedStateStore` whose every update also goes to ``<ns>.feeds-state``.

    ``put`` sends the new state at once, to the partition :meth:`route` gave
    the feed (that of its catalogue record); ``save`` waits until everything
    sent is acknowledged (also every ``save_every`` seconds from ``put``). A
    failed write is logged and counted, not raised: the state in memory stays
    right, and the feed's next poll writes its whole state again.
    """

    def __init__(
        self, bootstrap: Bootstrap, topic: str, producer: Producer, save_every: float = 5.0
    ) -> None:
        super().__init__(None, save_every)
        self.bootstrap = bootstrap
        self.topic = topic
        self.producer = producer
        self.failed_writes = 0
        self._partition_of: dict[str, int] = {}
        # Feeds handed over or removed: a poll that was still in flight then
        # must not write their state (the new owner has it, or nobody should).
        self._released: set[str] = set()

    def route(self, url: str, partition: int) -> None:
        """Write this feed's state to ``partition`` (its catalogue record's)."""
        with self._lock:
            self._partition_of[url] = partition
            self._released.discard(url)

    def load(self, partitions: Iterable[int] | None = None, timeout: float | None = None) -> int:
        """Read these partitions (default: all) of the state topic into memory.

        Raises :class:`RetriableError` if their end is not reached in ``timeout`` seconds.
        """
        loaded: dict[str, FeedState | None] = {}

        def apply(record: Any) -> None:
            url = record.key.decode()
            if record.value is None:
                loaded[url] = None
                return
            try:
                loaded[url] = state_from_json(json.loads(record.value))
            except (ValueError, TypeError) as exc:
                log.warning("feed state: skipping unreadable state of %s: %s", url, exc)

        consumer = _reader(self.bootstrap, self.topic, partitions, "feed-state")
        try:
            read_to_end(consumer, apply, timeout)
        finally:
            consumer.close()
        with self._lock:
            for url, state in loaded.items():
                if state is None:
                    self._states.pop(url, None)
                else:
                    self._states[url] = state
        return sum(1 for s in loaded.values() if s is not None)

    def put(self, state: FeedState) -> None:
        with self._lock:
            if state.url in self._released:
                log.info(
                    "feed state: %s was handed over; a late poll's state is dropped", state.url
                )
                return
            self._states[state.url] = state
            partition = self._partition_of.get(state.url)
        value = json.dumps(asdict(state), ensure_ascii=False).encode()
        self.producer.send(self.topic, state.url, value, partition=partition)
        if self._due():
            self.save()

    def put_with(self, state: FeedState, producer: Producer) -> bool:
        with self._lock:
            if state.url in self._released:
                return False  # handed over: the poll's items are not published either
            partition = self._partition_of.get(state.url)
        value = json.dumps(asdict(state), ensure_ascii=False).encode()
        producer.send(self.topic, state.url, value, partition=partition)
        return True

    def delete(self, url: str) -> None:
        """Forget a feed removed from the catalogue, here and in the topic (a tombstone)."""
        with self._lock:
            self._states.pop(url, None)
            partition = self._partition_of.get(url)
            self._released.add(url)
        self.producer.send(self.topic, url, None, partition=partition)

    def save(self, timeout: float = 60.0) -> None:
        try:
            self.producer.flush(timeout=timeout)
        except (RetriableError, KafkaError) as exc:
            self.failed_writes += 1
            log.warning("feed state: not every update reached %s: %s", self.topic, exc)
        self._mark_saved()

    def forget(self, urls: Iterable[str]) -> None:
        """Drop these feeds from memory (their partition went to another instance)."""
        with self._lock:
            for url in urls:
                self._states.pop(url, None)
                self._released.add(url)


class ShardedPoller:
    """One poller instance of a group; see the module docstring.

    ``run`` blocks until ``stop`` is set. ``owned`` maps each feed this
    instance schedules to its partition; ``assignments`` counts rebalances.
    """

    def __init__(
        self,
        poller: FeedPoller,
        scheduler: FeedScheduler,
        state: KafkaFeedStateStore,
        bootstrap: Bootstrap,
        topics: Topics,
        stop: threading.Event,
        name: str = "rasd-poll",
    ) -> None:
        self.poller = poller
        self.scheduler = scheduler
        self.state = state
        self.bootstrap = bootstrap
        self.topics = topics
        self.stop = stop
        self.name = name
        self.owned: dict[str, int] = {}
        self.partitions: set[int] = set()
        self.assignments = 0
        self.handover_timeout = HANDOVER_TIMEOUT
        #: Set while this instance is a member of the poller group (an instance with
        #: no partition is a standby); cleared when a rebalance takes them away.
        self.ready = threading.Event()
        #: ``time.monotonic()`` of the loop's last turn (``/healthz`` checks it).
        self.heartbeat = time.monotonic()
        self._consumer: Any = None
        # The rebalance callbacks run on kafka-python's network thread while
        # run()'s thread waits in poll() or close(), so they do not overlap with
        # _apply today; the lock keeps that true whatever the client does.
        self._handover = threading.Lock()

    # --- rebalance callbacks (on kafka-python's network thread: keep them bounded) --

    def _revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.ready.clear()
        with self._handover:
            lost = {tp.partition for tp in revoked}
            urls = [url for url, p in self.owned.items() if p in lost]
            self.partitions -= lost
            if not urls:
                return  # e.g. the consumer's close() after run() handed everything over
            for url in urls:
                self.scheduler.remove(url)
            deadline = time.monotonic() + self.handover_timeout
            busy = [
                url  # a poll in flight ends and writes its state, or the time runs out
                for url in urls
                if not self.poller.wait_idle(url, deadline - time.monotonic())
            ]
            if busy:
                self.poller.stats.inc("poll", "late_handover", len(busy))
                log.warning(
                    "%s: %d poll(s) still in flight after %.0f s of handover (%s); the new "
                    "owner may poll those feeds once early",
                    self.name,
                    len(busy),
                    self.handover_timeout,
                    ", ".join(busy[:3]),
                )
            self.state.save(timeout=max(1.0, deadline - time.monotonic()))
            self.state.forget(urls)
            for url in urls:
                del self.owned[url]
            log.info("%s: handed over %d feed(s) of partitions %s", self.name, len(urls), lost)

    def _assigned(self, assigned: Iterable[TopicPartition]) -> None:
        with self._handover:
            tps = list(assigned)
            numbers = {tp.partition for tp in tps}
            restored = 0
            if numbers:
                try:
                    restored = self.state.load(numbers, timeout=self.handover_timeout)
                except (RetriableError, KafkaError) as exc:
                    # Better to poll these feeds on a fresh schedule than to hold
                    # the group up: the dedupe stage absorbs an early poll.
                    log.warning("%s: feed state of %s not read: %s", self.name, numbers, exc)
                self._consumer.seek_to_beginning(*tps)
            self.partitions |= numbers
            self.assignments += 1
            log.info(
                "%s: partitions %s assigned, %d feed state(s) restored",
                self.name,
                sorted(numbers),
                restored,
            )
        self.ready.set()

    # --- the loop ------------------------------------------------------------------

    def _apply(self, record: Any) -> None:
        url = record.key.decode()
        with self._handover:
            if record.partition not in self.partitions:
                return  # fetched before its partition was revoked
            if record.value is None:
                if url in self.owned:
                    self.scheduler.remove(url)
                    self.poller.wait_idle(url, self.handover_timeout)
                    del self.owned[url]
                    self.state.delete(url)
                return
            try:
                feed = Feed.model_validate_json(record.value)
            except ValidationError as exc:  # written by another version of rasd
                self.poller.stats.inc("poll", "invalid_catalogue_entry")
                log.warning("%s: ignoring an invalid catalogue entry %s: %s", self.name, url, exc)
                return
            self.owned[feed.url] = record.partition
            self.state.route(feed.url, record.partition)
            self.scheduler.add(feed)

    def run(self) -> None:
        owner = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                owner._revoked(revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                owner._assigned(assigned)

        consumer = new_consumer(
            self.bootstrap,
            group_id=self.topics.group("poll"),
            client_id=self.name,
            enable_auto_commit=False,  # the catalogue is always read from the start
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=SESSION_TIMEOUT_MS // 10,
        )
        self._consumer = consumer
        self.scheduler.start()
        try:
            consumer.subscribe([self.topics.feeds], listener=Listener())
            while not self.stop.is_set():
                self.heartbeat = time.monotonic()
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self._apply(record)
        finally:
            # Leave as if revoked, so that whoever takes the partitions over
            # starts from this instance's last state.
            self._revoked([TopicPartition(self.topics.feeds, p) for p in set(self.partitions)])
            consumer.close()
            self.scheduler.stop()
