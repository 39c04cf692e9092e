"""The pipeline assembled: settings, adapters and pure stages wired into workers.

This module and :mod:`rasd.cli` are the composition root. Each stage runs as a
:class:`connectors.kafka.StageWorker` in its own consumer group; ``rasd run``
runs them all as threads of one process next to the feed scheduler, and
``rasd worker STAGE`` runs one of them alone, to scale out.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.alert_sinks import AlertStateIndex, LogSink, deliver, make_sink
from connectors.dedupe_state import KafkaDedupeState
from connectors.elastic import ElasticStore
from connectors.extract import extract_article
from connectors.feed_shards import (
    KafkaFeedStateStore,
    ShardedPoller,
    catalogue_partitions,
    check_partitions,
    publish_catalogue,
)
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
from connectors.politeness import HostPoliteness, RobotsPolicy
from connectors.poller import FeedPoller, FeedScheduler, PollResult
from pipeline.alerting import build_alerts, parse_destinations, throttle_bucket
from pipeline.dedupe import Deduper, sign
from pipeline.enrichment import enrich
from pipeline.errors import PermanentError, RasdError
from pipeline.feeds import Feed, load_feeds
from pipeline.models import (
    Alert,
    Article,
    DedupedArticle,
    EnrichedArticle,
    FeedItem,
    SignedArticle,
)
from pipeline.neardup import NearDupConfig, NearDuplicateIndex
from pipeline.rules import BUILTIN_DESTINATIONS, Rule, RuleMatcher, load_rule_set
from pipeline.schedule import ScheduleBounds
from pipeline.settings import Settings
from rasd.stage_names import STAGES

log = logging.getLogger("rasd")


def delivery_stages(rules: tuple[Rule, ...] | list[Rule]) -> tuple[str, ...]:
    """``deliver-<name>`` for every destination the rules name, except the built-ins."""
    names = dict.fromkeys(d for r in rules for d in r.destinations)
    return tuple(f"deliver-{n}" for n in names if n not in BUILTIN_DESTINATIONS)


def reset_namespace(settings: Settings) -> list[str]:
    """Delete every topic, consumer group, index and template of the settings' namespace."""
    from connectors.kafka import delete_namespace

    try:
        deliveries = delivery_stages(load_rule_set(settings.rules_path).rules)
    except RasdError:
        deliveries = ()  # an unreadable rules file must not prevent a reset
    groups = ("poll", *STAGES, *deliveries, "dlq-replay")
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
        rule_set = load_rule_set(settings.rules_path)
        self.destinations = parse_destinations(settings.rules_path, rule_set.destinations)
        self.matcher = RuleMatcher(rule_set.rules)
        self._alert_state: AlertStateIndex | None = None
        self.store = ElasticStore.from_settings(settings)
        self.http = GuardedClient(
            settings.user_agent,
            allow_private_networks=settings.allow_private_networks,
            # Every fetch's outcome (ok, blocked_address, too_large…) is a counter.
            on_outcome=lambda outcome: self.stats.inc("http", outcome),
        )
        # One budget per host for feed polls and article fetches alike.
        self.politeness = HostPoliteness(
            max_per_host=settings.host_max_concurrency, min_spacing=settings.host_min_spacing
        )
        self.robots = RobotsPolicy(self.http, "rasd", enabled=settings.respect_robots)
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
            source, handler = t.articles, per_record(self._sign)
        elif stage == "cluster":
            source, handler = t.signed, self._cluster_handler(sink)
        elif stage == "enrich":
            source, handler = t.unique, per_record(self._enrich)
        elif stage == "index":
            source, handler = t.enriched, self._index
        elif stage == "alert":
            source, handler, on_flushed = t.enriched, self._alert, self._alerted
        elif stage in self.delivery_stages():
            source, handler = t.alerts, self._deliver_handler(stage)
        else:
            raise ValueError(f"unknown stage {stage!r}")
        # Fetching and extracting take tens of milliseconds per article, so the
        # extract stage takes small batches: its outputs leave at each batch's end.
        batch = 8 if stage == "extract" else 200
        if stage.startswith("deliver-"):
            # A destination that is down takes its retries per alert; small
            # batches keep each poll well inside Kafka's max.poll.interval.ms.
            batch = 5
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
        if not self.robots.allowed(item.url):
            raise PermanentError("robots_disallowed", item.url)
        page = self.politeness.fetch(self.http, item.url)
        try:
            article = extract_article(item, page, self.clock())
        except PermanentError as exc:
            # Non-articles (not_article_*, no_article_text, not_html) go to the
            # DLQ like any permanent failure; each reason is counted as well.
            self.stats.inc("extract", f"refused_{exc.reason}")
            raise
        return [Output(self.topics.articles, article.id, article.to_json())]

    @property
    def near_config(self) -> NearDupConfig:
        return NearDupConfig(
            threshold=self.settings.dedupe_threshold,
            window=timedelta(days=self.settings.dedupe_window_days),
        )

    def _sign(self, record: Any) -> list[Output]:
        signed = sign(Article.from_json(record.value), self.near_config)
        return [Output(self.topics.signed, signed.id, signed.to_json())]

    def _cluster_handler(self, sink: KafkaSink) -> Callable[[list[Any]], BatchResult]:
        # Entries read back from the changelog rebuild the LSH index (a closure:
        # the deduper needs the state, and the state feeds the deduper).
        state = KafkaDedupeState(
            self.settings.kafka_servers,
            self.topics.dedupe_state,
            sink,
            on_entry=lambda kind, key, entry: deduper.remember(kind, key, entry),
        )
        deduper = Deduper(state, NearDuplicateIndex(self.near_config))
        state.load()

        def check(record: Any) -> list[Output]:
            signed = SignedArticle.from_json(record.value)
            verdict = deduper.check(signed, deduper.keys_of(signed))
            if verdict.is_duplicate:
                self.stats.inc("dedupe", "duplicate")
                self.stats.inc("dedupe", f"duplicate_{verdict.duplicate_kind}")
            return [Output(self.topics.unique, verdict.id, verdict.to_json())]

        inner = per_record(check)

        def handler(records: list[Any]) -> BatchResult:
            # Single writer, but the previous owner of the partition may have
            # written entries this process has not read yet.
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
            for alert in build_alerts(article, article.rule_matches, self.clock):
                # The alerts index is the ledger of what was already raised.
                if alert.id not in pending and not self.store.alert_exists(alert.id):
                    pending[alert.id] = self._throttle(alert)
        result.outputs = [Output(self.topics.alerts, a.id, a.to_json()) for a in pending.values()]
        result.count("checked", len(records))
        return result

    @property
    def alert_state(self) -> AlertStateIndex:
        if self._alert_state is None:
            self._alert_state = AlertStateIndex(self.store.client, self.settings.namespace)
        return self._alert_state

    def delivery_stages(self) -> tuple[str, ...]:
        """One ``deliver-<name>`` stage per destination a rule names (log is in-stage)."""
        return delivery_stages(self.matcher.rules)

    def _deliver_handler(self, stage: str) -> Callable[[list[Any]], BatchResult]:
        name = stage.removeprefix("deliver-")
        sink = make_sink(name, self.destinations[name])

        def handler(records: list[Any]) -> BatchResult:
            result = BatchResult()
            for record in records:
                try:
                    alert = Alert.from_json(record.value)
                except PermanentError as exc:
                    result.failed.append((record, exc))
                    continue
                rule = self.matcher.rule(alert.rule_id)
                if alert.throttled or rule is None or name not in rule.destinations:
                    result.count("skipped")
                    continue
                # A message seen twice (redelivery, a repeat on the topic) is sent once.
                if self.alert_state.delivery_state(alert.id, name) is not None:
                    result.count("duplicate")
                    continue
                delivered, error, attempts = deliver(sink, alert, self.stop.wait)
                self.alert_state.record_delivery(alert, name, delivered, error, attempts)
                result.count("delivered" if delivered else "undelivered")
            return result

        return handler

    def _throttle(self, alert: Alert) -> Alert:
        """Mark ``alert`` throttled if its rule already alerted in this realert window."""
        rule = self.matcher.rule(alert.rule_id)
        if rule is None or not rule.realert:
            return alert
        bucket = throttle_bucket(alert.created_at, rule.realert)
        if self.alert_state.claim_window(rule.id, bucket, alert.id):
            return alert
        return alert.model_copy(update={"throttled": True})

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
            if created and alert.throttled:
                self.stats.inc("alert", "throttled")
            elif created:
                self.stats.inc("alert", "alerts")
                # Webhooks, Slack and email have their own consumer groups on the
                # alerts topic (deliver-<name>); the log is immediate.
                rule = self.matcher.rule(alert.rule_id)
                if rule is None or "log" in rule.destinations:
                    LogSink().send(alert)

    # --- running -------------------------------------------------------------------

    def poller(self) -> FeedPoller:
        return FeedPoller(
            self.http,
            self.sink("poll"),
            self.topics.items,
            self.settings.namespace,
            self.stats,
            self.clock,
            state=self.feed_state,
            politeness=self.politeness,
            bounds=self.schedule_bounds,
        )

    @property
    def schedule_bounds(self) -> ScheduleBounds:
        """The adaptive schedule's bounds; a new feed starts at ``RASD_POLL_INTERVAL``."""
        interval = float(self.settings.poll_interval)
        return ScheduleBounds(default_interval=interval, min_interval=min(300.0, interval))

    @functools.cached_property
    def feed_state(self) -> KafkaFeedStateStore:
        """The feeds' poller state, kept in ``<ns>.feeds-state`` (docs/polling.md)."""
        return KafkaFeedStateStore(
            self.settings.kafka_servers, self.topics.feeds_state, self.sink("feed-state")
        )

    def sharded_poller(self, name: str = "rasd-poll") -> ShardedPoller:
        """This process's member of the poller group, after publishing the catalogue."""
        check_partitions(self.settings.kafka_servers, self.topics)
        upserted, removed = publish_catalogue(
            self.settings.kafka_servers, self.topics, self.feeds, self.sink("catalogue")
        )
        if upserted or removed:
            log.info("feed catalogue: %d feed(s) published, %d removed", upserted, removed)
        poller = self.poller()
        scheduler = FeedScheduler(poller, [], self.settings.poll_interval)
        return ShardedPoller(
            poller,
            scheduler,
            self.feed_state,
            self.settings.kafka_servers,
            self.topics,
            self.stop,
            name=name,
        )

    def start_poller(self) -> threading.Thread:
        """Run the sharded poller in a thread until :attr:`stop` is set."""
        sharded = self.sharded_poller()

        def run() -> None:
            while not self.stop.is_set():
                try:
                    sharded.run()
                except Exception:
                    self.stats.inc("poll", "crashed")
                    log.exception("poller crashed; restarting in 5s")
                    self.stop.wait(5)

        thread = threading.Thread(target=run, name="poller", daemon=True)
        thread.start()
        return thread

    def start_workers(self, stages: tuple[str, ...] | None = None) -> list[threading.Thread]:
        if stages is None:
            stages = (*STAGES, *self.delivery_stages())
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
            t.group("cluster"): t.signed,
            t.group("enrich"): t.unique,
            t.group("index"): t.enriched,
            t.group("alert"): t.enriched,
            **{t.group(stage): t.alerts for stage in self.delivery_stages()},
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
            check_partitions(self.settings.kafka_servers, self.topics)
            self.feed_state.load()
            for url, partition in catalogue_partitions(
                self.settings.kafka_servers, self.topics
            ).items():
                self.feed_state.route(url, partition)
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
        threads.append(self.start_poller())
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
            self.shutdown(threads)

    def shutdown(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for sink in self._sinks:
            sink.close()
        self.http.close()
        self.store.close()
