"""Kill anything, lose nothing, repeat nothing: the pipeline under injected faults.

Generates a news site (``--feeds`` feeds, ``--articles`` articles published
over the run, wire copies of one story across outlets, pages that fail on
purpose), runs every stage as its own ``rasd worker`` process (two instances of
extract, sign and alert), a webhook receiver that records each delivery by its
``X-Rasd-Alert-Id``, and injects faults at moments drawn from a seeded
generator: ``kill -9`` of every kind of worker (then a restart), of the Kafka
broker (one outage longer than the consumer session timeout in the long run)
and of Elasticsearch, a SIGSTOP/SIGCONT pause of Elasticsearch, a write block
on the articles and alerts indices, and the webhook receiver down for a while.
When the feeds have published everything and the pipeline has drained, it
prints the fault schedule (with the seed, to replay it) and the checks:

* every article the site published is indexed exactly once, or is in the DLQ
  with its reason (the pages that fail on purpose);
* per stage, records in = records out + dead-lettered, read from the topics
  (``read_committed``): the counters of a killed process die with it;
* every expected alert is in the ledger once and reached the webhook; every
  repeat delivery is listed, with the deliver-worker kill that explains it;
* no ``<ns>.*`` topic holds a record twice (same key, read ``read_committed``).

Needs ``rasd stack up``; the stack's services are killed and restarted. Usage:
``python bench/chaos.py --seed S [--minutes 10] [--feeds 50] [--articles 2000]``.
:func:`run` is what the test suite's short version calls.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from connectors.elastic import new_elasticsearch
from connectors.kafka import Topics, consumer_lag, new_consumer, read_to_end
from connectors.stack import LocalStack
from pipeline.settings import Settings
from rasd.demo import default_site_root

#: The word the alert rule watches; the generated text never has it otherwise.
KEYWORD = "زلزال"
RULE_ID = "chaos-quake"

#: Every stage worker process the harness runs: (stage, instances).
WORKERS: tuple[tuple[str, int], ...] = (
    ("poll", 1),
    ("extract", 2),
    ("sign", 2),
    ("cluster", 1),
    ("enrich", 1),
    ("index", 1),
    ("alert", 2),
    ("deliver", 1),
)

# --- the site ------------------------------------------------------------------------


def vocabulary() -> list[str]:
    """Arabic words from the bundled site's gold texts (the keyword left out)."""
    words: set[str] = set()
    for path in sorted((default_site_root() / "gold").glob("*.txt")):
        for word in path.read_text(encoding="utf-8").split():
            word = word.strip(".,،؛:!?()«»\"'-")
            if len(word) > 2 and KEYWORD not in word and not word.isascii():
                words.add(word)
    return sorted(words)


@dataclass
class Page:
    """One published article: where, when, and what it is."""

    n: int
    feed: int
    path: str
    at: float  # seconds after the start when it appears in its feed
    title: str
    paragraphs: list[str]
    story: int  # the wire story it copies (its own number when it is an original)
    fails: bool = False  # answers 404: dead-lettered by extract
    alerts: bool = False  # its story has the keyword


