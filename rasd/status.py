"""``rasd status``: is it healthy, how far behind is it, and what is failing?

:func:`collect` reads everything from the servers, so it sees every process
of the deployment, wherever it runs: each stage's consumer group (members,
lag, and messages per second over the last minute from the commits'
metadata, :mod:`connectors.throughput`), the dead letters by stage and reason,
the undelivered alerts by destination, the feeds' health as the poller group
saved it, the articles indexed in the last hour and day, and the health of
Kafka and Elasticsearch. Each part that cannot be read says why instead of
failing the whole report.

``problems`` make the report unhealthy (``rasd status`` exits 1): a server that
does not answer, a red cluster, a stage whose group has lag and no member.
``warnings`` are worth a look but not a page: dead feeds, dead letters,
undelivered alerts, a yellow cluster.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.dead_letters import DeadLetterReader
from connectors.elastic import ElasticStore
from connectors.feed_shards import KafkaFeedStateStore
from connectors.kafka import Producer, Topics, group_members, group_offsets, new_admin, quick
from connectors.telemetry import feed_health
from connectors.throughput import recent_rate
from pipeline.rules import load_rule_set
from pipeline.schedule import FeedState
from pipeline.settings import Settings
from rasd.stages import STAGES, Stage, stages_for

__all__ = ["FeedRow", "GroupRow", "Status", "collect"]

#: How many of the worst feeds the report lists.
WORST_FEEDS = 10


@dataclass
class GroupRow:
    """One stage's consumer group."""

    stage: str
    group: str
    topic: str
    members: int
    lag: int
    per_second: float


@dataclass
class FeedRow:
    """One feed, as the poller group saved it."""

    url: str
    health: str
    consecutive_failures: int
    last_error: str | None
    last_success: str | None
    seconds_since_new_item: float | None


@dataclass
class Status:
    namespace: str
    checked_at: str
    kafka: dict[str, Any] = field(default_factory=dict)
    elasticsearch: dict[str, Any] = field(default_factory=dict)
    groups: list[GroupRow] = field(default_factory=list)
    #: {stage: {reason: count}}
    dead_letters: dict[str, dict[str, int]] = field(default_factory=dict)
    undelivered: dict[str, int] = field(default_factory=dict)
    feeds: dict[str, int] = field(default_factory=dict)
    worst_feeds: list[FeedRow] = field(default_factory=list)
    articles: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Parts that could not be read, and why.
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        return data


def _part(status: Status, name: str, read: Callable[[], None]) -> bool:
    """Run one part of the report; a failure is noted, not raised."""
    try:
        read()
        return True
    except Exception as exc:
        status.unknown[name] = f"{type(exc).__name__}: {exc}"
        return False


def collect(settings: Settings, now: float | None = None) -> Status:
    """The whole report, from the servers of ``settings``."""
    now = time.time() if now is None else now
    at = datetime.fromtimestamp(now, UTC)
    status = Status(settings.namespace, at.isoformat(timespec="seconds"))
    topics = Topics(settings.namespace)
    kafka_ok = _kafka(status, settings, topics, now)
    es_ok = _elasticsearch(status, settings, at)
    if kafka_ok:
        _part(status, "dead_letters", lambda: _dead_letters(status, settings, topics))
        _part(status, "feeds", lambda: _feeds(status, settings, topics, now))
    if not es_ok:
        status.unknown.setdefault("articles", "Elasticsearch does not answer")
    _judge(status)
    return status


def _stages(status: Status, settings: Settings) -> tuple[Stage, ...]:
    try:
        return stages_for(load_rule_set(settings.rules_path).rules)
    except Exception as exc:
        # An unreadable rules file must not hide the pipeline's state; only the
        # delivery stages, which the rules name, are then unknown.
        status.unknown["delivery stages"] = f"the rules file cannot be read: {exc}"
        return STAGES


