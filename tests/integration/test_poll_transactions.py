"""A poll's new items and the feed's state are one transaction, on the real broker.

A poller killed after sending a poll's items but before its commit has
published nothing: its successor (same transactional id) aborts that
transaction and publishes the items once. And a poller restarted after a
committed poll finds the state that goes with the items, so it publishes none
of them again: ``<ns>.items`` read ``read_committed`` holds each item once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from kafka import TopicPartition

from connectors.feed_shards import KafkaFeedStateStore
from connectors.http import GuardedClient
from connectors.kafka import (
    Bootstrap,
    Producer,
    Topics,
    delete_namespace,
    ensure_topics,
    new_consumer,
    read_to_end,
)
from connectors.metrics import Stats
from connectors.poller import FeedPoller
from pipeline.feeds import Feed
from tests.integration.test_poll_sharding import FeedServer, server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(kafka_bootstrap: Bootstrap, unique: str) -> Iterator[Topics]:
    topics = Topics(f"t7-{unique}")
    ensure_topics(kafka_bootstrap, topics, partitions=1)
    yield topics
    delete_namespace(kafka_bootstrap, topics, ["poll"])


class _Died(BaseException):
    """Stands for the process dying: nothing after it runs."""


def _poller(bootstrap: Bootstrap, topics: Topics) -> tuple[FeedPoller, KafkaFeedStateStore]:
    """A poller as a restarted `rasd worker poll` makes it: the state read back."""
    state = KafkaFeedStateStore(bootstrap, topics.feeds_state, Producer(bootstrap))
    state.load()
    producer = Producer(bootstrap, transactional_id=f"{topics.namespace}.poll.test")
    http = GuardedClient("rasd-test", allow_private_networks=True)
    return FeedPoller(http, producer, topics.items, topics.namespace, Stats(), state=state), state


def _items(bootstrap: Bootstrap, topic: str, isolation: str) -> Counter[bytes]:
    consumer = new_consumer(bootstrap, enable_auto_commit=False, isolation_level=isolation)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        keys: Counter[bytes] = Counter()
        read_to_end(consumer, lambda r: keys.update([r.key]), timeout=60)
        return keys
    finally:
        consumer.close()


def test_a_poll_is_published_once_across_a_kill_before_and_a_restart_after_its_commit(
    kafka_bootstrap: Bootstrap,
    topics: Topics,
    server: str,  # noqa: F811
) -> None:
    feeds = [
        Feed(url=f"{server}/feeds/{n}.xml", name=f"f{n}", outlet="T", country="sy")
        for n in range(3)
    ]

    # The first poller sends the first feed's item and state, then dies before the commit.
    first, _ = _poller(kafka_bootstrap, topics)

    def die(*args: object) -> None:
        raise _Died

    first.producer.commit_sends = die  # type: ignore[method-assign]
    with pytest.raises(_Died):
        first._poll(feeds[0])
    assert sum(_items(kafka_bootstrap, topics.items, "read_uncommitted").values()) == 1
    assert not _items(kafka_bootstrap, topics.items, "read_committed")

    # Its successor (the same transactional id) aborts that and publishes every
    # feed, and dies right after the last feed's commit, before anything else.
    second, second_state = _poller(kafka_bootstrap, topics)
    results = [second.poll(feed) for feed in feeds[:2]]
    assert [r.items_new for r in results] == [1, 1]
    second_state.remember = second_state.put = lambda state: die()  # type: ignore[method-assign]
    with pytest.raises(_Died):
        second._poll(feeds[2])
    second.producer.close()

    # Restarted after the commits: the state read back goes with the items.
    third, state = _poller(kafka_bootstrap, topics)
    assert all(state.get(feed.url).seen for feed in feeds)
    assert [third.poll(feed).items_new for feed in feeds] == [0, 0, 0]
    third.producer.close()
    committed = _items(kafka_bootstrap, topics.items, "read_committed")
    assert len(committed) == 3 and set(committed.values()) == {1}
