"""The pipeline assembled: settings, adapters and pure stages wired into workers.

This module and :mod:`rasd.cli` are the composition root. Each stage runs as a
:class:`connectors.kafka.StageWorker` in its own consumer group; ``rasd run``
runs them all as threads of one process next to the feed scheduler, and
``rasd worker STAGE`` runs one of them alone, to scale out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.dedupe_state import KafkaDedupeState
from connectors.elastic import ElasticStore
from connectors.extract import extract_article
from connectors.http import GuardedClient
from connectors.kafka import (
    BatchResult,
    KafkaSink,
    Output,
    StageWorker,
    Topics,
    consumer_lag,
    ensure_topics,
    per_record,
)
from connectors.metrics import Stats
from connectors.poller import FeedPoller, FeedScheduler, PollResult
from pipeline.errors import PermanentError
from pipeline.feeds import Feed, load_feeds
from pipeline.models import Alert, Article, DedupedArticle, EnrichedArticle, FeedItem
from pipeline.rules import RuleMatcher, load_rules
from pipeline.settings import Settings
from pipeline.stages import Deduper, build_alerts, enrich

log = logging.getLogger("rasd")
alert_log = logging.getLogger("rasd.alerts")

#: The stage workers, in pipeline order.
STAGES = ("extract", "dedupe", "enrich", "index", "alert")


def reset_namespace(settings: Settings) -> list[str]:
    """Delete every topic, consumer group, index and template of the settings' namespace."""
    from connectors.kafka import delete_namespace

    groups = (*STAGES, "dlq-replay")
    deleted = delete_namespace(settings.kafka_servers, Topics(settings.namespace), groups)
    store = ElasticStore.from_settings(settings)
    try:
        return deleted + store.delete_all()
    finally:
        store.close()


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Summary:
    """What ``rasd run --once`` prints."""

    polls: list[PollResult]
    counts: dict[str, dict[str, int]]
    drained: bool
    seconds: float

    def value(self, stage: str, outcome: str) -> int:
        return self.counts.get(stage, {}).get(outcome, 0)

    @property
    def dlq(self) -> int:
        return sum(c.get("dlq", 0) for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "feeds_ok": sum(p.ok for p in self.polls),
            "feeds_failed": sum(not p.ok for p in self.polls),
            "items": self.value("poll", "items"),
            "articles_extracted": self.value("extract", "ok"),
            "articles_indexed": self.value("index", "indexed"),
            "duplicates": self.value("dedupe", "duplicate"),
            "alerts": self.value("alert", "alerts"),
            "dlq": self.dlq,
            "drained": self.drained,
            "seconds": round(self.seconds, 1),
        }


