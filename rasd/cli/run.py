"""``rasd run``, ``rasd worker``, ``rasd demo`` and ``rasd reset``: running the pipeline."""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import signal
import threading
from typing import Annotated

import typer
from rich.table import Table

from connectors.telemetry import Telemetry
from pipeline.errors import RasdError
from pipeline.settings import Settings
from rasd.app import Runtime, Summary, reset_namespace
from rasd.demo import FixtureSite, default_site_root, write_feeds_file
from rasd.stages import DELIVER_PREFIX, STAGES, names

from .common import (
    AsJson,
    FeedsFile,
    Namespace,
    RulesFile,
    console,
    fail,
    out,
    settings_from,
    setup_logging,
)

__all__ = ["WORKER_STAGES", "demo", "reset", "run", "run_stage", "serve_telemetry", "worker"]

log = logging.getLogger("rasd")


def runtime(settings: Settings) -> Runtime:
    """The runtime for ``settings``; a bad feeds or rules file exits 1 with the reason."""
    try:
        return Runtime(settings)
    except RasdError as exc:
        fail(exc)


def serve_telemetry(
    rt: Runtime, stages: tuple[str, ...], polls: bool, loops: int
) -> Telemetry | None:
    """Serve /metrics, /healthz and /readyz on ``RASD_METRICS_PORT`` (None when it is 0)
    for a process that runs ``stages`` (and polls, if ``polls``) in ``loops`` loops."""
    settings = rt.settings
    if not settings.metrics_port:
        return None
    telemetry = rt.telemetry(stages, polls, loops)
    try:
        telemetry.start(settings.metrics_address, settings.metrics_port)
    except RasdError as exc:
        fail(exc)
    return telemetry


def print_summary(summary: Summary, as_json: bool) -> None:
    data = summary.as_dict()
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("", "count", title="rasd run")
    for key, value in data.items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
    for poll in summary.polls:
        if not poll.ok:
            out.print(f"[red]feed failed[/] {poll.feed.url}: {poll.error}", highlight=False)


def run(
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Poll every feed once, drain the pipeline, print a summary, exit."
        ),
    ] = False,
    feeds: FeedsFile = None,
    rules: RulesFile = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """The scheduler and every stage worker, against the configured Kafka and Elasticsearch."""
    settings = settings_from(feeds_file=feeds, rules_file=rules, namespace=namespace)
    setup_logging(settings)
    rt = runtime(settings)

    # rt.stop is also set by the runtime's own shutdown: only a signal is an interruption.
    interrupted = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: finishing the current batches, then stopping", signum)
        interrupted.set()
        rt.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stages = tuple(s.name for s in rt.stages())
    # --once polls from this thread; the continuous run adds a poller loop.
    telemetry = serve_telemetry(rt, stages, polls=True, loops=len(stages) + (not once))
    try:
        if not once:
            # Runs until SIGTERM or Ctrl-C, then prints the summary of the whole run.
            print_summary(rt.run_forever(), as_json)
            return
        with console.status("rasd run --once") as status:
            summary = rt.run_once(lambda line: status.update(line))
    except RasdError as exc:
        fail(exc)
    finally:
        if telemetry is not None:
            telemetry.stop()
    print_summary(summary, as_json)
    if not summary.drained and interrupted.is_set():
        console.print("[red]interrupted[/] before the pipeline drained")
        raise typer.Exit(130)
    if not summary.drained:
        console.print(
            "[red]error:[/] the pipeline did not drain within "
            f"{settings.drain_timeout:.0f}s (RASD_DRAIN_TIMEOUT)"
        )
        raise typer.Exit(3)


#: What ``rasd worker`` runs: a poller instance, a registered stage, or alert delivery.
WORKER_STAGES: tuple[str, ...] = ("poll", *names(), "deliver")


#: Former names of stages, still accepted (``rasd worker dedupe`` runs ``sign``).
FORMER_NAMES: dict[str, str] = {a: s.name for s in STAGES for a in s.aliases}

#: The choices of ``rasd worker``: the worker stages, then the former names.
WorkerStage = enum.Enum(  # type: ignore[misc]  # members come from the registry
    "WorkerStage", {n: n for n in (*WORKER_STAGES, *FORMER_NAMES)}, type=str
)


