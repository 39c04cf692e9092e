"""The sharded poller's handover logic, without a broker: bounded callbacks, routing.

The handover over a real broker is in ``tests/integration/test_poll_sharding.py``.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from kafka import TopicPartition

from connectors.feed_shards import KafkaFeedStateStore, ShardedPoller
from connectors.kafka import Topics
from connectors.metrics import Stats
from connectors.poller import FeedPoller, FeedScheduler
from pipeline.feeds import Feed
from pipeline.schedule import FeedState

TOPICS = Topics("t4")


class RecordingSink:
    """Stands in for Producer: records what is sent where, and the flush timeouts."""

    transactional = False

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes | None, int | None]] = []
        self.flushes: list[float] = []

    def send(self, topic: str, key: str, value: bytes | None, partition: int | None = None) -> None:
        self.sent.append((topic, key, value, partition))

    def flush(self, timeout: float = 60.0) -> None:
        self.flushes.append(timeout)


def _rig() -> tuple[ShardedPoller, FeedPoller, RecordingSink]:
    sink = RecordingSink()
    state = KafkaFeedStateStore("unused:9092", TOPICS.feeds_state, sink)  # type: ignore[arg-type]
    poller = FeedPoller(None, sink, TOPICS.items, "t4", Stats(), state=state)  # type: ignore[arg-type]
    scheduler = FeedScheduler(poller, [], 600)
    sharded = ShardedPoller(
        poller, scheduler, state, "unused:9092", TOPICS, threading.Event(), name="t"
    )
    return sharded, poller, sink


def _record(url: str, partition: int, feed: Feed | None) -> Any:
    value = feed.model_dump_json().encode() if feed is not None else None
    return SimpleNamespace(key=url.encode(), value=value, partition=partition)


FEED = Feed(url="https://news.example.org/rss", name="أخبار", outlet="Test", country="sy")


def test_a_poll_stuck_in_flight_does_not_hold_the_revocation_past_its_bound() -> None:
    sharded, poller, sink = _rig()
    sharded.handover_timeout = 0.3
    sharded.partitions = {2}
    sharded.owned = {FEED.url: 2}
    held, release = threading.Event(), threading.Event()

    def stuck_poll() -> None:
        with poller.feed_lock(FEED.url):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=stuck_poll)
    thread.start()
    held.wait(5)
    try:
        began = time.monotonic()
        sharded._revoked([TopicPartition(TOPICS.feeds, 2)])
        took = time.monotonic() - began
    finally:
        release.set()
        thread.join(5)
    assert took < 5, took  # it returned while the poll was still in flight
    assert poller.stats.get("poll", "late_handover") == 1
    assert sharded.owned == {} and sharded.partitions == set()
    # The flush got what was left of the bound (at least 1 s), not a minute.
    assert sink.flushes and sink.flushes[-1] <= 1.0


def test_an_idle_feed_is_handed_over_and_its_state_flushed() -> None:
    sharded, _, sink = _rig()
    sharded.partitions = {1, 2}
    sharded.owned = {FEED.url: 2, "https://other.example.org/rss": 1}
    sharded._revoked([TopicPartition(TOPICS.feeds, 2)])
    assert sharded.poller.stats.get("poll", "late_handover") == 0
    assert sharded.owned == {"https://other.example.org/rss": 1}
    assert sharded.partitions == {1}
    assert len(sink.flushes) == 1


def test_state_is_written_to_the_partition_of_the_feeds_catalogue_record() -> None:
    sharded, _, sink = _rig()
    sharded.scheduler._scheduler = SimpleNamespace(add_job=lambda *a, **k: None)
    sharded.partitions = {5}
    sharded._apply(_record(FEED.url, 5, FEED))
    assert sharded.owned == {FEED.url: 5}
    sharded.state.put(FeedState(url=FEED.url, polls=1))
    assert sink.sent[-1][:2] == (TOPICS.feeds_state, FEED.url)
    assert sink.sent[-1][3] == 5


def test_a_feed_removed_from_the_catalogue_loses_its_state_too() -> None:
    sharded, _, sink = _rig()
    jobs = SimpleNamespace(add_job=lambda *a, **k: None, remove_job=lambda _: None)
    sharded.scheduler._scheduler = jobs
    sharded.partitions = {3}
    sharded._apply(_record(FEED.url, 3, FEED))
    sharded.state.put(FeedState(url=FEED.url, polls=7))
    sharded._apply(_record(FEED.url, 3, None))
    assert sharded.owned == {}
    assert sink.sent[-1] == (TOPICS.feeds_state, FEED.url, None, 3)
    assert sharded.state.get(FEED.url) == FeedState(url=FEED.url)


def test_a_record_of_a_partition_no_longer_held_is_ignored() -> None:
    sharded, _, _ = _rig()
    sharded.partitions = {0}
    sharded._apply(_record(FEED.url, 4, FEED))  # would raise: the scheduler is not started
    assert sharded.owned == {}


def test_a_late_poll_of_a_feed_handed_over_or_removed_writes_no_state() -> None:
    sharded, _, sink = _rig()
    store = sharded.state
    store.route(FEED.url, 2)
    store.forget([FEED.url])  # handed over while a poll was in flight
    store.put(FeedState(url=FEED.url, polls=9))
    assert sink.sent == [] and store.get(FEED.url) == FeedState(url=FEED.url)
    store.route(FEED.url, 2)  # the partition came back
    store.put(FeedState(url=FEED.url, polls=10))
    assert sink.sent[-1][1] == FEED.url and sink.sent[-1][3] == 2
    store.delete(FEED.url)  # removed from the catalogue
    store.put(FeedState(url=FEED.url, polls=11))
    assert sink.sent[-1] == (TOPICS.feeds_state, FEED.url, None, 2)


def test_nothing_left_to_hand_over_flushes_nothing() -> None:
    sharded, _, sink = _rig()
    sharded.partitions = {0, 1}
    sharded._revoked([TopicPartition(TOPICS.feeds, 0), TopicPartition(TOPICS.feeds, 1)])
    assert sharded.partitions == set() and sink.flushes == []
