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

``--snapshot N [N ...]`` times instead the restart the cluster worker makes
with a snapshot (:mod:`connectors.dedupe_snapshot`): for each N it builds an
index of N synthetic articles spread over the window's last six days and the
exact-key state the worker would hold (its LRU of a million entries: the last
500,000 articles' ``url`` and ``body`` entries), saves them as the worker
does (seconds and size printed), writes ``--tail`` more articles' entries to
the state topic after the snapshot's offsets, then starts a fresh process
that runs the cluster stage's start-up (``rasd/stages/cluster.py``: load the
snapshot, read the tail) and prints its seconds, its RSS and its peak RSS::

    .venv/bin/python bench/dedupe_restart.py --snapshot 1000000 7000000
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import gc
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.dedupe_snapshot import _Capture, save, snapshot_path  # noqa: E402
from connectors.dedupe_state import KafkaDedupeState  # noqa: E402
from connectors.kafka import (  # noqa: E402
    Bootstrap,
    Producer,
    Topics,
    delete_namespace,
    ensure_topics,
    new_producer,
)
from pipeline.dedupe import DedupeEntry, Deduper, InMemoryDedupeState, KeyKind  # noqa: E402
from pipeline.neardup import NearDupConfig, NearDuplicateIndex  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from rasd.stages import cluster  # noqa: E402
from rasd.stages.base import StageContext  # noqa: E402

WINDOW_ARTICLES = 7_000_000


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def synthetic_values(n: int, num_perm: int, rng: np.random.Generator) -> np.ndarray:
    """As ``bench/dedupe_cost.py`` draws them: each value the minimum of 150-600 uniform hashes."""
    m = rng.integers(150, 600, size=(n, 1)).astype(np.float64)
    u = rng.random((n, num_perm))
    return np.floor((1.0 - u ** (1.0 / m)) * 2.0**32).astype(np.uint32)


def write_state(
    bootstrap: Bootstrap, topic: str, articles: int, old_days: float, old_share: int = 10
) -> int:
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
            old = old_share > 0 and i < articles // old_share
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


#: The exact-key LRU's limit (``InMemoryDedupeState``): what a snapshot holds at most.
EXACT_KEYS = 1_000_000
#: Synthetic snapshot articles are numbered from here, apart from the tail's.
SNAPSHOT_IDS = 1 << 40


def synthetic_snapshot(
    articles: int, window: timedelta, rng: np.random.Generator
) -> tuple[NearDuplicateIndex, InMemoryDedupeState]:
    """The index and exact-key state of a worker that has seen ``articles``."""
    index = NearDuplicateIndex(NearDupConfig(window=window))
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    span = 6 * 86_400 * 1_000_000
    chunk = 100_000
    keep_from = max(0, articles - EXACT_KEYS // 2)  # the articles still in the LRU
    items: list[tuple[KeyKind, str, DedupeEntry]] = []
    for start in range(0, articles, chunk):
        n = min(chunk, articles - start)
        values = synthetic_values(n, 128, rng)
        seen = now_us - span + (np.arange(start, start + n, dtype=np.int64) * span) // articles
        ids = [f"{SNAPSHOT_IDS + i:032x}" for i in range(start, start + n)]
        index.add_many(ids, ids, values, seen)
        for j in range(max(0, keep_from - start), n):
            when = datetime.fromtimestamp(int(seen[j]) / 1e6, UTC)
            entry = DedupeEntry(
                ids[j],
                ids[j],
                first_seen=when.isoformat(),
                index_name=f"rasd-articles-{when:%Y.%m}",
                signature=base64.b64encode(values[j].astype("<u4").tobytes()).decode("ascii"),
            )
            items.append(("url", ids[j], entry))
            items.append(("body", f"{SNAPSHOT_IDS + start + j:064x}", DedupeEntry(ids[j], ids[j])))
    return index, InMemoryDedupeState.from_items(items, EXACT_KEYS)


def restore_child(namespace: str, directory: str, window_days: float) -> None:
    """The cluster stage's start-up, in this (fresh) process: its seconds and RSS."""
    settings = Settings(
        namespace=namespace, dedupe_snapshot_dir=Path(directory), dedupe_window_days=window_days
    )
    ctx = StageContext(settings)
    producer = Producer(settings.kafka, client_id="bench-restart")
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    cluster.build(ctx, producer)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rss": rss_bytes(), "rss0": rss0, "peak": peak}))
    producer.close()


def snapshot_restart(settings: Settings, articles: int, tail: int, window: timedelta) -> None:
    topics = Topics(f"bench-restart-{uuid.uuid4().hex[:8]}")
    ensure_topics(settings.kafka, topics, 1, dedupe_window=window)
    directory = Path(tempfile.mkdtemp(prefix="rasd-bench-snapshot-"))
    try:
        rss0 = rss_bytes()
        t0 = time.perf_counter()
        index, state = synthetic_snapshot(articles, window, np.random.default_rng(11))
        build_s = time.perf_counter() - t0
        held = rss_bytes() - rss0
        path = snapshot_path(directory, topics.dedupe_state)
        t1 = time.perf_counter()
        size = save(path, topics.dedupe_state, _Capture(index.to_arrays(), state.items(), {0: 0}))
        save_s = time.perf_counter() - t1
        print(
            f"snapshot of {len(index):,} articles and {len(state):,} exact keys: built in "
            f"{build_s:.0f} s (+{held / 2**20:,.0f} MiB RSS; index arrays "
            f"{index.nbytes / 2**20:,.0f} MiB), saved in {save_s:.1f} s, {size / 2**20:,.0f} MiB"
        )
        del index, state
        gc.collect()
        # The tail: what the worker wrote after the snapshot, all of it inside the window.
        written = write_state(settings.kafka, topics.dedupe_state, tail, old_days=0.0, old_share=0)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--restore",
                topics.namespace,
                str(directory),
                "--window-days",
                str(window.total_seconds() / 86_400),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        got = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"restart with the snapshot ({articles:,} articles) and a tail of {written:,} "
            f"entries: {got['seconds']:.1f} s (target <= 60 s); RSS "
            f"{got['rss'] / 2**20:,.0f} MiB after ({got['rss0'] / 2**20:,.0f} MiB before), "
            f"peak {got['peak'] / 2**20:,.0f} MiB"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        delete_namespace(settings.kafka, topics, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--old-days", type=float, default=10.0)
    parser.add_argument("--window-days", type=float, default=7.0)
    parser.add_argument(
        "--snapshot",
        type=int,
        nargs="+",
        metavar="N",
        help="time the restart from a snapshot of N synthetic articles instead",
    )
    parser.add_argument(
        "--tail",
        type=int,
        default=3_600,
        help="articles written after the snapshot (300 s of snapshot interval at 12 a second)",
    )
    parser.add_argument("--restore", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.restore:
        restore_child(*args.restore, args.window_days)
        return
    if args.snapshot:
        for n in args.snapshot:
            snapshot_restart(Settings(), n, args.tail, timedelta(days=args.window_days))
        return

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
