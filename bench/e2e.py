"""End-to-end benchmark: the bundled demo site through the whole pipeline on the local stack.

Serves ``--copies`` copies of the bundled site (each copy's pages get a marker
line so that they are distinct articles), runs ``rasd run --once`` over them in
a fresh namespace, and prints:

* articles per second (indexed articles / time from the first feed served to
  the last article searchable);
* end-to-end latency per article, from its feed being served to the article
  being searchable on the alias (median and p95);
* the peak RSS of the rasd process.

Every copy is served from one host (127.0.0.1), so with rasd's per-host
politeness (2 requests in flight, 0.5 s between starts) the figure would be
the politeness spacing, about 2 pages per second, not the pipeline. The
benchmark therefore lifts the per-host limits unless ``--polite`` is given.

``--baseline DIR`` compares with another checkout of rasd (a release, or the
main branch exported with ``git archive``): runs alternate between that code
and this one in the same command, so the machine's load weighs on both alike,
and the medians of both and their ratio are printed.

Needs ``rasd stack up``. Usage:
``python bench/e2e.py [--copies 8] [--runs 3] [--polite] [--baseline DIR]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from elasticsearch import Elasticsearch

from connectors.elastic import new_elasticsearch
from pipeline.settings import Settings
from rasd.app import reset_namespace
from rasd.demo import FixtureSite, default_site_root, write_feeds_file


def make_site(copies: int, dest: Path) -> Path:
    """``copies`` outlets' worth of the bundled site, each under /c<N>/."""
    src = default_site_root()
    for n in range(copies):
        root = dest / f"c{n}"
        shutil.copytree(src, root, ignore=shutil.ignore_patterns("gold", "*.yaml"))
        for path in root.rglob("*"):
            if path.suffix not in (".xml", ".html"):
                continue
            text = path.read_text(encoding="utf-8").replace("{BASE}/", f"{{BASE}}/c{n}/")
            if path.suffix == ".html":
                # A distinct closing line, so copies are distinct articles, not duplicates.
                text = re.sub(r"(<p>)", rf"\1نسخة رقم {n} من هذا الخبر. ", text, count=1)
            path.write_text(text, encoding="utf-8")
    feeds = [
        f"  - {{url: '{{BASE}}/c{n}{p}', name: c{n}{p}, outlet: c{n}-{p.split('/')[1]}, "
        f"country: SY, language: ar}}"
        for n in range(copies)
        for p in ("/sham/feed.xml", "/almashreq/atom.xml", "/wire/rss.xml")
    ]
    (dest / "feeds.yaml").write_text("feeds:\n" + "\n".join(feeds) + "\n", encoding="utf-8")
    return dest


def watch_searchable(
    es: Elasticsearch, alias: str, seen: dict[str, float], stop: threading.Event
) -> None:
    """Record when each article first becomes visible to search (no forced refresh)."""
    while not stop.is_set():
        try:
            hits = es.search(index=alias, size=10000, source=["url"], query={"match_all": {}})[
                "hits"
            ]["hits"]
        except Exception:  # the alias does not exist until the run creates it
            hits = []
        now = time.monotonic()
        for hit in hits:
            seen.setdefault(hit["_source"]["url"], now)
        stop.wait(0.05)


def one_run(copies: int, workdir: Path, polite: bool, code: Path | None = None) -> dict[str, float]:
    settings = Settings(namespace=f"bench-{uuid.uuid4().hex[:8]}")
    site_root = make_site(copies, workdir / settings.namespace)
    es = new_elasticsearch(settings.elasticsearch)
    seen: dict[str, float] = {}
    stop = threading.Event()
    with FixtureSite(site_root) as site:
        feeds = write_feeds_file(site_root, site.base_url, workdir / "feeds.yaml")
        env = {
            **os.environ,
            "RASD_NAMESPACE": settings.namespace,
            "RASD_ALLOW_PRIVATE_NETWORKS": "true",
            "RASD_FEEDS_FILE": str(feeds),
            "RASD_LOG_LEVEL": "WARNING",
        }
        if not polite:
            env |= {"RASD_HOST_MIN_SPACING": "0", "RASD_HOST_MAX_CONCURRENCY": "64"}
        if code is not None:  # another checkout's rasd: its packages first on the path
            env["PYTHONPATH"] = str(code)
        watcher = threading.Thread(
            target=watch_searchable, args=(es, f"{settings.namespace}-articles", seen, stop)
        )
        watcher.start()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        done = subprocess.run(
            [sys.executable, "-m", "rasd", "run", "--once", "--json"],
            env=env,
            cwd=code,
            capture_output=True,
            text=True,
            check=False,
        )
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        time.sleep(1.5)  # the last refresh interval
        stop.set()
        watcher.join()
        if done.returncode != 0:
            raise SystemExit(f"rasd run --once failed:\n{done.stderr[-3000:]}")
        served: dict[str, float] = {}
        for request in site.requests:
            served.setdefault(request.path.split("?")[0], request.time)
    try:
        reset_namespace(settings)
    finally:
        es.close()
    # An article's clock starts when the feed that listed it was served.
    feed_times = {p: t for p, t in served.items() if p.endswith((".xml",))}
    latencies = []
    for url, visible in seen.items():
        copy = re.search(r"/c\d+/", url)
        starts = [t for p, t in feed_times.items() if copy and p.startswith(copy.group(0))]
        if starts:
            latencies.append(visible - min(starts))
    first_feed = min(feed_times.values())
    last_visible = max(seen.values())
    return {
        "articles": len(seen),
        "articles_per_s": len(seen) / (last_visible - first_feed),
        "latency_median_s": statistics.median(latencies),
        "latency_p95_s": statistics.quantiles(latencies, n=20)[18],
        "peak_rss_mib": max(peak_kib, before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=8, help="copies of the bundled site")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported")
    parser.add_argument(
        "--polite", action="store_true", help="keep the per-host limits (one host serves all)"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout of rasd to compare with, run by run"
    )
    args = parser.parse_args()
    codes: dict[str, Path | None] = {"this": None}
    if args.baseline:
        codes = {"baseline": args.baseline.resolve(), "this": None}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            for name, code in codes.items():
                result = one_run(args.copies, Path(tmp), args.polite, code)
                results[name].append(result)
                print(
                    f"run {n + 1} ({name}): "
                    + ", ".join(f"{k}={v:.2f}" for k, v in result.items()),
                    flush=True,
                )
    limits = "per-host limits on" if args.polite else "per-host limits lifted"
    for name, runs in results.items():
        print(f"\n{name}: median of {args.runs} runs, {args.copies} copies ({limits}):")
        for key in runs[0]:
            print(f"  {key:18s} {statistics.median(r[key] for r in runs):10.2f}")
    if args.baseline:
        base = statistics.median(r["articles_per_s"] for r in results["baseline"])
        this = statistics.median(r["articles_per_s"] for r in results["this"])
        print(f"\narticles_per_s this / baseline: {this / base:.3f}")


if __name__ == "__main__":
    main()
