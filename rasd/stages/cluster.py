"""The cluster stage: the dedupe verdict of each signed article (``signed`` → ``deduped``).

One partition, one active worker: every decision sees the ones before it
(docs/dedupe.md). The state is a compacted changelog, ``<ns>.dedupe-state``,
read back at start-up and before each batch. At start-up a snapshot on local
disk (:mod:`connectors.dedupe_snapshot`), when there is a usable one, restores
the index and the exact keys, and only the changelog written after it is read;
otherwise what was written within the window. With ``RASD_DEDUPE_STORE=disk``
the window is kept in a SQLite file instead (:mod:`connectors.dedupe_store`),
written after each committed batch: the process's memory does not follow the
window, and a start reads only the topic after the file.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from kafka.errors import KafkaError

from connectors.dedupe_snapshot import SnapshotSink, snapshot_dir, snapshot_path
from connectors.dedupe_snapshot import load as load_snapshot
from connectors.dedupe_state import KafkaDedupeState
from connectors.dedupe_store import DiskDedupeStore, store_path
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
        on_entry=lambda kind, key, entry: window.deduper.remember(kind, key, entry),
        window=ctx.near_config.window,
    )
    disk = ctx.settings.dedupe_store == "disk"
    window: _Window = _DiskWindow(ctx, state) if disk else _MemoryWindow(ctx, state)
    window.start()

    def check(record: Any) -> list[Output]:
        signed = SignedArticle.from_json(record.value)
        deduper = window.deduper
        verdict = deduper.check(signed, deduper.keys_of(signed))
        ctx.stats.window_size(window.size())
        if verdict.is_duplicate:
            ctx.stats.inc("cluster", "duplicate")
            ctx.stats.duplicates.labels(verdict.duplicate_kind).inc()
        return [Output(ctx.topics.deduped, verdict.id, verdict.to_json())]

    # The store on disk failing (I/O, a full disk) is no article's fault: the whole
    # batch is retried, and nothing goes to the dead-letter topic for it.
    inner = per_record(check, batch_errors=(sqlite3.Error,))

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
                window.start()
            except KafkaError as exc:  # the broker away: the batch is retried, still stale
                raise RetriableError(f"reading {ctx.topics.dedupe_state} again: {exc!r}") from exc
            state.stale = False
        state.new_batch()
        state.catch_up()
        try:
            return inner(records)
        except sqlite3.Error as exc:
            raise RetriableError(f"the dedupe store failed: {exc!r}") from exc

    def committed() -> None:
        state.committed()
        window.committed()

    return StageParts(handler, window.sinks, on_abort=state.aborted, on_commit=committed)


class _Window:
    """Where the cluster worker keeps its dedupe window, and how it comes back at a start."""

    deduper: Deduper
    sinks: list[Sink]

    def start(self) -> None:
        """Make the deduper from what is kept and the state topic after it."""
        raise NotImplementedError

    def size(self) -> int:
        raise NotImplementedError

    def committed(self) -> None:
        """A batch is committed (its entries are on the state topic)."""


class _MemoryWindow(_Window):
    """The window in the process (``RASD_DEDUPE_STORE=memory``), with snapshots on disk."""

    def __init__(self, ctx: StageContext, state: KafkaDedupeState) -> None:
        self.ctx, self.state = ctx, state
        settings = ctx.settings
        self.path = snapshot_path(snapshot_dir(settings), ctx.topics.dedupe_state)
        self.index = NearDuplicateIndex(ctx.near_config)
        self.memory = InMemoryDedupeState()
        self.snapshots: SnapshotSink | None = None
        if settings.dedupe_snapshot_seconds > 0:
            self.snapshots = SnapshotSink(
                self.path, ctx.topics.dedupe_state, settings.dedupe_snapshot_seconds, self.capture
            )
        self.sinks = [self.snapshots] if self.snapshots is not None else []

    def start(self) -> None:
        """The index and the exact keys from the snapshot and the topic after it (or
        from the topic's whole window)."""
        ctx, state, path = self.ctx, self.state, self.path
        snapshot = None
        if ctx.settings.dedupe_snapshot_seconds > 0:
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
        memory = state.memory
        assert isinstance(memory, InMemoryDedupeState)
        # Before the load: the state's entries feed this deduper's index.
        self.index, self.memory, self.deduper = index, memory, Deduper(state, index)
        state.load(after=snapshot.offsets if snapshot is not None else None)
        ctx.stats.window_size(len(index))

    def size(self) -> int:
        return len(self.index)

    def capture(self) -> tuple[NearDuplicateIndex, InMemoryDedupeState, dict[int, int]] | None:
        # After a commit: reading the batch's entries back puts the offsets past them.
        if not self.state.settled():
            return None
        self.state.catch_up()
        return self.index, self.memory, self.state.positions()

    def committed(self) -> None:
        if self.snapshots is not None:
            self.snapshots.tick()


class _DiskWindow(_Window):
    """The window in a SQLite file (``RASD_DEDUPE_STORE=disk``, :mod:`connectors.dedupe_store`):
    written after each committed batch, with the state topic's offsets it is complete to."""

    #: Entries read back from the topic that are written out before the read ends.
    LOAD_BUFFER = 50_000

    def __init__(self, ctx: StageContext, state: KafkaDedupeState) -> None:
        self.ctx, self.state = ctx, state
        self.path = store_path(snapshot_dir(ctx.settings), ctx.topics.dedupe_state)
        self.store: DiskDedupeStore | None = None
        self.sinks = [_StoreSink(self)]
        state.after_apply = self._after_apply

    def _open(self) -> DiskDedupeStore:
        try:
            return DiskDedupeStore(self.path, self.ctx.near_config)
        except (ValueError, sqlite3.DatabaseError) as exc:
            log.warning(
                "dedupe store %s is unusable (%s); starting a new one from the state topic's "
                "whole window",
                self.path,
                exc,
            )
            DiskDedupeStore.remove(self.path)
            return DiskDedupeStore(self.path, self.ctx.near_config)

    def start(self) -> None:
        """Open the file (what an aborted batch buffered is forgotten) and read the
        topic after its offsets, or the topic's whole window if it has none."""
        ctx, state = self.ctx, self.state
        topic = ctx.topics.dedupe_state
        if self.store is not None:
            self.store.close()
            self.store = None
        store = self._open()
        offsets = store.offsets()
        if offsets is not None:
            ends = state.end_offsets()
            if any(o > ends.get(p, -1) for p, o in offsets.items()):
                log.warning(
                    "dedupe store %s is ahead of %s (offsets %s, topic ends %s); starting a new "
                    "one from the state topic's whole window",
                    self.path,
                    topic,
                    offsets,
                    ends,
                )
                store.close()
                DiskDedupeStore.remove(self.path)
                store, offsets = self._open(), None
        log.info(
            "dedupe store %s: about %d articles in the window%s",
            self.path,
            store.near.held(),
            "" if offsets is None else f", complete to offsets {offsets}",
        )
        self.store = store
        state.memory = store.keys
        self.deduper = Deduper(state, store.near)
        state.load(after=offsets)
        self.flush(reopened=True)
        ctx.stats.window_size(store.near.held())

    def size(self) -> int:
        return self.store.near.held() if self.store is not None else 0

    def _after_apply(self) -> None:
        # What is read back outside a batch is on the topic: it may be written
        # (without offsets: a crash reads it again, which changes nothing).
        store = self.store
        if store is not None and not self.state.in_batch() and store.pending() >= self.LOAD_BUFFER:
            store.flush()

    def flush(self, *, reopened: bool = False) -> None:
        """Write what is buffered, with the offsets the file is then complete to:
        never a decision the topic may lack (``reopened``: the buffer holds only
        what was read back since the file was opened)."""
        if self.store is None or not (reopened or self.state.settled()):
            return
        try:
            self.store.flush(self.state.positions())
        except (sqlite3.Error, OSError) as exc:
            # Memory and file part ways: the next batch opens the file again and
            # reads the topic after it.
            log.error("dedupe store %s: could not write (%s); reading it again", self.path, exc)
            self.state.stale = True

    def committed(self) -> None:
        self.flush()

    def close(self) -> None:
        if self.store is not None:
            self.flush()
            self.store.close()
            self.store = None


class _StoreSink:
    """Closes the cluster worker's store on a clean stop, after writing what it holds."""

    name = "dedupe-store"

    def __init__(self, window: _DiskWindow) -> None:
        self.window = window

    def write(self, batch: list[tuple[Any, Any]]) -> None:
        """Nothing to buffer: the window is written once the batch is committed."""

    def flush(self) -> BatchResult:
        return BatchResult()

    def close(self) -> None:
        self.window.close()


STAGE = Stage(
    name="cluster",
    source="signed",
    outputs=("deduped", "dedupe_state"),
    build=build,
    about="decide each article's dedupe verdict and story cluster (a single writer)",
    outcomes=("ok", "duplicate"),
    # The single writer: when it dies, the partition waits for the group to notice,
    # and every verdict waits with it (10 s instead of the client's 45; its batches
    # are light, and the client heartbeats from a thread of its own).
    session_timeout_ms=10_000,
)