def _kafka(status: Status, settings: Settings, topics: Topics, now: float) -> bool:
    try:
        admin = new_admin(
            quick(settings.kafka, 10.0), client_id="rasd-status", request_timeout_ms=10_000
        )
    except Exception as exc:
        status.kafka = {"ok": False, "detail": f"unreachable at {settings.kafka_servers}: {exc}"}
        return False
    try:
        brokers = admin.describe_cluster().get("brokers") or []
        status.kafka = {"ok": bool(brokers), "brokers": len(brokers)}
        existing = set(admin.list_topics())
        stages = [s for s in _stages(status, settings) if s.source_topic(topics) in existing]
        groups = {s.group_id(topics): s.source_topic(topics) for s in stages}
        rows = group_offsets(admin, groups) if groups else []
        members = group_members(admin, groups) if groups else {}
        for stage in stages:
            group = stage.group_id(topics)
            mine = [r for r in rows if r.group == group]
            status.groups.append(
                GroupRow(
                    stage.name,
                    group,
                    stage.source_topic(topics),
                    members.get(group, 0),
                    sum(r.lag for r in mine),
                    round(sum(recent_rate(r.committed, r.metadata, now) for r in mine), 2),
                )
            )
        return bool(brokers)
    except Exception as exc:
        status.kafka = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        return False
    finally:
        admin.close()


def _elasticsearch(status: Status, settings: Settings, at: datetime) -> bool:
    store = ElasticStore.from_settings(settings)
    try:
        try:
            health = store.cluster_status(timeout=10)
        except Exception as exc:
            status.elasticsearch = {
                "ok": False,
                "detail": f"unreachable at {settings.elasticsearch_url}: {type(exc).__name__}",
            }
            return False
        status.elasticsearch = {"ok": health != "red", "status": health}

        def articles() -> None:
            hour, day, newest = store.indexed_recently(at)
            status.articles = {
                "last_hour": hour,
                "last_day": day,
                "newest_indexed_at": newest.isoformat() if newest else None,
                "newest_age_seconds": round((at - newest).total_seconds()) if newest else None,
            }

        def undelivered() -> None:
            status.undelivered = store.alert_state().undelivered_by_destination()

        _part(status, "articles", articles)
        _part(status, "undelivered", undelivered)
        return True
    finally:
        store.close()


def _dead_letters(status: Status, settings: Settings, topics: Topics) -> None:
    reader = DeadLetterReader(settings.kafka, topics.dlq, None)
    try:
        counts = Counter((d.stage or "?", d.reason or "?") for d in reader.read())
    finally:
        reader.close()
    for (stage, reason), n in sorted(counts.items()):
        status.dead_letters.setdefault(stage, {})[reason] = n


def _feeds(status: Status, settings: Settings, topics: Topics, now: float) -> None:
    # Read-only: the producer is never used, so no Kafka producer is created.
    store = KafkaFeedStateStore(settings.kafka, topics.feeds_state, Producer(settings.kafka))
    store.load()
    states = list(store.all().values())
    status.feeds = dict(Counter(feed_health(s) for s in states))
    for name in ("ok", "failing", "dead"):
        status.feeds.setdefault(name, 0)
    worst = sorted(states, key=lambda s: (-s.dead, -s.consecutive_failures, -s.failures))
    status.worst_feeds = [_feed_row(s, now) for s in worst[:WORST_FEEDS] if feed_health(s) != "ok"]


def _feed_row(state: FeedState, now: float) -> FeedRow:
    newest = max(state.new_item_times) if state.new_item_times else None
    success = state.last_success
    return FeedRow(
        state.url,
        feed_health(state),
        state.consecutive_failures,
        state.last_error,
        datetime.fromtimestamp(success, UTC).isoformat(timespec="seconds") if success else None,
        round(now - newest) if newest else None,
    )


def _judge(status: Status) -> None:
    if not status.kafka.get("ok"):
        status.problems.append(f"Kafka: {status.kafka.get('detail', 'no broker')}")
    es = status.elasticsearch
    if not es.get("ok"):
        status.problems.append(f"Elasticsearch: {es.get('detail') or 'the cluster is red'}")
    elif es.get("status") == "yellow":
        status.warnings.append("Elasticsearch: the cluster is yellow (a replica is unassigned)")
    for row in status.groups:
        if row.lag and not row.members:
            status.problems.append(
                f"{row.stage}: {row.lag} message(s) waiting and no worker in {row.group}"
            )
    if status.feeds.get("dead"):
        status.warnings.append(f"{status.feeds['dead']} feed(s) dead")
    letters = sum(n for reasons in status.dead_letters.values() for n in reasons.values())
    if letters:
        status.warnings.append(f"{letters} dead letter(s)")
    undelivered = sum(status.undelivered.values())
    if undelivered:
        status.warnings.append(f"{undelivered} undelivered alert(s)")
    for part, why in status.unknown.items():
        status.warnings.append(f"{part} unknown: {why}")
