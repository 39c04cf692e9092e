"""Cost of near-duplicate dedupe: time per article, and the index's memory, at a full window.

Builds synthetic articles by drawing sentences from the labelled texts
(``tests/fixtures/dedupe``) and from the hand-gold bodies of
``../shared/corpus/articles`` (read in place, never copied), then fills a
near-duplicate index with ``--fill`` articles:

* ``--real`` of them (20,000 by default) are signatures of those articles,
  made as the sign stage makes them, so that the timed queries meet real
  candidates to verify;
* the rest are **synthetic signatures drawn with numpy**: each of the 128
  values is the minimum of as many uniform 32-bit hashes as the article has
  shingles (150-600), which is how a MinHash value is distributed. Hashing a
  million texts would take a quarter of an hour; the index only ever sees
  the values.

It then times, for ``--measure`` more real articles, the two steps the cluster
stage runs per article against that full index: the signature (canonical
tokens, 3-shingles, MinHash) and the LSH query with its verification, each
article being added after its query. Memory is what ``tracemalloc`` sees the
fill allocate, per article held (numpy reports its arrays to it), extrapolated
linearly to one million and to the 7-day window at a million a day; the
process's RSS is printed next to it, and the persisted size (the changelog
entry with its signature).

The fill's first-seen times are spread over 7 days whatever its size, so a
fill of 7,000,000 has the density of a million a day.

``--index compact`` (the default) is rasd's
:class:`~pipeline.neardup.NearDuplicateIndex`; ``--index disk`` is the same
index in a SQLite file (:class:`~connectors.neardup_store.DiskNearDuplicateIndex`,
in ``--dir``, by default a temporary directory): filled with a large page
cache, then timed in a new process that only opens the file, as a restarted
cluster worker would, whose RSS growth is its memory (tracemalloc does not see
SQLite's own allocations); the file's size is printed too; ``--index datasketch`` is the
former index, datasketch's in-memory ``MinHashLSH``
(:class:`~pipeline.neardup.DatasketchIndex`), for the side-by-side figures: it
holds about 12 KB per article, so give it a smaller fill. Run::

    .venv/bin/python bench/dedupe_cost.py [--fill 1000000] [--index compact|disk|datasketch]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import gc
import json
import multiprocessing
import random
import re
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.dedupe_store import DiskDedupeStore  # noqa: E402
from connectors.neardup_store import DiskNearDuplicateIndex  # noqa: E402
from pipeline.dedupe import DedupeEntry, KeyKind  # noqa: E402
from pipeline.neardup import (  # noqa: E402  (the repository root is put on sys.path first)
    DatasketchIndex,
    NearDupConfig,
    NearDuplicateIndex,
    encode_signature,
    lsh_bands,
    signature,
    words_of,
)
from tests.fixtures.dedupe.labelled import HERE, load_group  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "articles"
T0 = datetime(2025, 11, 1, tzinfo=UTC)
#: The target window: 7 days at a million articles a day.
WINDOW_ARTICLES = 7_000_000


def sentence_pool() -> list[str]:
    texts: list[str] = []
    for path in sorted(HERE.glob("*.yaml")):
        texts.extend(load_group(path)[0].values())
    if CORPUS.is_dir():
        texts.extend(p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.gold.txt")))
    pool = [s.strip() for t in texts for s in re.split(r"[.\n،؟!]+", t) if len(s.split()) >= 5]
    return sorted(set(pool))


def make_articles(pool: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` bodies of 8-30 sentences each: about 150-600 words, like a news article."""
    return [". ".join(rng.sample(pool, rng.randint(8, min(30, len(pool))))) for _ in range(n)]


