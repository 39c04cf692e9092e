"""The cluster worker's dedupe window on local disk: exact keys and near-duplicate index in SQLite.

With ``RASD_DEDUPE_STORE=disk`` the cluster worker keeps neither its exact
keys nor its near-duplicate index in the process. Both live in one SQLite file,
``<RASD_DEDUPE_SNAPSHOT_DIR>/<state topic>.sqlite``: the band keys and
signatures of :class:`connectors.neardup_store.DiskNearDuplicateIndex`, and a
table ``keys_<day>`` of exact-key entries per day they were written. A day that
has left the window is dropped whole, so the file follows the window and the
process's memory does not (about 1.7 KB on disk per article in the index, with
its exact keys beside; see docs/dedupe.md).

The file takes the place of the in-memory store's snapshot. What a batch
decides waits in memory until the batch is committed; then one SQLite
transaction writes it with the state topic's offsets up to which the file is
complete (:meth:`DiskDedupeStore.flush`). A crash therefore leaves the file at
the last committed batch or before, never with a decision the topic lacks; the
next start reads only the topic after the file's offsets. A batch whose
transaction is aborted is forgotten by opening the file again. Writing the same
entries twice (a replay after a crash) changes no answer: exact keys are
put-if-absent, and an article already in the index is not added again.

One process per file: a second cluster worker on the same host (a standby) is
refused with a clear error, and needs its own ``RASD_DEDUPE_SNAPSHOT_DIR``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pipeline.dedupe import DedupeEntry, KeyKind
from pipeline.neardup import NearDupConfig

from .neardup_store import DiskNearDuplicateIndex, day_tables

log = logging.getLogger(__name__)

__all__ = ["DiskDedupeKeys", "DiskDedupeStore", "StoreBusyError", "store_path"]

_DAY_S: Final = 86_400
_FIELDS: Final = tuple(f.name for f in dataclasses.fields(DedupeEntry))


class StoreBusyError(RuntimeError):
    """Another process holds the store's file."""


def store_path(directory: Path, topic: str) -> Path:
    return directory / f"{topic}.sqlite"


def _encode(entry: DedupeEntry) -> str:
    return json.dumps([getattr(entry, f) for f in _FIELDS], separators=(",", ":"))


def _decode(value: str) -> DedupeEntry:
    return DedupeEntry(*json.loads(value))


class DiskDedupeKeys:
    """A :class:`pipeline.dedupe.DedupeState` (put-if-absent) in SQLite tables, one a day.

    New entries are buffered until the store's flush. ``window_s``: days that
    ended longer ago than this are dropped (the window, to the day).
    """

    def __init__(self, db: sqlite3.Connection, window_s: float) -> None:
        self._db = db
        self.window_s = window_s
        self._days = day_tables(db, "keys_")
        self._pending: dict[tuple[str, str], tuple[DedupeEntry, int]] = {}

    def _live_days(self) -> list[int]:
        horizon = time.time() - self.window_s
        return [d for d in reversed(self._days) if (d + 1) * _DAY_S > horizon]

    def get(self, kind: KeyKind, key: str) -> DedupeEntry | None:
        held = self._pending.get((kind, key))
        if held is not None:
            return held[0]
        for day in self._live_days():
            row = self._db.execute(
                f"SELECT entry FROM keys_{day} WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
            if row is not None:
                return _decode(row[0])
        return None

    def put(
        self, kind: KeyKind, key: str, entry: DedupeEntry, at: float | None = None
    ) -> DedupeEntry:
        """Store ``entry`` unless the key has one; return the stored one. ``at``:
        when the entry was written (Unix seconds; default now), which decides the
        day it leaves the window with."""
        existing = self.get(kind, key)
        if existing is not None:
            return existing
        when = time.time() if at is None else at
        self._pending[(kind, key)] = (entry, int(when // _DAY_S))
        return entry

    def put_many(self, items: list[tuple[KeyKind, str, DedupeEntry]], at: float) -> None:
        """Buffer entries of keys known to be new (a bulk load: no lookups); a key
        already in the file keeps its entry when they are written."""
        day = int(at // _DAY_S)
        for kind, key, entry in items:
            self._pending.setdefault((kind, key), (entry, day))

    def pending(self) -> int:
        return len(self._pending)

    def write(self, db: sqlite3.Connection) -> None:
        """Write the buffered entries and drop the days past the window (inside
        the store's transaction)."""
        by_day: dict[int, list[tuple[str, str, str]]] = {}
        for (kind, key), (entry, day) in self._pending.items():
            by_day.setdefault(day, []).append((kind, key, _encode(entry)))
        for day, rows in by_day.items():
            if day not in self._days:
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS keys_{day} (kind TEXT, key TEXT, entry TEXT, "
                    "PRIMARY KEY (kind, key)) WITHOUT ROWID"
                )
            db.executemany(f"INSERT OR IGNORE INTO keys_{day} VALUES (?, ?, ?)", rows)
        horizon = time.time() - self.window_s
        for day in sorted({*self._days, *by_day}):
            if (day + 1) * _DAY_S <= horizon:
                db.execute(f"DROP TABLE IF EXISTS keys_{day}")

    def written(self) -> None:
        """The transaction of :meth:`write` is committed."""
        days = {*self._days, *(day for _, day in self._pending.values())}
        horizon = time.time() - self.window_s
        self._days = sorted(d for d in days if (d + 1) * _DAY_S > horizon)
        self._pending.clear()

    def __len__(self) -> int:
        """Entries held (a count of every table: for tests and tools)."""
        on_disk = sum(
            int(self._db.execute(f"SELECT count(*) FROM keys_{day}").fetchone()[0])
            for day in self._live_days()
        )
        return on_disk + len(self._pending)


class DiskDedupeStore:
    """The exact keys (:attr:`keys`) and the near-duplicate index (:attr:`near`) in one file."""

    def __init__(self, path: Path, config: NearDupConfig, *, cache_mb: int = 32) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise StoreBusyError(
                f"{path} is in use by another cluster worker on this host; give each its "
                "own RASD_DEDUPE_SNAPSHOT_DIR"
            ) from None
        try:
            self.near = DiskNearDuplicateIndex(path, config, cache_mb=cache_mb, autoflush=False)
        except BaseException:
            self._unlock()
            raise
        self.keys = DiskDedupeKeys(self.near.connection, config.window.total_seconds())

    def offsets(self) -> dict[int, int] | None:
        """The state topic's offsets up to which the file is complete (None: never flushed)."""
        saved = self.near.meta("offsets")
        if saved is None:
            return None
        return {int(p): int(o) for p, o in json.loads(saved).items()}

    def pending(self) -> int:
        """Entries and articles waiting for the next flush."""
        return self.keys.pending() + self.near.buffered()

    def flush(self, offsets: Mapping[int, int] | None = None) -> None:
        """Write what is buffered, and ``offsets`` when given, in one transaction."""
        meta = {} if offsets is None else {"offsets": json.dumps(dict(offsets))}
        self.near.flush(meta, also=self.keys.write)
        self.keys.written()

    def _unlock(self) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        os.close(self._lock)

    def close(self) -> None:
        """Close the file; what is buffered is not written."""
        self.near.close()
        self._unlock()

    @staticmethod
    def remove(path: Path) -> bool:
        """Delete the store at ``path`` (with its log); whether there was one."""
        existed = path.exists()
        for name in (path.name, path.name + "-wal", path.name + "-shm"):
            path.with_name(name).unlink(missing_ok=True)
        return existed
