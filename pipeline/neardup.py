"""Near-duplicate stories: MinHash over word shingles, and an LSH index over a time window.

The same agency text, reprinted by several outlets with another headline, a
dateline, an intro line or a footer, or lightly rewritten, shares most of its
word sequences. :func:`signature` turns a body into the MinHash (datasketch) of
its word 3-shingles, taken from the shared Arabic canonical form
(:func:`pipeline.arabic.tokenize` with ة folded, the same tokens as the exact
body hash), so spelling variants (أ/ا, ى/ي, ة/ه, tashkeel, digit script) do not
count as differences. :class:`NearDuplicateIndex` finds candidates through
MinHash LSH and then *verifies* each by its estimated Jaccard similarity, so the
verdict threshold (:attr:`NearDupConfig.threshold`, tuned on the labelled set by
``bench/dedupe_eval.py``) is exact up to the MinHash estimate, while the LSH
threshold sits lower to keep recall. The index forgets articles first seen more
than :attr:`NearDupConfig.window` before the newest one it has seen (event
time, so a replay decides as the first run did). The module is pure: the
dedupe stage persists signatures through its state port, and
``rasd dedupe compare`` uses :func:`compare`.
"""

from __future__ import annotations

import base64
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from pipeline.arabic import tokenize

if TYPE_CHECKING:
    from datasketch import MinHash

__all__ = [
    "Comparison",
    "NearDupConfig",
    "NearDuplicateIndex",
    "NearMatch",
    "compare",
    "decode_signature",
    "decode_values",
    "encode_signature",
    "jaccard",
    "shingles",
    "signature",
    "words_of",
]

#: The seed and the scheme are part of the signature's meaning: signatures
#: persisted in the dedupe state only compare with ones made the same way.
#: ``affine32`` keeps every value below 2**32, so four bytes store one.
SEED: Final = 1
SCHEME: Final = "affine32"


@dataclass(frozen=True, slots=True)
class NearDupConfig:
    """The near-duplicate parameters (``bench/dedupe_eval.py`` measures them).

    ``threshold`` is the verdict: estimated Jaccard similarity of the two
    shingle sets at or above it means "the same story's text". ``lsh_threshold``
    only chooses the LSH bands; it is lower so that pairs near the verdict
    threshold still become candidates. ``min_shingles``: shorter bodies (a
    teaser, an extraction that failed) are never clustered by similarity.
    ``canonical_threshold``: a page that names another article's URL as its
    canonical must share at least this much text with it to be its copy (it
    tells a copy from a page whose CMS pins one story's URL on every page).
    """

    shingle: int = 3
    num_perm: int = 128
    threshold: float = 0.15
    canonical_threshold: float = 0.05
    lsh_threshold: float = 0.1
    min_shingles: int = 12
    window: timedelta = timedelta(days=7)


Verdict = Literal["near-duplicate", "different", "too-short"]


def words_of(text: str) -> list[str]:
    """The canonical tokens of ``text`` (ة folded), as the exact body hash uses them."""
    return [t.norm for t in tokenize(text, fold_teh_marbuta=True)]


def shingles(words: Sequence[str], k: int) -> set[bytes]:
    """The set of word ``k``-shingles (a text shorter than ``k`` words is one shingle)."""
    if len(words) <= k:
        return {" ".join(words).encode("utf-8")} if words else set()
    return {" ".join(words[i : i + k]).encode("utf-8") for i in range(len(words) - k + 1)}


def _datasketch() -> Any:
    """The datasketch package, imported on first use: its import pulls in scipy (for
    its LSH tuning), a third of a second that a command which never hashes (``rasd
    --help``, ``rasd stack up``) should not pay."""
    import datasketch

    return datasketch


def signature(words: Sequence[str], config: NearDupConfig) -> MinHash | None:
    """The MinHash of ``words``' shingles, or ``None`` when there are too few to judge."""
    grams = shingles(words, config.shingle)
    if len(grams) < config.min_shingles:
        return None
    mh: MinHash = _datasketch().MinHash(num_perm=config.num_perm, seed=SEED, scheme=SCHEME)
    mh.update_batch(list(grams))
    return mh