@dataclass
class Site:
    """The generated site: ``feeds`` feeds, ``pages`` published over ``publish`` seconds."""

    feeds: int
    pages: list[Page]
    start: float = field(default_factory=time.monotonic)

    @classmethod
    def generate(cls, rng: random.Random, feeds: int, articles: int, publish: float) -> Site:
        words = vocabulary()
        pages: list[Page] = []
        originals: list[Page] = []
        for n in range(articles):
            feed = n % feeds
            at = rng.uniform(0, publish) if n >= feeds else 0.0  # every feed has one at once
            if originals and rng.random() < 0.08:  # a wire copy of an earlier story
                story = rng.choice(originals)
                page = Page(n, feed, "", at, story.title, story.paragraphs, story.story)
                page.alerts = story.alerts
                page.at = max(at, story.at)
            else:
                alerts = rng.random() < 0.03
                paragraphs = [" ".join(rng.choices(words, k=rng.randint(25, 40))) for _ in range(5)]
                if alerts:
                    paragraphs[1] = f"{paragraphs[1]} {KEYWORD} {paragraphs[2][:40]}"
                title = " ".join(rng.choices(words, k=8))
                page = Page(n, feed, "", at, title, paragraphs, n, alerts=alerts)
                page.fails = rng.random() < 0.03
                if not page.fails:
                    originals.append(page)
            page.path = f"/f{feed}/a/{n}.html"
            pages.append(page)
        return cls(feeds, pages)

    def published(self, now: float | None = None) -> list[Page]:
        elapsed = (now or time.monotonic()) - self.start
        return [p for p in self.pages if p.at <= elapsed]

    def feed_items(self, feed: int) -> list[Page]:
        """The newest pages of ``feed`` published so far (at most 300), oldest first."""
        return [p for p in self.published() if p.feed == feed][-300:]

    def feed_xml(self, feed: int, base: str) -> bytes:
        items = self.feed_items(feed)
        # Published now, in wall-clock time: the adaptive schedule keeps polling a
        # feed that publishes, and backs off from one whose items are weeks old.
        epoch = datetime.now(UTC) - timedelta(seconds=time.monotonic() - self.start)
        body = "".join(
            f"<item><title>{p.title}</title><link>{base}{p.path}</link>"
            f"<guid>{base}{p.path}</guid>"
            f"<pubDate>{format_datetime(epoch + timedelta(seconds=p.at))}</pubDate></item>"
            for p in reversed(items)
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>منفذ {feed}</title><link>{base}/f{feed}/</link>"
            f"<description>أخبار</description><language>ar</language>{body}</channel></rss>"
        ).encode()

    def page_html(self, page: Page, base: str) -> bytes:
        paragraphs = "".join(f"<p>{text}</p>" for text in page.paragraphs)
        return (
            '<!DOCTYPE html><html lang="ar" dir="rtl"><head><meta charset="utf-8">'
            f"<title>{page.title}</title>"
            f'<link rel="canonical" href="{base}{page.path}">'
            f'<meta property="article:published_time" content="2026-11-20T10:00:00+03:00">'
            f"</head><body><article><h1>{page.title}</h1>{paragraphs}</article></body></html>"
        ).encode()


