"""The sign stage: each article's dedupe keys, on any number of workers (``articles`` → ``signed``).

Tokens, body hash and MinHash are the costly, parallel half of dedupe; the
decision that must see every article before it is :mod:`rasd.stages.cluster`.
"""

from __future__ import annotations

import functools

from connectors.kafka import Producer
from pipeline.dedupe import sign
from pipeline.models import Article

from .base import Stage, StageContext, StageParts, each_article


def build(ctx: StageContext, producer: Producer) -> StageParts:
    keys = functools.partial(sign, config=ctx.near_config)
    return each_article(Article, keys, ctx.topics.signed)


STAGE = Stage(
    name="sign",
    source="articles",
    outputs=("signed",),
    build=build,
    # Its first name: the group keeps its committed offsets across the rename.
    group="dedupe",
    aliases=("dedupe",),
    about="compute each article's dedupe keys (body hash, MinHash), on any number of workers",
    outcomes=("ok",),
)
