"""The feed poller: fetch a feed politely, parse it, send its new items to ``<ns>.items``.

Each poll reads the feed's :class:`~pipeline.schedule.FeedState` from a
:class:`~connectors.feed_state.FeedStateStore`, sends a conditional GET
(``If-None-Match``/``If-Modified-Since``) except every
``unconditional_every``-th poll, which goes out bare because some servers
answer 304, or keep their validators, for changed content. A 200 whose body
hashes the same as last time is not parsed again (the "same hash" outcome).
One broken feed never stops the others: every failure is classified by reason
(``http_404``, ``http_403``, ``http_503``, ``timeout``, ``dns``, ``tls``,
``too_many_redirects``, ``challenge_page``, ``html_not_feed``, ``empty_feed``,
``malformed_feed``…) by :func:`poll_failure`, which ``rasd feeds check``
(:func:`connectors.feed_check.check_feed`) shares, then counted, recorded in the feed's state with a
weighted backoff, and returned as a :class:`PollResult`; nothing raises out of
:meth:`FeedPoller.poll`. A bot-protection page (:mod:`connectors.challenge`) is
``challenge_page`` whatever its status (403, 503 or 200), so that it is told
apart from a plain 403 and from a site's ordinary HTML served instead of a
feed. Only items not in the feed's seen-set go downstream; the seen-set keeps
an id while the feed still lists it, then for ``seen_ttl`` seconds, and never
more than ``seen_max`` ids. Server hints for the next poll come from
``Retry-After``, ``Cache-Control: max-age``, RSS ``<ttl>`` and
``sy:updatePeriod``, which are read from the raw bytes here so that the parser
needs no extra hook.

:class:`FeedScheduler` runs one APScheduler 3 job per feed and re-arms it after
every poll at the interval :func:`pipeline.schedule.next_interval` chose.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from pipeline.errors import PermanentError, RetriableError
from pipeline.feeds import Feed
from pipeline.models import FeedItem
from pipeline.schedule import (
    FeedState,
    ScheduleBounds,
    classify_failure,
    hint_seconds,
    max_age_seconds,
    record_failure,
    record_success,
    update_period_seconds,
    wants_unconditional,
)

from .challenge import challenge_marker
from .feed_state import FeedStateStore
from .feedparse import FeedParse, parse_feed
from .http import GuardedClient, HttpRetriableError, HttpStatusError
from .kafka import Producer
from .metrics import Stats
from .politeness import HostPoliteness

log = logging.getLogger(__name__)

#: The Accept header of a feed fetch.
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
# Channel-level hints sit before the first item; 16 KiB is plenty and keeps
# the scan cheap on 500-item feeds. Tags are ASCII in every encoding we accept.
_HEAD: Final = 16384
_TTL: Final = re.compile(rb"<ttl>\s*(\d+)\s*</ttl>", re.IGNORECASE)
_SY_PERIOD: Final = re.compile(rb"<sy:updatePeriod>\s*(\w+)\s*</sy:updatePeriod>", re.IGNORECASE)
_SY_FREQ: Final = re.compile(rb"<sy:updateFrequency>\s*(\d+)\s*</sy:updateFrequency>", re.I)
_HTML: Final = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S)
_DNS_HINTS: Final = ("name or service not known", "nodename nor servname", "getaddrinfo",
                     "temporary failure in name resolution", "no address associated")  # fmt: skip
_TLS_HINTS: Final = ("ssl", "certificate", "tls")
#: The reason of a bot-protection page (see connectors.challenge).
CHALLENGE_PAGE: Final = "challenge_page"


@dataclass(frozen=True)
class PollResult:
    """The outcome of one poll of one feed."""

    feed: Feed
    ok: bool
    items_total: int = 0
    items_new: int = 0
    bozo: bool = False
    error: str | None = None
    #: ``new``, ``not_modified``, ``same_hash`` or the failure reason.
    outcome: str = "new"
    status: int | None = None


#: The detail of an ``empty_feed`` whose body is empty.
EMPTY_BODY: Final = "the response has an empty body"


def no_entries(listed: int) -> str:
    """The detail of an ``empty_feed`` that lists ``listed`` entries, none usable."""
    if listed:
        return f"none of its {listed} entries has a usable link"
    return "the feed lists no entries"


def feed_hints(body: bytes) -> float | None:
    """Seconds the feed itself asks between polls (``<ttl>`` minutes, ``sy:update*``)."""
    head = body[:_HEAD]
    ttl = _TTL.search(head)
    period = _SY_PERIOD.search(head)
    freq = _SY_FREQ.search(head)
    return hint_seconds(
        float(ttl.group(1)) * 60 if ttl else None,
        update_period_seconds(
            period.group(1).decode("ascii") if period else None,
            freq.group(1).decode("ascii") if freq else None,
        ),
    )


def _challenge(body: bytes, status: int | None, where: str = "") -> tuple[str, str] | None:
    marker = challenge_marker(body) if body else None
    if marker is None:
        return None
    code = f"HTTP {status}, " if status is not None else ""
    return CHALLENGE_PAGE, f"{code}a bot-protection page ({marker}), not the feed{where}"


def poll_failure(
    exc: Exception, document: bytes | None = None, status: int | None = None
) -> tuple[str, str]:
    """Why a poll failed: a short, countable reason and a one-line detail.

    The poller (counters, feed state, backoff weight) and ``rasd feeds check``
    both classify through here. Without ``document``, ``exc`` is the fetch's
    own failure, and an error response whose body is a bot-protection page is
    ``challenge_page``. With ``document``, the fetch worked (``status``) and
    ``exc`` is why that body is not a feed: ``challenge_page``, then
    ``html_not_feed`` for any other HTML page, else the parser's reason.
    """
    if document is not None:
        challenge = _challenge(document, status)
        if challenge is not None:
            return challenge
        if _HTML.match(document[:4096]):
            return "html_not_feed", "an HTML page, not RSS or Atom"
        if isinstance(exc, PermanentError):
            return exc.reason, exc.detail
        return "malformed_feed", str(exc)
    if isinstance(exc, HttpStatusError | HttpRetriableError):
        challenge = _challenge(exc.body, exc.status, f": {exc.detail}" if exc.detail else "")
        if challenge is not None:
            return challenge
    if isinstance(exc, PermanentError):
        return exc.reason, exc.detail
    if isinstance(exc, HttpRetriableError):
        if exc.reason == "connection_error":
            text = exc.detail.lower()
            if any(hint in text for hint in _DNS_HINTS):
                return "dns", exc.detail
            if any(hint in text for hint in _TLS_HINTS):
                return "tls", exc.detail
        return exc.reason, exc.detail
    return "retriable", str(exc)


class FeedPoller:
    """Polls feeds and produces their new items; see the module docstring."""

    def __init__(
        self,
        http: GuardedClient,
        producer: Producer,
        items_topic: str,
        namespace: str,
        stats: Stats,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        seen_max: int = 5000,
        *,
        state: FeedStateStore | None = None,
        bounds: ScheduleBounds | None = None,
        seen_ttl: float = 14 * 86400.0,
        politeness: HostPoliteness | None = None,
    ) -> None:
        self.http = http
        self.producer = producer
        self.items_topic = items_topic
        self.namespace = namespace
        self.stats = stats
        self.clock = clock
        self.seen_max = seen_max
        self.seen_ttl = seen_ttl
        self.state = state if state is not None else FeedStateStore(None)
        self.bounds = bounds or ScheduleBounds()
        self.politeness = politeness or HostPoliteness(max_per_host=1_000_000, min_spacing=0.0)
        # Two polls of one feed at once would race on its state; the scheduler
        # prevents it (max_instances=1), this guards poll_all and manual calls.
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        # One transaction at a time on the producer (polls run in several threads).
        self._publishing = threading.Lock()

    def feed_lock(self, url: str) -> threading.RLock:
        """Held while this feed is polled (re-entrant, so a caller may hold it around a poll)."""
        with self._locks_guard:
            return self._locks.setdefault(url, threading.RLock())

    def wait_idle(self, url: str, timeout: float | None = None) -> bool:
        """Wait until no poll of this feed is in flight; False if ``timeout`` ran out first."""
        lock = self.feed_lock(url)
        if not lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        lock.release()
        return True

    def poll(self, feed: Feed) -> PollResult:
        with self.feed_lock(feed.url):
            try:
                return self._poll(feed)
            except Exception as exc:  # a bug must not stop the scheduler's job
                log.exception("feed %s: unexpected error", feed.url)
                return self._failed(feed, self.state.get(feed.url), "bug", str(exc), exc)

    def _poll(self, feed: Feed) -> PollResult:
        state = self.state.get(feed.url)
        unconditional = wants_unconditional(state, self.bounds)
        headers: dict[str, str] = {}
        if not unconditional:
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.last_modified:
                headers["If-Modified-Since"] = state.last_modified
        try:
            page = self.politeness.fetch(self.http, feed.url, headers=headers, accept=FEED_ACCEPT)
        except (PermanentError, RetriableError) as exc:
            return self._failed(feed, state, *poll_failure(exc), exc)
        now_dt = self.clock()
        now = now_dt.timestamp()
        state = replace(
            state,
            etag=page.headers.get("etag") or state.etag,
            last_modified=page.headers.get("last-modified") or state.last_modified,
            polls_since_unconditional=0 if unconditional else state.polls_since_unconditional + 1,
        )
        http_hint = max_age_seconds(page.headers.get("cache-control"))
        if page.status == 304:
            return self._succeeded(feed, state, now, "not_modified", http_hint, page.status)
        body_hash = hashlib.blake2b(page.content, digest_size=16).hexdigest()
        hint = hint_seconds(http_hint, feed_hints(page.content))
        if body_hash == state.body_hash:
            return self._succeeded(feed, state, now, "same_hash", hint, page.status)
        if not page.content.strip():
            return self._failed(feed, state, "empty_feed", EMPTY_BODY, status=page.status)
        try:
            parsed = parse_feed(
                page.content,
                feed,
                fetched_url=page.final_url,
                content_type=page.content_type,
                namespace=self.namespace,
                now=now_dt,
            )
        except PermanentError as exc:
            reason, detail = poll_failure(exc, page.content, page.status)
            # Keep the hash unset so a fixed document is parsed at once.
            return self._failed(feed, state, reason, detail, exc, status=page.status)
        if not parsed.items:
            state = replace(state, body_hash=body_hash)
            detail = no_entries(parsed.entries_total)
            return self._failed(feed, state, "empty_feed", detail, status=page.status)
        state = replace(state, body_hash=body_hash)
        return self._publish(feed, state, parsed, now, hint, page.status)

    def _publish(
        self, feed: Feed, state: FeedState, parsed: FeedParse, now: float, hint: float | None,
        status: int,
    ) -> PollResult:  # fmt: skip
        """Send the feed's new items, remember every listed one, count and log the poll."""
        seen = dict(state.seen)
        new = [item for item in parsed.items if item.id not in seen]
        for item in parsed.items:
            # Still listed: keep it (an expired id would come back as "new").
            seen[item.id] = now
        seen = {k: t for k, t in seen.items() if now - t <= self.seen_ttl}
        if len(seen) > self.seen_max:
            seen = dict(sorted(seen.items(), key=lambda kv: kv[1])[-self.seen_max :])
        times = tuple(
            min(item.published_at.timestamp(), now) if item.published_at else now for item in new
        )
        before, state = state, replace(state, seen=seen)
        update = functools.partial(
            record_success, outcome="new" if new else "no_new", new_item_times=times, hint=hint
        )
        try:
            self._send(new, update(state, now, self.bounds, fixed=feed.interval))
        except RetriableError as exc:
            # Nothing was published (or the transaction was aborted): parse it again
            # next time instead of taking the unchanged hash for "nothing new".
            retry = replace(before, body_hash=None)
            return self._failed(feed, retry, "publish_failed", str(exc), exc, status=status)
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
        outcome = "new" if new else "no_new"
        for counter in ("feed_ok", f"feed_{outcome}"):
            self.stats.inc("poll", counter)
        return PollResult(
            feed, True, len(parsed.items), len(new), parsed.bozo, outcome=outcome, status=status
        )

    def _send(self, new: Sequence[FeedItem], state: FeedState) -> None:
        """Publish the new items and keep the feed's state after the poll.

        With a transactional producer, the items and the state record are one
        transaction, and memory is updated after its commit: a poller killed at
        any moment has published the items and remembered them, or neither (a
        restart then publishes them once). Without, the items are acknowledged
        first and the state is written after them (a kill in between repeats them).
        A poll that found nothing new writes its state alone, outside any
        transaction (most polls: a transaction each would be three round trips
        to the broker, one poll at a time); if that write is lost in a crash,
        the feed is polled a little early, and nothing is published twice.
        """
        if not self.producer.transactional or not new:
            for item in new:
                self.producer.send(self.items_topic, item.id, item.to_json())
            self.producer.flush()
            self.state.put(state)
            return
        with self._publishing:
            # Earlier state records of this feed (another producer) land first.
            self.state.save()
            for item in new:
                self.producer.send(self.items_topic, item.id, item.to_json())
            written = self.state.put_with(state, self.producer)
            try:
                self.producer.flush()
                self.producer.commit_sends()
            except RetriableError:
                self.producer.abort()
                raise
        if written:
            self.state.remember(state)
        else:
            self.state.put(state)

    def _succeeded(
        self,
        feed: Feed,
        state: FeedState,
        now: float,
        outcome: str,
        hint: float | None,
        status: int,
        times: tuple[float, ...] = (),
    ) -> PollResult:
        update = functools.partial(record_success, outcome=outcome, new_item_times=times, hint=hint)
        self._keep(feed, state, now, update, "feed_ok", f"feed_{outcome}")
        return PollResult(feed, True, outcome=outcome, status=status)

    def _keep(
        self,
        feed: Feed,
        state: FeedState,
        now: float,
        update: Callable[..., FeedState],
        *counters: str,
    ) -> FeedState:
        """The feed's state after this poll (``update`` is a ``record_success`` or
        ``record_failure`` with the poll's outcome), kept; the poll's counters counted."""
        state = update(state, now, self.bounds, fixed=feed.interval)
        self.state.put(state)
        for counter in counters:
            self.stats.inc("poll", counter)
        return state

    def _failed(
        self,
        feed: Feed,
        state: FeedState,
        reason: str,
        detail: str,
        exc: Exception | None = None,
        status: int | None = None,
    ) -> PollResult:
        retry_after = exc.retry_after if isinstance(exc, HttpRetriableError) else None
        update = functools.partial(
            record_failure, reason=reason, detail=detail, retry_after=retry_after
        )
        kind = classify_failure(reason)
        counters = ("feed_failed", f"feed_failed:{reason}", f"feed_failed_{kind}")
        state = self._keep(feed, state, self.clock().timestamp(), update, *counters)
        if state.dead:
            self.stats.inc("poll", "feed_dead")
        log.warning("feed %s failed (%s): %s", feed.url, reason, detail)
        if isinstance(exc, HttpRetriableError | HttpStatusError) and exc.status is not None:
            status = exc.status
        error = f"{reason}: {detail}" if detail else reason
        return PollResult(feed, False, error=error, outcome=reason, status=status)

    def poll_all(self, feeds: Sequence[Feed], concurrency: int = 8) -> list[PollResult]:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="poll") as pool:
            results = list(pool.map(self.poll, feeds))
        self.state.save()
        return results


