"""Restart time of the cluster worker: reading the dedupe state back from Kafka.

Writes ``--articles`` articles' state entries into a fresh namespace's
``<ns>.dedupe-state`` topic on the local stack, as the cluster worker writes
them (per article its ``url`` entry with the MinHash, and its ``body`` hash
entry; the signatures are drawn with numpy, as in ``bench/dedupe_cost.py``),
the first tenth of them stamped ``--old-days`` ago, outside the window. Then it times
what ``rasd worker cluster`` does at start (``rasd/stages/cluster.py``): a
:class:`~connectors.dedupe_state.KafkaDedupeState` with the window, read to
its end, every entry going through the deduper into the near-duplicate index.
It prints the seconds, the entries per second, the process's RSS and the
index's size, extrapolated linearly to the 7-day window at a million articles
a day, and deletes the namespace. Run with the stack up::

    .venv/bin/python bench/dedupe_restart.py [--articles 200000]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.dedupe_state import KafkaDedupeState  # noqa: E402
from connectors.kafka import (  # noqa: E402
    Bootstrap,
    Producer,
    Topics,
    delete_namespace,
    ensure_topics,
    new_producer,
)
from pipeline.dedupe import DedupeEntry, Deduper  # noqa: E402
from pipeline.neardup import NearDupConfig, NearDuplicateIndex  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

WINDOW_ARTICLES = 7_000_000


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def synthetic_values(n: int, num_perm: int, rng: np.random.Generator) -> np.ndarray:
    """As ``bench/dedupe_cost.py`` draws them: each value the minimum of 150-600 uniform hashes."""
    m = rng.integers(150, 600, size=(n, 1)).astype(np.float64)
    u = rng.random((n, num_perm))
    return np.floor((1.0 - u ** (1.0 / m)) * 2.0**32).astype(np.uint32)


def write_state(bootstrap: Bootstrap, topic: str, articles: int, old_days: float) -> int:
    """Produce the entries; return how many were written."""
    producer = new_producer(
        bootstrap, acks=1, linger_ms=50, batch_size=1 << 20, compression_type=None
    )
    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    written = 0
    chunk = 20_000
    for start in range(0, articles, chunk):
        values = synthetic_values(min(chunk, articles - start), 128, rng)
        for i, row in enumerate(values, start=start):
            # In the order the worker wrote them: the first tenth long ago, outside
            # the window, the rest spread over the window's last six days.
            old = i < articles // 10
            when = now - (
                timedelta(days=old_days) if old else timedelta(days=6 * (1 - i / articles))
            )
            key = f"{i:032x}"
            entry = DedupeEntry(
                key,
                key,
                first_seen=when.isoformat(),
                index_name=f"rasd-articles-{when:%Y.%m}",
                signature=base64.b64encode(row.astype("<u4").tobytes()).decode("ascii"),
            )
            ms = int(when.timestamp() * 1000)
            for kind, k, e in (("url", key, entry), ("body", f"{i:064x}", DedupeEntry(key, key))):
                value = json.dumps(dataclasses.asdict(e)).encode()
                producer.send(topic, key=f"{kind}:{k}".encode(), value=value, timestamp_ms=ms)
                written += 1
    producer.flush()
    producer.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--old-days", type=float, default=10.0)
    parser.add_argument("--window-days", type=float, default=7.0)
    args = parser.parse_args()

    settings = Settings()
    topics = Topics(f"bench-restart-{uuid.uuid4().hex[:8]}")
    window = timedelta(days=args.window_days)
    ensure_topics(settings.kafka, topics, 1, dedupe_window=window)
    try:
        t0 = time.perf_counter()
        written = write_state(settings.kafka, topics.dedupe_state, args.articles, args.old_days)
        produce_s = time.perf_counter() - t0
        print(f"wrote {written:,} entries for {args.articles:,} articles in {produce_s:.1f} s")

        rss_before = rss_bytes()
        producer = Producer(settings.kafka, client_id="bench-restart")
        t1 = time.perf_counter()
        # As rasd/stages/cluster.py builds it.
        state = KafkaDedupeState(
            settings.kafka,
            topics.dedupe_state,
            producer,
            on_entry=lambda kind, key, entry: deduper.remember(kind, key, entry),
            window=window,
        )
        index = NearDuplicateIndex(NearDupConfig(window=window))
        deduper = Deduper(state, index)
        restored = state.load()
        load_s = time.perf_counter() - t1
        rss_after = rss_bytes()
        state.close()
        producer.close()
    finally:
        delete_namespace(settings.kafka, topics, [])

    inside = args.articles - args.articles // 10
    rate = restored / load_s
    window_entries = 2 * WINDOW_ARTICLES
    print(
        f"restart: {restored:,} entries read back (of {written:,}; the "
        f"{written - restored:,} older than the window skipped) in {load_s:.1f} s, "
        f"{rate:,.0f} entries/s; index holds {len(index):,} articles ({inside:,} inside)"
    )
    print(
        f"RSS: {rss_before / 2**20:.0f} MiB before, {rss_after / 2**20:.0f} MiB after "
        f"(+{(rss_after - rss_before) / max(1, len(index)):.0f} bytes per article, exact-key "
        "state and index together)"
    )
    print(
        f"7-day window at 1,000,000 a day: {window_entries:,} entries -> "
        f"{window_entries / rate:.0f} s at this rate (linear extrapolation; target <= 60 s)"
    )


if __name__ == "__main__":
    main()