def encode_signature(mh: MinHash) -> str:
    """Base64 of the hash values as little-endian uint32 (the scheme keeps them below 2**32)."""
    return base64.b64encode(mh.hashvalues.astype("<u4").tobytes()).decode("ascii")


def decode_values(data: str, config: NearDupConfig) -> np.ndarray:
    """The hash values of an encoded signature, as uint32 (what the index stores)."""
    values = np.frombuffer(base64.b64decode(data), dtype="<u4")
    if len(values) != config.num_perm:
        raise ValueError(f"signature has {len(values)} values, expected {config.num_perm}")
    return values.astype(np.uint32)


def decode_signature(data: str, config: NearDupConfig) -> MinHash:
    values = decode_values(data, config).astype(np.uint64)
    mh: MinHash = _datasketch().MinHash(
        num_perm=config.num_perm, seed=SEED, hashvalues=values, scheme=SCHEME
    )
    return mh


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    """The exact Jaccard similarity of two shingle sets."""
    return len(a & b) / len(a | b) if a or b else 0.0


@dataclass(frozen=True, slots=True)
class Comparison:
    """What ``rasd dedupe compare`` reports for two texts."""

    similarity: float  # MinHash estimate, what the pipeline decides on
    jaccard: float  # exact, for the reader
    threshold: float
    verdict: Verdict
    words: tuple[int, int]


def compare(text_a: str, text_b: str, config: NearDupConfig | None = None) -> Comparison:
    """The pipeline's near-duplicate verdict on two texts, with the exact Jaccard next to it."""
    config = config or NearDupConfig()
    wa, wb = words_of(text_a), words_of(text_b)
    sa, sb = signature(wa, config), signature(wb, config)
    exact = jaccard(shingles(wa, config.shingle), shingles(wb, config.shingle))
    if sa is None or sb is None:
        return Comparison(0.0, exact, config.threshold, "too-short", (len(wa), len(wb)))
    est = float(sa.jaccard(sb))
    verdict: Verdict = "near-duplicate" if est >= config.threshold else "different"
    return Comparison(est, exact, config.threshold, verdict, (len(wa), len(wb)))


@dataclass(frozen=True, slots=True)
class NearMatch:
    """The earlier article a new one resembles most, and that article's cluster."""

    article_id: str
    cluster_id: str
    similarity: float


def _values(sig: MinHash | np.ndarray) -> np.ndarray:
    """The hash values of a signature as uint32 (a MinHash, or its values already)."""
    raw = sig if isinstance(sig, np.ndarray) else sig.hashvalues
    values: np.ndarray = np.ascontiguousarray(raw, dtype=np.uint32)
    return values


def lsh_bands(config: NearDupConfig) -> tuple[int, int]:
    """The LSH shape (bands, rows per band) for ``config.lsh_threshold``.

    datasketch's choice (false positives and negatives weighted equally), so
    that both indexes below offer the same candidates: 64 bands of 2 rows for
    the default 128 permutations at 0.1.
    """
    lsh = _datasketch().MinHashLSH(threshold=config.lsh_threshold, num_perm=config.num_perm)
    return int(lsh.b), int(lsh.r)


#: Odd 64-bit multipliers for the band keys (any fixed odd constants would do:
#: they are part of no persisted format, the keys are rebuilt from signatures).
_MIX: Final = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
    dtype=np.uint64,
)


