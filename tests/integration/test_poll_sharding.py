"""Two poller instances share the feeds through a Kafka consumer group, on the real broker.

A local server serves 12 feeds and logs every request with the instance that
made it (by User-Agent). Every feed is due every 2 s. Instance A starts alone,
B joins (a rebalance splits the partitions), then A leaves (B takes everything
over). Every feed must be polled exactly once per due time throughout: two
requests for one feed are never closer than the interval, which is what a
double poll, or a new owner that ignored the old owner's state, would produce.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from kafka.admin import NewPartitions
from typer.testing import CliRunner

from connectors.feed_shards import (
    KafkaFeedStateStore,
    ShardedPoller,
    catalogue_partitions,
    check_partitions,
    publish_catalogue,
    read_catalogue,
)
from connectors.http import GuardedClient
from connectors.kafka import Bootstrap, Producer, Topics, delete_namespace, ensure_topics, new_admin
from connectors.metrics import Stats
from connectors.poller import FeedPoller, FeedScheduler
from pipeline.errors import ConfigError
from pipeline.feeds import Feed
from pipeline.schedule import FeedState, ScheduleBounds
from rasd.cli import app

pytestmark = pytest.mark.integration

FEEDS = 12
INTERVAL = 2.0
RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>موجز {n}</title><link>http://example.org/</link>
<item><title>خبر رقم {n}</title><link>http://example.org/news/{n}</link>
<guid>news-{n}</guid><pubDate>Sat, 28 Nov 2026 08:00:00 GMT</pubDate></item>
</channel></rss>"""


