"""The extract stage: fetch each item's page and extract the article (``items`` → ``articles``)."""

from __future__ import annotations

from typing import Any

from connectors.extract import extract_article
from connectors.kafka import Producer
from connectors.worker import Output, per_record
from pipeline.errors import PermanentError
from pipeline.models import FeedItem

from .base import Stage, StageContext, StageParts


def build(ctx: StageContext, producer: Producer) -> StageParts:
    def handle(record: Any) -> list[Output]:
        item = FeedItem.from_json(record.value)
        if not ctx.robots.allowed(item.url):
            raise PermanentError("robots_disallowed", item.url)
        page = ctx.politeness.fetch(ctx.http, item.url)
        try:
            article = extract_article(item, page, ctx.clock())
        except PermanentError as exc:
            # Non-articles (not_article_*, no_article_text, not_html) go to the
            # DLQ like any permanent failure; each reason is counted as well.
            ctx.stats.inc("extract", f"refused_{exc.reason}")
            raise
        return [Output(ctx.topics.articles, article.id, article.to_json())]

    return StageParts(per_record(handle))


STAGE = Stage(
    name="extract",
    source="items",
    outputs=("articles",),
    build=build,
    # Fetching and extracting take tens of milliseconds per article, so the
    # extract stage takes small batches: its outputs leave at each batch's end.
    batch=8,
    about="fetch each item's page (robots.txt, per-host politeness) and extract the article",
    outcomes=("ok",),
)
