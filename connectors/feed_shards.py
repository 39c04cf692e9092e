"""Poller instances that share the feeds out between them, on Kafka.

The catalogue is published to the compacted topic ``<ns>.feeds`` (key: feed
URL, value: the feed as JSON; a removed feed gets a tombstone). Every poller
instance joins the consumer group ``<ns>.poll`` on that topic, so Kafka gives
each partition, and so each feed, to exactly one instance, and moves partitions
when an instance joins or leaves. An instance schedules only the feeds of the
partitions it holds.

A feed's poller state (validators, seen items, health, next due time) lives in
the compacted topic ``<ns>.feeds-state`` under the same key, in the partition
with the same number (both topics have the same partition count and the same
key hashing). The handover of a partition is therefore clean:

1. Kafka revokes the partition from its old owner before it assigns it to the
   new one (the group's rebalance protocol). On revocation the old owner
   removes the feeds' jobs, waits for a poll in flight to end, and flushes the
   feeds' state to ``<ns>.feeds-state``.
2. On assignment the new owner reads those partitions of ``<ns>.feeds-state``
   to their end, then reads the catalogue partitions from the beginning and
   schedules each feed at the due time its state records.

So no feed is polled twice for one due time, and none waits longer than the
rebalance. An instance that dies without revoking (``kill -9``) loses at most
the state written since its last flush (every few seconds): the new owner
may then poll those feeds once early, and the dedupe stage drops any item
polled twice. ``docs/polling.md`` has the details.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from pipeline.errors import RetriableError
from pipeline.feeds import Feed
from pipeline.schedule import FeedState

from .feed_state import FeedStateStore, state_from_json
from .kafka import KafkaSink, Topics, read_to_end
from .poller import FeedPoller, FeedScheduler

__all__ = ["KafkaFeedStateStore", "ShardedPoller", "publish_catalogue", "read_catalogue"]

log = logging.getLogger(__name__)


def _reader(bootstrap: str, topic: str, partitions: Iterable[int] | None, name: str) -> Any:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id=f"rasd-{name}"
    )
    if partitions is None:
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if tps:
        consumer.seek_to_beginning(*tps)
    return consumer


def read_catalogue(bootstrap: str, topics: Topics) -> dict[str, bytes]:
    """The feeds currently published in ``<ns>.feeds``: URL to the record's value."""
    current: dict[str, bytes] = {}

    def apply(record: Any) -> None:
        url = record.key.decode()
        if record.value is None:
            current.pop(url, None)
        else:
            current[url] = record.value

    consumer = _reader(bootstrap, topics.feeds, None, "catalogue")
    try:
        read_to_end(consumer, apply)
    finally:
        consumer.close()
    return current


def feed_value(feed: Feed) -> bytes:
    return feed.model_dump_json(exclude_none=True).encode()


def publish_catalogue(
    bootstrap: str, topics: Topics, feeds: Sequence[Feed], sink: KafkaSink
) -> tuple[int, int]:
    """Make ``<ns>.feeds`` hold exactly ``feeds``; return (upserted, removed).

    Only changed feeds are written, so instances that start with the same
    catalogue do not disturb each other. The catalogue file is the source of
    truth: every instance of one namespace must be given the same file.
    """
    current = read_catalogue(bootstrap, topics)
    upserted = 0
    for feed in feeds:
        value = feed_value(feed)
        if current.get(feed.url) != value:
            sink.send(topics.feeds, feed.url, value)
            upserted += 1
    listed = {feed.url for feed in feeds}
    removed = [url for url in current if url not in listed]
    for url in removed:
        sink.send(topics.feeds, url, None)
    sink.flush()
    return upserted, len(removed)


class KafkaFeedStateStore(FeedStateStore):
    """:class:`FeedStateStore` whose every update also goes to ``<ns>.feeds-state``.

    ``put`` sends the new state at once; ``save`` waits until everything sent
    is acknowledged (also every ``save_every`` seconds from ``put``). A failed
    write is logged and counted, not raised: the state in memory stays right,
    and the feed's next poll writes its whole state again.
    """

    def __init__(
        self, bootstrap: str, topic: str, sink: KafkaSink, save_every: float = 5.0
    ) -> None:
        super().__init__(None, save_every)
        self.bootstrap = bootstrap
        self.topic = topic
        self.sink = sink
        self.failed_writes = 0

    def load(self, partitions: Iterable[int] | None = None) -> int:
        """Read these partitions (default: all) of the state topic into memory."""
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
            read_to_end(consumer, apply)
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
            self._states[state.url] = state
        value = json.dumps(asdict(state), ensure_ascii=False).encode()
        self.sink.send(self.topic, state.url, value)
        if self._due():
            self.save()

    def save(self) -> None:
        try:
            self.sink.flush()
        except (RetriableError, KafkaError) as exc:
            self.failed_writes += 1
            log.warning("feed state: not every update reached %s: %s", self.topic, exc)
        self._mark_saved()

    def forget(self, urls: Iterable[str]) -> None:
        """Drop these feeds from memory (their partition went to another instance)."""
        with self._lock:
            for url in urls:
                self._states.pop(url, None)


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
        bootstrap: str,
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
        self._consumer: Any = None

    # --- rebalance callbacks (they run inside consumer.poll, on run()'s thread) ----

    def _revoked(self, revoked: Iterable[TopicPartition]) -> None:
        lost = {tp.partition for tp in revoked}
        urls = [url for url, p in self.owned.items() if p in lost]
        for url in urls:
            self.scheduler.remove(url)
        for url in urls:
            self.poller.wait_idle(url)  # a poll in flight ends and writes its state
        self.state.save()
        self.state.forget(urls)
        for url in urls:
            del self.owned[url]
        self.partitions -= lost
        if urls:
            log.info("%s: handed over %d feed(s) of partitions %s", self.name, len(urls), lost)

    def _assigned(self, assigned: Iterable[TopicPartition]) -> None:
        tps = list(assigned)
        numbers = {tp.partition for tp in tps}
        restored = self.state.load(numbers) if numbers else 0
        if tps:
            self._consumer.seek_to_beginning(*tps)
        self.partitions |= numbers
        self.assignments += 1
        log.info(
            "%s: partitions %s assigned, %d feed state(s) restored",
            self.name,
            sorted(numbers),
            restored,
        )

    # --- the loop ------------------------------------------------------------------

    def _apply(self, record: Any) -> None:
        url = record.key.decode()
        if record.value is None:
            if url in self.owned:
                self.scheduler.remove(url)
                del self.owned[url]
            return
        try:
            feed = Feed.model_validate_json(record.value)
        except ValidationError as exc:
            log.warning("%s: ignoring an invalid catalogue entry %s: %s", self.name, url, exc)
            return
        self.owned[feed.url] = record.partition
        self.scheduler.add(feed)

    def run(self) -> None:
        owner = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                owner._revoked(revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                owner._assigned(assigned)

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.topics.group("poll"),
            client_id=self.name,
            enable_auto_commit=False,  # the catalogue is always read from the start
            auto_offset_reset="earliest",
        )
        self._consumer = consumer
        self.scheduler.start()
        try:
            consumer.subscribe([self.topics.feeds], listener=Listener())
            while not self.stop.is_set():
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self._apply(record)
        finally:
            # Leave as if revoked, so that whoever takes the partitions over
            # starts from this instance's last state.
            self._revoked([TopicPartition(self.topics.feeds, p) for p in set(self.partitions)])
            consumer.close()
            self.scheduler.stop()
