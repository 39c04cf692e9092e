"""The near-duplicate index on local disk: band keys and signatures in SQLite, one table pair a day.

:class:`pipeline.neardup.NearDuplicateIndex` holds the whole window in the
process, about 1.1 KB per article: 7.2 GiB for a 7-day window at a million
articles a day. :class:`DiskNearDuplicateIndex` gives the same answers from a
SQLite file (the standard library's ``sqlite3``) whose pages the operating
system caches, not the process: SQLite reads with ``pread`` (memory mapping is
turned off) and keeps a bounded page cache of its own (``cache_mb``), so the
process's memory does not follow the window.

Layout: for every day of first-seen time, a table ``bands_<day>`` of
``(key, row)`` pairs, the 64 band keys of :func:`pipeline.neardup.band_keys`
per article in a clustered B-tree (``WITHOUT ROWID``), and a table
``articles_<day>`` of ``(row, id, cluster, seen, values)`` with the 128 hash
values as one 512-byte blob for the verification. A lookup is one statement
per day in the window: the articles whose rows share a band key with the query,
verified in numpy as the in-process index verifies them. A day that fell out
of the window is dropped whole (``DROP TABLE``), so the file follows the
window, and nothing is deleted row by row.

New articles wait in a small in-memory buffer until :meth:`flush` writes them
in one SQLite transaction (with a caller's ``meta`` values, such as the
state-topic offsets they come from), so a crash leaves the file at the last
flush and never half-way through one.

Not thread-safe: one thread at a time (any thread), like the in-process index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from pipeline.neardup import (
    NearDupConfig,
    NearMatch,
    _admit,
    _admit_many,
    _epoch,
    _values,
    band_keys,
    lsh_bands,
)

if TYPE_CHECKING:
    from datasketch import MinHash

__all__ = ["DiskNearDuplicateIndex"]

_DAY: Final = 86_400_000_000  # microseconds
_MICROSECOND: Final = timedelta(microseconds=1)
#: The layout's version: a file of another layout is refused, never half read.
LAYOUT: Final = "1"


def day_tables(db: sqlite3.Connection, prefix: str) -> list[int]:
    """The days of the tables named ``<prefix><day>``, in order."""
    names = db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE ?", (f"{prefix}%",)
    )
    return sorted(int(name.removeprefix(prefix)) for (name,) in names)


def _rows(pairs: np.ndarray, chunk: int = 100_000) -> Iterator[list[int]]:
    """The rows of ``pairs`` as lists, converted a chunk at a time (a bulk load of
    millions of rows is not one list of lists)."""
    for start in range(0, len(pairs), chunk):
        yield from pairs[start : start + chunk].tolist()


class DiskNearDuplicateIndex:
    """The answers of :class:`~pipeline.neardup.NearDuplicateIndex`, from a SQLite file."""

    #: Articles buffered in memory before :meth:`add` flushes them itself.
    BUFFER = 2048

    def __init__(
        self,
        path: Path,
        config: NearDupConfig | None = None,
        *,
        cache_mb: int = 16,
        autoflush: bool = True,
    ) -> None:
        """``autoflush``: :meth:`add` flushes by itself once :attr:`BUFFER` articles
        wait (``False``: only :meth:`flush` writes, for a caller whose buffer holds
        decisions that may still be taken back)."""
        self.config = config or NearDupConfig()
        self.autoflush = autoflush
        self.bands, self.rows = lsh_bands(self.config)
        self.path = path
        self._window = int(self.config.window // _MICROSECOND)
        # Made where the stage is built, used by its worker's thread: one at a time.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            f"cache_size=-{cache_mb * 1024}",
            "mmap_size=0",
            "temp_store=FILE",
        ):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        shape = f"{LAYOUT}:{self.config.num_perm}:{self.bands}:{self.rows}:{self._window}"
        saved = self.meta("layout")
        if saved is None:
            self._db.execute("INSERT INTO meta VALUES ('layout', ?)", (shape,))
        elif saved != shape:
            self._db.close()
            raise ValueError(f"{path}: an index of layout {saved}, expected {shape}")
        watermark = self.meta("watermark")
        self._watermark: int | None = None if watermark is None else int(watermark)
        self._next_row = int(self.meta("next_row") or 0)
        self._days = day_tables(self._db, "articles_")
        self._counts = {day: int(self.meta(f"count_{day}") or 0) for day in self._days}
        self._pending: list[tuple[str, str, np.ndarray, int]] = []
        self._statements: dict[tuple[int, ...], str] = {}

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection, for a caller that keeps more in the same file
        (:meth:`flush`'s ``also``)."""
        return self._db

    def cache(self, mb: int) -> None:
        """Set SQLite's page cache to ``mb`` (a bulk fill runs far faster with a large
        one), and give back to the system what a smaller one no longer holds."""
        self._db.execute(f"PRAGMA cache_size=-{mb * 1024}")
        self._db.execute("PRAGMA shrink_memory")

    # --- the meta values: what the file holds up to ----------------------------------

    def meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DiskNearDuplicateIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------

    def _horizon(self) -> int | None:
        return None if self._watermark is None else self._watermark - self._window

    def __len__(self) -> int:
        """Articles held inside the window, on disk and buffered (a count per day
        table: for tests and tools, not for every article)."""
        horizon = self._horizon()
        if horizon is None:
            return 0
        held = sum(1 for *_, seen in self._pending if seen >= horizon)
        for day in self._days:
            if (day + 1) * _DAY > horizon:
                (n,) = self._db.execute(
                    f"SELECT count(*) FROM articles_{day} WHERE seen >= ?", (horizon,)
                ).fetchone()
                held += int(n)
        return held

    def _lookup(self, days: tuple[int, ...]) -> str:
        """The query's statement over these days' tables (made once per set of days)."""
        sql = self._statements.get(days)
        if sql is None:
            keys = ",".join(f"?{i + 2}" for i in range(self.bands))
            sql = " UNION ALL ".join(
                f"SELECT id, cluster, seen, sig FROM articles_{day} WHERE seen >= ?1 AND row IN "
                f"(SELECT row FROM bands_{day} WHERE key IN ({keys}))"
                for day in days
            )
            self._statements = {days: sql}  # the days change once a day
        return sql

    def held(self) -> int:
        """About how many articles the window holds: those of the days it reaches,
        and the buffered ones (cheap; for a gauge)."""
        horizon = self._horizon()
        if horizon is None:
            return len(self._pending)
        on_disk = sum(n for day, n in self._counts.items() if (day + 1) * _DAY > horizon)
        return on_disk + len(self._pending)

    def query(self, sig: MinHash | np.ndarray, exclude: str | None = None) -> NearMatch | None:
        """The most similar article at or above the threshold, if any: the most
        equal hash values, then the earliest, then the smallest id (as the
        in-process index ranks them)."""
        horizon = self._horizon()
        if horizon is None:
            return None
        values = _values(sig)
        qkeys = band_keys(values, self.bands, self.rows).tolist()
        days = tuple(day for day in self._days if (day + 1) * _DAY > horizon)
        found: list[tuple[str, str, int, bytes]] = []
        if days:
            # One statement for every day, its parameters bound once (?1 the horizon).
            found.extend(self._db.execute(self._lookup(days), (horizon, *qkeys)))
        if self._pending:
            pending_keys = band_keys(
                np.stack([v for _, _, v, _ in self._pending]), self.bands, self.rows
            )
            hits = np.flatnonzero((pending_keys == np.array(qkeys, dtype=np.uint32)).any(axis=1))
            for i in hits.tolist():
                article, cluster, vals, seen = self._pending[i]
                if seen >= horizon:
                    found.append((article, cluster, seen, vals.tobytes()))
        found = [f for f in found if f[0] != exclude]
        if not found:
            return None
        stored = np.frombuffer(b"".join(f[3] for f in found), dtype=np.uint32)
        equal = np.count_nonzero(stored.reshape(len(found), -1) == values, axis=1)
        need = self.config.threshold * len(values)
        ranked = [
            (-int(e), seen, article, cluster)
            for (article, cluster, seen, _), e in zip(found, equal.tolist(), strict=True)
            if e >= need
        ]
        if not ranked:
            return None
        best = min(ranked)
        return NearMatch(best[2], best[3], -best[0] / len(values))

    # --- writing ----------------------------------------------------------------------

    def add(
        self, article_id: str, cluster_id: str, sig: MinHash | np.ndarray, first_seen: datetime
    ) -> None:
        """Remember an article (buffered; written by the next :meth:`flush`)."""
        seen = _epoch(first_seen)
        self._watermark, inside = _admit(self._watermark, seen, self._window)
        if not inside:
            return
        self._pending.append((article_id, cluster_id, _values(sig).copy(), seen))
        if self.autoflush and len(self._pending) >= self.BUFFER:
            self.flush()

    def add_many(
        self,
        article_ids: Sequence[str],
        cluster_ids: Sequence[str],
        values: np.ndarray,
        first_seen: np.ndarray,
        *,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """Write many articles at once, in order (a fill, a state load), then flush."""
        self.flush()
        seen = np.asarray(first_seen, dtype=np.int64)
        self._watermark, keep = _admit_many(self._watermark, seen, self._window)
        vals = np.ascontiguousarray(np.asarray(values, dtype=np.uint32)[keep])
        self._write(
            [article_ids[i] for i in keep.tolist()],
            [cluster_ids[i] for i in keep.tolist()],
            vals,
            seen[keep],
            meta or {},
        )

    def buffered(self) -> int:
        """Articles waiting for the next :meth:`flush`."""
        return len(self._pending)

    def flush(
        self,
        meta: Mapping[str, str] | None = None,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Write the buffered articles and ``meta`` in one SQLite transaction, with
        what ``also`` writes on the same connection. On an error nothing is
        written and the buffer is kept."""
        pending = self._pending
        if not pending and not meta and also is None:
            return
        self._write(
            [p[0] for p in pending],
            [p[1] for p in pending],
            np.stack([p[2] for p in pending])
            if pending
            else np.empty((0, self.config.num_perm), np.uint32),
            np.array([p[3] for p in pending], dtype=np.int64),
            meta or {},
            also,
        )
        self._pending = self._pending[len(pending) :]

    def _write(
        self,
        ids: list[str],
        clusters: list[str],
        values: np.ndarray,
        seen: np.ndarray,
        meta: Mapping[str, str],
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        n = len(ids)
        rows = np.arange(self._next_row, self._next_row + n, dtype=np.int64)
        keys = band_keys(values, self.bands, self.rows) if n else np.empty((0, self.bands))
        days = seen // _DAY
        db = self._db
        counts = dict(self._counts)
        db.execute("BEGIN IMMEDIATE")
        try:
            for day in np.unique(days).tolist():
                self._day_tables(int(day))
                at = np.flatnonzero(days == day)
                db.executemany(
                    f"INSERT INTO articles_{day} VALUES (?, ?, ?, ?, ?)",
                    (
                        (int(rows[i]), ids[i], clusters[i], int(seen[i]), values[i].tobytes())
                        for i in at.tolist()
                    ),
                )
                pairs = np.empty((len(at) * self.bands, 2), dtype=np.int64)
                pairs[:, 0] = keys[at].reshape(-1)
                pairs[:, 1] = np.repeat(rows[at], self.bands)
                # In key order: appends to the clustered B-tree's pages, not scattered writes.
                pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
                db.executemany(f"INSERT OR IGNORE INTO bands_{day} VALUES (?, ?)", _rows(pairs))
                counts[day] = counts.get(day, 0) + len(at)
            changes = {
                "next_row": str(self._next_row + n),
                **{f"count_{day}": str(counts[day]) for day in np.unique(days).tolist()},
                **meta,
            }
            if self._watermark is not None:
                changes["watermark"] = str(self._watermark)
            db.executemany(
                "INSERT INTO meta VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                changes.items(),
            )
            if also is not None:
                also(db)
            self._expire(db, counts)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._days = day_tables(db, "articles_")
            raise
        self._next_row += n
        self._counts = counts

    def _day_tables(self, day: int) -> None:
        if day in self._days:
            return
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS articles_{day} (row INTEGER PRIMARY KEY, id TEXT, "
            "cluster TEXT, seen INTEGER, sig BLOB)"
        )
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS bands_{day} (key INTEGER, row INTEGER, "
            "PRIMARY KEY (key, row)) WITHOUT ROWID"
        )
        self._days = sorted({*self._days, day})

    def _expire(self, db: sqlite3.Connection, counts: dict[int, int]) -> None:
        """Drop every day that lies wholly before the window."""
        horizon = self._horizon()
        if horizon is None:
            return
        for day in [d for d in self._days if (d + 1) * _DAY <= horizon]:
            db.execute(f"DROP TABLE articles_{day}")
            db.execute(f"DROP TABLE bands_{day}")
            db.execute("DELETE FROM meta WHERE name = ?", (f"count_{day}",))
            self._days.remove(day)
            counts.pop(day, None)

    def file_bytes(self) -> int:
        """The file's size on disk, with its write-ahead log."""
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