class SiteServer:
    """Serves a :class:`Site` on 127.0.0.1: ``/f<N>/feed.xml`` and its pages."""

    def __init__(self, site: Site) -> None:
        self.site = site
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, kind, status = server.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.by_path = {p.path: p for p in site.pages}
        #: Every path asked for at least once.
        self.served: set[str] = set()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, path: str) -> tuple[bytes, str, int]:
        path = path.split("?")[0]
        self.served.add(path)
        if path.endswith("/feed.xml"):
            feed = int(path.split("/")[1][1:])
            return self.site.feed_xml(feed, self.base), "application/rss+xml", 200
        page = self.by_path.get(path)
        if path == "/robots.txt" or page is None or page.fails:
            return b"not here", "text/plain", 404
        return self.site.page_html(page, self.base), "text/html; charset=utf-8", 200

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class WebhookReceiver:
    """Records every delivery by its ``X-Rasd-Alert-Id``; can go down (refuse
    connections) and come back on the same port."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self.up()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with receiver._lock:
                    receiver.deliveries.append(
                        (self.headers.get("X-Rasd-Alert-Id") or "?", time.monotonic())
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(alert for alert, _ in self.deliveries)


# --- the workers ---------------------------------------------------------------------


class Workers:
    """Each stage worker as its own ``rasd worker`` process, restartable by name.

    Like a service manager's restart policy, :meth:`supervise` starts again, after
    a few seconds, a worker that exited on its own (one that could not reach Kafka
    or Elasticsearch at start-up exits with a one-line error); a worker being
    killed by the harness is left down until the fault ends.
    """

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.held: set[str] = set()  # killed by a fault, restarted when it ends
        self.restarts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def supervise(self) -> None:
        while not self.stopping.wait(3.0):
            with self._lock:
                for name, proc in list(self.procs.items()):
                    if name not in self.held and proc.poll() is not None:
                        self.restarts[name] += 1
                        self.start(name)

    def start(self, name: str) -> None:
        stage = name.rsplit("-", 1)[0]
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "rasd", "worker", stage],
            env={**self.env, "RASD_INSTANCE_ID": name},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def names(self, stage: str | None = None) -> list[str]:
        return [n for n in self.procs if stage is None or n.rsplit("-", 1)[0] == stage]

    def kill(self, name: str) -> None:
        with self._lock:
            self.held.add(name)
            proc = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            proc.wait()

    def restart(self, name: str) -> None:
        with self._lock:
            self.held.discard(name)
            self.start(name)

    def stop_all(self) -> None:
        self.stopping.set()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- the faults ----------------------------------------------------------------------


@dataclass
class Fault:
    at: float  # seconds after the start
    kind: str  # kill-worker, kill-kafka, kill-elasticsearch, pause-elasticsearch, ...
    target: str
    lasts: float  # seconds until the restart, the resume or the lift
    began: float | None = None
    ended: float | None = None
    note: str = ""


def schedule(rng: random.Random, seconds: float, long: bool) -> list[Fault]:
    """The faults of a run of ``seconds``: worker kills at random moments, and the
    service faults one after another, each at a random moment of its own slot."""
    faults: list[Fault] = []
    kills = 3 if long else 1
    window = (5.0, seconds * 0.85)
    for stage, instances in WORKERS:
        for _ in range(kills):
            instance = rng.randrange(instances)
            faults.append(
                Fault(rng.uniform(*window), "kill-worker", f"{stage}-{instance}", rng.uniform(1, 6))
            )
    services: list[tuple[str, str, float]] = [
        ("kill", "kafka", 5.0),
        ("kill", "elasticsearch", 3.0),
        ("pause", "elasticsearch", 30.0 if long else 10.0),
        ("block", "elasticsearch", 30.0 if long else 10.0),
        ("down", "webhook", 60.0 if long else 15.0),
    ]
    if long:  # longer than the consumer session timeout (45 s)
        services.append(("kill", "kafka", 55.0))
    rng.shuffle(services)
    slot = (window[1] - window[0]) / len(services)
    for i, (kind, target, lasts) in enumerate(services):
        begin = window[0] + i * slot
        at = rng.uniform(begin, begin + max(0.0, slot - lasts - 20))
        faults.append(Fault(at, f"{kind}-{target}", target, lasts))
    return sorted(faults, key=lambda f: f.at)


class Injector:
    """Applies a schedule: each fault at its moment, undone after it ``lasts``."""

    def __init__(
        self,
        faults: list[Fault],
        workers: Workers,
        stack: LocalStack,
        es: Any,
        namespace: str,
        hook: WebhookReceiver,
        start: float,
        say: Callable[[str], None],
    ) -> None:
        self.faults, self.workers, self.stack, self.es = faults, workers, stack, es
        self.namespace, self.hook, self.start, self.say = namespace, hook, start, say
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self._services = threading.Lock()  # one service fault at a time

    def run(self) -> None:
        threads = []
        for fault in self.faults:
            if self.stop.wait(max(0.0, self.start + fault.at - time.monotonic())):
                break
            thread = threading.Thread(target=self.apply, args=(fault,), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()

    def apply(self, fault: Fault) -> None:
        fault.began = time.monotonic() - self.start
        self.say(f"{fault.began:7.1f}s  {fault.kind} {fault.target} for {fault.lasts:.0f}s")
        try:
            if fault.kind == "kill-worker":
                self.workers.kill(fault.target)
                time.sleep(fault.lasts)
                self.workers.restart(fault.target)
            else:
                with self._services:
                    self._service(fault)
        except Exception as exc:  # a fault that could not be applied is reported
            fault.note = f"failed: {exc!r}"
        fault.ended = time.monotonic() - self.start

    def _service(self, fault: Fault) -> None:
        progress: Callable[[str], None] = lambda line: None  # noqa: E731
        if fault.kind.startswith("kill-"):
            self.stack.kill(fault.target)
            time.sleep(fault.lasts)
            self.stack.up(progress, only=fault.target)
        elif fault.kind == "pause-elasticsearch":
            self.stack.pause("elasticsearch")
            try:
                time.sleep(fault.lasts)
            finally:
                self.stack.resume("elasticsearch")
        elif fault.kind == "block-elasticsearch":
            indices = f"{self.namespace}-articles-*,{self.namespace}-alerts*"
            self.es.indices.put_settings(index=indices, settings={"index.blocks.write": True})
            time.sleep(fault.lasts)
            self.es.indices.put_settings(index=indices, settings={"index.blocks.write": None})
        elif fault.kind == "down-webhook":
            self.hook.down()
            time.sleep(fault.lasts)
            self.hook.up()


# --- the checks ----------------------------------------------------------------------


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` as a ``read_committed`` consumer sees it."""
    from kafka import TopicPartition

    consumer = new_consumer(settings.kafka, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        read_to_end(consumer, records.append, timeout=120)
        return records
    finally:
        consumer.close()


def url_of(value: bytes | None) -> str:
    try:
        return str(json.loads(value or b"{}").get("url", ""))
    except ValueError:
        return ""


@dataclass
class Report:
    seed: int
    faults: list[Fault]
    published: int
    failing: int
    indexed: int
    lost: list[str]
    duplicated: list[str]
    dead_lettered: Counter[str]
    unexpected_dlq: list[str]
    balance: list[tuple[str, int, int, int, bool]]  # stage, in, out, dlq, ok
    expected_alerts: int
    ledger: int
    ledger_duplicates: int
    undelivered: list[str]
    repeats: dict[str, int]
    explained: dict[str, str]
    topic_duplicates: dict[str, int]
    drained: bool
    seconds: float
    #: Workers started again by the supervisor after they exited on their own.
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.drained
            and not self.lost
            and not self.duplicated
            and not self.unexpected_dlq
            and all(row[-1] for row in self.balance)
            and self.ledger == self.expected_alerts
            and not self.ledger_duplicates
            and not self.undelivered
            and all(alert in self.explained for alert in self.repeats)
            and not any(self.topic_duplicates.values())
        )

    def table(self) -> str:
        lines = [f"seed {self.seed}: {len(self.faults)} faults", ""]
        lines.append(f"{'at (s)':>8} {'fault':<22} {'target':<14} {'lasts':>6}  note")
        for f in self.faults:
            began = f"{f.began:.1f}" if f.began is not None else "-"
            lines.append(f"{began:>8} {f.kind:<22} {f.target:<14} {f.lasts:>5.0f}s  {f.note}")
        lines += [
            "",
            f"articles published {self.published} (of which failing on purpose {self.failing}), "
            f"indexed {self.indexed}, drained: {self.drained}, {self.seconds:.0f} s",
            "workers that exited on their own and were restarted: "
            + (", ".join(f"{n} x{k}" for n, k in sorted(self.restarts.items())) or "none"),
            f"lost {len(self.lost)}   duplicated {len(self.duplicated)}   "
            f"dead-lettered {sum(self.dead_lettered.values())} {dict(self.dead_lettered)}   "
            f"dead-lettered but not failing on purpose {len(self.unexpected_dlq)}",
            "",
            f"{'stage':<8} {'in':>6} {'out':>6} {'dlq':>5}  in = out + dlq",
        ]
        for stage, n_in, n_out, n_dlq, ok in self.balance:
            lines.append(f"{stage:<8} {n_in:>6} {n_out:>6} {n_dlq:>5}  {'yes' if ok else 'NO'}")
        lines += [
            "",
            f"alerts expected {self.expected_alerts}, in the ledger {self.ledger} "
            f"(duplicated {self.ledger_duplicates}), not delivered {len(self.undelivered)}, "
            f"delivered more than once {len(self.repeats)}",
        ]
        for alert, n in self.repeats.items():
            why = self.explained.get(alert, "NOT EXPLAINED")
            lines.append(f"  repeat: {alert} delivered {n} times ({why})")
        lines.append(
            "records twice on read_committed topics: "
            + ", ".join(f"{t.split('.')[-1]} {n}" for t, n in self.topic_duplicates.items())
        )
        lines.append("RESULT: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def check(
    settings: Settings,
    site: Site,
    server: SiteServer,
    hook: WebhookReceiver,
    faults: list[Fault],
    seed: int,
    drained: bool,
    seconds: float,
    start: float,
) -> Report:
    topics = Topics(settings.namespace)
    es = new_elasticsearch(settings.elasticsearch)
    try:
        es.indices.refresh(index=f"{settings.namespace}-*")
        hits = es.search(
            index=f"{settings.namespace}-articles",
            size=10_000,
            source=["url", "canonical_url"],
            query={"match_all": {}},
        )["hits"]["hits"]
        alerts = es.search(
            index=f"{settings.namespace}-alerts",
            size=10_000,
            source=["rule_id", "cluster_id"],
            query={"match_all": {}},
        )["hits"]["hits"]
    finally:
        es.close()
    indexed = Counter(h["_source"]["url"].removeprefix(server.base) for h in hits)
    published = site.pages
    expected_ok = {p.path for p in published if not p.fails}
    records = {t: read_topic(settings, t) for t in topics.pipeline()}
    dlq = records[topics.dlq]
    dead = Counter[str]()
    dlq_paths: dict[str, str] = {}
    for r in dlq:
        headers = {k: v.decode() for k, v in r.headers}
        dead[f"{headers.get('rasd.stage')}:{headers.get('rasd.reason')}"] += 1
        dlq_paths[url_of(r.value).removeprefix(server.base)] = headers.get("rasd.reason", "")
    lost = sorted(p for p in expected_ok if p not in indexed and p not in dlq_paths)
    lost += sorted(p.path for p in published if p.fails and p.path not in dlq_paths)
    duplicated = sorted(p for p, n in indexed.items() if n > 1)
    unexpected = sorted(p for p in dlq_paths if p in expected_ok)

    def stage_dlq(stage: str) -> int:
        return sum(n for k, n in dead.items() if k.split(":")[0] == stage)

    flow = [
        ("extract", topics.items, topics.articles),
        ("sign", topics.articles, None),
        ("cluster", None, topics.deduped),
        ("enrich", topics.deduped, topics.enriched),
    ]
    signed = len(read_topic(settings, topics.signed))
    balance = []
    for stage, source, out in flow:
        n_in = len(records[source]) if source else signed
        n_out = len(records[out]) if out else signed
        n_dlq = stage_dlq(stage)
        balance.append((stage, n_in, n_out, n_dlq, n_in == n_out + n_dlq))
    n_enriched = len(records[topics.enriched])
    balance.append(
        (
            "index",
            n_enriched,
            len(hits),
            stage_dlq("index"),
            n_enriched == len(hits) + stage_dlq("index"),
        )
    )
    stories = {p.story for p in published if p.alerts and not p.fails}
    ledger_keys = Counter((a["_source"]["rule_id"], a["_source"]["cluster_id"]) for a in alerts)
    alert_ids = {a["_id"] for a in alerts}
    delivered = hook.counts()
    repeats = {a: n for a, n in delivered.items() if n > 1}
    explained = explain_repeats(repeats, hook, faults, start)
    duplicates: dict[str, int] = {}
    for topic, recs in records.items():
        keys = Counter(
            (r.key, dict(r.headers).get("rasd.stage")) if topic == topics.dlq else r.key
            for r in recs
        )
        duplicates[topic] = sum(n - 1 for n in keys.values() if n > 1)
    return Report(
        seed=seed,
        faults=faults,
        published=len(published),
        failing=sum(p.fails for p in published),
        indexed=len(hits),
        lost=lost,
        duplicated=duplicated,
        dead_lettered=dead,
        unexpected_dlq=unexpected,
        balance=balance,
        expected_alerts=len(stories),
        ledger=len(alerts),
        ledger_duplicates=sum(n - 1 for n in ledger_keys.values() if n > 1),
        undelivered=sorted(alert_ids - set(delivered)),
        repeats=repeats,
        explained=explained,
        topic_duplicates=duplicates,
        drained=drained,
        seconds=seconds,
    )


