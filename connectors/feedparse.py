"""Turns the bytes of one fetched feed into :class:`~pipeline.models.FeedItem` values.

feedparser only ever sees bytes that :mod:`connectors.http` fetched, wrapped in
a file object (feedparser would otherwise fetch a string that looks like a URL,
or open one that names a local file). We decode the bytes ourselves first, with
the same charset rules as article pages (:func:`pipeline.text.decode_body`),
because feedparser falls back to windows-1252 when nothing is declared and so
turns undeclared windows-1256 Arabic into mojibake; feedparser then gets UTF-8
and an honest ``charset``. ``content-location`` is the fetched URL, so relative
links and ``xml:base`` resolve. Bad input is a value: a bozo feed that still
has entries is returned with ``bozo=True``; only a document with no entries
that is not a well-formed feed (HTML, garbage) raises
``PermanentError("malformed_feed")``. Entries without a usable http(s) link are
skipped and counted. Titles and summaries leave as plain text, never markup.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from time import struct_time
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import feedparser

from pipeline.arabic_dates import parse_arabic_date
from pipeline.errors import PermanentError
from pipeline.feed_items import make_feed_item
from pipeline.feeds import Feed
from pipeline.models import FeedItem
from pipeline.text import decode_body, plain_text

__all__ = ["FeedParse", "parse_feed"]

_XML_DECL_ENCODING: Final = re.compile(
    r"""^(\s*<\?xml\b[^>]*?)\s+encoding\s*=\s*(["'])[^"']*\2""", re.IGNORECASE
)
# feedparser's DOCTYPE filter lets a large literal entity through, which expat
# then copies into every reference (quadratic blowup), and nested ones reach
# expat too (see _entity_bomb). No real feed declares an entity this long.
_MAX_ENTITY_DECL: Final = 1024
_NESTED_ENTITY: Final = re.compile(r"[&%][A-Za-z_:]|<!ENTITY\s+%")


@dataclass(frozen=True)
class FeedParse:
    """The items of one feed document, with feedparser's verdict on its form."""

    items: list[FeedItem]
    bozo: bool
    bozo_reason: str | None
    encoding: str | None
    entries_total: int
    entries_without_link: int


def _entity_bomb(text: str) -> bool:
    start = text.find("<!DOCTYPE", 0, 4096)
    if start < 0:
        start = text.find("<!doctype", 0, 4096)
    if start < 0:
        return False
    end = text.find("]>", start)
    subset = text[start : end if end >= 0 else len(text)]
    pos = subset.find("<!ENTITY")
    while pos >= 0:
        close = subset.find(">", pos)
        if close < 0 or close - pos > _MAX_ENTITY_DECL:
            return True
        # An entity built from other entities is how billion laughs grows;
        # expat's amplification limit stops it only after ~1 s of callbacks.
        if _NESTED_ENTITY.search(subset, pos, close):
            return True
        pos = subset.find("<!ENTITY", close)
    return False


def _utf8_document(content: bytes, content_type: str | None) -> tuple[bytes, str, str]:
    """Return UTF-8 bytes, the content type to announce, and the charset we decoded with."""
    mime, _, params = (content_type or "application/xml").partition(";")
    header_charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            header_charset = value.strip().strip("\"'") or None
    text, charset = decode_body(content, header_charset)
    if _entity_bomb(text):
        raise PermanentError("malformed_feed", "oversized or unterminated entity declaration")
    # The declaration must agree with the bytes we hand on; without an
    # encoding pseudo-attribute XML means UTF-8.
    text = _XML_DECL_ENCODING.sub(r"\1", text, count=1)
    return text.encode("utf-8"), f"{mime.strip() or 'application/xml'}; charset=utf-8", charset


def _entry_link(entry: Any, fetched_url: str) -> str | None:
    candidates: list[str] = []
    link = entry.get("link")
    if isinstance(link, str):
        candidates.append(link)
    for extra in entry.get("links") or []:
        if extra.get("rel", "alternate") == "alternate" and isinstance(extra.get("href"), str):
            candidates.append(extra["href"])
    for candidate in candidates:
        absolute = urljoin(fetched_url, candidate.strip())
        parts = urlsplit(absolute)
        if parts.scheme in ("http", "https") and parts.hostname:
            return absolute
    return None


def _arabic_date_handler(text: str) -> struct_time | None:
    """feedparser's hook for dates it cannot read: Arabic month names, in UTC."""
    when = parse_arabic_date(text)
    return when.utctimetuple() if when is not None else None


# Handlers are tried newest first; this one answers None quickly for anything
# without an Arabic month name, and feedparser's own handlers then run.
feedparser.registerDateHandler(_arabic_date_handler)


def _entry_date(entry: Any, now: datetime) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        # The plain dict lookup: FeedParserDict.get maps a missing
        # updated_parsed to published_parsed, with a deprecation warning.
        parsed = dict.get(entry, key)
        if isinstance(parsed, struct_time):
            try:
                when = datetime(*parsed[:6], tzinfo=UTC)
            except (ValueError, OverflowError):
                continue
            # A date in the future is a publisher's clock or timezone error;
            # an article cannot be newer than the moment we saw it.
            return min(when, now)
    # What feedparser could not read: a relative date (منذ 3 ساعات, أمس), anchored
    # on the moment the feed was fetched.
    for key in ("published", "updated"):
        raw = dict.get(entry, key)
        if isinstance(raw, str) and raw.strip():
            relative = parse_arabic_date(raw, now=now)
            if relative is not None:
                return min(relative, now)
    return None


def _bozo_reason(exc: object) -> str | None:
    if exc is None:
        return None
    return f"{type(exc).__name__}: {exc}"[:300]


def parse_feed(
    content: bytes,
    feed: Feed,
    *,
    fetched_url: str,
    content_type: str | None,
    namespace: str,
    now: datetime,
) -> FeedParse:
    """Parse one fetched feed document into items; see the module docstring."""
    document, announced, charset = _utf8_document(content, content_type)
    try:
        parsed = feedparser.parse(
            io.BytesIO(document),
            response_headers={"content-location": fetched_url, "content-type": announced},
            # Titles and summaries leave as plain text (plain_text strips every
            # tag, with script and style content), so feedparser's own HTML
            # sanitizer and its resolver of links inside that HTML would do work
            # that is thrown away: the largest part of a parse (bench/feed_parse.py).
            # Entry links are resolved either way, by feedparser and by _entry_link.
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser's contract is never to raise; be sure of it
        raise PermanentError("malformed_feed", f"{type(exc).__name__}: {exc}") from exc
    bozo = bool(parsed.get("bozo"))
    reason = _bozo_reason(parsed.get("bozo_exception")) if bozo else None
    entries = parsed.get("entries") or []
    if not entries and (bozo or not parsed.get("version")):
        raise PermanentError("malformed_feed", reason or "not a feed (no RSS or Atom root)")

    items: list[FeedItem] = []
    without_link = 0
    for entry in entries:
        link = _entry_link(entry, fetched_url)
        if link is None:
            without_link += 1
            continue
        try:
            item = make_feed_item(
                feed,
                link=link,
                first_seen=now,
                namespace=namespace,
                title=plain_text(entry.get("title")),
                summary=plain_text(entry.get("summary")),
                published_at=_entry_date(entry, now),
            )
        except PermanentError:  # a link canonicalize_url cannot use (bad port, …)
            without_link += 1
            continue
        items.append(item)
    return FeedParse(
        items=items,
        bozo=bozo,
        bozo_reason=reason,
        encoding=charset,
        entries_total=len(entries),
        entries_without_link=without_link,
    )
