"""The registry of stages: each one declared in its own module, listed here once.

``rasd run``, ``rasd worker``, the lag view, the command line's choices and
``reset`` read :data:`STAGES`; the ``deliver-<name>`` stages come from the
destinations the rules name (:func:`stages_for`). Adding a stage is a module
with a ``STAGE`` and one line below.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.rules import Rule

from . import alert, cluster, enrich, extract, index, sign
from .base import Stage, StageContext, StageParts
from .deliver import PREFIX as DELIVER_PREFIX
from .deliver import delivery_stage, destinations_of

__all__ = [
    "DELIVER_PREFIX",
    "STAGES",
    "Stage",
    "StageContext",
    "StageParts",
    "find",
    "names",
    "stages_for",
]

#: The stage workers, in pipeline order.
STAGES: tuple[Stage, ...] = (
    extract.STAGE,
    sign.STAGE,
    cluster.STAGE,
    enrich.STAGE,
    index.STAGE,
    alert.STAGE,
)


def names() -> tuple[str, ...]:
    """The registered stages' names, in pipeline order."""
    return tuple(s.name for s in STAGES)


def stages_for(rules: Iterable[Rule]) -> tuple[Stage, ...]:
    """Every stage that runs for these rules: the registry, then one per destination."""
    return (*STAGES, *(delivery_stage(d) for d in destinations_of(rules)))


def find(name: str) -> Stage | None:
    """The stage called ``name`` (or a former name of it); ``deliver-<x>`` for any x."""
    for stage in STAGES:
        if name == stage.name or name in stage.aliases:
            return stage
    if name.startswith(DELIVER_PREFIX) and len(name) > len(DELIVER_PREFIX):
        return delivery_stage(name.removeprefix(DELIVER_PREFIX))
    return None
