"""The feed poller: fetch a feed, parse it, send its new items to ``<ns>.items``.

One broken feed never stops the others: every failure is classified (the
reason of the ``PermanentError`` or "retriable"), logged, counted and returned
as a :class:`PollResult`. Items already sent by this process are not sent
again (a bounded per-feed seen-set); everything downstream is idempotent, so
a restart that sends them once more costs work, not correctness.

:class:`FeedScheduler` runs one APScheduler 3 job per feed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from pipeline.errors import PermanentError, RetriableError
from pipeline.feeds import Feed

from .feedparse import parse_feed
from .http import GuardedClient
from .kafka import KafkaSink
from .metrics import Stats

log = logging.getLogger(__name__)

_FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)


@dataclass(frozen=True)
class PollResult:
    """The outcome of one poll of one feed."""

    feed: Feed
    ok: bool
    items_total: int = 0
    items_new: int = 0
    bozo: bool = False
    error: str | None = None


class FeedPoller:
    """Polls feeds and produces their new items."""

    def __init__(
        self,
        http: GuardedClient,
        sink: KafkaSink,
        items_topic: str,
        namespace: str,
        stats: Stats,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        seen_per_feed: int = 5000,
    ) -> None:
        self.http = http
        self.sink = sink
        self.items_topic = items_topic
        self.namespace = namespace
        self.stats = stats
        self.clock = clock
        self.seen_per_feed = seen_per_feed
        self._seen: dict[str, OrderedDict[str, None]] = {}

    def poll(self, feed: Feed) -> PollResult:
        try:
            page = self.http.fetch(feed.url, accept=_FEED_ACCEPT)
            parsed = parse_feed(
                page.content,
                feed,
                fetched_url=page.final_url,
                content_type=page.content_type,
                namespace=self.namespace,
                now=self.clock(),
            )
        except PermanentError as exc:
            return self._failed(feed, exc.reason, str(exc))
        except RetriableError as exc:
            return self._failed(feed, "retriable", str(exc))
        seen = self._seen.setdefault(feed.url, OrderedDict())
        new = [item for item in parsed.items if item.id not in seen]
        for item in new:
            self.sink.send(self.items_topic, item.id, item.to_json())
        self.sink.flush()
        for item in new:
            seen[item.id] = None
        while len(seen) > self.seen_per_feed:
            seen.popitem(last=False)
        self.stats.inc("poll", "feed_ok")
        self.stats.inc("poll", "items", len(new))
        if parsed.bozo:
            self.stats.inc("poll", "feed_bozo")
            log.info(
                "feed %s is not well-formed (%s) but gave %d entries",
                feed.url,
                parsed.bozo_reason,
                len(parsed.items),
            )
        if parsed.entries_without_link:
            self.stats.inc("poll", "entries_without_link", parsed.entries_without_link)
        log.info("feed %s: %d entries, %d new", feed.url, len(parsed.items), len(new))
        return PollResult(feed, True, len(parsed.items), len(new), parsed.bozo)

    def _failed(self, feed: Feed, reason: str, detail: str) -> PollResult:
        self.stats.inc("poll", "feed_failed")
        self.stats.inc("poll", f"feed_failed:{reason}")
        log.warning("feed %s failed: %s", feed.url, detail)
        return PollResult(feed, False, error=detail)

    def poll_all(self, feeds: Sequence[Feed], concurrency: int = 8) -> list[PollResult]:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="poll") as pool:
            return list(pool.map(self.poll, feeds))


class FeedScheduler:
    """One APScheduler job per feed, first run immediately, then every interval."""

    def __init__(
        self, poller: FeedPoller, feeds: Sequence[Feed], default_interval: int, concurrency: int = 8
    ) -> None:
        self.poller = poller
        self.feeds = list(feeds)
        self.default_interval = default_interval
        self.concurrency = concurrency
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        scheduler = BackgroundScheduler(
            executors={"default": {"type": "threadpool", "max_workers": self.concurrency}},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        for feed in self.feeds:
            interval = feed.interval or self.default_interval
            scheduler.add_job(
                self.poller.poll,
                "interval",
                args=[feed],
                id=feed.url,
                name=feed.name,
                seconds=interval,
                next_run_time=now,
                # One poll at a time per feed; missed runs collapse into one.
                coalesce=True,
                max_instances=1,
                misfire_grace_time=interval,
                jitter=min(30, interval // 10),
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
