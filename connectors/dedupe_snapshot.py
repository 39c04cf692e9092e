"""Snapshots of the cluster worker's dedupe state on local disk: a restart reads only the tail.

Reading the whole ``<ns>.dedupe-state`` topic back at a few thousand entries a
second takes most of an hour for a full 7-day window. So the cluster worker
saves, every ``RASD_DEDUPE_SNAPSHOT_SECONDS`` and when it stops cleanly, its
near-duplicate index (the numpy arrays of
:meth:`pipeline.neardup.NearDuplicateIndex.to_arrays`), its exact-key state
and the state topic's offsets up to which both are complete, in one ``.npz``
file (uncompressed zip: every member carries a CRC-32 that the load checks).
At start it loads the snapshot and reads the topic only from those offsets.

The file is written beside its final name, synced, then renamed over it, so a
crash leaves the old snapshot or the new one, never half of one. A snapshot
that is missing, damaged, made with other parameters, for another topic, or
ahead of the topic (the topic was deleted and made again) is not used: the
worker says why in one log line and reads the whole window from the topic,
as it would without snapshots.

A snapshot is taken once a batch is committed (its state entries are on the
topic, and read back up to there: :meth:`SnapshotSink.tick`), never while a
batch's transaction is open or after one was aborted, so it holds nothing the
topic lacks. The arrays of sealed segments are shared with the
running index, never copied; the file is written by a thread, so the single
writer goes on deciding meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from pipeline.dedupe import DedupeEntry, InMemoryDedupeState, KeyKind
from pipeline.neardup import NearDupConfig, NearDuplicateIndex
from pipeline.settings import Settings

from .worker import BatchResult

log = logging.getLogger(__name__)

#: Bumped when the layout of the file changes: an older file is then not used.
FORMAT: Final = 1
_KINDS: Final = ("url", "body", "canonical")
#: Exact-key entries serialised per JSON call (the thread lets the GIL go between).
_CHUNK: Final = 20_000


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a snapshot restores, and the state topic's offsets to read on from."""

    index: NearDuplicateIndex
    state: InMemoryDedupeState
    offsets: dict[int, int]  # partition -> the first offset the snapshot does not hold
    written_at: float  # Unix time


@dataclass(frozen=True, slots=True)
class _Capture:
    """The parts of a snapshot, taken in the worker's thread in a few milliseconds."""

    arrays: dict[str, np.ndarray]
    items: list[tuple[KeyKind, str, DedupeEntry]]
    offsets: dict[int, int]


def snapshot_dir(settings: Settings) -> Path:
    """``RASD_DEDUPE_SNAPSHOT_DIR``, by default ``dedupe`` under the state directory."""
    return settings.dedupe_snapshot_dir or settings.state_dir / "dedupe"


def snapshot_path(directory: Path, topic: str) -> Path:
    return directory / f"{topic}.npz"


def _encode_items(items: list[tuple[KeyKind, str, DedupeEntry]]) -> bytes:
    """The exact-key entries as one JSON array of rows, written in chunks."""
    parts = [b"["]
    for start in range(0, len(items), _CHUNK):
        rows = [
            [
                kind,
                key,
                e.article_id,
                e.cluster_id,
                e.kind,
                e.duplicate_of,
                e.first_seen,
                e.index_name,
                e.signature,
            ]
            for kind, key, e in items[start : start + _CHUNK]
        ]
        if start:
            parts.append(b",")
        parts.append(json.dumps(rows, separators=(",", ":"))[1:-1].encode())
        time.sleep(0)  # let the worker's thread run between chunks
    parts.append(b"]")
    return b"".join(parts)


def _decode_items(data: bytes) -> list[tuple[KeyKind, str, DedupeEntry]]:
    rows = json.loads(data)
    if not isinstance(rows, list):
        raise ValueError("exact-key state is not a list")
    items: list[tuple[KeyKind, str, DedupeEntry]] = []
    for row in rows:
        if not isinstance(row, list) or len(row) != 9 or row[0] not in _KINDS:
            raise ValueError(f"bad exact-key entry {str(row)[:80]}")
        items.append((row[0], row[1], DedupeEntry(*row[2:])))
    return items


