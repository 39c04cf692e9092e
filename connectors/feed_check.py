"""``rasd feeds check``: what the poller sees in one feed document, URL or file."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from pipeline.errors import PermanentError, RetriableError
from pipeline.feeds import Feed
from pipeline.schedule import hint_seconds, max_age_seconds

from .feedparse import parse_feed
from .http import GuardedClient
from .poller import FEED_ACCEPT, feed_hints, unparsable_reason

__all__ = ["FeedCheck", "check_feed"]


@dataclass(frozen=True)
class FeedCheck:
    """What the poller sees in one feed document (``rasd feeds check``)."""

    source: str
    status: int | None
    content_type: str | None
    etag: str | None
    last_modified: str | None
    cache_control: str | None
    hint: float | None
    encoding: str | None = None
    bozo_reason: str | None = None
    entries_total: int = 0
    entries_without_link: int = 0
    items: list[tuple[str, str, str | None]] | None = None  # title, url, published (UTC ISO)
    error: str | None = None


@dataclass(frozen=True)
class _Document:
    content: bytes
    url: str
    status: int | None = None
    headers: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        return (self.headers or {}).get(name)


def _document(http: GuardedClient, source: str) -> _Document:
    """The feed's bytes: fetched as the poller fetches them, or read from a file."""
    if source.startswith(("http://", "https://")):
        page = http.fetch(source, accept=FEED_ACCEPT)
        return _Document(page.content, page.final_url, page.status, page.headers)
    return _Document(Path(source).read_bytes(), "https://feed.invalid/")


def check_feed(http: GuardedClient, source: str, now: datetime) -> FeedCheck:
    """Fetch (http(s) URL) or read (file path) one feed and parse it like the poller."""
    try:
        doc = _document(http, source)
    except (PermanentError, RetriableError, OSError) as exc:
        return FeedCheck(source, None, None, None, None, None, None, error=str(exc))
    content_type = doc.header("content-type")
    cache_control = doc.header("cache-control")
    head = FeedCheck(
        source=source,
        status=doc.status,
        content_type=content_type,
        etag=doc.header("etag"),
        last_modified=doc.header("last-modified"),
        cache_control=cache_control,
        hint=hint_seconds(max_age_seconds(cache_control), feed_hints(doc.content)),
        items=[],
    )
    feed = Feed(url=doc.url, name="check", outlet="check", country="intl")
    try:
        parsed = parse_feed(
            doc.content, feed, fetched_url=doc.url, content_type=content_type,
            namespace="check", now=now,
        )  # fmt: skip
    except PermanentError as exc:
        return replace(head, error=f"{unparsable_reason(doc.content, exc)}: {exc.detail}")
    return replace(
        head,
        encoding=parsed.encoding,
        bozo_reason=parsed.bozo_reason,
        entries_total=parsed.entries_total,
        entries_without_link=parsed.entries_without_link,
        items=[
            (i.title, i.url, i.published_at.isoformat() if i.published_at else None)
            for i in parsed.items
        ],
    )