class FeedScheduler:
    """One APScheduler job per feed, re-armed after each poll at the chosen interval.

    The feeds given at construction are scheduled by :meth:`start`; :meth:`add`
    and :meth:`remove` change the set while it runs (the sharded poller does,
    as partitions come and go).
    """

    def __init__(
        self,
        poller: FeedPoller,
        feeds: Sequence[Feed],
        default_interval: int,
        concurrency: int = 8,
    ) -> None:
        self.poller = poller
        self.feeds = list(feeds)
        self.default_interval = default_interval
        self.concurrency = concurrency
        self._scheduler: BackgroundScheduler | None = None
        # Feeds scheduled here now. A run already handed to the thread pool when
        # its feed is removed checks this, under the feed's lock, and does nothing.
        self._active: set[str] = set()

    def _trigger(self, interval: float, start: datetime) -> IntervalTrigger:
        # Jitter spreads feeds that share an interval so that hosts and the
        # thread pool do not see them all in the same second.
        return IntervalTrigger(
            seconds=max(1, int(interval)),
            start_date=start,
            timezone=UTC,
            jitter=min(30, int(interval) // 10),
        )

    def _run(self, feed: Feed) -> None:
        with self.poller.feed_lock(feed.url):
            if feed.url not in self._active:
                return
            self.poller.poll(feed)
        state = self.poller.state.get(feed.url)
        scheduler = self._scheduler
        if scheduler is None or state.interval is None or state.next_due is None:
            return
        due = datetime.fromtimestamp(state.next_due, UTC)
        # The feed may have been removed while it was being polled.
        with contextlib.suppress(JobLookupError):
            scheduler.reschedule_job(feed.url, trigger=self._trigger(state.interval, due))

    def add(self, feed: Feed) -> None:
        """Schedule ``feed`` (or replace its job) from its persisted due time."""
        scheduler = self._scheduler
        if scheduler is None:
            raise RuntimeError("FeedScheduler.add before start")
        self._active.add(feed.url)
        state = self.poller.state.get(feed.url)
        interval = state.interval or feed.interval or self.default_interval
        # After a restart or a handover a feed waits for the due time it had.
        now = datetime.now(UTC)
        first = now
        if state.next_due is not None:
            first = max(now, datetime.fromtimestamp(state.next_due, UTC))
        scheduler.add_job(
            self._run,
            self._trigger(interval, first),
            args=[feed],
            id=feed.url,
            name=feed.name,
            next_run_time=first,
            replace_existing=True,
            # One poll at a time per feed; missed runs collapse into one.
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(interval)),
        )

    def remove(self, url: str) -> None:
        """Stop scheduling this feed; a poll in flight still finishes (see ``wait_idle``)."""
        self._active.discard(url)
        if self._scheduler is not None:
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(url)

    def start(self) -> None:
        scheduler = BackgroundScheduler(
            executors={"default": {"type": "threadpool", "max_workers": self.concurrency}},
            timezone=UTC,
        )
        self._scheduler = scheduler
        for feed in self.feeds:
            self.add(feed)
        scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.poller.state.save()