def band_keys(values: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint32 key per band (``values`` is ``[n, num_perm]`` or ``[num_perm]``).

    The top bits of a key are its band's number and the rest a hash of the
    band's values, so the keys of all bands sort into one array, searched with
    one call. Equal band values always give equal keys, so no LSH candidate is
    lost; two different band values may share a key (one chance in 2**26 per
    pair of articles and band, with 64 bands), which only adds a candidate
    that the verification rejects.
    """
    prefix = max(1, (bands - 1).bit_length())
    v = values[..., : bands * rows].reshape(*values.shape[:-1], bands, rows).astype(np.uint64)
    h = np.zeros(v.shape[:-1], dtype=np.uint64)
    for j in range(rows):
        h = (h ^ v[..., j]) * _MIX[j % len(_MIX)]
    h = (h >> np.uint64(32)) ^ (h & np.uint64(0xFFFFFFFF))
    band = np.arange(bands, dtype=np.uint64) << np.uint64(32 - prefix)
    keys: np.ndarray = (band | (h >> np.uint64(prefix))).astype(np.uint32)
    return keys


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _epoch(when: datetime) -> int:
    """Microseconds since 1970 (a naive time is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int((when - _EPOCH) // _MICROSECOND)


def _admit(watermark: int | None, seen: int, window: int) -> tuple[int, bool]:
    """The watermark (newest first-seen time, epoch microseconds) after an article
    first seen at ``seen``, and whether that article is inside the window of it."""
    mark = seen if watermark is None or seen > watermark else watermark
    return mark, seen >= mark - window


def _admit_many(
    watermark: int | None, seen: np.ndarray, window: int
) -> tuple[int | None, np.ndarray]:
    """:func:`_admit` for many articles in order: the last watermark, and the rows
    inside the window, each against the watermark including itself."""
    if len(seen) == 0:
        return watermark, np.empty(0, dtype=np.int64)
    running = np.maximum.accumulate(seen)
    if watermark is not None:
        running = np.maximum(running, watermark)
    return int(running[-1]), np.flatnonzero(seen >= running - window)


def _id_array(ids: list[str]) -> np.ndarray:
    """Article or cluster ids as fixed 32-byte strings (rasd's ids are 32 hex digits),
    else as Python objects."""
    if all(len(i) <= 32 and i.isascii() and "\0" not in i for i in ids):
        return np.array([i.encode("ascii") for i in ids], dtype="S32")
    return np.array(ids, dtype=object)


def _id_at(ids: np.ndarray, row: int) -> str:
    value = ids[row]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class _Segment:
    """Sealed articles: their signatures, and the sorted band keys with their rows.

    ``keys`` holds every band key of every article (``bands * n``), sorted,
    and ``rows[i]`` is the row (into ``values``, ``seen``, ``ids``,
    ``clusters``) of the article that has ``keys[i]``: a lookup is one binary
    search for the 64 keys, and no Python object is kept per article.
    """

    values: np.ndarray  # [n, num_perm] uint32
    seen: np.ndarray  # [n] int64, first-seen time in epoch microseconds
    ids: np.ndarray  # [n] S32 (or object)
    clusters: np.ndarray  # [n] S32 (or object)
    keys: np.ndarray  # [bands * n] uint32, sorted
    rows: np.ndarray  # [bands * n] uint32
    by_time: np.ndarray  # [n] int64, ``seen`` sorted: how many are inside the window
    directory: np.ndarray  # where each run of keys with the same top bits starts
    shift: int  # the bits of a key below those

    @property
    def size(self) -> int:
        return len(self.seen)

    def inside(self, horizon: int) -> int:
        """How many of its articles were first seen at or after ``horizon``."""
        return self.size - int(np.searchsorted(self.by_time, horizon))

    @classmethod
    def build(
        cls,
        values: np.ndarray,
        seen: np.ndarray,
        ids: np.ndarray,
        clusters: np.ndarray,
        keys_by_row: np.ndarray,  # [n, bands]
    ) -> _Segment:
        flat = keys_by_row.ravel()
        # Stable, so the rows of one key stay in order (earliest first).
        order = np.argsort(flat, kind="stable")
        rows = (order // keys_by_row.shape[1]).astype(np.uint32)
        keys = flat[order]
        return cls(values, seen, ids, clusters, keys, rows, np.sort(seen), *_directory(keys))

    def candidates(self, qkeys: np.ndarray) -> np.ndarray:
        """Rows sharing at least one band key with ``qkeys`` (may repeat).

        The directory gives each key's run of about 16 entries; the runs are
        compared at once, so a lookup touches two places of memory per band
        instead of a binary search's twenty-odd.
        """
        top = (qkeys >> self.shift).astype(np.intp)
        lo, hi = self.directory[top].astype(np.intp), self.directory[top + 1].astype(np.intp)
        width = int((hi - lo).max())
        if width == 0:
            return np.empty(0, dtype=np.uint32)
        at = lo[:, None] + np.arange(width)
        inside = at < hi[:, None]
        at = np.minimum(at, len(self.keys) - 1)
        hit = inside & (self.keys[at] == qkeys[:, None])
        rows: np.ndarray = self.rows[at[hit]]
        return rows


def _directory(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """For sorted uint32 ``keys``: the start of each run of equal top bits, and the
    shift to them (about 16 keys a run; 4 bytes per run)."""
    bits = max(1, min(28, int(np.ceil(np.log2(max(2, len(keys)) / 16)))))
    shift = 32 - bits
    bounds = np.arange(1 << bits, dtype=np.uint32) << np.uint32(shift)
    directory = np.empty((1 << bits) + 1, dtype=np.uint32)
    directory[:-1] = np.searchsorted(keys, bounds)
    directory[-1] = len(keys)
    return directory, shift


def _saveable(ids: np.ndarray) -> np.ndarray:
    """Ids as an array that saves without pickle (unicode when they are objects)."""
    return ids.astype(str) if ids.dtype == object else ids


def _loaded_ids(ids: np.ndarray) -> np.ndarray:
    if ids.dtype.kind == "U":
        return ids.astype(object)
    if ids.dtype.kind != "S":
        raise ValueError(f"ids of dtype {ids.dtype}")
    return ids


def _array(arrays: Mapping[str, np.ndarray], name: str, dtype: Any) -> np.ndarray:
    value = np.asarray(arrays[name])
    if value.dtype != dtype:
        raise ValueError(f"{name} is {value.dtype}, expected {np.dtype(dtype)}")
    return value


def _checked_segment(
    parts: dict[str, np.ndarray], shift: int, num_perm: int, bands: int
) -> _Segment:
    """A segment from saved arrays, after the checks that make a lookup safe
    (every row and directory entry in range, the keys in order)."""
    values = _array(parts, "values", np.uint32)
    n = len(values)
    seen, by_time = _array(parts, "seen", np.int64), _array(parts, "by_time", np.int64)
    keys, rows = _array(parts, "keys", np.uint32), _array(parts, "rows", np.uint32)
    directory = _array(parts, "directory", np.uint32)
    ids, clusters = _loaded_ids(parts["ids"]), _loaded_ids(parts["clusters"])
    if values.shape != (n, num_perm) or n == 0:
        raise ValueError(f"segment values of shape {values.shape}")
    if {len(seen), len(by_time), len(ids), len(clusters)} != {n}:
        raise ValueError("segment arrays of different lengths")
    if len(keys) != bands * n or len(rows) != bands * n or int(rows.max()) >= n:
        raise ValueError("segment keys or rows out of range")
    if not 0 < shift < 32 or len(directory) != (1 << (32 - shift)) + 1:
        raise ValueError(f"segment directory of {len(directory)} for shift {shift}")
    if np.any(keys[1:] < keys[:-1]) or np.any(by_time[1:] < by_time[:-1]):
        raise ValueError("segment keys or times out of order")
    if int(directory[-1]) != len(keys) or np.any(directory[1:] < directory[:-1]):
        raise ValueError("segment directory out of range")
    return _Segment(values, seen, ids, clusters, keys, rows, by_time, directory, shift)


def _merge(old: _Segment, new: _Segment, horizon: int) -> _Segment:
    """One segment holding the articles of both still inside the window.

    The two sorted key arrays are merged by a stable sort of their
    concatenation, which finds the two runs and merges them in linear time.
    """
    parts = []
    offset = 0
    for seg in (old, new):
        keep = seg.seen >= horizon
        renumber = np.cumsum(keep, dtype=np.int64) - 1 + offset
        entries = keep[seg.rows]
        parts.append((seg, keep, seg.keys[entries], renumber[seg.rows[entries]]))
        offset += int(np.count_nonzero(keep))
    merged = np.concatenate([p[2] for p in parts])
    order = np.argsort(merged, kind="stable")
    keys = merged[order]
    rows = np.concatenate([p[3] for p in parts]).astype(np.uint32)[order]
    seen = np.concatenate([p[0].seen[p[1]] for p in parts])
    return _Segment(
        np.concatenate([p[0].values[p[1]] for p in parts]),
        seen,
        np.concatenate([p[0].ids[p[1]] for p in parts]),
        np.concatenate([p[0].clusters[p[1]] for p in parts]),
        keys,
        rows,
        np.sort(seen, kind="stable"),
        *_directory(keys),
    )


class NearDuplicateIndex:
    """MinHash LSH over the articles of the last ``window``, with verified matches.

    The same candidates and verdicts as datasketch's ``MinHashLSH`` with the
    same bands (:class:`DatasketchIndex`), kept in numpy arrays: about 1.1 KB
    per article (the 128 hash values, one 4-byte key and one 4-byte row per
    band, the two ids) instead of about 12 KB in Python dicts of sets.

    New articles go to a small unsorted buffer, scanned with one vectorised
    comparison; a full buffer is sealed into a sorted segment, and segments of
    equal size are merged (log-structured: each article is re-sorted about
    log2(window / buffer) times, by a linear-time merge of two sorted runs). A
    merge leaves out the articles that fell out of the window, and a segment
    whose articles have all expired is dropped, so memory follows the window.
    Until then an expired article is still stored but never returned.

    Not thread-safe, and meant to have one writer: the dedupe design routes all
    decisions through a single partition (see ``docs/dedupe.md``).
    """

    #: Articles in the unsorted buffer before it is sealed into a segment.
    BUFFER = 2048
    #: Segments stop merging at this size (a larger merge would stall one article).
    MAX_SEGMENT = 1 << 20

    def __init__(self, config: NearDupConfig | None = None) -> None:
        self.config = config or NearDupConfig()
        self.bands, self.rows = lsh_bands(self.config)
        self._window = int(self.config.window // _MICROSECOND)
        self._segments: list[_Segment] = []
        n, p = self.BUFFER, self.config.num_perm
        self._buf_values = np.empty((n, p), dtype=np.uint32)
        self._buf_keys = np.empty((n, self.bands), dtype=np.uint32)
        self._buf_keyed = 0  # buffered articles whose band keys are computed
        self._buf_seen = np.empty(n, dtype=np.int64)
        self._buf_ids: list[str] = []
        self._buf_clusters: list[str] = []
        self._watermark: int | None = None

    def __len__(self) -> int:
        """Articles held inside the window (by the newest first-seen time added)."""
        horizon = self._horizon()
        if horizon is None:
            return 0
        held = int(np.count_nonzero(self._buf_seen[: len(self._buf_ids)] >= horizon))
        return held + sum(s.inside(horizon) for s in self._segments)

    def __contains__(self, article_id: object) -> bool:
        """Whether ``article_id`` is held inside the window (a scan: for tests and tools)."""
        if not isinstance(article_id, str):
            return False
        horizon = self._horizon()
        for i, key in enumerate(self._buf_ids):
            if key == article_id and horizon is not None and self._buf_seen[i] >= horizon:
                return True
        for seg in self._segments:
            if seg.ids.dtype == object:
                hits = np.flatnonzero(seg.ids == article_id)
            else:
                hits = np.flatnonzero(seg.ids == article_id.encode("utf-8"))
            if horizon is not None and np.any(seg.seen[hits] >= horizon):
                return True
        return False

    @property
    def nbytes(self) -> int:
        """The bytes held by the index's arrays (what ``bench/dedupe_cost.py`` reports)."""
        total = sum(a.nbytes for a in (self._buf_values, self._buf_keys, self._buf_seen))
        for seg in self._segments:
            total += seg.values.nbytes + seg.seen.nbytes + seg.keys.nbytes + seg.rows.nbytes
            total += seg.by_time.nbytes + seg.directory.nbytes
            total += seg.ids.nbytes + seg.clusters.nbytes
        return total

    def _horizon(self) -> int | None:
        return None if self._watermark is None else self._watermark - self._window

    def query(self, sig: MinHash | np.ndarray, exclude: str | None = None) -> NearMatch | None:
        """The most similar remembered article at or above the threshold, if any.

        Ties go to the earliest article (then the smallest id), so the answer
        does not depend on the index's layout.
        """
        horizon = self._horizon()
        if horizon is None:
            return None
        values = _values(sig)
        qkeys = band_keys(values, self.bands, self.rows)
        need = self.config.threshold * len(values)
        best: tuple[float, int, str, str] | None = None  # (-sim, seen, id, cluster)

        def consider(
            rows: np.ndarray, vals: np.ndarray, seen: np.ndarray, ids: Any, clusters: Any
        ) -> None:
            nonlocal best
            if len(rows) == 0:
                return
            rows = np.unique(rows)
            rows = rows[seen[rows] >= horizon]
            if len(rows) == 0:
                return
            # The MinHash estimate of Jaccard similarity: the share of equal values.
            equal = np.count_nonzero(vals[rows] == values, axis=1)
            ok = equal >= need
            rows, equal = rows[ok], equal[ok]
            # Only the most similar, earliest rows can rank first: look at those
            # alone, and at the next ones only if they are all ``exclude``.
            while len(rows):
                top = equal == equal.max()
                first = rows[top][seen[rows[top]] == seen[rows[top]].min()]
                named = sorted(
                    (ids[r] if isinstance(ids, list) else _id_at(ids, r), r) for r in first.tolist()
                )
                for key, row in named:
                    if key == exclude:
                        continue
                    rank = (-int(equal[rows == row][0]) / len(values), int(seen[row]), key)
                    if best is None or rank < best[:3]:
                        cluster = (
                            clusters[row] if isinstance(clusters, list) else _id_at(clusters, row)
                        )
                        best = (*rank, cluster)
                    return
                keep = ~np.isin(rows, first)
                rows, equal = rows[keep], equal[keep]

        for seg in self._segments:
            consider(seg.candidates(qkeys), seg.values, seg.seen, seg.ids, seg.clusters)
        n = len(self._buf_ids)
        if n:
            self._key_buffer()
            hits = np.flatnonzero((self._buf_keys[:n] == qkeys).any(axis=1))
            consider(hits, self._buf_values, self._buf_seen, self._buf_ids, self._buf_clusters)
        if best is None:
            return None
        return NearMatch(best[2], best[3], -best[0])

    def add(
        self, article_id: str, cluster_id: str, sig: MinHash | np.ndarray, first_seen: datetime
    ) -> None:
        """Remember an article, then forget what fell out of the window.

        The caller adds an article once (the dedupe state is put-if-absent); an
        article added twice is held twice, which changes no answer.
        """
        values = _values(sig)
        seen = _epoch(first_seen)
        self._watermark, inside = _admit(self._watermark, seen, self._window)
        if not inside:
            return  # already outside the window: it would never be returned
        n = len(self._buf_ids)
        self._buf_values[n] = values
        self._buf_seen[n] = seen
        self._buf_ids.append(article_id)
        self._buf_clusters.append(cluster_id)
        if n + 1 == self.BUFFER:
            self._seal()

    def add_many(
        self,
        article_ids: Sequence[str],
        cluster_ids: Sequence[str],
        values: np.ndarray,
        first_seen: np.ndarray,
    ) -> None:
        """:meth:`add` for many articles at once (a state load, a benchmark's fill).

        ``values`` is ``[n, num_perm]`` (uint32 hash values), ``first_seen``
        ``[n]`` epoch microseconds (int64); the result is that of :meth:`add`
        called in order, with the band keys computed in one pass per buffer.
        """
        start, total = 0, len(article_ids)
        while start < total:
            n = len(self._buf_ids)
            take = min(self.BUFFER - n, total - start)
            seen = np.asarray(first_seen[start : start + take], dtype=np.int64)
            self._watermark, rows = _admit_many(self._watermark, seen, self._window)
            k = len(rows)
            chunk = np.asarray(values[start : start + take], dtype=np.uint32)[rows]
            self._buf_values[n : n + k] = chunk
            self._buf_seen[n : n + k] = seen[rows]
            ids, clusters = article_ids[start : start + take], cluster_ids[start : start + take]
            self._buf_ids.extend(ids[i] for i in rows.tolist())
            self._buf_clusters.extend(clusters[i] for i in rows.tolist())
            start += take
            if len(self._buf_ids) == self.BUFFER:
                self._seal()

    def _key_buffer(self) -> None:
        """The band keys of the buffered articles that have none yet, in one pass
        (an add only copies the values: a state load adds many between queries)."""
        n = len(self._buf_ids)
        if self._buf_keyed < n:
            done = self._buf_keyed
            self._buf_keys[done:n] = band_keys(self._buf_values[done:n], self.bands, self.rows)
            self._buf_keyed = n

    def _seal(self) -> None:
        horizon = self._horizon()
        assert horizon is not None
        self._key_buffer()
        segment = _Segment.build(
            self._buf_values.copy(),
            self._buf_seen.copy(),
            _id_array(self._buf_ids),
            _id_array(self._buf_clusters),
            self._buf_keys,
        )
        self._buf_ids, self._buf_clusters = [], []
        self._buf_keyed = 0
        segments = [s for s in self._segments if s.inside(horizon)]
        segments.append(segment)
        while (
            len(segments) >= 2
            and segments[-2].size <= segments[-1].size * 2
            and segments[-2].size + segments[-1].size <= self.MAX_SEGMENT
        ):
            newest = segments.pop()
            segments[-1] = _merge(segments[-1], newest, horizon)
        self._segments = segments

    #: The arrays of a sealed segment, as :meth:`to_arrays` names them.
    _SEGMENT_FIELDS: Final = (
        "values",
        "seen",
        "ids",
        "clusters",
        "keys",
        "rows",
        "by_time",
        "directory",
    )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole index as named numpy arrays (what a snapshot saves).

        Sealed segments are never changed in place, so their arrays are shared,
        not copied: the result stays valid while the index goes on. The buffer
        is copied. Ids kept as Python objects become unicode arrays, so that
        the arrays load without pickle. :meth:`from_arrays` reverses it.
        """
        n = len(self._buf_ids)
        out: dict[str, np.ndarray] = {
            "shape": np.array(
                [self.config.num_perm, self.bands, self.rows, self._window, len(self._segments)],
                dtype=np.int64,
            ),
            "watermark": np.array(
                [] if self._watermark is None else [self._watermark], dtype=np.int64
            ),
            "buffer.values": self._buf_values[:n].copy(),
            "buffer.seen": self._buf_seen[:n].copy(),
            "buffer.ids": _saveable(_id_array(self._buf_ids)),
            "buffer.clusters": _saveable(_id_array(self._buf_clusters)),
        }
        for i, seg in enumerate(self._segments):
            for field in self._SEGMENT_FIELDS:
                value = getattr(seg, field)
                out[f"segment{i}.{field}"] = (
                    _saveable(value) if field in ("ids", "clusters") else value
                )
            out[f"segment{i}.shift"] = np.array([seg.shift], dtype=np.int64)
        return out

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], config: NearDupConfig | None = None
    ) -> NearDuplicateIndex:
        """The index that :meth:`to_arrays` saved, checked against ``config``.

        Raises :class:`ValueError` when the arrays were made with other
        parameters (permutations, bands, window) or do not fit together, so that
        a damaged or foreign snapshot is never half used.
        """
        index = cls(config)
        shape = _array(arrays, "shape", np.int64)
        want = [index.config.num_perm, index.bands, index.rows, index._window]
        if len(shape) != 5 or shape[:4].tolist() != want:
            raise ValueError(f"index parameters {shape[:4].tolist()}, expected {want}")
        watermark = _array(arrays, "watermark", np.int64)
        index._watermark = int(watermark[0]) if len(watermark) else None
        for i in range(int(shape[4])):
            parts = {f: arrays[f"segment{i}.{f}"] for f in cls._SEGMENT_FIELDS}
            shift = int(_array(arrays, f"segment{i}.shift", np.int64)[0])
            index._segments.append(
                _checked_segment(parts, shift, index.config.num_perm, index.bands)
            )
        values = _array(arrays, "buffer.values", np.uint32)
        seen = _array(arrays, "buffer.seen", np.int64)
        saved_ids, saved_clusters = (
            _loaded_ids(arrays["buffer.ids"]),
            _loaded_ids(arrays["buffer.clusters"]),
        )
        ids = [_id_at(saved_ids, r) for r in range(len(saved_ids))]
        clusters = [_id_at(saved_clusters, r) for r in range(len(saved_clusters))]
        n = len(seen)
        if values.shape != (n, index.config.num_perm) or len(ids) != n or len(clusters) != n:
            raise ValueError("buffer arrays of different lengths")
        if n >= cls.BUFFER:
            raise ValueError(f"buffer of {n} articles, at most {cls.BUFFER - 1}")
        if n and index._watermark is None:
            raise ValueError("buffered articles without a watermark")
        index._buf_values[:n] = values
        index._buf_seen[:n] = seen
        index._buf_ids, index._buf_clusters = ids, clusters
        return index

    def restore(self, entries: Iterable[tuple[str, str, MinHash | np.ndarray, datetime]]) -> int:
        """Add many remembered articles (state loaded after a restart); return the count."""
        n = 0
        for article_id, cluster_id, sig, seen in entries:
            self.add(article_id, cluster_id, sig, seen)
            n += 1
        return n


@dataclass(slots=True)
class _Member:
    cluster_id: str
    # The hash values alone, as uint32: a MinHash object also carries its own
    # copy of the permutations, four times the size of the values.
    values: np.ndarray
    first_seen: datetime


class DatasketchIndex:
    """The same index on datasketch's in-memory ``MinHashLSH`` (Python dicts of sets).

    About 12 KB per article: kept as the reference that
    :class:`NearDuplicateIndex` must agree with (``tests/unit/test_dedupe.py``)
    and as the baseline of ``bench/dedupe_cost.py --index datasketch``.
    """

    def __init__(self, config: NearDupConfig | None = None) -> None:
        self.config = config or NearDupConfig()
        self._lsh = _datasketch().MinHashLSH(
            threshold=self.config.lsh_threshold, num_perm=self.config.num_perm
        )
        self._members: dict[str, _Member] = {}
        self._by_time: list[tuple[datetime, str]] = []  # heap, for expiry
        self._watermark: datetime | None = None

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._members

    def query(self, sig: MinHash, exclude: str | None = None) -> NearMatch | None:
        best: tuple[float, datetime, str] | None = None
        values = _values(sig)
        for key in self._lsh.query(sig):
            member = self._members.get(key)
            if member is None or key == exclude:
                continue
            sim = float(np.count_nonzero(values == member.values)) / len(values)
            if sim < self.config.threshold:
                continue
            rank = (-sim, member.first_seen, key)
            if best is None or rank < (-best[0], best[1], best[2]):
                best = (sim, member.first_seen, key)
        if best is None:
            return None
        sim, _, key = best
        return NearMatch(key, self._members[key].cluster_id, sim)

    def add(self, article_id: str, cluster_id: str, sig: MinHash, first_seen: datetime) -> None:
        if article_id not in self._members:
            self._members[article_id] = _Member(cluster_id, _values(sig), first_seen)
            self._lsh.insert(article_id, sig, check_duplication=False)
            heapq.heappush(self._by_time, (first_seen, article_id))
        if self._watermark is None or first_seen > self._watermark:
            self._watermark = first_seen
        horizon = self._watermark - self.config.window
        while self._by_time and self._by_time[0][0] < horizon:
            _, key = heapq.heappop(self._by_time)
            if self._members.pop(key, None) is not None:
                self._lsh.remove(key)
