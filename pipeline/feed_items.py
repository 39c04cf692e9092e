"""Feed entries become :class:`~pipeline.models.FeedItem` values, id and monthly index fixed."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urljoin

from pipeline.feeds import Feed
from pipeline.models import FeedItem, monthly_index
from pipeline.urls import article_id, canonicalize_url

__all__ = ["make_feed_item"]


def make_feed_item(
    feed: Feed,
    *,
    link: str,
    first_seen: datetime,
    namespace: str,
    title: str = "",
    summary: str = "",
    published_at: datetime | None = None,
) -> FeedItem:
    """Build the item for one feed entry: fixes its id and monthly index once.

    ``link`` may be relative (Atom feeds); it is resolved against the feed URL.
    Raises ``PermanentError("bad_url")`` for a link that is not http(s).
    """
    canonical = canonicalize_url(link, base=feed.url)
    # The fetch address is the link as published, only made absolute: the
    # canonical form may name a host (bare, https) that the site does not serve.
    absolute = urljoin(feed.url, link.strip())
    return FeedItem(
        id=article_id(canonical),
        url=absolute,
        canonical_url=canonical,
        feed_url=feed.url,
        outlet=feed.outlet,
        feed_name=feed.name,
        country=feed.country,
        language=feed.language,
        title=title,
        summary=summary,
        published_at=published_at,
        first_seen=first_seen,
        index_name=monthly_index(namespace, first_seen),
    )
