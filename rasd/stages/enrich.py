"""The enrich stage: language, canonical text and the rules matched (``deduped`` → ``enriched``)."""

from __future__ import annotations

import functools

from connectors.kafka import Producer
from pipeline.enrichment import enrich
from pipeline.models import DedupedArticle

from .base import Stage, StageContext, StageParts, each_article


def build(ctx: StageContext, producer: Producer) -> StageParts:
    matched = functools.partial(enrich, matcher=ctx.matcher)
    return each_article(DedupedArticle, matched, ctx.topics.enriched)


STAGE = Stage(
    name="enrich",
    source="deduped",
    outputs=("enriched",),
    build=build,
    about="detect the language, normalize the text, match the watch rules",
    outcomes=("ok",),
)