class Pipeline:
    """Everything ``rasd run`` needs, built lazily from the settings."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.topics = Topics(settings.namespace)
        self.stats = Stats()
        self.stop = threading.Event()
        self.clock = clock
        self.feeds: list[Feed] = load_feeds(settings.feeds_path)
        self.matcher = RuleMatcher(load_rules(settings.rules_path))
        self.store = ElasticStore.from_settings(settings)
        self.http = GuardedClient(
            settings.user_agent, allow_private_networks=settings.allow_private_networks
        )
        self._sinks: list[KafkaSink] = []
        self.workers: list[StageWorker] = []

    # --- setup -------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the topics and the Elasticsearch templates and indices (idempotent)."""
        created = ensure_topics(self.settings.kafka_servers, self.topics, self.settings.partitions)
        if created:
            log.info("created topics: %s", ", ".join(created))
        made = self.store.ensure(self.clock())
        if made:
            log.info("created indices: %s", ", ".join(made))

    def sink(self, name: str) -> KafkaSink:
        sink = KafkaSink(self.settings.kafka_servers, client_id=f"rasd-{name}")
        self._sinks.append(sink)
        return sink

    # --- stages --------------------------------------------------------------------

    def worker(self, stage: str) -> StageWorker:
        sink = self.sink(stage)
        t = self.topics
        on_flushed: Callable[[BatchResult], None] | None = None
        handler: Callable[[list[Any]], BatchResult]
        if stage == "extract":
            source, handler = t.items, per_record(self._extract)
        elif stage == "dedupe":
            source, handler = t.articles, self._dedupe_handler(sink)
        elif stage == "enrich":
            source, handler = t.unique, per_record(self._enrich)
        elif stage == "index":
            source, handler = t.enriched, self._index
        elif stage == "alert":
            source, handler, on_flushed = t.enriched, self._alert, self._alerted
        else:
            raise ValueError(f"unknown stage {stage!r}")
        # Fetching and extracting take tens of milliseconds per article, so the
        # extract stage takes small batches: its outputs leave at each batch's end.
        batch = 8 if stage == "extract" else 200
        return StageWorker(
            stage,
            self.settings.kafka_servers,
            t.group(stage),
            source,
            handler,
            sink,
            t.dlq,
            self.stats,
            self.stop,
            max_records=batch,
            on_flushed=on_flushed,
        )

    def _extract(self, record: Any) -> list[Output]:
        item = FeedItem.from_json(record.value)
        page = self.http.fetch(item.url)
        article = extract_article(item, page, self.clock())
        return [Output(self.topics.articles, article.id, article.to_json())]

    def _dedupe_handler(self, sink: KafkaSink) -> Callable[[list[Any]], BatchResult]:
        state = KafkaDedupeState(self.settings.kafka_servers, self.topics.dedupe_state, sink)
        state.load()
        deduper = Deduper(state)

        def check(record: Any) -> list[Output]:
            verdict = deduper.check(Article.from_json(record.value))
            if verdict.is_duplicate:
                self.stats.inc("dedupe", "duplicate")
            return [Output(self.topics.unique, verdict.id, verdict.to_json())]

        inner = per_record(check)

        def handler(records: list[Any]) -> BatchResult:
            state.catch_up()
            return inner(records)

        return handler

    def _enrich(self, record: Any) -> list[Output]:
        article = enrich(DedupedArticle.from_json(record.value), self.matcher)
        return [Output(self.topics.enriched, article.id, article.to_json())]

    def _decode_all(
        self, records: list[Any], result: BatchResult
    ) -> list[tuple[Any, EnrichedArticle]]:
        decoded = []
        for record in records:
            try:
                decoded.append((record, EnrichedArticle.from_json(record.value)))
            except PermanentError as exc:
                result.failed.append((record, exc))
        return decoded

    def _index(self, records: list[Any]) -> BatchResult:
        result = BatchResult()
        decoded = self._decode_all(records, result)
        report = self.store.write([a for _, a in decoded], self.clock())
        failed = {a.id: exc for a, exc in report.failed}
        for record, article in decoded:
            if article.id in failed:
                result.failed.append((record, failed[article.id]))
        result.count("indexed", len(report.written))
        return result

    def _alert(self, records: list[Any]) -> BatchResult:
        result = BatchResult()
        pending: dict[str, Alert] = {}
        for _, article in self._decode_all(records, result):
            for alert in build_alerts(article, self.matcher.match(article), self.clock):
                # The alerts index is the ledger of what was already raised.
                if alert.id not in pending and not self.store.alert_exists(alert.id):
                    pending[alert.id] = alert
        result.outputs = [Output(self.topics.alerts, a.id, a.to_json()) for a in pending.values()]
        result.count("checked", len(records))
        return result

    def _alerted(self, result: BatchResult) -> None:
        for out in result.outputs:
            alert = Alert.from_json(out.value)
            try:
                created = self.store.record_alert(alert)
            except PermanentError as exc:
                # The alert is on the topic; it still goes to the log, only Kibana misses it.
                self.stats.inc("alert", "index_failed")
                log.error(
                    "alert %s could not be stored in %s: %s", alert.id, self.store.alerts_index, exc
                )
                created = True
            if created:
                self.stats.inc("alert", "alerts")
                alert_log.warning(
                    "ALERT [%s] %s | %s | %s", alert.rule_name, alert.title, alert.outlet, alert.url
                )

    # --- running -------------------------------------------------------------------

    def poller(self) -> FeedPoller:
        return FeedPoller(
            self.http,
            self.sink("poll"),
            self.topics.items,
            self.settings.namespace,
            self.stats,
            self.clock,
        )

    def start_workers(self, stages: tuple[str, ...] = STAGES) -> list[threading.Thread]:
        threads = []
        self.workers = []
        for stage in stages:
            worker = self.worker(stage)
            self.workers.append(worker)
            thread = threading.Thread(
                target=self._guard(worker), name=f"worker-{stage}", daemon=True
            )
            thread.start()
            threads.append(thread)
        return threads

    def _guard(self, worker: StageWorker) -> Callable[[], None]:
        def run() -> None:
            # A worker crash is a bug, but the pipeline keeps the others running and
            # restarts this one; its uncommitted batch is redelivered.
            while not self.stop.is_set():
                try:
                    worker.run()
                except Exception:
                    self.stats.inc(worker.stage, "crashed")
                    log.exception("%s worker crashed; restarting in 5s", worker.stage)
                    worker.close()
                    self.stop.wait(5)

        return run

    def lag(self) -> dict[str, int]:
        t = self.topics
        groups = {
            t.group("extract"): t.items,
            t.group("dedupe"): t.articles,
            t.group("enrich"): t.unique,
            t.group("index"): t.enriched,
            t.group("alert"): t.enriched,
        }
        return consumer_lag(self.settings.kafka_servers, groups)

    def wait_drained(self, timeout: float, progress: Callable[[int], None]) -> bool:
        """Wait until every stage has committed everything (twice in a row)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            pending = sum(self.lag().values())
            progress(pending)
            quiet = quiet + 1 if pending == 0 else 0
            if quiet >= 2:
                return True
            if self.stop.wait(1.0):
                return False  # interrupted (Ctrl-C, SIGTERM)
        return False

    def run_once(self, progress: Callable[[str], None]) -> Summary:
        begin = time.monotonic()
        self.prepare()
        threads = self.start_workers()
        try:
            # Poll only once every stage has joined its group, so that the first
            # items do not wait for a group rebalance.
            progress("waiting for the stage workers to join their consumer groups")
            deadline = time.monotonic() + 60
            for worker in self.workers:
                worker.ready.wait(max(0.0, deadline - time.monotonic()))
            progress(f"polling {len(self.feeds)} feeds")
            polls = self.poller().poll_all(self.feeds)
            drained = self.wait_drained(
                self.settings.drain_timeout,
                lambda n: progress(f"draining: {n} message(s) in flight"),
            )
        finally:
            self.shutdown(threads)
        return Summary(polls, self.stats.snapshot(), drained, time.monotonic() - begin)

    def run_forever(self, report_every: float = 60.0) -> None:
        self.prepare()
        threads = self.start_workers()
        scheduler = FeedScheduler(self.poller(), self.feeds, self.settings.poll_interval)
        scheduler.start()
        log.info(
            "rasd running: %d feeds, %d rules, stages %s",
            len(self.feeds),
            len(self.matcher.rules),
            ", ".join(STAGES),
        )
        try:
            while not self.stop.wait(report_every):
                log.info("counts: %s", self.stats.snapshot())
        finally:
            scheduler.stop()
            self.shutdown(threads)

    def shutdown(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for sink in self._sinks:
            sink.close()
        self.http.close()
        self.store.close()
