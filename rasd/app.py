"""The pipeline assembled: settings, adapters and the registered stages wired into workers.

This module and :mod:`rasd.cli` are the composition root. Each stage of
:mod:`rasd.stages` runs as a :class:`connectors.worker.StageWorker` in its own
consumer group; ``rasd run`` runs them all as threads of one process next to
the feed scheduler, and ``rasd worker STAGE`` runs one of them alone, to scale
out.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.dedupe_snapshot import remove as remove_snapshot
from connectors.dedupe_snapshot import snapshot_dir
from connectors.dedupe_store import DiskDedupeStore, store_path
from connectors.elastic import ElasticStore
from connectors.feed_shards import (
    KafkaFeedStateStore,
    ShardedPoller,
    catalogue_partitions,
    check_partitions,
    publish_catalogue,
)
from connectors.kafka import Producer, Topics, consumer_lag, delete_namespace, ensure_topics
from connectors.poller import FeedPoller, FeedScheduler, PollResult
from connectors.telemetry import FeedHealthCollector, KafkaProbe, LagCollector, Loop, Telemetry
from connectors.worker import StageWorker
from pipeline.errors import RasdError
from pipeline.feeds import Feed, load_feeds
from pipeline.rules import load_rule_set
from pipeline.schedule import ScheduleBounds
from pipeline.settings import Settings
from rasd.stages import DELIVER_PREFIX, STAGES, Stage, StageContext, find, stages_for
from rasd.stages.base import utcnow

log = logging.getLogger("rasd")


def reset_namespace(settings: Settings) -> list[str]:
    """Delete every topic, consumer group, index and template of the settings' namespace."""
    try:
        stages = stages_for(load_rule_set(settings.rules_path).rules)
    except RasdError:
        stages = STAGES  # an unreadable rules file must not prevent a reset
    groups = ("poll", *(s.group or s.name for s in stages), "dlq-replay")
    topics = Topics(settings.namespace)
    deleted = delete_namespace(settings.kafka, topics, groups)
    # A snapshot of the deleted state topic would be ahead of the new one.
    remove_snapshot(snapshot_dir(settings), topics.dedupe_state)
    DiskDedupeStore.remove(store_path(snapshot_dir(settings), topics.dedupe_state))
    store = ElasticStore.from_settings(settings)
    try:
        return deleted + store.delete_all()
    finally:
        store.close()


