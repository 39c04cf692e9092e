"""``rasd feeds check``: what the poller sees in one feed document, URL or file.

A feed the poller would count as failed gets the poller's own reason
(:func:`connectors.poller.poll_failure`) and its detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from pipeline.errors import PermanentError, RetriableError
from pipeline.feeds import Feed
from pipeline.schedule import hint_seconds, max_age_seconds

from .feedparse import parse_feed
from .http import GuardedClient, HttpRetriableError, HttpStatusError
from .poller import EMPTY_BODY, FEED_ACCEPT, feed_hints, no_entries, poll_failure

__all__ = ["FeedCheck", "check_feed"]


@dataclass(frozen=True)
class FeedCheck:
    """What the poller sees in one feed document (``rasd feeds check``).

    ``reason`` is the poller's own name for the failure (:func:`poll_failure`)
    and ``detail`` says more; both are None when the poller would take the
    feed's entries.
    """

    source: str
    status: int | None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    cache_control: str | None = None
    hint: float | None = None
    encoding: str | None = None
    bozo_reason: str | None = None
    entries_total: int = 0
    entries_without_link: int = 0
    items: list[tuple[str, str, str | None]] = field(default_factory=list)  # title, url, UTC ISO
    reason: str | None = None
    detail: str | None = None

    @property
    def error(self) -> str | None:
        """``reason: detail``, as the poller logs it; None if the feed is fine."""
        if self.reason is None:
            return None
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def _failing(check: FeedCheck, reason: str, detail: str) -> FeedCheck:
    return replace(check, reason=reason, detail=detail)


def check_feed(http: GuardedClient, source: str, now: datetime) -> FeedCheck:
    """Fetch (http(s) URL) or read (file path) one feed and judge it like the poller."""
    headers: dict[str, str] = {}
    status: int | None = None
    content_type: str | None = None
    fetched_url = source
    try:
        if source.startswith(("http://", "https://")):
            page = http.fetch(source, accept=FEED_ACCEPT)
            headers, status, content_type, fetched_url = (
                page.headers,
                page.status,
                page.headers.get("content-type"),
                page.final_url,
            )
            content = page.content
        else:
            content = Path(source).read_bytes()
            fetched_url = "https://feed.invalid/"
    except (PermanentError, RetriableError) as exc:
        code = exc.status if isinstance(exc, HttpStatusError | HttpRetriableError) else None
        return _failing(FeedCheck(source, code), *poll_failure(exc))
    except OSError as exc:
        return _failing(FeedCheck(source, None), "unreadable_file", str(exc))
    base = FeedCheck(
        source=source,
        status=status,
        content_type=content_type,
        etag=headers.get("etag"),
        last_modified=headers.get("last-modified"),
        cache_control=headers.get("cache-control"),
        hint=hint_seconds(max_age_seconds(headers.get("cache-control")), feed_hints(content)),
    )
    if not content.strip():
        return _failing(base, "empty_feed", EMPTY_BODY)
    feed = Feed(url=fetched_url, name="check", outlet="check", country="intl")
    try:
        parsed = parse_feed(
            content, feed, fetched_url=fetched_url, content_type=content_type,
            namespace="check", now=now,
        )  # fmt: skip
    except PermanentError as exc:
        return _failing(base, *poll_failure(exc, content, status))
    items = [
        (i.title, i.url, i.published_at.isoformat() if i.published_at else None)
        for i in parsed.items
    ]
    checked = replace(
        base,
        encoding=parsed.encoding,
        bozo_reason=parsed.bozo_reason,
        entries_total=parsed.entries_total,
        entries_without_link=parsed.entries_without_link,
        items=items,
    )
    if not items:
        return _failing(checked, "empty_feed", no_entries(parsed.entries_total))
    return checked
