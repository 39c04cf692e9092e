"""The delivery stages: ``deliver-<name>``, one per destination the rules name (``alerts`` → it).

Each has its own consumer group on ``<ns>.alerts``, so a destination that is
down holds up no other; an alert is sent once (its delivery record says so)
with the destination's retries. The built-in destinations (the alerts topic,
the alerts index, the log) are the alert stage's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.destinations import DeliverySink, make_destination
from connectors.kafka import Producer
from connectors.worker import BatchResult
from pipeline.models import Alert
from pipeline.rules import BUILTIN_DESTINATIONS, Rule

from .base import Stage, StageContext, StageParts, decode_each

PREFIX = "deliver-"


def destinations_of(rules: Iterable[Rule]) -> tuple[str, ...]:
    """Every destination the rules name, except the built-ins, in order."""
    names = dict.fromkeys(d for r in rules for d in r.destinations)
    return tuple(n for n in names if n not in BUILTIN_DESTINATIONS)


def delivery_stage(destination: str) -> Stage:
    """The stage that delivers alerts to ``destination``."""

    def build(ctx: StageContext, producer: Producer) -> StageParts:
        target = make_destination(destination, ctx.destinations[destination])
        sink = DeliverySink(
            target,
            ctx.alert_state,
            ctx.stop.wait,
            on_delivery=lambda name, alert, delivered, error: ctx.stats.delivered(
                name, "delivered" if delivered else "undelivered"
            ),
        )

        def handler(records: list[Any]) -> BatchResult:
            result = BatchResult()
            for record, alert in decode_each(records, Alert, result):
                rule = ctx.matcher.rule(alert.rule_id)
                if alert.throttled or rule is None or destination not in rule.destinations:
                    result.count("skipped")
                else:
                    result.write(sink.name, record, alert)
            return result

        return StageParts(handler, (sink,))

    return Stage(
        name=f"{PREFIX}{destination}",
        source="alerts",
        outputs=(),
        build=build,
        # A destination that is down takes its retries per alert; small
        # batches keep each poll well inside Kafka's max.poll.interval.ms.
        batch=5,
        about=f"deliver alerts to {destination}",
        outcomes=("delivered", "undelivered"),
    )