def delivery_workers(rt: Runtime, destinations: list[str] | None) -> tuple[str, ...]:
    """The ``deliver-<name>`` stages to run: those of ``destinations``, or every one."""
    stages = rt.delivery_stages()
    if not destinations:
        return stages
    named = {s.removeprefix(DELIVER_PREFIX): s for s in stages}
    unknown = [d for d in destinations if d not in named]
    if unknown:
        raise typer.BadParameter(
            f"{unknown[0]!r} is not a webhook, Slack or email destination of "
            f"the rules (they name: {', '.join(named) or 'none'})",
            param_hint="--destination",
        )
    return tuple(named[d] for d in destinations)


def run_stage(
    rt: Runtime, stage: str, destinations: list[str] | None = None
) -> list[threading.Thread]:
    """Run ``stage`` (``poll``, ``deliver`` or a registered stage) until ``rt.stop``.

    Returns the threads to join (``deliver`` runs one per destination).
    """
    if stage == "poll":
        # One member of the poller group: start several and they share the feeds.
        rt.sharded_poller().run()
        return []
    if stage == "deliver":
        stages = delivery_workers(rt, destinations)
        if not stages:
            log.info(
                "the rules name no destination besides the built-ins "
                "(alerts topic, alerts index, log): nothing to deliver"
            )
        threads = rt.start_workers(stages)
        rt.stop.wait()
        return threads
    rt.worker(stage).run()
    return []


def worker(
    stage: Annotated[
        WorkerStage,
        typer.Argument(
            help="The stage to run: a poller instance, a Kafka stage, or alert delivery"
            + "".join(f"; {old}: the former name of {new}" for old, new in FORMER_NAMES.items())
            + ".",
        ),
    ],
    destination: Annotated[
        list[str] | None,
        typer.Option(
            "--destination",
            metavar="NAME",
            help="With deliver: only this destination of the rules (repeatable); "
            "default: every webhook, Slack and email destination they name.",
        ),
    ] = None,
    feeds: FeedsFile = None,
    rules: RulesFile = None,
    namespace: Namespace = None,
) -> None:
    """Run one stage alone (start several to scale out; partitions spread across them)."""
    name = FORMER_NAMES.get(stage.value, stage.value)
    if destination and name != "deliver":
        raise typer.BadParameter("only the deliver stage takes --destination")
    settings = settings_from(feeds_file=feeds, rules_file=rules, namespace=namespace)
    setup_logging(settings)
    rt = runtime(settings)
    signal.signal(signal.SIGTERM, lambda *_: rt.stop.set())
    threads: list[threading.Thread] = []
    served = delivery_workers(rt, destination) if name == "deliver" else (name,)
    polls = name == "poll"
    telemetry = serve_telemetry(rt, () if polls else served, polls, loops=len(served))
    try:
        rt.prepare()
        with contextlib.suppress(KeyboardInterrupt):
            threads = run_stage(rt, name, destination)
    except RasdError as exc:
        fail(exc)
    finally:
        if telemetry is not None:
            telemetry.stop()
        rt.shutdown(threads)


def reset(
    namespace: Annotated[
        str,
        typer.Option(envvar="RASD_NAMESPACE", show_envvar=True, help="The namespace to delete."),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a namespace: its topics, consumer groups, indices and templates."""
    if not yes:
        typer.confirm(
            f"Delete every topic, group and index of namespace {namespace!r}?", abort=True
        )
    deleted = reset_namespace(settings_from(namespace=namespace))
    console.print(f"deleted: {', '.join(deleted)}" if deleted else "nothing to delete")


def demo(
    once: Annotated[bool, typer.Option("--once", help="One pass, then a summary.")] = False,
    port: Annotated[
        int,
        typer.Option(
            help="Port of the local demo site; keep it fixed, article ids include the URL."
        ),
    ] = 8765,
    namespace: Annotated[
        str,
        typer.Option(
            envvar="RASD_DEMO_NAMESPACE",
            show_envvar=True,
            help="Namespace of the demo's topics and indices.",
        ),
    ] = "demo",
) -> None:
    """Serve bundled sample feeds and pages locally and run the pipeline on them
    (no internet needed): watch articles land in Elasticsearch and alerts fire."""
    site = FixtureSite(default_site_root(), port=port).start()
    try:
        feeds_file = write_feeds_file(
            default_site_root(), site.base_url, Settings().state_dir / "demo-feeds.yaml"
        )
        console.print(f"demo site on {site.base_url}; feeds in {feeds_file}")
        os.environ["RASD_ALLOW_PRIVATE_NETWORKS"] = "true"
        try:
            run(once=once, feeds=feeds_file, namespace=namespace)
        except typer.Exit as exc:
            if exc.exit_code:
                raise
        if once:
            console.print(f'try: rasd search --namespace {namespace} "قيصر"')
    finally:
        site.stop()