@dataclass
class Summary:
    """What ``rasd run --once`` prints."""

    polls: list[PollResult]
    counts: dict[str, dict[str, int]]
    drained: bool
    seconds: float
    #: (ok, failing or dead) feeds, when the summary is not of one pass of polls.
    feed_health: tuple[int, int] | None = None

    def value(self, stage: str, outcome: str) -> int:
        return self.counts.get(stage, {}).get(outcome, 0)

    @property
    def dlq(self) -> int:
        return sum(c.get("dlq", 0) for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        ok, failed = self.feed_health or (
            sum(p.ok for p in self.polls),
            sum(not p.ok for p in self.polls),
        )
        return {
            "feeds_ok": ok,
            "feeds_failed": failed,
            "items": self.value("poll", "items"),
            "articles_extracted": self.value("extract", "ok"),
            "articles_indexed": self.value("index", "indexed"),
            "duplicates": self.value("cluster", "duplicate"),
            "alerts": self.value("alert", "alerts"),
            "dlq": self.dlq,
            "drained": self.drained,
            "seconds": round(self.seconds, 1),
        }


class Runtime:
    """Everything ``rasd run`` needs, built from the settings: the feeds, the stages'
    shared context, and the workers and poller it starts."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.context = StageContext(settings, clock)
        self.topics = self.context.topics
        self.stats = self.context.stats
        self.stop = self.context.stop
        self.clock = clock
        self.feeds: list[Feed] = load_feeds(settings.feeds_path)
        # A bad rules file or destination fails here, at start-up, not in a worker.
        self.context.destinations  # noqa: B018  (loads and checks the rules file)
        self._producers: list[Producer] = []
        self.workers: list[StageWorker] = []
        #: Every loop of this process (workers, a poller instance), for /healthz.
        self.loops: list[Loop] = []
        self._closers: list[Callable[[], None]] = []

    # --- setup -------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the topics and the Elasticsearch templates and indices (idempotent)."""
        created = ensure_topics(
            self.settings.kafka,
            self.topics,
            self.settings.partitions,
            dedupe_window=timedelta(days=self.settings.dedupe_window_days),
        )
        if created:
            log.info("created topics: %s", ", ".join(created))
        made = self.context.store.ensure(self.clock())
        if made:
            log.info("created indices: %s", ", ".join(made))

    def producer(self, name: str, transactional_id: str | None = None) -> Producer:
        producer = Producer(
            self.settings.kafka, client_id=f"rasd-{name}", transactional_id=transactional_id
        )
        self._producers.append(producer)
        return producer

    def transactional_id(self, stage: Stage) -> str | None:
        """The stage worker's transactional id, ``<ns>.<stage>.<instance>`` (None:
        ``RASD_TRANSACTIONS=false``). A restarted worker with the same
        ``RASD_INSTANCE_ID`` aborts at once what its predecessor left open."""
        return self._transactional_id(stage.group_id(self.topics))

    def _transactional_id(self, prefix: str) -> str | None:
        if not self.settings.transactions:
            return None
        instance = self.settings.instance_id or f"{socket.gethostname()}-{os.getpid()}"
        return f"{prefix}.{instance}"

    # --- stages --------------------------------------------------------------------

    def stages(self) -> tuple[Stage, ...]:
        """The registered stages, then one ``deliver-<name>`` per destination the rules name."""
        return stages_for(self.context.matcher.rules)

    def delivery_stages(self) -> tuple[str, ...]:
        """The names of the ``deliver-<name>`` stages the rules call for."""
        return tuple(s.name for s in self.stages() if s.name.startswith(DELIVER_PREFIX))

    def telemetry(self, stages: tuple[str, ...], polls: bool, loops: int) -> Telemetry:
        """The metrics and health endpoints of a process that runs ``stages`` (and the
        poller, if ``polls``) in ``loops`` loops: the lag of those stages' groups,
        the health of the feeds polled here, and /readyz's checks of Kafka and
        (for stages) Elasticsearch."""
        settings = self.settings
        kafka = KafkaProbe(settings.kafka)
        self._closers.append(kafka.close)
        checks: dict[str, Callable[[], str | None]] = {"kafka": kafka.problem}
        if stages:
            checks["elasticsearch"] = self._elasticsearch_problem
            groups = {
                s.group_id(self.topics): s.source_topic(self.topics)
                for s in self.stages()
                if s.name in stages
            }
            lag = LagCollector(settings.kafka, lambda: groups)
            self._closers.append(lag.close)
            self.stats.register(lag)
            lag.start()
        if polls:
            states = self.feed_state  # made here, not first on a scrape's thread
            self.stats.register(FeedHealthCollector(lambda: states.all().values()))
        return Telemetry(
            self.stats,
            lambda: list(self.loops),
            checks,
            stall_seconds=settings.health_stall_seconds,
            expected=loops,
        )

    def _elasticsearch_problem(self) -> str | None:
        try:
            status = self.context.store.cluster_status()
        except Exception as exc:
            return f"unreachable at {self.settings.elasticsearch_url} ({type(exc).__name__})"
        return "the cluster is red" if status == "red" else None

    def worker(self, name: str) -> StageWorker:
        stage = find(name)
        if stage is None or (
            stage.name.startswith(DELIVER_PREFIX) and stage.name not in self.delivery_stages()
        ):
            raise ValueError(f"unknown stage {name!r}")
        producer = self.producer(stage.name, self.transactional_id(stage))
        parts = stage.build(self.context, producer)
        self.stats.zero(stage.name, ("dlq", *stage.outcomes))
        worker = StageWorker(
            stage.name,
            self.settings.kafka,
            stage.group_id(self.topics),
            stage.source_topic(self.topics),
            parts.handler,
            producer,
            self.topics.dlq,
            self.stats,
            self.stop,
            max_records=stage.batch,
            sinks=parts.sinks,
            on_abort=parts.on_abort,
            on_commit=parts.on_commit,
            session_timeout_ms=stage.session_timeout_ms,
        )
        self.loops.append(worker)
        return worker

    # --- running -------------------------------------------------------------------

    def poller(self) -> FeedPoller:
        # Transactional: a poll's new items and the feed's state are one commit.
        return FeedPoller(
            self.context.http,
            self.producer("poll", self._transactional_id(self.topics.group("poll"))),
            self.topics.items,
            self.settings.namespace,
            self.stats,
            self.clock,
            state=self.feed_state,
            politeness=self.context.politeness,
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
            self.settings.kafka, self.topics.feeds_state, self.producer("feed-state")
        )

    def sharded_poller(self, name: str = "rasd-poll") -> ShardedPoller:
        """This process's member of the poller group, after publishing the catalogue."""
        check_partitions(self.settings.kafka, self.topics)
        upserted, removed = publish_catalogue(
            self.settings.kafka, self.topics, self.feeds, self.producer("catalogue")
        )
        if upserted or removed:
            log.info("feed catalogue: %d feed(s) published, %d removed", upserted, removed)
        poller = self.poller()
        scheduler = FeedScheduler(poller, [], self.settings.poll_interval)
        sharded = ShardedPoller(
            poller,
            scheduler,
            self.feed_state,
            self.settings.kafka,
            self.topics,
            self.stop,
            name=name,
        )
        self.loops.append(sharded)
        return sharded

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

    def start_workers(self, names: tuple[str, ...] | None = None) -> list[threading.Thread]:
        if names is None:
            names = tuple(s.name for s in self.stages())
        # Every stage is built before any starts: a build that takes seconds of
        # CPU (the gazetteers) must not starve the running consumers' heartbeats.
        self.workers = [self.worker(name) for name in names]
        threads = []
        for worker in self.workers:
            thread = threading.Thread(
                target=self._guard(worker), name=f"worker-{worker.stage}", daemon=True
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
        """Records not yet committed, per stage's consumer group."""
        groups = {s.group_id(self.topics): s.source_topic(self.topics) for s in self.stages()}
        return consumer_lag(self.settings.kafka, groups)

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
            check_partitions(self.settings.kafka, self.topics)
            self.feed_state.load()
            for url, partition in catalogue_partitions(self.settings.kafka, self.topics).items():
                self.feed_state.route(url, partition)
            polls = self.poller().poll_all(self.feeds)
            drained = self.wait_drained(
                self.settings.drain_timeout,
                lambda n: progress(f"draining: {n} message(s) in flight"),
            )
        finally:
            self.shutdown(threads)
        return self.summary(polls, drained, time.monotonic() - begin)

    def run_forever(self, report_every: float = 60.0) -> Summary:
        """Poll and process until :attr:`stop` is set; the summary of the whole run."""
        begin = time.monotonic()
        self.prepare()
        threads = self.start_workers()
        threads.append(self.start_poller())
        log.info(
            "rasd running: %d feeds, %d rules, stages %s",
            len(self.feeds),
            len(self.context.matcher.rules),
            ", ".join(s.name for s in self.stages()),
        )
        try:
            while not self.stop.wait(report_every):
                so_far = self.summary([], True, time.monotonic() - begin).as_dict()
                del so_far["drained"]
                log.info("so far: %s", ", ".join(f"{k} {v}" for k, v in so_far.items()))
        finally:
            health = self.feed_health()  # before the poller hands its feeds back
            self.shutdown(threads)
        try:
            drained = sum(self.lag().values()) == 0
        except Exception as exc:  # the broker is gone too: say so, still summarise
            log.warning("lag unknown at exit: %s", exc)
            drained = False
        return Summary([], self.stats.snapshot(), drained, time.monotonic() - begin, health)

    def feed_health(self) -> tuple[int, int]:
        """(ok, failing or dead) among the feeds this process polls."""
        if "feed_state" not in self.__dict__:
            return (0, 0)
        states = list(self.feed_state.all().values())
        failing = sum(s.dead or s.consecutive_failures > 0 for s in states)
        return (len(states) - failing, failing)

    def summary(self, polls: list[PollResult], drained: bool, seconds: float) -> Summary:
        """The counts so far; without ``polls``, the feeds' health from their state."""
        health = None if polls else self.feed_health()
        return Summary(polls, self.stats.snapshot(), drained, seconds, health)

    def shutdown(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for worker in self.workers:
            for sink in worker.sinks.values():
                sink.close()
        for producer in self._producers:
            producer.close()
        for close in self._closers:
            close()
        self.context.close()
