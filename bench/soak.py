"""Sustained load: a generated news site publishing at a set rate, for minutes or hours.

Generates a site of ``--feeds`` feeds (the article generator of
``bench/chaos.py``: wire copies of one story across outlets, a few pages that
answer 404 on purpose), whose pages carry the navigation, sidebars and footers
of the bundled demo site's article pages, so that a page weighs what a news
page weighs. The site publishes ``--rate`` articles per second on average, in
bursts (``--burst-factor`` times the base rate for ``--burst-seconds`` every
``--burst-every`` seconds). Feeds answer ``304`` to a matching ETag. 1,000
watch rules (``--rules``), one invented word each; about 3% of the stories
carry one of the words and raise an alert to a local webhook.

rasd runs as ``rasd run`` (the default) or as one ``rasd worker`` process per
stage (``--per-stage``), or ``--instances N`` of every stage that runs in
parallel (all but ``cluster``, the dedupe decision's single writer).
``--scale-out`` (with ``--capacity``) runs the same drain twice in one command,
one process per stage and then two of every parallel stage, and prints the
ratio of the two rates. Every ``--every`` seconds the bench samples:

* articles published and searchable (throughput);
* the consumer lag of every stage's group (``connectors.kafka.consumer_lag``);
* the RSS and CPU time of every rasd process (psutil);
* Elasticsearch's indexing time (the index stats' ``index_time_in_millis``).

Per article it records when its feed first listed it and when its page was
fetched (the site's clock), when it became searchable (a search every 0.2 s,
no forced refresh), and when its alert appeared on ``<ns>.alerts``, so the
latencies are feed-to-searchable (the poll wait excluded: it is printed apart),
page-fetch-to-searchable and article-to-alert (page fetched to alert).

Before the timed part, a bare loop of rasd's own ``extract_text`` over the same
pages in this process (one core) gives the physical floor; the summary prints
the pipeline's sustained rate divided by it. ``--capacity N`` publishes N
articles at once instead and times the drain: the pipeline's maximum rate.

At the end it prints a summary table against the sustained-load goals and
writes ``rate.png``, ``latency.png``, ``lag.png``, ``memory.png`` and
``samples.json`` into ``--out`` (default: a new temporary directory, printed).

Needs ``rasd stack up``. Usage::

    python bench/soak.py [--rate 12] [--minutes 30] [--feeds 300] [--per-stage]
    python bench/soak.py --capacity 2000
    python bench/soak.py --capacity 2000 --scale-out
    python bench/soak.py --per-stage --dedupe-store disk --window-file seeded.sqlite

``--dedupe-store disk --window-file F`` runs the cluster worker with its window in
SQLite, started from ``F``: a store seeded with a full window of synthetic
articles (``bench/dedupe_cost.py --seed-store F --fill 7000000``).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chaos import (  # noqa: E402  (the repository root is put on sys.path first)
    KEYWORD,
    Page,
    Site,
    SiteServer,
    WebhookReceiver,
    Workers,
    vocabulary,
    worker_env,
    write_config,
)
from rasd.demo import default_site_root, substitute_base  # noqa: E402

#: The processes of ``--per-stage``: one ``rasd worker`` per stage.
STAGES = ("poll", "extract", "sign", "cluster", "enrich", "index", "alert", "deliver")

#: The stages that stay one process: the dedupe decision's single writer.
SINGLE = frozenset({"cluster"})

#: Megabytes (10^6 bytes), the unit of the memory goal.
MB = 1_000_000

# --- the pure parts: the publishing schedule and the summary's arithmetic ------------


def publish_times(
    rate: float,
    seconds: float,
    burst_every: float = 60.0,
    burst_seconds: float = 5.0,
    burst_factor: float = 4.0,
) -> list[float]:
    """When each article appears (seconds after the start), ``rate`` per second on average.

    The middle ``burst_seconds`` of every ``burst_every`` seconds publish at
    ``burst_factor`` times the rate of the rest, which is lowered so that the
    average stays ``rate`` (a run of whole cycles then starts and ends quietly).
    Articles are spaced evenly within each stretch (the k-th appears when the
    integral of the rate reaches k + 1/2), so a schedule is the same on every run.
    """
    if rate <= 0 or seconds <= 0:
        return []
    if not 0 <= burst_seconds < burst_every or burst_factor < 1:
        raise ValueError("bursts need 0 <= burst_seconds < burst_every and burst_factor >= 1")
    low = rate * burst_every / (burst_every - burst_seconds + burst_factor * burst_seconds)
    high = low * burst_factor
    times: list[float] = []
    done = 0.0  # articles' worth of the integral so far
    next_at = 0.5
    cycle = 0
    while cycle * burst_every < seconds:
        begin = cycle * burst_every
        burst = begin + (burst_every - burst_seconds) / 2
        stretches = (
            (begin, burst, low),
            (burst, burst + burst_seconds, high),
            (burst + burst_seconds, begin + burst_every, low),
        )
        for start, end, r in stretches:
            end = min(end, seconds)
            if end <= start:
                continue
            gain = r * (end - start)
            while next_at <= done + gain:
                times.append(start + (next_at - done) / r)
                next_at += 1
            done += gain
        cycle += 1
    return times


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between the closest ranks; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def quarters(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The median value of the first and of the last quarter of ``(t, value)`` points by
    time: a leak shows as the last above the first, whatever the noise between."""
    if not points:
        return math.nan, math.nan
    ordered = sorted(points)
    n = max(1, len(ordered) // 4)
    return (
        statistics.median(v for _, v in ordered[:n]),
        statistics.median(v for _, v in ordered[-n:]),
    )


@dataclass
class Sample:
    """One sample of the timed part; counts are totals since its start."""

    t: float  # seconds since the start of the timed part
    published: int  # articles in the feeds so far (pages that fail on purpose left out)
    searchable: int
    alerts: int
    lag: dict[str, int]  # per stage's consumer group
    rss: dict[str, int]  # bytes, per rasd process
    cpu: dict[str, float]  # CPU seconds so far, per rasd process
    index_ms: float  # Elasticsearch's index_time_in_millis of the articles' indices


@dataclass
class Row:
    measure: str
    value: str
    goal: str
    verdict: str


@dataclass
class Goals:
    rate: float = 12.0  # articles/s sustained
    #: The share of the published articles that can be indexed at all (the rest
    #: answer 404 on purpose): the rate to hold is ``rate`` times this.
    indexable: float = 1.0
    searchable_p95: float = 2.0  # s, beyond the poll wait
    alert_p95: float = 1.0  # s
    rss_mb: float = 300.0  # per process
    flat_mb: float = 10.0  # last quarter above the first by at most this (or 5%)
    bare_ratio: float = 0.8
    lag_seconds: float = 5.0  # the backlog at the end, in seconds of input
    #: The rates are taken from this many seconds after the start (the pipeline's
    #: latency and the first polls are not its rate), if the run is long enough.
    warmup: float = 60.0


def rate_between(samples: Sequence[Sample], attr: str) -> float:
    """Per second, of a count: the least-squares slope over the samples, which the
    swings of the poll cycle at either end of the window barely move."""
    if len(samples) < 2 or samples[-1].t <= samples[0].t:
        return math.nan
    fit = statistics.linear_regression(
        [s.t for s in samples], [float(getattr(s, attr)) for s in samples]
    )
    return fit.slope


def per_process(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """Per rasd process: max RSS, first- and last-quarter median RSS (MB), cores used."""
    out: dict[str, dict[str, float]] = {}
    names = sorted({name for s in samples for name in s.rss})
    for name in names:
        points = [(s.t, s.rss[name] / MB) for s in samples if name in s.rss]
        first, last = quarters(points)
        cpu = [(s.t, s.cpu[name]) for s in samples if name in s.cpu]
        cores = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) if len(cpu) > 1 else math.nan
        out[name] = {
            "max_mb": max(v for _, v in points),
            "first_mb": first,
            "last_mb": last,
            "cores": cores,
        }
    return out


def summarize(
    samples: Sequence[Sample],
    latencies: dict[str, Sequence[float]],
    goals: Goals,
    bare_pages_per_s: float,
) -> list[Row]:
    """The summary table: each measure of the run against its goal."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    rows: list[Row] = []
    end = samples[-1].t if samples else 0.0
    warmup = goals.warmup if end >= 2 * goals.warmup else 0.0
    steady = [s for s in samples if s.t >= warmup]
    achieved = rate_between(steady, "searchable")
    offered = rate_between(steady, "published")
    rows.append(Row(f"articles published /s (from {warmup:.0f} s)", f"{offered:.2f}", "", ""))
    need = goals.rate * goals.indexable
    rows.append(
        Row(
            "articles searchable /s (sustained)",
            f"{achieved:.2f}",
            f">= {need:.2f}" + (" (less the 404s)" if goals.indexable < 1 else ""),
            verdict(achieved >= need),
        )
    )
    lag_end = sum(samples[-1].lag.values()) if samples else 0
    allowed = max(offered, goals.rate) * goals.lag_seconds
    rows.append(
        Row(
            "consumer lag at the end (records)",
            f"{lag_end}",
            f"<= {allowed:.0f}",
            verdict(lag_end <= allowed),
        )
    )
    for name, goal in (
        ("feed listed -> searchable", goals.searchable_p95),
        ("page fetched -> alert", goals.alert_p95),
    ):
        values = latencies.get(name, [])
        p50, p95 = percentile(values, 50), percentile(values, 95)
        rows.append(
            Row(
                f"{name} p50 / p95 / max (s), n={len(values)}",
                f"{p50:.2f} / {p95:.2f} / {max(values, default=math.nan):.2f}",
                f"p95 {'<=' if name.endswith('searchable') else '<'} {goal:g}",
                verdict(
                    bool(values) and (p95 <= goal if name.endswith("searchable") else p95 < goal)
                ),
            )
        )
    for name in (
        "poll wait (published -> listed)",
        "feed listed -> page fetched",
        "page fetched -> searchable",
    ):
        values = latencies.get(name, [])
        rows.append(
            Row(
                f"{name} p50 / p95 (s)",
                f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f}",
                "",
                "",
            )
        )
    for name, proc in per_process(samples).items():
        flat = proc["last_mb"] - proc["first_mb"] <= max(goals.flat_mb, 0.05 * proc["first_mb"])
        rows.append(
            Row(
                f"RSS {name}: max, first -> last quarter (MB)",
                f"{proc['max_mb']:.0f}, {proc['first_mb']:.0f} -> {proc['last_mb']:.0f}",
                f"<= {goals.rss_mb:g}, flat",
                verdict(proc["max_mb"] <= goals.rss_mb and flat),
            )
        )
        rows.append(Row(f"CPU {name} (cores)", f"{proc['cores']:.2f}", "", ""))
    if len(samples) > 1:
        indexed = samples[-1].searchable - samples[0].searchable
        index_ms = samples[-1].index_ms - samples[0].index_ms
        per_article = index_ms / indexed if indexed else math.nan
        rows.append(
            Row(
                "Elasticsearch indexing time (ms per article)",
                f"{per_article:.2f}",
                "",
                "",
            )
        )
    ratio = achieved / bare_pages_per_s if bare_pages_per_s > 0 else math.nan
    rows.append(Row("bare extract_text, one core (pages/s)", f"{bare_pages_per_s:.1f}", "", ""))
    rows.append(
        Row(
            "pipeline / bare extraction",
            f"{ratio:.3f}",
            f">= {goals.bare_ratio:g}",
            verdict(ratio >= goals.bare_ratio),
        )
    )
    return rows


def table(rows: Iterable[Row]) -> str:
    rows = list(rows)
    width = max(len(r.measure) for r in rows)
    value = max(len(r.value) for r in rows)
    goal = max(len(r.goal) for r in rows)
    lines = [f"{'measure':<{width}}  {'value':>{value}}  {'goal':<{goal}}  verdict"]
    lines += [
        f"{r.measure:<{width}}  {r.value:>{value}}  {r.goal:<{goal}}  {r.verdict}" for r in rows
    ]
    return "\n".join(lines)


# --- the site --------------------------------------------------------------------------


def rule_terms(count: int, avoid: Iterable[str]) -> list[str]:
    """``count`` distinct invented Arabic words, none of them (nor any word ending in
    one) in ``avoid``: each rule's word occurs only where the generator put it.

    None begins with a letter that can be a proclitic (و ف ب ك ل, and the ا of ال):
    matching strips those on both sides, so بمابيوس and فمابيوس would be one word.
    """
    first = "تجحدرزسشصطعقمنهي"
    letters = "بتجحدرزسشصطعفقكلمنهي"
    vocab = set(avoid)
    terms: list[str] = []
    i = 0
    while len(terms) < count:
        a, b, c = first[i % 16], letters[(i // 16) % 20], letters[(i // 320) % 20]
        word = f"{a}{b}ا{c}يوس"
        i += 1
        if word in vocab or any(w.endswith(word) for w in vocab):
            continue
        terms.append(word)
    return terms


def page_chrome() -> list[tuple[str, str]]:
    """The demo site's article pages without their article: (before, after) inside <body>."""
    chrome = []
    for path in sorted(default_site_root().rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        if "<article" not in text:
            continue
        body = text[text.index(">", text.index("<body")) + 1 : text.index("</body>")]
        chrome.append(
            (body[: body.index("<article")], body[body.index("</article>") + len("</article>") :])
        )
    return chrome


class SoakSite(Site):
    """The chaos harness's site with a publishing schedule, demo-sized pages, ETags,
    per-feed lookups (no scan of every page per request) and the clock of each
    article: when its feed first listed it and when its page was first fetched."""

    def __init__(self, feeds: int, pages: list[Page], items_per_feed: int = 30) -> None:
        super().__init__(feeds, pages)
        self.items_per_feed = items_per_feed
        self.by_feed: list[list[Page]] = [[] for _ in range(feeds)]
        for page in sorted(pages, key=lambda p: p.at):
            self.by_feed[page.feed].append(page)
        self.at_by_feed = [[p.at for p in pages] for pages in self.by_feed]
        self.ats = sorted(p.at for p in pages if not p.fails)
        self.chrome = page_chrome()
        self.listed: dict[int, float] = {}
        self.fetched: dict[int, float] = {}
        self.feed_requests = 0
        self.lock = threading.Lock()

    def hold(self) -> None:
        """Publish nothing until :meth:`open`."""
        self.start = time.monotonic() + 1e9

    def open(self) -> float:
        self.start = time.monotonic()
        return self.start

    def count(self, feed: int) -> int:
        return bisect.bisect_right(self.at_by_feed[feed], time.monotonic() - self.start)

    def published_ok(self, elapsed: float) -> int:
        """Articles that can be indexed (not failing on purpose) published by ``elapsed``."""
        return bisect.bisect_right(self.ats, elapsed)

    def etag(self, feed: int) -> str:
        return f'"{feed}-{self.count(feed)}"'

    def feed_items(self, feed: int) -> list[Page]:
        n = self.count(feed)
        items = self.by_feed[feed][max(0, n - self.items_per_feed) : n]
        now = time.monotonic()
        with self.lock:
            for page in items:
                self.listed.setdefault(page.n, now)
        return items

    def page_html(self, page: Page, base: str) -> bytes:
        with self.lock:
            self.fetched.setdefault(page.n, time.monotonic())
        return self.render(page, base)

    def render(self, page: Page, base: str) -> bytes:
        html = super().page_html(page, base).decode()
        before, after = self.chrome[page.feed % len(self.chrome)]
        html = html.replace("<body>", "<body>" + substitute_base(before, base), 1)
        return html.replace("</body>", substitute_base(after, base) + "</body>", 1).encode()


class SoakServer(SiteServer):
    """:class:`SiteServer` whose feeds send an ETag and answer 304 to it."""

    def __init__(self, site: SoakSite) -> None:
        super().__init__(site)
        self.soak = site
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                etag = None
                if path.endswith("/feed.xml"):
                    etag = site.etag(int(path.split("/")[1][1:]))
                    site.feed_requests += 1
                    if self.headers.get("If-None-Match") == etag:
                        self.send_response(304)
                        self.send_header("ETag", etag)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                body, kind, status = server.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd.RequestHandlerClass = Handler


def generate(
    rng: random.Random, feeds: int, times: list[float], terms: list[str]
) -> tuple[SoakSite, int]:
    """The site publishing an article at each of ``times``; the number of alerting stories."""
    base = Site.generate(rng, feeds, len(times), 1.0)
    alerting = 0
    for page in base.pages:  # in order: an original comes before its copies
        page.at = times[page.n]
        if page.story == page.n:
            if page.alerts and not page.fails:
                alerting += 1
            term = terms[page.n % len(terms)]
            # The copies share the original's list of paragraphs, and so its word.
            page.paragraphs[:] = [p.replace(KEYWORD, term) for p in page.paragraphs]
        else:
            page.at = max(page.at, base.pages[page.story].at)
    return SoakSite(feeds, base.pages), alerting


def write_rules(path: Path, terms: list[str], hook_url: str) -> None:
    lines = ["rules:"]
    lines += [
        f"  - {{id: soak-{i:04d}, name: {term}, any: [{term}], destinations: [hook]}}"
        for i, term in enumerate(terms)
    ]
    lines.append("destinations:")
    lines.append(f"  hook: {{type: webhook, url: '{hook_url}', retries: 12, backoff: 1.0}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- measuring -------------------------------------------------------------------------


def bare_extraction(site: SoakSite, base: str, pages: int, seconds: float) -> tuple[float, float]:
    """rasd's own ``extract_text`` in a loop over the site's pages, in this process:
    (pages per second of wall time, cores used: CPU time over wall time)."""
    from connectors.extract import extract_text
    from pipeline.errors import PermanentError

    chosen = [p for p in site.pages if not p.fails][:pages]
    docs = [(site.render(p, base).decode(), f"{base}{p.path}") for p in chosen]
    now = datetime.now(UTC)
    done = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    while True:
        for html, url in docs:
            with contextlib.suppress(PermanentError):
                extract_text(html, url, now)
            done += 1
        if time.perf_counter() - t0 >= seconds:
            break
    wall = time.perf_counter() - t0
    return done / wall, (time.process_time() - cpu0) / wall


class Searchable:
    """When each article first becomes visible to search: a search every 0.2 s (the
    latencies' resolution) for the articles indexed in the last 30 s (``indexed_at``),
    no forced refresh."""

    def __init__(self, es: Any, alias: str, base: str, by_path: dict[str, Page]) -> None:
        self.es, self.alias, self.base, self.by_path = es, alias, base, by_path
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        while not self.stop.wait(0.2):
            try:
                hits = self.es.search(
                    index=self.alias,
                    size=10_000,
                    source=["url"],
                    query={"range": {"indexed_at": {"gte": "now-30s"}}},
                    filter_path="hits.hits._source.url",
                )
            except Exception:  # the alias does not exist until the first article
                continue
            now = time.monotonic()
            for hit in hits.get("hits", {}).get("hits", []):
                page = self.by_path.get(hit["_source"]["url"].removeprefix(self.base))
                if page is not None:
                    self.seen.setdefault(page.n, now)


class Alerts:
    """When each article's alert appears on ``<ns>.alerts``."""

    def __init__(self, settings: Any, topic: str, base: str, by_path: dict[str, Page]) -> None:
        from kafka import TopicPartition

        from connectors.kafka import new_consumer

        self.consumer = new_consumer(settings.kafka, enable_auto_commit=False, fetch_max_wait_ms=50)
        partitions = self.consumer.partitions_for_topic(topic) or ()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.base, self.by_path = base, by_path
        self.received: dict[int, float] = {}
        self.records = 0
        self.ids: set[str] = set()
        #: (rule, cluster, article) of every alert, per article: more than one is a repeat.
        self.raised: dict[int, set[tuple[str, str, str]]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.read, daemon=True)

    def read(self) -> None:
        from pipeline.models import Alert

        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                now = time.monotonic()
                for r in records:
                    alert = Alert.from_json(r.value)
                    self.records += 1
                    self.ids.add(alert.id)
                    page = self.by_path.get(alert.url.removeprefix(self.base))
                    if page is not None:
                        self.received.setdefault(page.n, now)
                        self.raised.setdefault(page.n, set()).add(
                            (alert.rule_id, alert.cluster_id, alert.article_id)
                        )
        self.consumer.close()


def rasd_processes(procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, Any]:
    import psutil

    found = {}
    for name, proc in procs.items():
        with contextlib.suppress(psutil.Error):
            found[name] = psutil.Process(proc.pid)
    return found


def index_time_ms(es: Any, namespace: str) -> float:
    try:
        stats = es.indices.stats(index=f"{namespace}-articles-*", metric="indexing")
        return float(stats["_all"]["primaries"]["indexing"]["index_time_in_millis"])
    except Exception:
        return math.nan


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def latencies(site: SoakSite, searchable: Searchable, alerts: Alerts, start: float) -> Run:
    run = Run()
    lat: dict[str, list[float]] = {
        "feed listed -> searchable": [],
        "page fetched -> searchable": [],
        "page fetched -> alert": [],
        "feed listed -> alert": [],
        "feed listed -> page fetched": [],
        "poll wait (published -> listed)": [],
    }
    points: list[tuple[float, float]] = []
    for n, seen in searchable.seen.items():
        page = site.pages[n]
        listed = site.listed.get(n)
        fetched = site.fetched.get(n)
        if listed is not None:
            lat["feed listed -> searchable"].append(seen - listed)
            lat["poll wait (published -> listed)"].append(listed - (start + page.at))
            points.append((seen - start, seen - listed))
        if fetched is not None:
            lat["page fetched -> searchable"].append(seen - fetched)
            if listed is not None:
                lat["feed listed -> page fetched"].append(fetched - listed)
    alert_points: list[tuple[float, float]] = []
    for n, at in alerts.received.items():
        fetched = site.fetched.get(n)
        listed = site.listed.get(n)
        if fetched is not None:
            lat["page fetched -> alert"].append(at - fetched)
            alert_points.append((at - start, at - fetched))
        if listed is not None:
            lat["feed listed -> alert"].append(at - listed)
    run.latencies = lat
    run.series = {"searchable": sorted(points), "alert": sorted(alert_points)}
    return run


# --- the plots -------------------------------------------------------------------------


def plot(out: Path, samples: list[Sample], run: Run, target: float) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    t = [s.t / 60 for s in samples]

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(9, 4))
    mids = [(a.t + b.t) / 120 for a, b in itertools.pairwise(samples)]
    for attr, label in (("published", "published"), ("searchable", "searchable")):
        rates = [
            (getattr(b, attr) - getattr(a, attr)) / (b.t - a.t)
            for a, b in itertools.pairwise(samples)
        ]
        ax.plot(mids, rates, label=f"{label}, per sample", alpha=0.4)
        # Over the last minute: the per-sample rate swings with the poll cycle.
        window = 60.0
        smooth = []
        for b in samples[1:]:
            a = next(s for s in samples if s.t >= b.t - window)
            smooth.append((getattr(b, attr) - getattr(a, attr)) / max(b.t - a.t, 1e-9))
        ax.plot([s.t / 60 for s in samples[1:]], smooth, label=f"{label}, last minute")
    ax.axhline(target, color="grey", linestyle="--", label=f"offered {target:g}/s")
    ax.set(xlabel="minutes", ylabel="articles/s", title="Throughput per sample interval")
    ax.legend()
    save(fig, "rate.png")

    fig, ax = plt.subplots(figsize=(9, 4))
    for name, label in (
        ("searchable", "feed listed -> searchable"),
        ("alert", "page fetched -> alert"),
    ):
        points = run.series.get(name, [])
        ax.plot([p[0] / 60 for p in points], [p[1] for p in points], ".", markersize=2, label=label)
    ax.axhline(2.0, color="grey", linestyle="--", label="goals: 2 s, 1 s")
    ax.axhline(1.0, color="grey", linestyle=":")
    ax.set(xlabel="minutes", ylabel="seconds", title="Latency per article")
    ax.legend()
    save(fig, "latency.png")

    fig, ax = plt.subplots(figsize=(9, 4))
    for group in sorted({g for s in samples for g in s.lag}):
        ax.plot(t, [s.lag.get(group, 0) for s in samples], label=group.rsplit(".", 1)[-1])
    ax.set(xlabel="minutes", ylabel="records", title="Consumer lag per stage")
    ax.legend(fontsize="small")
    save(fig, "lag.png")

    fig, ax = plt.subplots(figsize=(9, 4))
    for name in sorted({n for s in samples for n in s.rss}):
        ax.plot(t, [s.rss.get(name, 0) / MB for s in samples], label=name)
    ax.axhline(300, color="grey", linestyle="--", label="goal 300 MB")
    ax.set(xlabel="minutes", ylabel="MB", title="RSS per rasd process")
    ax.legend(fontsize="small")
    save(fig, "memory.png")
    return written


# --- the run ---------------------------------------------------------------------------


class ClusterRestart:
    """``--kill-cluster-at``: the cluster worker killed (SIGKILL) and started again at
    once, ``at`` seconds into the timed part, and how long until it is back in
    service: until its group's lag, which grows while it is down, is back to at
    most what it was before the kill (plus ten articles)."""

    def __init__(
        self, workers: Workers, procs: dict[str, Any], lag: Any, group: str, at: float
    ) -> None:
        self.workers, self.procs, self.lag, self.group, self.at = workers, procs, lag, group, at
        self.before: list[int] = []
        self.thread: threading.Thread | None = None
        self.seconds: float | None = None
        self.peak = 0

    def sample(self, elapsed: float, lag: dict[str, int]) -> None:
        """Called with each sample: the lag before the kill, and the kill when due."""
        if self.thread is not None:
            return
        if elapsed < self.at:
            self.before.append(lag.get(self.group, 0))
            return
        self.thread = threading.Thread(target=self._run, name="cluster-restart", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil

        baseline = max(self.before[-6:], default=0) + 10
        began = time.monotonic()
        self.workers.kill("cluster-0")
        self.workers.restart("cluster-0")
        with contextlib.suppress(psutil.Error):
            self.procs["cluster-0"] = psutil.Process(self.workers.procs["cluster-0"].pid)
        while time.monotonic() - began < 300:
            time.sleep(0.5)
            try:
                now = self.lag().get(self.group, 0)
            except Exception:
                continue
            self.peak = max(self.peak, now)
            if self.peak > baseline + 10 and now <= baseline:
                self.seconds = time.monotonic() - began
                return

    def report(self) -> str:
        if self.thread is None:
            return f"cluster restart: not done (the run ended before {self.at:.0f} s)"
        self.thread.join(310)
        back = (
            f"back in service after {self.seconds:.1f} s"
            if self.seconds is not None
            else "not back in service within 300 s"
        )
        return (
            f"cluster restart: killed (SIGKILL) and started again {self.at:.0f} s into the run; "
            f"{back} (its lag peaked at {self.peak}, back to at most "
            f"{max(self.before[-6:], default=0) + 10})"
        )


def seed_window(window_file: Path | None, store_dir: Path, topic: str) -> Path | None:
    """Move a seeded dedupe store into the cluster worker's place (``topic``'s store
    under ``store_dir``), as complete up to the start of the new state topic; the
    path it is at, to be moved back after the run."""
    if window_file is None:
        return None
    import sqlite3

    from connectors.dedupe_store import store_path

    place = store_path(store_dir, topic)
    store_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        if window_file.with_name(window_file.name + suffix).exists():
            raise SystemExit(f"{window_file} has a {suffix} file: it was not closed")
    window_file.replace(place)
    db = sqlite3.connect(place)
    with db:
        db.execute(
            "INSERT INTO meta VALUES ('offsets', '{\"0\": 0}') "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value"
        )
    db.close()
    print(f"dedupe window: {window_file} ({place.stat().st_size / 2**30:.1f} GiB)", flush=True)
    return place


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=12.0, help="articles/s on average")
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the timed part")
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--per-stage", action="store_true", help="one process per stage")
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="with --per-stage: processes of every parallel stage (all but cluster)",
    )
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="with --capacity: one process per stage, then two of every parallel stage",
    )
    parser.add_argument("--capacity", type=int, default=0, help="publish N at once, time the drain")
    parser.add_argument("--burst-every", type=float, default=60.0)
    parser.add_argument("--burst-seconds", type=float, default=5.0)
    parser.add_argument("--burst-factor", type=float, default=4.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait at the end")
    parser.add_argument("--bare-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--out", type=Path, help="directory of the plots (default: a temp dir)")
    parser.add_argument(
        "--kill-cluster-at",
        type=float,
        metavar="SECONDS",
        help="with --per-stage: kill the cluster worker this far into the run, start it again "
        "at once, and time its return to service",
    )
    parser.add_argument(
        "--dedupe-store",
        choices=("memory", "disk"),
        default="memory",
        help="the cluster worker's RASD_DEDUPE_STORE",
    )
    parser.add_argument(
        "--window-file",
        type=Path,
        help="with --dedupe-store disk: a seeded store (bench/dedupe_cost.py --seed-store) "
        "that the cluster worker starts from, moved into place for the run and back after it",
    )
    args = parser.parse_args()
    if args.kill_cluster_at is not None and not args.per_stage:
        parser.error("--kill-cluster-at needs --per-stage (a worker of its own)")
    if args.window_file is not None and (
        args.dedupe_store != "disk" or not args.window_file.is_file()
    ):
        parser.error("--window-file needs --dedupe-store disk and an existing file")
    if not 1 <= args.feeds <= 5000 or not 1 <= args.rules <= 20000:
        parser.error("bounded load: --feeds 1..5000, --rules 1..20000")
    if not 1 <= args.instances <= 8:
        parser.error("--instances 1..8")
    if args.instances > 1 and not args.per_stage:
        parser.error("--instances needs --per-stage (rasd run is one process)")
    if args.scale_out and not args.capacity:
        parser.error("--scale-out measures the maximum rate: give --capacity N")
    out = args.out or Path(tempfile.mkdtemp(prefix="rasd-soak-"))
    if not args.scale_out:
        soak(args, out, args.instances)
        return
    # The same site, articles and rules twice, each in a namespace of its own.
    args.per_stage = True
    one = soak(args, out / "one-each", 1)
    two = soak(args, out / "two-each", 2)
    print(
        f"\nscale-out: {one.capacity:.2f} articles/s with one process per stage, "
        f"{two.capacity:.2f} with two of every parallel stage: x{two.capacity / one.capacity:.2f} "
        f"(bare extraction {one.bare:.1f} and {two.bare:.1f} pages/s on one core)"
    )


@dataclass(frozen=True)
class Result:
    """One pass's headline figures: the drain's rate (``--capacity``) or the rate held."""

    capacity: float
    bare: float


def soak(args: argparse.Namespace, out: Path, instances: int) -> Result:
    """One pass: the site, rasd's processes, the samples, the summary and the plots."""
    from connectors.elastic import new_elasticsearch
    from pipeline.settings import Settings
    from rasd.app import Runtime, reset_namespace

    out.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    if args.capacity:
        times = [0.0] * args.capacity
    else:
        times = publish_times(
            args.rate, seconds, args.burst_every, args.burst_seconds, args.burst_factor
        )
    rng = random.Random(args.seed)
    terms = rule_terms(args.rules, vocabulary())
    site, alerting = generate(rng, args.feeds, times, terms)
    settings = Settings(namespace=f"soak-{uuid.uuid4().hex[:8]}")
    mode = (
        ("one process per stage" if instances == 1 else f"{instances} processes per parallel stage")
        if args.per_stage
        else "rasd run"
    )
    sizes = [len(site.render(p, "http://127.0.0.1:65535")) for p in site.pages[:200]]
    print(
        f"namespace {settings.namespace}; {mode}; {args.feeds} feeds, {len(times)} articles "
        + ("at once (capacity)" if args.capacity else f"over {args.minutes:g} min")
        + f" ({sum(p.fails for p in site.pages)} answer 404, "
        f"{sum(p.story != p.n for p in site.pages)} wire copies, {alerting} alerting stories), "
        f"{len(terms)} rules; page size median {statistics.median(sizes) / 1000:.1f} kB",
        flush=True,
    )
    print(f"plots and samples go to {out}", flush=True)
    hook = WebhookReceiver()
    es = new_elasticsearch(settings.elasticsearch)
    site.hold()
    with tempfile.TemporaryDirectory() as tmp, SoakServer(site) as server:
        work = Path(tmp)
        feeds_file, rules_file = write_config(work, site, server.base, hook)
        write_rules(rules_file, terms, hook.url)
        bare, bare_cores = bare_extraction(site, server.base, 300, args.bare_seconds)
        print(
            f"bare extract_text over {min(300, len(site.pages))} of these pages: "
            f"{bare:.1f} pages/s ({bare_cores:.2f} cores)",
            flush=True,
        )
        env = worker_env(settings.namespace, feeds_file, rules_file)
        store_dir = work / "dedupe"
        env["RASD_DEDUPE_STORE"] = args.dedupe_store
        env["RASD_DEDUPE_SNAPSHOT_DIR"] = str(store_dir)
        prepared = Settings(
            namespace=settings.namespace, feeds_file=feeds_file, rules_file=rules_file
        )
        runtime = Runtime(prepared)
        runtime.prepare()
        seeded = seed_window(args.window_file, store_dir, runtime.topics.dedupe_state)
        logs = out / "logs"
        logs.mkdir(exist_ok=True)
        workers = Workers(env, logs)
        if args.per_stage:
            for stage in STAGES:
                for i in range(1 if stage in SINGLE else instances):
                    workers.start(f"{stage}-{i}")
        else:
            log = (logs / "run.log").open("ab")
            workers.procs["run"] = subprocess.Popen(
                [sys.executable, "-m", "rasd", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        by_path = {p.path: p for p in site.pages}
        searchable = Searchable(es, f"{settings.namespace}-articles", server.base, by_path)
        alerts = Alerts(prepared, runtime.topics.alerts, server.base, by_path)
        searchable.thread.start()
        alerts.thread.start()
        samples: list[Sample] = []
        try:
            # Every feed polled once (empty) and the groups joined before the clock starts.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if site.feed_requests >= args.feeds:
                    break
                time.sleep(1)
            time.sleep(5)
            procs = rasd_processes(workers.procs)
            start = site.open()
            print(
                "publishing; rasd processes: "
                + ", ".join(f"{name} (pid {p.pid})" for name, p in procs.items()),
                flush=True,
            )
            prefix = f"{settings.namespace}."
            restart = (
                ClusterRestart(
                    workers,
                    procs,
                    lambda: {g.removeprefix(prefix): n for g, n in runtime.lag().items()},
                    "cluster",
                    args.kill_cluster_at,
                )
                if args.kill_cluster_at is not None
                else None
            )
            stop_at = start + (0 if args.capacity else seconds)
            drain_until = stop_at + args.drain
            bench_cpu = time.process_time()
            while True:
                now = time.monotonic()
                rss: dict[str, int] = {}
                cpu: dict[str, float] = {}
                for name, proc in procs.items():
                    with contextlib.suppress(Exception):
                        rss[name] = proc.memory_info().rss
                        times_ = proc.cpu_times()
                        cpu[name] = times_.user + times_.system
                try:
                    lag = runtime.lag()
                except Exception:
                    lag = {}
                elapsed = now - start
                sample = Sample(
                    t=elapsed,
                    published=site.published_ok(elapsed),
                    searchable=len(searchable.seen),
                    alerts=len(alerts.received),
                    lag={g.removeprefix(f"{settings.namespace}."): n for g, n in lag.items()},
                    rss=rss,
                    cpu=cpu,
                    index_ms=index_time_ms(es, settings.namespace),
                )
                if restart is not None:
                    restart.sample(elapsed, sample.lag)
                in_window = now <= stop_at + args.every / 2
                if in_window or args.capacity:
                    samples.append(sample)
                total = site.published_ok(elapsed)
                print(
                    f"  {elapsed:7.0f}s published {sample.published} searchable "
                    f"{sample.searchable} alerts {sample.alerts} lag {sum(lag.values())} "
                    "RSS " + " ".join(f"{n}={v / MB:.0f}" for n, v in rss.items()) + " MB",
                    flush=True,
                )
                finished = (
                    now >= stop_at and len(searchable.seen) >= total and not any(lag.values())
                )
                if finished or now >= drain_until:
                    bench_cores = (time.process_time() - bench_cpu) / (time.monotonic() - start)
                    break
                time.sleep(max(0.0, args.every - (time.monotonic() - now)))
        finally:
            workers.stop_all()
            searchable.stop.set()
            alerts.stop.set()
            searchable.thread.join(5)
            alerts.thread.join(5)
            errors = [
                f"{path.name}: {line.strip()}"
                for path in sorted(logs.glob("*.log"))
                for line in path.read_text(errors="replace").splitlines()
                if " ERROR " in line or " CRITICAL " in line
            ]
            print(f"{len(errors)} ERROR lines in the rasd logs ({logs})")
            for line in errors[:5]:
                print(f"  {line[:300]}")
            runtime.shutdown([])
            with contextlib.suppress(Exception):
                reset_namespace(prepared)
            if seeded is not None:
                seeded.replace(args.window_file)
        hook.down()
    es.close()

    run = latencies(site, searchable, alerts, start)
    goals = Goals(
        rate=args.rate if not args.capacity else 0.0, indexable=len(site.ats) / len(site.pages)
    )
    if args.capacity:
        # The rate of the drain: from the first feed that listed the articles (not
        # the publication: the poller comes by up to a poll interval later) to the
        # last article searchable.
        first = min(site.listed.values(), default=start)
        last = max(searchable.seen.values(), default=first)
        capacity = len(searchable.seen) / max(last - first, 1e-9)
        print(
            f"capacity: {len(searchable.seen)} of {len(site.ats)} articles searchable "
            f"{last - first:.1f} s after the first feed listed them: {capacity:.2f} articles/s, "
            f"{capacity / bare:.3f} x the bare extraction loop"
        )
    else:
        capacity = rate_between(samples, "searchable")
    rows = summarize(samples, run.latencies, goals, bare)
    extra = run.latencies["feed listed -> alert"]
    print(
        f"\nsummary: {mode}, {args.feeds} feeds, {len(terms)} rules, "
        + (
            f"{args.capacity} articles at once"
            if args.capacity
            else f"{args.rate:g} articles/s for {args.minutes:g} min"
        )
        + f" ({samples[-1].t if samples else 0:.0f} s sampled)"
    )
    print(table(rows))
    print(
        f"feed listed -> alert p50 / p95: {percentile(extra, 50):.2f} / "
        f"{percentile(extra, 95):.2f} s; alerts on the topic: {alerts.records} records, "
        f"{len(alerts.ids)} ids, for {len(alerts.received)} articles ({alerting} alerting stories "
        "published); "
        f"webhook deliveries {len(hook.deliveries)} of {len(hook.counts())} alerts; "
        f"this bench process (site, watchers) "
        f"used {bench_cores:.2f} cores"
    )
    if restart is not None:
        print(restart.report())
    repeats = {n: sorted(r) for n, r in alerts.raised.items() if len(r) > 1}
    if repeats:
        print(f"{len(repeats)} articles with more than one alert (rule, cluster, article):")
        for n, raised in list(repeats.items())[:3]:
            print(f"  {site.pages[n].path}: {raised}")
    (out / "samples.json").write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "samples": [asdict(s) for s in samples],
                "latencies": run.latencies,
                "bare_pages_per_s": bare,
            }
        ),
        encoding="utf-8",
    )
    for path in plot(out, samples, run, args.rate):
        print(f"wrote {path}")
    return Result(capacity=capacity, bare=bare)


if __name__ == "__main__":
    main()