def explain_repeats(
    repeats: dict[str, int], hook: WebhookReceiver, faults: list[Fault], start: float
) -> dict[str, str]:
    """A repeat is explained by a kill of the deliver worker between two deliveries:
    the window between a webhook's answer and the delivery record being written."""
    times: dict[str, list[float]] = {}
    for alert, at in hook.deliveries:
        times.setdefault(alert, []).append(at - start)
    # Only a deliver worker killed between a send and its record explains a repeat.
    kills = [f for f in faults if f.target.startswith("deliver") and f.began is not None]
    explained = {}
    for alert in repeats:
        first, last = min(times[alert]), max(times[alert])
        for f in kills:
            if f.began is not None and first - 1 <= f.began <= last:
                explained[alert] = f"{f.kind} {f.target} at {f.began:.1f}s"
                break
    return explained


# --- the run -------------------------------------------------------------------------


def worker_env(namespace: str, feeds_file: Path, rules_file: Path) -> dict[str, str]:
    """The environment of the rasd processes a bench runs against its local site."""
    return {
        **os.environ,
        "RASD_NAMESPACE": namespace,
        "RASD_FEEDS_FILE": str(feeds_file),
        "RASD_RULES_FILE": str(rules_file),
        "RASD_ALLOW_PRIVATE_NETWORKS": "true",
        "RASD_HOST_MIN_SPACING": "0",
        "RASD_HOST_MAX_CONCURRENCY": "64",
        "RASD_POLL_INTERVAL": "10",
        "RASD_RESPECT_ROBOTS": "false",
        "RASD_LOG_LEVEL": "WARNING",
        "RASD_METRICS_PORT": "0",
    }


