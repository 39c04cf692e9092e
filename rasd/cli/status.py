"""``rasd status``: the deployment's health on one screen, or as JSON for a cron check."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rasd.status import Status, collect

from .common import AsJson, Namespace, RulesFile, out, settings_from

__all__ = ["render", "status"]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render(report: Status) -> RenderableType:
    """The report as rich tables, the problems first."""
    parts: list[RenderableType] = []
    verdict = "[bold green]healthy[/]" if report.healthy else "[bold red]UNHEALTHY[/]"
    parts.append(
        Text.from_markup(f"rasd {escape(report.namespace)}: {verdict}  ({report.checked_at})")
    )
    for problem in report.problems:
        parts.append(Text.from_markup(f"[red]problem:[/] {escape(problem)}"))
    for warning in report.warnings:
        parts.append(Text.from_markup(f"[yellow]warning:[/] {escape(warning)}"))

    servers = Table("server", "state", "detail", title="servers")
    kafka, es = report.kafka, report.elasticsearch
    servers.add_row(
        "kafka",
        "ok" if kafka.get("ok") else "down",
        escape(str(kafka.get("detail") or f"{kafka.get('brokers', 0)} broker(s)")),
    )
    servers.add_row(
        "elasticsearch", str(es.get("status") or "down"), escape(str(es.get("detail") or ""))
    )
    parts.append(servers)

    groups = Table("stage", "members", "lag", "msg/s (1 min)", "group", title="stages")
    for row in report.groups:
        style = "red" if row.lag and not row.members else ""
        groups.add_row(
            row.stage,
            str(row.members),
            str(row.lag),
            f"{row.per_second:.2f}",
            row.group,
            style=style,
        )
    parts.append(groups)

    arts = report.articles
    if arts:
        parts.append(
            Text(
                f"articles indexed: {arts['last_hour']} in the last hour, {arts['last_day']} in "
                f"the last day; newest {_age(arts['newest_age_seconds'])} ago"
            )
        )
    if report.dead_letters:
        dlq = Table("stage", "reason", "dead letters", title="dead letters")
        for stage, reasons in report.dead_letters.items():
            for reason, n in reasons.items():
                dlq.add_row(stage, reason, str(n))
        parts.append(dlq)
    if report.undelivered:
        und = Table("destination", "undelivered alerts", title="alerts")
        for destination, n in report.undelivered.items():
            und.add_row(escape(destination), str(n))
        parts.append(und)
    feeds = report.feeds
    if feeds:
        parts.append(
            Text(f"feeds: {feeds['ok']} ok, {feeds['failing']} failing, {feeds['dead']} dead")
        )
    if report.worst_feeds:
        worst = Table("feed", "health", "failures", "last error", "new item", title="worst feeds")
        for f in report.worst_feeds:
            worst.add_row(
                escape(f.url), f.health, str(f.consecutive_failures),
                escape((f.last_error or "-")[:60]), _age(f.seconds_since_new_item),
            )  # fmt: skip
        parts.append(worst)
    return Group(*parts)


def status(
    as_json: AsJson = False,
    watch: Annotated[
        float | None,
        typer.Option("--watch", metavar="SECONDS", help="Refresh every SECONDS until Ctrl-C."),
    ] = None,
    namespace: Namespace = None,
    rules: RulesFile = None,
) -> None:
    """Health, lag, throughput, dead letters, undelivered alerts and feeds of the whole
    deployment. Exits 1 when something is unhealthy (a server down, a red cluster, a
    stage with lag and no worker), so that it can be a cron check."""
    settings = settings_from(namespace=namespace, rules_file=rules)
    if watch is not None and watch <= 0:
        raise typer.BadParameter("must be positive", param_hint="--watch")
    if watch is None or as_json:
        report = collect(settings)
        if as_json:
            out.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        else:
            out.print(render(report))
        raise typer.Exit(0 if report.healthy else 1)
    report = collect(settings)
    try:
        with Live(render(report), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(watch)
                report = collect(settings)
                live.update(render(report), refresh=True)
    except KeyboardInterrupt:
        pass
    raise typer.Exit(0 if report.healthy else 1)
