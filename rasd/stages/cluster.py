"""The cluster stage: the dedupe verdict of each signed article (``signed`` → ``deduped``).

One partition, one active worker: every decision sees the ones before it
(docs/dedupe.md). The state is a compacted changelog, ``<ns>.dedupe-state``,
read back at start-up (what was written within the window) and before each batch.
"""

from __future__ import annotations

from typing import Any

from connectors.dedupe_state import KafkaDedupeState
from connectors.kafka import Producer
from connectors.worker import BatchResult, Output, per_record
from pipeline.dedupe import Deduper
from pipeline.models import SignedArticle
from pipeline.neardup import NearDuplicateIndex

from .base import Stage, StageContext, StageParts


def build(ctx: StageContext, producer: Producer) -> StageParts:
    # Entries read back from the changelog rebuild the LSH index (a closure:
    # the deduper needs the state, and the state feeds the deduper).
    state = KafkaDedupeState(
        ctx.settings.kafka,
        ctx.topics.dedupe_state,
        producer,
        on_entry=lambda kind, key, entry: deduper.remember(kind, key, entry),
        window=ctx.near_config.window,
    )
    window = NearDuplicateIndex(ctx.near_config)
    deduper = Deduper(state, window)
    state.load()
    ctx.stats.window_size(len(window))

    def check(record: Any) -> list[Output]:
        signed = SignedArticle.from_json(record.value)
        verdict = deduper.check(signed, deduper.keys_of(signed))
        ctx.stats.window_size(len(window))
        if verdict.is_duplicate:
            ctx.stats.inc("cluster", "duplicate")
            ctx.stats.duplicates.labels(verdict.duplicate_kind).inc()
        return [Output(ctx.topics.deduped, verdict.id, verdict.to_json())]

    inner = per_record(check)

    def handler(records: list[Any]) -> BatchResult:
        # Single writer, but the previous owner of the partition may have
        # written entries this process has not read yet.
        state.new_batch()
        state.catch_up()
        return inner(records)

    return StageParts(handler, on_abort=state.aborted)


STAGE = Stage(
    name="cluster",
    source="signed",
    outputs=("deduped", "dedupe_state"),
    build=build,
    about="decide each article's dedupe verdict and story cluster (a single writer)",
    outcomes=("ok", "duplicate"),
)