def synthetic_values(n: int, num_perm: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` MinHash signatures of random articles of 150-600 shingles, as uint32.

    The minimum of ``m`` uniform values in [0, 1) is ``1 - U ** (1 / m)``.
    """
    m = rng.integers(150, 600, size=(n, 1)).astype(np.float64)
    u = rng.random((n, num_perm))
    return np.floor((1.0 - u ** (1.0 / m)) * 2.0**32).astype(np.uint32)


def seed_store(
    store: DiskDedupeStore,
    articles: int,
    now: datetime,
    *,
    seed: int = 6,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Fill a cluster worker's store with ``articles`` synthetic ones spread evenly
    over its window up to ``now``: each in the near-duplicate index, with its exact
    keys (its own id, with the signature, and a body hash), written a day at a time
    (each day's band keys in key order, so a table is appended to, not split)."""
    config = store.near.config
    rng = np.random.default_rng(seed)
    window = config.window
    step = window / max(articles, 1)
    first = now - window + step
    per_day = max(1, round(articles * timedelta(days=1) / window))
    for start in range(0, articles, per_day):
        n = min(per_day, articles - start)
        values = synthetic_values(n, config.num_perm, rng)
        ids = [f"{i:032x}" for i in range(start, start + n)]
        begin = first + step * start
        micros0 = (begin - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        micros = micros0 + (np.arange(n) * (step / timedelta(microseconds=1))).astype(np.int64)
        store.near.add_many(ids, ids, values, micros)
        encoded = [base64.b64encode(v.astype("<u4").tobytes()).decode() for v in values]
        bodies = rng.integers(0, 2**63, n)
        items: list[tuple[KeyKind, str, DedupeEntry]] = []
        for j in range(n):
            seen = begin + step * j
            entry = DedupeEntry(
                ids[j],
                ids[j],
                first_seen=seen.isoformat(),
                index_name=f"rasd-articles-{seen:%Y.%m}",
                signature=encoded[j],
            )
            items.append(("url", ids[j], entry))
            items.append(("body", f"{bodies[j]:016x}", DedupeEntry(ids[j], ids[j])))
        store.keys.put_many(items, at=(begin + step * (n // 2)).timestamp())
        store.flush()
        if progress is not None:
            progress(f"seeded {start + n:,} of {articles:,} articles")


def rss_bytes() -> int:
    """The process's resident set size now (Linux), else its peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


Index = NearDuplicateIndex | DiskNearDuplicateIndex | DatasketchIndex


def fill_index(
    index: Index,
    real: list[np.ndarray],
    synthetic: int,
    config: NearDupConfig,
    rng: np.random.Generator,
    step: timedelta,
) -> None:
    """``synthetic`` drawn signatures, then the ``real`` ones, ``step`` apart."""
    chunk = 50_000
    for start in range(0, synthetic, chunk):
        n = min(chunk, synthetic - start)
        values = synthetic_values(n, config.num_perm, rng)
        ids = [f"{i:032x}" for i in range(start, start + n)]
        seen = [T0 + step * i for i in range(start, start + n)]
        add_all(index, ids, values, seen)
        if start // chunk % 20 == 19:
            print(f"  filled {start + n:,} of {synthetic + len(real):,}", file=sys.stderr)
    ids = [f"r{i:031x}" for i in range(len(real))]
    seen = [T0 + step * (synthetic + i) for i in range(len(real))]
    add_all(index, ids, np.array(real, dtype=np.uint32).reshape(-1, config.num_perm), seen)


def add_all(
    index: Index,
    ids: list[str],
    values: np.ndarray,
    seen: list[datetime],
) -> None:
    if isinstance(index, NearDuplicateIndex | DiskNearDuplicateIndex):
        micros = np.array(
            [(s - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) for s in seen]
        )
        index.add_many(ids, ids, values, micros)
        return
    from datasketch import MinHash

    for key, row, when in zip(ids, values, seen, strict=True):
        mh = MinHash(seed=1, hashvalues=row.astype(np.uint64), scheme="affine32")
        index.add(key, key, mh, when)


Timing = tuple[list[float], list[float], list[float], int]


def time_articles(
    index: Index, timed: list[str], config: NearDupConfig, fill: int, step: timedelta
) -> Timing:
    """Sign and query each timed article, adding it after its query."""
    sign_ms, query_ms, total_ms, matches = [], [], [], 0
    for j, body in enumerate(timed):
        t0 = time.perf_counter()
        sig = signature(words_of(body), config)
        t1 = time.perf_counter()
        match = index.query(sig) if sig is not None else None
        t2 = time.perf_counter()
        matches += match is not None
        if sig is not None:
            index.add(f"m{j:031x}", f"m{j:031x}", sig, T0 + step * (fill + j))
        sign_ms.append((t1 - t0) * 1000)
        query_ms.append((t2 - t1) * 1000)
        total_ms.append((t2 - t0) * 1000)
    return sign_ms, query_ms, total_ms, matches


def timed_in_new_process(
    path: Path, config: NearDupConfig, timed: list[str], fill: int, step: timedelta
) -> tuple[Timing, int, int]:
    """:func:`time_articles` on the disk index at ``path``, opened here; with this
    process's RSS before the file was opened and after the timed articles."""
    signature(words_of(timed[0]), config)  # datasketch and numpy imported before the count
    before = rss_bytes()
    with DiskNearDuplicateIndex(path, config) as index:
        timing = time_articles(index, timed, config, fill, step)
        index.flush()
        return timing, before, rss_bytes()


def quantile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1]


#: SQLite's page cache during a fill of ``--index disk`` (16 MB after it).
FILL_CACHE_MB = 2048


def new_index(kind: str, config: NearDupConfig, where: Path) -> Index:
    if kind == "compact":
        return NearDuplicateIndex(config)
    if kind == "disk":
        path = where / f"near-{time.time_ns()}.db"
        return DiskNearDuplicateIndex(path, config)
    return DatasketchIndex(config)


def measure(
    kind: str,
    fill: int,
    real: list[np.ndarray],
    timed: list[str],
    config: NearDupConfig,
    where: Path,
) -> dict[str, Any]:
    """Fill an index of ``kind`` to ``fill`` articles, then time the ``timed`` bodies."""
    real = real[:fill]
    step = timedelta(days=7) / max(fill, 1)
    index = new_index(kind, config, where)
    gc.collect()
    rss_before = rss_bytes()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t_fill = time.perf_counter()
    if isinstance(index, DiskNearDuplicateIndex):
        index.cache(FILL_CACHE_MB)
    fill_index(index, real, fill - len(real), config, np.random.default_rng(6), step)
    if isinstance(index, DiskNearDuplicateIndex):
        index.cache(16)  # what the cluster worker would run with
    fill_s = time.perf_counter() - t_fill
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    rss_after = rss_bytes()
    size = len(index)
    per_article = held / max(1, size)

    disk = 0
    if isinstance(index, DiskNearDuplicateIndex):
        # Timed in a fresh process that only opens the file, as a restarted cluster
        # worker would: its RSS is the index's real cost, not the fill's cache.
        index.flush()
        index.close()
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            timing, rss_open, rss_end = pool.apply(
                timed_in_new_process, (index.path, config, timed, fill, step)
            )
        held = rss_end - rss_open
        per_article = held / max(1, size)
        rss_after = rss_open
        disk = index.file_bytes()
        index.path.unlink()
        for suffix in ("-wal", "-shm"):
            index.path.with_name(index.path.name + suffix).unlink(missing_ok=True)
    else:
        timing = time_articles(index, timed, config, fill, step)
        rss_end = rss_bytes()
    sign_ms, query_ms, total_ms, matches = timing
    del index
    gc.collect()
    return {
        "index": kind,
        "fill": {"articles": size, "real": len(real), "synthetic": fill - len(real)},
        "fill_seconds": round(fill_s, 1),
        "articles_timed": len(query_ms),
        "matches_found": matches,
        "median_ms_signature": round(statistics.median(sign_ms), 3),
        "median_ms_query": round(statistics.median(query_ms), 3),
        "p95_ms_query": round(quantile(query_ms, 95), 3),
        "median_ms_signature_plus_query": round(statistics.median(total_ms), 3),
        "p95_ms_signature_plus_query": round(quantile(total_ms, 95), 3),
        "memory_bytes_per_article": round(per_article),
        "memory_gib_for_1M_articles": round(per_article * 1_000_000 / 2**30, 3),
        "memory_gib_for_7M_window": round(per_article * WINDOW_ARTICLES / 2**30, 2),
        "rss_mib_before_fill": round(rss_before / 2**20),
        "rss_mib_after_fill": round(rss_after / 2**20),
        "rss_mib_end": round(rss_end / 2**20),
        "disk_bytes_per_article": round(disk / max(1, size)),
    }


def print_report(r: dict[str, Any], config: NearDupConfig) -> None:
    f = r["fill"]
    print(
        f"{r['index']} index of {f['articles']:,} articles ({f['real']:,} real, "
        f"{f['synthetic']:,} synthetic signatures), filled in {r['fill_seconds']} s"
    )
    print(
        f"  articles timed: {r['articles_timed']} real, {r['matches_found']} found a near-duplicate"
    )
    print(
        f"  ms per article: query + verify median {r['median_ms_query']} "
        f"(p95 {r['p95_ms_query']}); with the signature median "
        f"{r['median_ms_signature_plus_query']} (p95 {r['p95_ms_signature_plus_query']}); "
        "target p95 <= 10 ms"
    )
    if r["index"] == "disk":
        print(
            f"  memory: the process grew by {r['memory_bytes_per_article']} bytes per article "
            "held while it timed them; SQLite's page cache (16 MB) bounds that growth, so it "
            "does not scale with the fill"
        )
    else:
        print(
            f"  memory: {r['memory_bytes_per_article']} bytes per article in the index "
            f"(tracemalloc) -> {r['memory_gib_for_1M_articles']} GiB per 1,000,000, "
            f"{r['memory_gib_for_7M_window']} GiB for a 7,000,000 window (linear extrapolation)"
        )
    if r["index"] == "disk":
        print(
            f"  RSS of a new process timing the articles: {r['rss_mib_after_fill']} MiB before "
            f"it opened the file, {r['rss_mib_end']} MiB after the timed articles "
            f"(the memory per article above is that growth)"
        )
    else:
        print(
            f"  RSS: {r['rss_mib_before_fill']} MiB before the fill, "
            f"{r['rss_mib_after_fill']} MiB after, {r['rss_mib_end']} MiB after the timed articles"
        )
    if r["disk_bytes_per_article"]:
        print(
            f"  on disk: {r['disk_bytes_per_article']} bytes per article -> "
            f"{r['disk_bytes_per_article'] * WINDOW_ARTICLES / 2**30:.1f} GiB for a 7,000,000 "
            "window (the operating system's page cache, not the process, holds what is read)"
        )


def verdicts_in_new_process(path: Path, bodies: list[str]) -> tuple[list[float], int, int, int]:
    """Each body's dedupe verdict (:meth:`pipeline.dedupe.Deduper.check`, the cluster
    worker's call) against the store at ``path``, opened here with the worker's page
    cache: milliseconds per verdict, duplicates found, RSS before the open and after."""
    from pipeline.dedupe import Deduper, sign
    from pipeline.models import Article
    from pipeline.urls import article_id, canonicalize_url

    config = NearDupConfig()
    now = datetime.now(UTC)
    signed = []
    run = time.time_ns()
    for j, body in enumerate(bodies):
        # New URLs on every run: a second run against the same file decides new articles.
        url = canonicalize_url(f"https://example.org/timed/{run}/{j}")
        page = Article(
            id=article_id(url),
            url=url,
            canonical_url=url,
            feed_url="https://example.org/feed",
            outlet="example",
            feed_name="example",
            country="sy",
            language="ar",
            title=f"t{j}",
            first_seen=now,
            index_name=f"rasd-articles-{now:%Y.%m}",
            body=body,
            fetched_at=now,
            http_status=200,
        )
        signed.append(sign(page, config))
    before = rss_bytes()
    store = DiskDedupeStore(path, config)
    deduper = Deduper(store.keys, store.near)
    ms, duplicates = [], 0
    for j, s in enumerate(signed):
        t0 = time.perf_counter()
        verdict = deduper.check(s, deduper.keys_of(s))
        ms.append((time.perf_counter() - t0) * 1000)
        duplicates += verdict.is_duplicate
        if j % 100 == 99:
            store.flush()  # as the worker writes after each committed batch
    store.close()  # unflushed: the seeded file stays as it was but for these flushes
    return ms, duplicates, before, rss_bytes()


def time_verdicts(path: Path, bodies: list[str]) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        ms, duplicates, before, after = pool.apply(verdicts_in_new_process, (path, bodies))
    print(
        f"verdicts of {len(ms)} real articles against it, in a new process (32 MB SQLite cache): "
        f"median {statistics.median(ms):.2f} ms, p95 {quantile(ms, 95):.2f} ms, "
        f"max {max(ms):.1f} ms; {duplicates} duplicates among them; RSS {before / 2**20:.0f} MiB "
        f"before the open, {after / 2**20:.0f} MiB after"
    )


def seed_and_time(path: Path, articles: int, bodies: list[str]) -> None:
    """``--seed-store``: a full window on disk, and the verdicts' cost against it
    (with ``--fill 0``, against the store already at ``path``)."""
    if not articles:
        time_verdicts(path, bodies)
        return
    DiskDedupeStore.remove(path)
    store = DiskDedupeStore(path, NearDupConfig(), cache_mb=FILL_CACHE_MB)
    began = time.perf_counter()
    seed_store(
        store, articles, datetime.now(UTC), progress=lambda m: print(f"  {m}", file=sys.stderr)
    )
    seconds = time.perf_counter() - began
    held = store.near.held()
    store.close()
    size = sum(
        p.stat().st_size for p in path.parent.glob(path.name + "*") if not p.name.endswith(".lock")
    )
    print(
        f"seeded {path}: {held:,} articles in the window in {seconds:.0f} s, "
        f"{size / 2**30:.1f} GiB ({size / max(held, 1):.0f} bytes per article, exact keys included)"
    )
    time_verdicts(path, bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fill", type=int, default=1_000_000, help="articles in the index first")
    parser.add_argument(
        "--real", type=int, default=20_000, help="of them, real articles' signatures"
    )
    parser.add_argument("--measure", type=int, default=2_000, help="real articles timed")
    parser.add_argument("--index", choices=("compact", "disk", "datasketch"), default="compact")
    parser.add_argument("--dir", type=Path, help="where --index disk puts its file")
    parser.add_argument(
        "--baseline-fill",
        type=int,
        default=0,
        help="also run, in the same process, both indexes at this (smaller) fill, for the ratios",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--seed-store",
        type=Path,
        metavar="FILE",
        help="instead: seed a cluster worker's store (RASD_DEDUPE_STORE=disk) at FILE with --fill "
        "synthetic articles over a 7-day window, then time --measure real articles' verdicts "
        "against it in a new process (bench/soak.py --window-file starts from such a file)",
    )
    args = parser.parse_args()
    if args.seed_store is not None:
        # Against a store already filled (--fill 0), bodies it has not seen yet.
        rng = random.Random(6 if args.fill else time.time_ns())
        seed_and_time(args.seed_store, args.fill, make_articles(sentence_pool(), args.measure, rng))
        return

    config = NearDupConfig(window=timedelta(days=3650))  # nothing expires during the bench
    rng = random.Random(6)
    pool = sentence_pool()
    n_real = min(args.real, max(args.fill, args.baseline_fill))
    bodies = make_articles(pool, n_real + args.measure, rng)
    timed = bodies[n_real:]
    real = []
    for body in bodies[:n_real]:
        sig = signature(words_of(body), config)
        if sig is not None:
            real.append(sig.hashvalues.astype(np.uint32))

    runs = []
    with tempfile.TemporaryDirectory(dir=args.dir) as where:
        if args.baseline_fill:
            for kind in ("datasketch", "compact"):
                runs.append(measure(kind, args.baseline_fill, real, timed, config, Path(where)))
        runs.append(measure(args.index, args.fill, real, timed, config, Path(where)))

    sample_sig = signature(words_of(bodies[0]), config)
    assert sample_sig is not None
    entry = DedupeEntry(
        "0" * 32,
        "0" * 32,
        first_seen=T0.isoformat(),
        index_name="rasd-articles-2025.11",
        signature=encode_signature(sample_sig),
    )
    persisted = len(json.dumps(dataclasses.asdict(entry))) + len("url:") + 32
    bands, rows = lsh_bands(config)
    report: dict[str, Any] = {
        "config": {
            "shingle": config.shingle,
            "num_perm": config.num_perm,
            "lsh_threshold": config.lsh_threshold,
            "lsh_bands_x_rows": f"{bands}x{rows}",
        },
        "median_words_per_timed_article": statistics.median(len(words_of(b)) for b in timed),
        "runs": runs,
        "changelog_bytes_per_article": persisted,
        "changelog_gib_for_7M_window": round(persisted * WINDOW_ARTICLES / 2**30, 2),
    }
    if args.baseline_fill:
        old, new = runs[0], runs[1]
        report["ratios_at_baseline_fill"] = {
            "memory": round(old["memory_bytes_per_article"] / new["memory_bytes_per_article"], 1),
            "median_query": round(old["median_ms_query"] / new["median_ms_query"], 1),
            "p95_query": round(old["p95_ms_query"] / new["p95_ms_query"], 1),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{config.shingle}-shingles, {config.num_perm} permutations, LSH {bands}x{rows} "
        f"(bands x rows); timed articles: median {report['median_words_per_timed_article']} words"
    )
    for run in runs:
        print_report(run, config)
    if args.baseline_fill:
        ratios = report["ratios_at_baseline_fill"]
        print(
            f"datasketch / compact at {args.baseline_fill:,} articles, same process: memory "
            f"x{ratios['memory']}, median query x{ratios['median_query']}, "
            f"p95 query x{ratios['p95_query']}"
        )
    print(
        f"changelog: {persisted} bytes per article entry -> "
        f"{report['changelog_gib_for_7M_window']} GiB for a 7,000,000 window (before compression)"
    )


if __name__ == "__main__":
    main()