def save(path: Path, topic: str, capture: _Capture) -> int:
    """Write a snapshot atomically; return its size in bytes."""
    meta = {
        "format": FORMAT,
        "topic": topic,
        "offsets": {str(p): o for p, o in capture.offsets.items()},
        "written_at": time.time(),
    }
    arrays = dict(capture.arrays)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays["state"] = np.frombuffer(_encode_items(capture.items), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    held = offsets_of(path, topic)
    if (
        held is not None
        and held != capture.offsets
        and all(held.get(p, -1) >= o for p, o in capture.offsets.items())
    ):
        # Another worker of the group (a standby, or the next owner) saved later state.
        log.info("dedupe snapshot: %s is newer than this worker's state; kept", path)
        return 0
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
    return path.stat().st_size


def offsets_of(path: Path, topic: str) -> dict[int, int] | None:
    """The offsets of the snapshot at ``path``, if it is a readable one of ``topic``."""
    try:
        with np.load(path, allow_pickle=False) as files:
            meta = json.loads(files["meta"].tobytes())
        if meta.get("format") != FORMAT or meta.get("topic") != topic:
            return None
        return {int(p): int(o) for p, o in meta["offsets"].items()}
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None


def remove(directory: Path, topic: str) -> bool:
    """Delete the snapshot of ``topic`` (its topic is being deleted); whether there was one."""
    path = snapshot_path(directory, topic)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def load(
    path: Path, topic: str, config: NearDupConfig, max_entries: int = 1_000_000
) -> Snapshot | None:
    """The snapshot at ``path``, or ``None`` (with one log line saying why) if it
    cannot be used."""
    if not path.exists():
        log.info("dedupe snapshot: none at %s; reading the state topic's whole window", path)
        return None
    try:
        with np.load(path, allow_pickle=False) as files:
            meta = json.loads(files["meta"].tobytes())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
            if meta.get("topic") != topic:
                raise ValueError(f"made for topic {meta.get('topic')!r}, not {topic!r}")
            # Each member is read whole, so zipfile checks its CRC-32.
            arrays = {name: files[name] for name in files.files if name not in ("meta", "state")}
            items = _decode_items(files["state"].tobytes())
        index = NearDuplicateIndex.from_arrays(arrays, config)
        offsets = {int(p): int(o) for p, o in meta["offsets"].items()}
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        log.warning(
            "dedupe snapshot %s is unusable (%s: %s); reading the state topic's whole window",
            path,
            type(exc).__name__,
            exc,
        )
        return None
    state = InMemoryDedupeState.from_items(items, max_entries)
    return Snapshot(index, state, offsets, float(meta.get("written_at", 0.0)))


class SnapshotSink:
    """The cluster stage's snapshots: one when due after a committed batch, and one on close.

    ``capture`` returns the index, the exact-key state and the state reader's
    offsets, or None while the topic lacks part of the state (a batch open or
    aborted); it runs in the worker's thread. The file is then written by a
    background thread; a snapshot falling due while one is being written waits
    for the next batch.
    """

    name = "dedupe-snapshot"

    def __init__(
        self,
        path: Path,
        topic: str,
        every: float,
        capture: Callable[
            [], tuple[NearDuplicateIndex, InMemoryDedupeState, Mapping[int, int]] | None
        ],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.topic = topic
        self.every = every
        self._capture = capture
        self._clock = clock
        self._last = clock()
        # What the start read from the topic's tail is not in any file yet.
        self._changed = True
        self._thread: threading.Thread | None = None
        self.written = 0  # snapshots written by this process

    def write(self, batch: list[tuple[Any, Any]]) -> None:
        """Nothing to buffer: the stage's state is the value."""

    def flush(self) -> BatchResult:
        """The batch changed the state; it is saved after the commit (:meth:`tick`)."""
        self._changed = True
        return BatchResult()

    def tick(self) -> None:
        """After a committed batch: start writing a snapshot if one is due."""
        busy = self._thread is not None and self._thread.is_alive()
        if self.every <= 0 or busy or self._clock() - self._last < self.every:
            return
        capture = self._take()
        if capture is None:
            return
        self._last = self._clock()
        self._thread = threading.Thread(
            target=self._write, args=(capture,), name="dedupe-snapshot", daemon=True
        )
        self._thread.start()

    def _take(self) -> _Capture | None:
        captured = self._capture()
        if captured is None:
            log.info("dedupe snapshot: not taken while a batch is uncommitted")
            return None
        index, state, offsets = captured
        self._changed = False
        return _Capture(index.to_arrays(), state.items(), dict(offsets))

    def _write(self, capture: _Capture) -> None:
        began = time.monotonic()
        try:
            size = save(self.path, self.topic, capture)
        except OSError as exc:
            log.warning("dedupe snapshot: could not write %s: %s", self.path, exc)
            return
        if not size:
            return
        self.written += 1
        log.info(
            "dedupe snapshot: %s written (%.0f MiB, %d exact keys) in %.1f s",
            self.path,
            size / 2**20,
            len(capture.items),
            time.monotonic() - began,
        )

    def close(self) -> None:
        """Wait for a snapshot being written, then write the last one (a clean stop)."""
        if self._thread is not None:
            self._thread.join()
        if self.every > 0 and self._changed:
            capture = self._take()
            if capture is not None:
                self._write(capture)
