"""The cluster stage: the dedupe verdict of each signed article (``signed`` → ``deduped``).

One partition, one active worker: every decision sees the ones before it
(docs/dedupe.md). The state is a compacted changelog, ``<ns>.dedupe-state``,
read back at start-up and before each batch. At start-up a snapshot on local
disk (:mod:`connectors.dedupe_snapshot`), when there is a usable one, restores
the index and the exact keys, and only the changelog written after it is read;
otherwise what was written within the window.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka.errors import KafkaError

from connectors.dedupe_snapshot import SnapshotSink, snapshot_dir, snapshot_path
from connectors.dedupe_snapshot import load as load_snapshot
from connectors.dedupe_state import KafkaDedupeState
from connectors.kafka import Producer
from connectors.worker import BatchResult, Output, Sink, per_record
from pipeline.dedupe import Deduper, InMemoryDedupeState
from pipeline.errors import RetriableError
from pipeline.models import SignedArticle
from pipeline.neardup import NearDuplicateIndex

from .base import Stage, StageContext, StageParts

log = logging.getLogger(__name__)


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
    settings = ctx.settings
    path = snapshot_path(snapshot_dir(settings), ctx.topics.dedupe_state)

    window: NearDuplicateIndex
    deduper: Deduper

    def start() -> None:
        """Make the index and the deduper from the snapshot and the topic after it
        (or from the topic's whole window)."""
        nonlocal window, deduper
        snapshot = None
        if settings.dedupe_snapshot_seconds > 0:
            snapshot = load_snapshot(path, ctx.topics.dedupe_state, ctx.near_config)
        if snapshot is not None:
            ends = state.end_offsets()
            if any(o > ends.get(p, -1) for p, o in snapshot.offsets.items()):
                # The topic was deleted and made again since.
                log.warning(
                    "dedupe snapshot %s is ahead of %s (offsets %s, topic ends %s); reading "
                    "the state topic's whole window",
                    path,
                    ctx.topics.dedupe_state,
                    snapshot.offsets,
                    ends,
                )
                snapshot = None
        index = snapshot.index if snapshot is not None else NearDuplicateIndex(ctx.near_config)
        if snapshot is not None:
            state.memory = snapshot.state
            log.info(
                "dedupe snapshot %s: %d articles in the index, %d exact keys",
                path,
                len(index),
                len(snapshot.state),
            )
        # Before the load: the state's entries feed this deduper's index.
        window, deduper = index, Deduper(state, index)
        state.load(after=snapshot.offsets if snapshot is not None else None)
        ctx.stats.window_size(len(index))

    start()

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
        if state.stale:
            # An aborted batch left decisions in memory that the topic lacks: the
            # redone batch must be decided as if they had never been made.
            log.warning(
                "cluster: a batch was aborted; reading the dedupe state again from %s",
                ctx.topics.dedupe_state,
            )
            state.reset()
            try:
                start()
            except KafkaError as exc:  # the broker away: the batch is retried, still stale
                raise RetriableError(f"reading {ctx.topics.dedupe_state} again: {exc!r}") from exc
            state.stale = False
        state.new_batch()
        state.catch_up()
        return inner(records)

    def capture() -> tuple[NearDuplicateIndex, InMemoryDedupeState, dict[int, int]] | None:
        # After a commit: reading the batch's entries back puts the offsets past them.
        if not state.settled():
            return None
        state.catch_up()
        return window, state.memory, state.positions()

    snapshots: SnapshotSink | None = None
    if settings.dedupe_snapshot_seconds > 0:
        snapshots = SnapshotSink(
            path, ctx.topics.dedupe_state, settings.dedupe_snapshot_seconds, capture
        )

    def committed() -> None:
        state.committed()
        if snapshots is not None:
            snapshots.tick()

    sinks: list[Sink] = [snapshots] if snapshots is not None else []
    return StageParts(handler, sinks, on_abort=state.aborted, on_commit=committed)


STAGE = Stage(
    name="cluster",
    source="signed",
    outputs=("deduped", "dedupe_state"),
    build=build,
    about="decide each article's dedupe verdict and story cluster (a single writer)",
    outcomes=("ok", "duplicate"),
)
