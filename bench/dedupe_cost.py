"""Cost of near-duplicate dedupe: time per article, and state memory for a million articles.

Builds synthetic articles by drawing sentences from the labelled texts
(``tests/fixtures/dedupe``) and from the hand-gold bodies of
``../shared/corpus/articles`` (read in place, never copied), fills a
:class:`~pipeline.neardup.NearDuplicateIndex` with ``--fill`` of them, then
times, for ``--measure`` more, the two steps the dedupe stage runs per article:
the signature (canonical tokens, 3-shingles, MinHash) and the LSH query with
its verification. Memory is measured with ``tracemalloc`` while the index is
filled, and extrapolated linearly to one million articles; the persisted size
(the changelog entry with its signature) is printed next to it. Run::

    .venv/bin/python bench/dedupe_cost.py [--fill 20000] [--measure 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.dedupe import DedupeEntry  # noqa: E402
from pipeline.neardup import (  # noqa: E402  (the repository root is put on sys.path first)
    NearDupConfig,
    NearDuplicateIndex,
    encode_signature,
    signature,
    words_of,
)
from tests.fixtures.dedupe.labelled import HERE, load_group  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "articles"
T0 = datetime(2025, 11, 1, tzinfo=UTC)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fill", type=int, default=20_000, help="articles in the index first")
    parser.add_argument("--measure", type=int, default=2_000, help="articles timed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config = NearDupConfig()
    rng = random.Random(6)
    pool = sentence_pool()
    bodies = make_articles(pool, args.fill + args.measure, rng)
    words = [len(words_of(b)) for b in bodies[: args.measure]]

    # Fill, measuring what the index holds (signatures, LSH buckets, expiry heap).
    index = NearDuplicateIndex(config)
    sigs = [signature(words_of(b), config) for b in bodies[: args.fill]]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, sig in enumerate(sigs):
        if sig is not None:
            index.add(f"{i:032x}", f"{i:032x}", sig, T0 + timedelta(seconds=i))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_article = held / max(1, len(index))

    sign_ms, query_ms, total_ms = [], [], []
    for j, body in enumerate(bodies[args.fill :]):
        t0 = time.perf_counter()
        sig = signature(words_of(body), config)
        t1 = time.perf_counter()
        if sig is not None:
            index.query(sig)
        t2 = time.perf_counter()
        if sig is not None:
            seen = T0 + timedelta(seconds=args.fill + j)
            index.add(f"m{j:031x}", f"m{j:031x}", sig, seen)
        sign_ms.append((t1 - t0) * 1000)
        query_ms.append((t2 - t1) * 1000)
        total_ms.append((t2 - t0) * 1000)

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

    def q(values: list[float], p: float) -> float:
        return statistics.quantiles(values, n=100)[int(p) - 1]

    report = {
        "config": {
            "shingle": config.shingle,
            "num_perm": config.num_perm,
            "lsh_threshold": config.lsh_threshold,
            "lsh_bands_x_rows": f"{index._lsh.b}x{index._lsh.r}",
        },
        "index_size": len(index),
        "median_words_per_article": statistics.median(words),
        "median_ms_signature": round(statistics.median(sign_ms), 3),
        "median_ms_lsh_query": round(statistics.median(query_ms), 3),
        "median_ms_signature_plus_query": round(statistics.median(total_ms), 3),
        "p95_ms_signature_plus_query": round(q(total_ms, 95), 3),
        "memory_bytes_per_article": round(per_article),
        "memory_gib_for_1M_articles": round(per_article * 1_000_000 / 2**30, 2),
        "changelog_bytes_per_article": persisted,
        "changelog_gib_for_1M_articles": round(persisted * 1_000_000 / 2**30, 2),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"index of {report['index_size']} articles; {config.shingle}-shingles, "
        f"{config.num_perm} permutations, LSH {report['config']['lsh_bands_x_rows']} (bands x rows)"
    )
    print(f"articles timed: {args.measure}, median {report['median_words_per_article']} words")
    print(
        f"median ms per article: signature {report['median_ms_signature']}, "
        f"LSH query + verify {report['median_ms_lsh_query']}, "
        f"together {report['median_ms_signature_plus_query']} "
        f"(p95 {report['p95_ms_signature_plus_query']}); target <= 10 ms"
    )
    print(
        f"state memory: {report['memory_bytes_per_article']} bytes per article in the index "
        f"-> {report['memory_gib_for_1M_articles']} GiB for 1,000,000 articles "
        "(linear extrapolation, tracemalloc)"
    )
    print(
        f"changelog: {persisted} bytes per article entry -> "
        f"{report['changelog_gib_for_1M_articles']} GiB for 1,000,000 (before compression)"
    )


if __name__ == "__main__":
    main()
