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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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


def decode_signature(data: str, config: NearDupConfig) -> MinHash:
    values = np.frombuffer(base64.b64decode(data), dtype="<u4").astype(np.uint64)
    if len(values) != config.num_perm:
        raise ValueError(f"signature has {len(values)} values, expected {config.num_perm}")
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


@dataclass(slots=True)
class _Member:
    cluster_id: str
    # The hash values alone, as uint32: a MinHash object also carries its own
    # copy of the permutations, four times the size of the values.
    values: np.ndarray
    first_seen: datetime


def _values(sig: MinHash) -> np.ndarray:
    values: np.ndarray = sig.hashvalues.astype(np.uint32)
    return values


class NearDuplicateIndex:
    """MinHash LSH over the articles of the last ``window``, with verified matches.

    Not thread-safe, and meant to have one writer: the dedupe design routes all
    decisions through a single partition (see ``docs/dedupe.md``).
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
        """The most similar remembered article at or above the threshold, if any.

        Ties go to the earliest article (then the smallest id), so the answer
        does not depend on the LSH's iteration order.
        """
        best: tuple[float, datetime, str] | None = None
        values = _values(sig)
        for key in self._lsh.query(sig):
            member = self._members.get(key)
            if member is None or key == exclude:
                continue
            # The MinHash estimate of Jaccard similarity: the share of equal values.
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
        """Remember an article (idempotent), then forget what fell out of the window."""
        if article_id not in self._members:
            self._members[article_id] = _Member(cluster_id, _values(sig), first_seen)
            self._lsh.insert(article_id, sig, check_duplication=False)
            heapq.heappush(self._by_time, (first_seen, article_id))
        if self._watermark is None or first_seen > self._watermark:
            self._watermark = first_seen
        self._expire()

    def _expire(self) -> None:
        if self._watermark is None:
            return
        horizon = self._watermark - self.config.window
        while self._by_time and self._by_time[0][0] < horizon:
            _, key = heapq.heappop(self._by_time)
            if self._members.pop(key, None) is not None:
                self._lsh.remove(key)

    def restore(self, entries: Iterable[tuple[str, str, MinHash, datetime]]) -> int:
        """Add many remembered articles (state loaded after a restart); return the count."""
        n = 0
        for article_id, cluster_id, sig, seen in entries:
            self.add(article_id, cluster_id, sig, seen)
            n += 1
        return n
