"""The feed catalogue: what the poller polls, validated at start-up.

``config/feeds.yaml`` holds a top-level ``feeds:`` list of
``{url, name, outlet, country, language, interval?}``. :func:`load_feeds` reads
it into :class:`Feed` objects and rejects, with a
:class:`~pipeline.errors.ConfigError` naming the file and the entry (index and
URL), anything the poller could not use: a non-http(s) URL, a missing field, an
unknown key (a typo such as ``intervall`` would otherwise be silently ignored),
or the same feed listed twice (compared by canonical URL, so
``http://www.x/rss`` and ``https://x/rss`` count as one; polling a feed twice
hammers the host and doubles the items).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.configfile import load_entries
from pipeline.urls import canonicalize_url

__all__ = ["Feed", "load_feeds"]


class Feed(BaseModel):
    """One feed of one outlet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    name: str = Field(min_length=1)
    outlet: str = Field(min_length=1)
    country: str = Field(min_length=2, description="ISO 3166-1 alpha-2, or 'intl'.")
    language: str = Field("ar", pattern=r"^[a-z]{2,3}$")
    interval: int | None = Field(
        None, ge=60, le=86400, description="Poll interval in seconds; default: adaptive."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"feed URL must be an absolute http(s) URL, got {url!r}")
        return url


def load_feeds(path: str | Path) -> list[Feed]:
    """Read and validate a feeds file; raise ``ConfigError`` naming file and entry."""
    return load_entries(
        path,
        "feeds",
        Feed,
        label="url",
        identity=lambda feed: canonicalize_url(feed.url),
        duplicate="duplicate feed, same URL as feeds[{first}]",
    )
