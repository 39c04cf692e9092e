"""The enrich stage: language, canonical text, rules, places and entities (deduped → enriched)."""

from __future__ import annotations

from connectors.kafka import Producer
from pipeline.enrichment import Enricher
from pipeline.models import DedupedArticle

from .base import Stage, StageContext, StageParts, each_article


def build(ctx: StageContext, producer: Producer) -> StageParts:
    enricher = Enricher(ctx.matcher, ctx.gazetteers)
    return each_article(DedupedArticle, enricher.enrich, ctx.topics.enriched)


STAGE = Stage(
    name="enrich",
    source="deduped",
    outputs=("enriched",),
    build=build,
    about="detect the language, normalize the text, match the rules, tag places and entities",
    outcomes=("ok",),
)
