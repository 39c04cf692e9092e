"""What every stage module builds on: the :class:`Stage` declaration and its :class:`StageContext`.

A stage is declared once, in its own module under :mod:`rasd.stages`, as a
:class:`Stage`: its name, the topic it reads, the topics it writes, its batch
size, and ``build``, which makes the batch handler and the sinks from a
:class:`StageContext`. The context holds what stages share in one process
(settings, topic names, counters, the stop event, the clock, the HTTP client,
the Elasticsearch store, the rule matcher, the gazetteers), each made on first use.
:class:`rasd.app.Runtime` turns a stage into a
:class:`connectors.worker.StageWorker`; a stage module never imports it.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from connectors.alert_state import AlertStateIndex
from connectors.elastic import ElasticStore
from connectors.http import GuardedClient
from connectors.kafka import Producer, Topics
from connectors.metrics import Stats
from connectors.politeness import HostPoliteness, RobotsPolicy
from connectors.worker import BatchHandler, BatchResult, Output, Sink, per_record
from pipeline.alerting import DestinationSpec, parse_destinations
from pipeline.errors import PermanentError
from pipeline.gazetteer import Gazetteers, load_gazetteers
from pipeline.matching import RuleMatcher
from pipeline.models import Article, RasdModel
from pipeline.neardup import NearDupConfig
from pipeline.rules import RuleSet, load_rule_set
from pipeline.settings import Settings

__all__ = [
    "Stage",
    "StageContext",
    "StageParts",
    "decode_each",
    "each_article",
    "near_config",
    "utcnow",
]

M = TypeVar("M", bound=RasdModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


def near_config(settings: Settings) -> NearDupConfig:
    """The near-duplicate search's parameters from the settings."""
    return NearDupConfig(
        threshold=settings.dedupe_threshold, window=timedelta(days=settings.dedupe_window_days)
    )


def decode_each(records: list[Any], model: type[M], result: BatchResult) -> list[tuple[Any, M]]:
    """Each record with its decoded value; an undecodable one is put in ``result.failed``."""
    decoded = []
    for record in records:
        try:
            decoded.append((record, model.from_json(record.value)))
        except PermanentError as exc:
            result.failed.append((record, exc))
    return decoded


@dataclass(frozen=True)
class StageParts:
    """What a stage runs: its batch handler and the sinks it writes besides topics."""

    handler: BatchHandler
    sinks: Sequence[Sink] = ()
    #: Called when a batch's transaction is aborted, before the batch is redone.
    on_abort: Callable[[], None] | None = None
    #: Called once a batch's outputs and input offsets are committed.
    on_commit: Callable[[], None] | None = None


def each_article(model: type[M], transform: Callable[[M], Article], topic: str) -> StageParts:
    """A stage that turns each record's ``model`` into one article on ``topic`` (key: its id)."""

    def handle(record: Any) -> list[Output]:
        article = transform(model.from_json(record.value))
        return [Output(topic, article.id, article.to_json())]

    return StageParts(per_record(handle))


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, declared once.

    ``source`` and ``outputs`` name :class:`connectors.kafka.Topics` attributes.
    ``group`` is the consumer group's suffix when it is not the stage's name
    (a stage renamed keeps its group, and so its committed offsets).
    ``aliases`` are former names that ``rasd worker`` still accepts.
    """

    name: str
    source: str
    outputs: tuple[str, ...]
    build: Callable[[StageContext, Producer], StageParts]
    batch: int = 200
    group: str | None = None
    aliases: tuple[str, ...] = ()
    about: str = ""
    #: Outcomes it counts that /metrics shows at 0 from the start (``dlq`` always).
    outcomes: tuple[str, ...] = ()
    #: How long its group waits for a worker that stopped heartbeating (None: the
    #: client's default, 45 s).
    session_timeout_ms: int | None = None

    def group_id(self, topics: Topics) -> str:
        return topics.group(self.group or self.name)

    def source_topic(self, topics: Topics) -> str:
        return str(getattr(topics, self.source))


@dataclass
class StageContext:
    """What the stages of one process share, each part made on first use."""

    settings: Settings
    clock: Callable[[], datetime] = utcnow
    stats: Stats = field(default_factory=Stats)
    stop: threading.Event = field(default_factory=threading.Event)

    @functools.cached_property
    def topics(self) -> Topics:
        return Topics(self.settings.namespace)

    @functools.cached_property
    def matcher(self) -> RuleMatcher:
        return RuleMatcher(self._rule_set.rules)

    @functools.cached_property
    def gazetteers(self) -> Gazetteers:
        """Places and entities: the shipped gazetteers plus the users' files."""
        s = self.settings
        gazetteers = load_gazetteers(
            [s.places_file] if s.places_file else [],
            [s.entities_file] if s.entities_file else [],
            cache_dir=s.cache_dir,
            config_dir=s.config_dir,
        )
        # Hundreds of thousands of names live as long as the process: keep the
        # cyclic garbage collector from walking them on every full collection.
        gc.freeze()
        return gazetteers

    @functools.cached_property
    def destinations(self) -> dict[str, DestinationSpec]:
        return parse_destinations(self.settings.rules_path, self._rule_set.destinations)

    @functools.cached_property
    def _rule_set(self) -> RuleSet:
        return load_rule_set(self.settings.rules_path)

    @functools.cached_property
    def store(self) -> ElasticStore:
        return ElasticStore.from_settings(self.settings)

    @functools.cached_property
    def alert_state(self) -> AlertStateIndex:
        return self.store.alert_state()

    @functools.cached_property
    def http(self) -> GuardedClient:
        return GuardedClient(
            self.settings.user_agent,
            allow_private_networks=self.settings.allow_private_networks,
            # Every fetch's outcome (ok, blocked_address, too_large…) is a counter.
            on_outcome=self.stats.fetched,
        )

    @functools.cached_property
    def politeness(self) -> HostPoliteness:
        """One budget per host for feed polls and article fetches alike."""
        return HostPoliteness(
            max_per_host=self.settings.host_max_concurrency,
            min_spacing=self.settings.host_min_spacing,
        )

    @functools.cached_property
    def robots(self) -> RobotsPolicy:
        return RobotsPolicy(self.http, "rasd", enabled=self.settings.respect_robots)

    @property
    def near_config(self) -> NearDupConfig:
        return near_config(self.settings)

    def close(self) -> None:
        """Close what was opened (the HTTP client, the store)."""
        if "http" in self.__dict__:
            self.http.close()
        if "store" in self.__dict__:
            self.store.close()
