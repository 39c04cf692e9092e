"""``rasd alerts``: raised alerts that a destination could not take, and sending them again."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from connectors.alert_state import AlertStateIndex
from connectors.destinations import DeliverySink, make_destination
from connectors.elastic import ElasticStore
from pipeline.alerting import DestinationSpec, parse_destinations
from pipeline.errors import PermanentError, RasdError
from pipeline.models import Alert
from pipeline.rules import load_rule_set

from .common import AsJson, Namespace, RulesFile, console, fail, out, progress, settings_from

app = typer.Typer(help="Raised alerts and their delivery.", no_args_is_help=True)

Destination = Annotated[
    str | None, typer.Option("--destination", help="Only this destination's alerts.")
]


@app.command("undelivered")
def alerts_undelivered(
    destination: Destination = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (0: all).", min=0)] = 1000,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """Alerts a destination could not take after its retries (newest first)."""
    store = ElasticStore.from_settings(settings_from(namespace=namespace))
    try:
        state = store.alert_state()
        total = state.count_undelivered(destination)
        rows = list(state.undelivered(destination, limit=limit or None))
    except RasdError as exc:
        fail(exc)
    finally:
        store.close()
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    table = Table("failed at", "destination", "attempts", "alert", "error")
    for row in rows:
        table.add_row(
            row.get("at", ""),
            row.get("destination", ""),
            str(row.get("attempts", "")),
            row.get("alert_id", ""),
            escape(str(row.get("error", ""))[:120]),
        )
    out.print(table)
    shown = f"{len(rows)} of {total}" if len(rows) < total else str(total)
    console.print(f"{shown} undelivered alert(s)")


@dataclass
class ResendReport:
    """What ``rasd alerts resend`` did so far."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0


def pending(state: AlertStateIndex, destination: str | None) -> list[tuple[str, str]]:
    """Every undelivered record (of one destination) as (destination, alert JSON).

    Read them all first: each resend rewrites its record, which would move it
    between the pages of a listing still being read.
    """
    return [(str(r["destination"]), str(r["alert"])) for r in state.undelivered(destination)]


def resend(
    rows: list[tuple[str, str]],
    specs: dict[str, DestinationSpec],
    state: AlertStateIndex,
    report: ResendReport,
    say: Callable[[str], None],
    advance: Callable[[int], None] = lambda n: None,
) -> None:
    """Send each alert of ``rows`` again, through the :class:`DeliverySink` that the
    delivery stages use; each outcome replaces its record. ``say`` gets a line per
    alert (rich markup), ``report`` the counts, ``advance(1)`` each row done."""

    def told(name: str, alert: Alert, delivered: bool, error: str) -> None:
        report.sent, report.failed = report.sent + delivered, report.failed + (not delivered)
        mark = "[green]delivered[/]" if delivered else f"[red]failed[/] {escape(error[:120])}"
        say(f"{alert.id} → {name}: {mark}")

    sinks: dict[str, DeliverySink] = {}
    try:
        for name, raw in rows:
            advance(1)
            try:
                alert = Alert.from_json(raw)
            except PermanentError as exc:  # a record written by an incompatible version
                say(f"[red]unreadable[/] record for {name}: {escape(str(exc))[:200]}")
                report.failed += 1
                continue
            if name not in specs:
                say(f"[yellow]skipped[/] {alert.id}: no destination {name!r}")
                report.failed += 1
                continue
            if name not in sinks:
                target = make_destination(name, specs[name])
                wait = threading.Event().wait
                sinks[name] = DeliverySink(target, state, wait, resend=True, on_delivery=told)
            sinks[name].write([(None, alert)])
            # An alert the running pipeline delivered since the listing is not sent again.
            report.skipped += sinks[name].flush().outcomes.get("delivered_meanwhile", 0)
    finally:
        for sink in sinks.values():
            sink.close()


@app.command("resend")
def alerts_resend(
    destination: Destination = None,
    rules: RulesFile = None,
    namespace: Namespace = None,
) -> None:
    """Send the undelivered alerts again (with the destination's retries); exit 1 if any fail.

    Uses the destinations of the current rules file, so a fixed URL or password
    takes effect. Each outcome replaces the alert's delivery record. An alert
    that was delivered meanwhile (by the running pipeline) is not sent again.
    """
    settings = settings_from(rules_file=rules, namespace=namespace)
    try:
        rule_set = load_rule_set(settings.rules_path)
        specs = parse_destinations(settings.rules_path, rule_set.destinations)
    except RasdError as exc:
        fail(exc)
    store = ElasticStore.from_settings(settings)
    report = ResendReport()
    try:
        state = store.alert_state()
        rows = pending(state, destination)
        console.print(f"{len(rows)} undelivered alert(s) to send again")
        with progress("sending alerts again", len(rows)) as bar:
            resend(rows, specs, state, report, out.print, bar.advance)
    except RasdError as exc:  # Elasticsearch went away
        # The alert being sent when it failed may have gone out without its
        # record saying so; a later resend would then send it once more.
        out.print(f"{report.sent} delivered, {report.failed} still undelivered before the error")
        fail(exc)
    finally:
        store.close()
    already = f", {report.skipped} delivered meanwhile" if report.skipped else ""
    out.print(f"{report.sent} delivered, {report.failed} still undelivered{already}")
    if report.failed:
        raise typer.Exit(1)