def write_config(dest: Path, site: Site, base: str, hook: WebhookReceiver) -> tuple[Path, Path]:
    feeds = dest / "feeds.yaml"
    feeds.write_text(
        "feeds:\n"
        + "".join(
            f"  - {{url: '{base}/f{n}/feed.xml', name: f{n}, outlet: outlet-{n}, "
            f"country: SY, language: ar}}\n"
            for n in range(site.feeds)
        ),
        encoding="utf-8",
    )
    rules = dest / "rules.yaml"
    rules.write_text(
        f"rules:\n  - id: {RULE_ID}\n    name: زلزال\n    any: [{KEYWORD}]\n"
        "    destinations: [hook]\n"
        f"destinations:\n  hook: {{type: webhook, url: '{hook.url}', retries: 12, backoff: 1.0, "
        "timeout: 5}\n",
        encoding="utf-8",
    )
    return feeds, rules


def run(
    seed: int,
    seconds: float,
    feeds: int,
    articles: int,
    say: Callable[[str], None] = print,
    drain_timeout: float = 300.0,
) -> Report:
    """One chaos run on the local stack; the caller prints or asserts the report."""
    rng = random.Random(seed)
    long = seconds >= 300
    settings = Settings(namespace=f"chaos-{uuid.uuid4().hex[:8]}")
    site = Site.generate(rng, feeds, articles, seconds * 0.7)
    faults = schedule(rng, seconds, long)
    say(f"seed {seed}; namespace {settings.namespace}; {feeds} feeds, {articles} articles")
    for f in faults:
        say(f"  scheduled {f.at:7.1f}s  {f.kind:<22} {f.target:<14} {f.lasts:.0f}s")
    hook = WebhookReceiver()
    stack = LocalStack(settings)
    es = new_elasticsearch(settings.elasticsearch)
    with tempfile.TemporaryDirectory() as tmp, SiteServer(site) as server:
        work = Path(tmp)
        feeds_file, rules_file = write_config(work, site, server.base, hook)
        env = worker_env(settings.namespace, feeds_file, rules_file)
        workers = Workers(env, Path(os.environ.get("RASD_CHAOS_LOGS", tmp)))
        from rasd.app import Runtime, reset_namespace

        prepared = Settings(
            namespace=settings.namespace, feeds_file=feeds_file, rules_file=rules_file
        )
        runtime = Runtime(prepared)
        runtime.prepare()
        runtime.shutdown([])
        for stage, instances in WORKERS:
            for i in range(instances):
                workers.start(f"{stage}-{i}")
        site.start = start = time.monotonic()
        injector = Injector(faults, workers, stack, es, settings.namespace, hook, start, say)
        injector.thread.start()
        threading.Thread(target=workers.supervise, daemon=True).start()
        drained = False
        try:
            injector.thread.join(timeout=seconds + 600)
            deadline = time.monotonic() + drain_timeout
            groups = {
                f"{settings.namespace}.{s}": t
                for s, t in (
                    ("extract", "items"),
                    ("dedupe", "articles"),
                    ("cluster", "signed"),
                    ("enrich", "unique"),
                    ("index", "enriched"),
                    ("alert", "enriched"),
                    ("deliver-hook", "alerts"),
                )
            }
            groups = {g: f"{settings.namespace}.{t}" for g, t in groups.items()}
            while time.monotonic() < deadline and time.monotonic() - start < seconds:
                time.sleep(1)
            quiet = 0
            while time.monotonic() < deadline:
                try:
                    lag = consumer_lag(settings.kafka, groups)
                except Exception:
                    lag = {"?": 1}
                quiet = quiet + 1 if not any(lag.values()) else 0
                fetched = all(p.path in server.served for p in site.pages)
                if quiet >= 5 and fetched:
                    drained = True
                    break
                time.sleep(2)
        finally:
            injector.stop.set()
            workers.stop_all()
        report = check(
            settings, site, server, hook, faults, seed, drained, time.monotonic() - start, start
        )
        report.restarts = dict(workers.restarts)
        hook.down()
        with contextlib.suppress(Exception):
            reset_namespace(prepared)
    es.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(10**6))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--articles", type=int, default=2000)
    args = parser.parse_args()
    report = run(args.seed, args.minutes * 60, args.feeds, args.articles)
    print(report.table())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
