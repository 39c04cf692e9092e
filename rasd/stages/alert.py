"""The alert stage: one alert per (rule, story cluster) that fired (``enriched`` → ``alerts``).

The alerts index is the ledger of what was raised (:class:`connectors.elastic_sinks.AlertLedger`,
written once the alerts are on the topic); a rule's ``realert`` window throttles
repeats (claims in ``<ns>-alerts-throttle``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.destinations import LogDestination
from connectors.elastic_sinks import AlertLedger, record_ref
from connectors.kafka import Producer
from connectors.worker import BatchResult, Output
from pipeline.alerting import build_alerts, throttle_bucket
from pipeline.models import Alert, EnrichedArticle, RuleMatch

from .base import Stage, StageContext, StageParts, decode_each


def build(ctx: StageContext, producer: Producer) -> StageParts:
    matcher = ctx.matcher

    def logs(alert: Alert) -> bool:
        rule = matcher.rule(alert.rule_id)
        return rule is None or "log" in rule.destinations

    log_destination = LogDestination()
    #: When each pending alert's article was first seen, for the freshness histogram.
    first_seen: dict[str, datetime] = {}

    def announce(alert: Alert) -> None:
        log_destination.send(alert)
        ctx.stats.delivered(log_destination.name, "delivered")

    def age(alert: Alert) -> float | None:
        seen = first_seen.get(alert.id)
        return None if seen is None else (ctx.clock() - seen).total_seconds()

    exactly_once = ctx.settings.transactions
    ledger = AlertLedger(ctx.store, logs, announce, age, exactly_once=exactly_once)

    def raised(alert: Alert, record: Any) -> bool:
        """Already raised: by another input record (with transactions, the one
        that raised it in an aborted batch raises it again)."""
        owner = ctx.store.alert_raised_by(alert.id)
        return owner is not None and not (exactly_once and owner == record_ref(record))

    def matches_of(article: EnrichedArticle) -> list[RuleMatch]:
        if article.rule_matches or not article.matched_rules:
            return article.rule_matches
        # Enriched before rule matches travelled with the article: match once here.
        return [hit.to_rule_match() for hit in matcher.match(article)]

    def throttle(alert: Alert) -> Alert:
        """Mark ``alert`` throttled if its rule already alerted in this realert window."""
        rule = matcher.rule(alert.rule_id)
        if rule is None or not rule.realert:
            return alert
        bucket = throttle_bucket(alert.created_at, rule.realert)
        if ctx.alert_state.claim_window(rule.id, bucket, alert.id):
            return alert
        return alert.model_copy(update={"throttled": True})

    def handler(records: list[Any]) -> BatchResult:
        result = BatchResult()
        pending: dict[str, tuple[Any, Alert]] = {}
        first_seen.clear()  # the previous batch's ledger flush is done
        for record, article in decode_each(records, EnrichedArticle, result):
            for alert in build_alerts(article, matches_of(article), ctx.clock):
                # The alerts index is the ledger of what was already raised.
                if alert.id not in pending and not raised(alert, record):
                    pending[alert.id] = (record, throttle(alert))
                    first_seen[alert.id] = article.first_seen
        for record, alert in pending.values():
            result.outputs.append(Output(ctx.topics.alerts, alert.id, alert.to_json()))
            result.write(ledger.name, record, alert)
        result.count("checked", len(records))
        return result

    return StageParts(handler, (ledger,))


STAGE = Stage(
    name="alert",
    source="enriched",
    outputs=("alerts",),
    build=build,
    about="raise one alert per (rule, story cluster), recorded in the alerts index",
    outcomes=("checked", "alerts"),
)
