"""Polling at scale: one poller instance, 2,000 feeds from a local server.

A server in a separate process (so its CPU is not counted) serves ``--feeds``
RSS feeds of 20 Arabic items each on 127.0.0.1. Every feed sends an ETag and
answers 304 to a matching ``If-None-Match``; between cycles a ``--changed``
share of the feeds gets a new item (a new ETag, so a 200). The first cycle is
cold (every feed 200, every item new); the measured cycles are warm, as in
production. Items go to an in-memory sink, so this measures fetch + parse +
state, not Kafka. Per-host politeness is off here: every feed shares one host,
which a real catalogue never does. Prints, per cycle: wall seconds, feeds/s,
CPU seconds per 1,000 polls (user+system of this process over wall time, i.e.
cores used), the 304 share, and the peak RSS; then the median of the warm
cycles. Run::

    .venv/bin/python bench/poll_scale.py [--feeds 2000] [--changed 0.3] [--cycles 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.http import GuardedClient  # noqa: E402  (the repository root is put on sys.path first)
from connectors.metrics import Stats  # noqa: E402
from connectors.poller import FeedPoller  # noqa: E402
from pipeline.feeds import Feed  # noqa: E402
from pipeline.schedule import ScheduleBounds  # noqa: E402


def feed_body(i: int, version: int) -> bytes:
    items = "".join(
        f"<item><title>خبر رقم {n} من المصدر {i}</title>"
        f"<link>https://outlet{i}.example/news/{n}</link>"
        f"<description>تفاصيل الخبر رقم {n} كما وردت في نشرة المصدر {i}</description>"
        f"<pubDate>Sun, 01 Mar 2026 10:{n % 60:02d}:00 GMT</pubDate></item>"
        for n in range(version, version + 20)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>المصدر {i}</title><link>https://outlet{i}.example/</link>{items}"
        "</channel></rss>"
    ).encode()


def serve(port_out: Any, versions: Any, stop: Any) -> None:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            i = int(self.path.rsplit("/", 1)[-1])
            version = versions[i]
            etag = f'"{i}-{version}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = feed_body(i, version)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    port_out.value = server.server_address[1]
    server.timeout = 0.2
    while not stop.is_set():
        server.handle_request()


class NullSink:
    transactional = False

    def send(self, topic: str, key: str, value: Any) -> None:
        pass

    def flush(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--changed", type=float, default=0.3)
    parser.add_argument("--cycles", type=int, default=3, help="Warm cycles after the cold one.")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if not 1 <= args.feeds <= 20000 or not 1 <= args.cycles <= 10:
        parser.error("bounded load: --feeds 1..20000, --cycles 1..10")

    versions = multiprocessing.Array("i", args.feeds, lock=False)
    port = multiprocessing.Value("i", 0)
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, versions, stop), daemon=True)
    server.start()
    while port.value == 0:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{port.value}/feed"
    feeds = [
        Feed(url=f"{base}/{i}", name=f"f{i}", outlet="o", country="sy") for i in range(args.feeds)
    ]
    http = GuardedClient("rasd-bench/0.1", allow_private_networks=True)
    # No forced unconditional fetch inside the run, so the 304 share is the server's.
    poller = FeedPoller(http, NullSink(), "bench.items", "bench", Stats(),  # type: ignore[arg-type]
                        bounds=ScheduleBounds(unconditional_every=1000))  # fmt: skip
    warm: list[dict[str, float]] = []
    try:
        for cycle in range(args.cycles + 1):
            if cycle:
                step = max(1, round(1 / args.changed)) if args.changed > 0 else 0
                for i in range(0, args.feeds, step or args.feeds + 1):
                    versions[i] += 1
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            results = poller.poll_all(feeds, concurrency=args.concurrency)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            outcomes = Counter(r.outcome for r in results)
            row = {
                "wall": wall,
                "feeds_per_s": len(feeds) / wall,
                "cpu_per_1000": cpu / len(feeds) * 1000,
                "cores": cpu / wall,
                "share_304": outcomes["not_modified"] / len(feeds),
                "failed": sum(not r.ok for r in results),
            }
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            label = "cold" if cycle == 0 else f"warm {cycle}"
            print(
                f"{label:>7}: {row['wall']:6.2f} s  {row['feeds_per_s']:7.1f} feeds/s  "
                f"{row['cpu_per_1000']:5.2f} CPU s/1000 polls  {row['cores']:4.2f} cores  "
                f"304 share {row['share_304']:5.1%}  failed {row['failed']:.0f}  "
                f"peak RSS {rss_mb:.0f} MiB  {dict(outcomes)}"
            )
            if cycle:
                warm.append(row)
    finally:
        http.close()
        stop.set()
        server.join(5)
    med = {k: statistics.median(r[k] for r in warm) for k in warm[0]}
    print(
        f"median of {len(warm)} warm cycles over {args.feeds} feeds: {med['wall']:.2f} s per "
        f"cycle (goal <= 60 s), {med['feeds_per_s']:.1f} feeds/s, {med['cpu_per_1000']:.2f} CPU s "
        f"per 1,000 polls, {med['cores']:.2f} cores (goal <= 1), 304 share {med['share_304']:.1%}, "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
