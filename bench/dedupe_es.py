"""Band keys in Elasticsearch: the near-duplicate option that moves the index out of the process.

Indexes ``--fill`` articles into a throw-away index on the local stack, one
document per article: its 64 band keys in one ``keyword`` field (the same keys
as :func:`pipeline.neardup.band_keys`), its first-seen time, and its hash values
(stored, not indexed) for the verification. ``--real`` of them are signatures
of real articles (as in ``bench/dedupe_cost.py``), the rest are drawn with
numpy. Then, for ``--measure`` more real articles, it times the query the
cluster stage would run: a ``terms`` query on the band keys filtered by the
window, returning the best-scoring candidates' values, verified in the process
as :class:`~pipeline.neardup.NearDuplicateIndex` verifies them. It prints the
ms per query (median, p95), the index's size on disk per article, and deletes
the index. Run with the stack up::

    .venv/bin/python bench/dedupe_es.py [--fill 200000]
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from elasticsearch import helpers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dedupe_restart import synthetic_values  # noqa: E402
from connectors.elastic import new_elasticsearch  # noqa: E402
from pipeline.neardup import NearDupConfig, band_keys, lsh_bands, signature, words_of  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

T0 = datetime(2025, 11, 1, tzinfo=UTC)


def sentence_bodies(n: int) -> list[str]:
    sys.path.insert(0, str(ROOT / "bench"))
    from dedupe_cost import make_articles, sentence_pool

    return make_articles(sentence_pool(), n, random.Random(6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fill", type=int, default=200_000)
    parser.add_argument("--real", type=int, default=20_000)
    parser.add_argument("--measure", type=int, default=500)
    args = parser.parse_args()

    config = NearDupConfig()
    bands, rows = lsh_bands(config)
    bodies = sentence_bodies(args.real + args.measure)
    real = [signature(words_of(b), config) for b in bodies[: args.real]]
    real_values = np.array([s.hashvalues for s in real if s is not None], dtype=np.uint32)
    timed = [signature(words_of(b), config) for b in bodies[args.real :]]

    es = new_elasticsearch(Settings().elasticsearch, request_timeout=120)
    index = f"bench-bands-{uuid.uuid4().hex[:8]}"
    es.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
        mappings={
            "dynamic": "strict",
            "properties": {
                "bands": {"type": "keyword", "doc_values": False, "norms": False},
                "seen": {"type": "date"},
                "values": {"type": "binary"},
            },
        },
    )
    try:
        rng = np.random.default_rng(6)

        def docs() -> object:
            synthetic = args.fill - len(real_values)
            i = 0
            for start in range(0, synthetic, 20_000):
                for row in synthetic_values(min(20_000, synthetic - start), 128, rng):
                    yield doc(i, row)
                    i += 1
            for row in real_values:
                yield doc(i, row)
                i += 1

        def doc(i: int, row: np.ndarray) -> dict[str, object]:
            keys = band_keys(row, bands, rows)
            return {
                "_index": index,
                "_id": f"{i:032x}",
                "bands": [f"{k:08x}" for k in keys.tolist()],
                "seen": (T0 + timedelta(seconds=i)).isoformat(),
                "values": base64.b64encode(row.astype("<u4").tobytes()).decode("ascii"),
            }

        t0 = time.perf_counter()
        helpers.bulk(es, docs(), chunk_size=2_000, request_timeout=300)  # type: ignore[arg-type]
        es.indices.refresh(index=index)
        es.indices.forcemerge(index=index, max_num_segments=1, request_timeout=600)
        fill_s = time.perf_counter() - t0
        size = es.indices.stats(index=index)["indices"][index]["primaries"]["store"][
            "size_in_bytes"
        ]

        ms, found = [], 0
        horizon = (T0 - timedelta(days=1)).isoformat()
        for sig in timed:
            if sig is None:
                continue
            values = sig.hashvalues.astype(np.uint32)
            keys = [f"{k:08x}" for k in band_keys(values, bands, rows).tolist()]
            t = time.perf_counter()
            hits = es.search(
                index=index,
                query={
                    "bool": {
                        "should": [{"terms": {"bands": keys}}],
                        "filter": [{"range": {"seen": {"gte": horizon}}}],
                        "minimum_should_match": 1,
                    }
                },
                size=50,
                source=["values", "seen"],
            )["hits"]["hits"]
            best = 0.0
            for hit in hits:
                theirs = np.frombuffer(base64.b64decode(hit["_source"]["values"]), dtype="<u4")
                best = max(best, float(np.count_nonzero(theirs == values)) / len(values))
            ms.append((time.perf_counter() - t) * 1000)
            found += best >= config.threshold
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.close()

    p95 = statistics.quantiles(ms, n=100)[94]
    print(
        f"elasticsearch band index of {args.fill:,} articles ({len(real_values):,} real), "
        f"bulk-indexed and merged in {fill_s:.0f} s; "
        f"{size / args.fill:.0f} bytes per article on disk"
    )
    print(
        f"query (terms on {bands} band keys, window filter, top 50, verified): median "
        f"{statistics.median(ms):.2f} ms, p95 {p95:.2f} ms over {len(ms)} real articles; "
        f"{found} found a near-duplicate"
    )


if __name__ == "__main__":
    main()
