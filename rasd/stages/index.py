"""The index stage: every enriched article into Elasticsearch (``enriched`` → ``<ns>-articles``)."""

from __future__ import annotations

from typing import Any

from connectors.elastic_sinks import ArticleSink
from connectors.kafka import Producer
from connectors.worker import BatchResult
from pipeline.models import EnrichedArticle

from .base import Stage, StageContext, StageParts, decode_each


def build(ctx: StageContext, producer: Producer) -> StageParts:
    sink = ArticleSink(ctx.store, ctx.clock)

    def handler(records: list[Any]) -> BatchResult:
        result = BatchResult()
        for record, article in decode_each(records, EnrichedArticle, result):
            result.write(sink.name, record, article)
        return result

    return StageParts(handler, (sink,))


STAGE = Stage(
    name="index",
    source="enriched",
    outputs=(),
    build=build,
    about="bulk-index each article into its monthly index (id = article id: idempotent)",
    outcomes=("indexed",),
)