class FeedServer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log: ClassVar[list[tuple[str, float, str]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.lock:
            self.log.append((self.path, time.time(), self.headers.get("User-Agent", "")))
        n = self.path.rsplit("/", 1)[-1].removesuffix(".xml")
        body = RSS.format(n=n).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("ETag", f'"v-{n}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    @classmethod
    def requests(cls) -> list[tuple[str, float, str]]:
        with cls.lock:
            return list(cls.log)


@pytest.fixture
def server() -> Iterator[str]:
    FeedServer.log = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FeedServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def topics(kafka_bootstrap: Bootstrap, unique: str) -> Iterator[Topics]:
    topics = Topics(f"t4-{unique}")
    ensure_topics(kafka_bootstrap, topics, partitions=4)
    yield topics
    delete_namespace(kafka_bootstrap, topics, ["poll"])


def _feeds(base: str) -> list[Feed]:
    return [
        Feed(url=f"{base}/feeds/{n}.xml", name=f"feed {n}", outlet="Test", country="sy")
        for n in range(FEEDS)
    ]


class Instance:
    """One poller instance, as `rasd worker poll` builds it, in a thread."""

    def __init__(self, name: str, bootstrap: str, topics: Topics) -> None:
        self.stop = threading.Event()
        self.sink = Producer(bootstrap, client_id=f"test-{name}")
        self.state_sink = Producer(bootstrap, client_id=f"test-{name}-state")
        self.http = GuardedClient(f"rasd-test-{name}", allow_private_networks=True)
        bounds = ScheduleBounds(min_interval=INTERVAL, max_interval=INTERVAL)
        self.state = KafkaFeedStateStore(bootstrap, topics.feeds_state, self.state_sink)
        poller = FeedPoller(
            self.http, self.sink, topics.items, topics.namespace, Stats(),
            state=self.state, bounds=bounds,
        )  # fmt: skip
        scheduler = FeedScheduler(poller, [], default_interval=int(INTERVAL))
        self.sharded = ShardedPoller(
            poller, scheduler, self.state, bootstrap, topics, self.stop, name=f"test-{name}"
        )
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name=f"poller-{name}", daemon=True)

    def _run(self) -> None:
        try:
            self.sharded.run()
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.errors.append(exc)

    def start(self) -> Instance:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        self.sink.close()
        self.state_sink.close()
        self.http.close()


def _wait(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _polled_by(name: str, since: float) -> set[str]:
    return {path for path, at, ua in FeedServer.requests() if ua.startswith(f"rasd-test-{name}")
            and at >= since}  # fmt: skip


def test_two_instances_poll_each_feed_once_per_due_time(
    kafka_bootstrap: Bootstrap, topics: Topics, server: str
) -> None:
    feeds = _feeds(server)
    catalogue_sink = Producer(kafka_bootstrap)
    assert publish_catalogue(kafka_bootstrap, topics, feeds, catalogue_sink) == (FEEDS, 0)
    paths = {f"/feeds/{n}.xml" for n in range(FEEDS)}

    a = Instance("a", kafka_bootstrap, topics).start()
    b: Instance | None = None
    try:
        _wait("A to poll every feed", lambda: _polled_by("a", 0) == paths)
        b = Instance("b", kafka_bootstrap, topics).start()
        # Both hold partitions once the rebalance is over.
        _wait("the rebalance", lambda: bool(a.sharded.owned) and bool(b.sharded.owned)
              and len(a.sharded.owned) + len(b.sharded.owned) == FEEDS)  # fmt: skip
        shared = time.time()
        assert set(a.sharded.owned).isdisjoint(b.sharded.owned)
        time.sleep(3 * INTERVAL)
        both_a, both_b = _polled_by("a", shared), _polled_by("b", shared)
        assert both_a and both_b, "each instance polls its share"
        assert both_a.isdisjoint(both_b), "no feed is polled by both while both run"
        a.close()
        left = time.time()
        _wait("B to take every feed over", lambda: len(b.sharded.owned) == FEEDS)  # type: ignore[union-attr]
        _wait("B to poll every feed", lambda: _polled_by("b", left) == paths)
        time.sleep(2 * INTERVAL)
    finally:
        a.close()
        if b is not None:
            b.close()
        catalogue_sink.close()
    assert not a.errors and (b is None or not b.errors), (a.errors, b and b.errors)

    times: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for path, at, ua in FeedServer.requests():
        times[path].append((at, ua))
    assert set(times) == paths
    for path, polls in times.items():
        polls.sort()
        assert len(polls) >= 4, (path, polls)
        for (earlier, who_before), (later, who) in itertools.pairwise(polls):
            # Once per due time: a due time is set at the end of a poll, so the
            # next request comes at least one interval after the previous one,
            # whichever instance made either.
            assert later - earlier >= INTERVAL - 0.05, (path, who_before, who, later - earlier)
    owners = {ua for polls in times.values() for _, ua in polls}
    assert owners == {"rasd-test-a", "rasd-test-b"}


def test_the_feed_state_moves_with_the_topic(kafka_bootstrap: Bootstrap, topics: Topics) -> None:
    sink = Producer(kafka_bootstrap)
    try:
        writer = KafkaFeedStateStore(kafka_bootstrap, topics.feeds_state, sink)
        state = FeedState(url="https://example.org/feed", etag='"e1"', seen={"a": 1.0},
                          next_due=1_800_000_000.0)  # fmt: skip
        other = FeedState(url="https://example.org/other", polls=3)
        # Each state goes to the partition of its feed's catalogue record.
        writer.route(state.url, 2)
        writer.route(other.url, 0)
        writer.put(state)
        writer.put(other)
        writer.save()

        def reader(partitions: set[int] | None) -> tuple[int, KafkaFeedStateStore]:
            store = KafkaFeedStateStore(kafka_bootstrap, topics.feeds_state, sink)
            return store.load(partitions, timeout=30), store

        assert reader({1, 3})[0] == 0
        n, new_owner = reader({2})
        assert n == 1 and new_owner.get(state.url) == state
        assert new_owner.get(other.url) == FeedState(url=other.url)
        assert reader(None)[0] == 2
        new_owner.forget([state.url])
        assert new_owner.get(state.url) == FeedState(url=state.url)
        # A feed removed from the catalogue: its state is tombstoned.
        writer.delete(state.url)
        writer.save()
        n, fresh = reader(None)
        assert n == 1 and fresh.get(state.url) == FeedState(url=state.url)
    finally:
        sink.close()


def test_feeds_keep_their_partition_when_partitions_are_added(
    kafka_bootstrap: Bootstrap, topics: Topics
) -> None:
    feeds = _feeds("https://news.example.org")
    sink = Producer(kafka_bootstrap)
    admin = new_admin(kafka_bootstrap)
    try:
        assert check_partitions(kafka_bootstrap, topics) == 4
        publish_catalogue(kafka_bootstrap, topics, feeds, sink)
        before = catalogue_partitions(kafka_bootstrap, topics)
        assert len(before) == FEEDS
        admin.create_partitions({topics.feeds: NewPartitions(total_count=16)})
        with pytest.raises(ConfigError, match="feeds-state"):
            check_partitions(kafka_bootstrap, topics)
        admin.create_partitions({topics.feeds_state: NewPartitions(total_count=16)})
        # The broker's metadata shows the new partitions a moment after the
        # controller accepted them; a client that asks at once may see the old count.
        deadline = time.monotonic() + 15
        while True:
            try:
                assert check_partitions(kafka_bootstrap, topics) == 16
                break
            except ConfigError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # Every feed changes, and one is removed: the updates and the tombstone
        # go where the feeds were, so no feed is left behind in two partitions.
        renamed = [f.model_copy(update={"name": f"{f.name} (جديد)"}) for f in feeds[1:]]
        assert publish_catalogue(kafka_bootstrap, topics, renamed, sink) == (FEEDS - 1, 1)
        after = catalogue_partitions(kafka_bootstrap, topics)
        current = read_catalogue(kafka_bootstrap, topics)
    finally:
        admin.close()
        sink.close()
    assert after == {f.url: before[f.url] for f in feeds[1:]}
    assert all(Feed.model_validate_json(v).name.endswith("(جديد)") for v in current.values())


def test_publishing_the_catalogue_writes_changes_and_tombstones(
    kafka_bootstrap: Bootstrap, topics: Topics
) -> None:
    feeds = _feeds("https://news.example.org")
    sink = Producer(kafka_bootstrap)
    try:
        assert publish_catalogue(kafka_bootstrap, topics, feeds, sink) == (FEEDS, 0)
        # The same catalogue again changes nothing.
        assert publish_catalogue(kafka_bootstrap, topics, feeds, sink) == (0, 0)
        renamed = feeds[0].model_copy(update={"name": "اسم جديد"})
        assert publish_catalogue(kafka_bootstrap, topics, [renamed, *feeds[1:3]], sink) == (1, 9)
        current = read_catalogue(kafka_bootstrap, topics)
    finally:
        sink.close()
    assert sorted(current) == sorted(f.url for f in feeds[:3])
    assert Feed.model_validate_json(current[renamed.url]).name == "اسم جديد"


def test_feeds_status_reads_the_state_topic(
    kafka_bootstrap: Bootstrap, topics: Topics, tmp_path: Path
) -> None:
    feeds = _feeds("https://news.example.org")[:3]
    catalogue = tmp_path / "feeds.yaml"
    catalogue.write_text(
        yaml.safe_dump(
            {"feeds": [f.model_dump(exclude_none=True) for f in feeds]}, allow_unicode=True
        ),
        encoding="utf-8",
    )
    sink = Producer(kafka_bootstrap)
    try:
        store = KafkaFeedStateStore(kafka_bootstrap, topics.feeds_state, sink)
        at = 1_795_860_000.0
        store.put(FeedState(url=feeds[0].url, polls=4, last_success=at, interval=600.0,
                            next_due=at + 600))  # fmt: skip
        store.put(FeedState(url=feeds[1].url, polls=12, dead=True, consecutive_failures=12,
                            last_error="http_404: not found", last_error_at=at))  # fmt: skip
        store.save()
    finally:
        sink.close()
    args = ["feeds", "status", "--feeds", str(catalogue), "--namespace", topics.namespace]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines()
            if "example.org" in line}  # fmt: skip
    assert set(rows) == {f.url for f in feeds}
    assert " ok " in rows[feeds[0].url] and "10 min" in rows[feeds[0].url]
    assert " dead " in rows[feeds[1].url] and "http_404" in rows[feeds[1].url]
    assert "never polled" in rows[feeds[2].url]
