"""The ``rasd`` command: the one composition root of rasd.

It reads the settings, builds the adapters and hands them the pure stages.
Every option shows the environment variable behind it in ``--help``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import RasdError
from pipeline.settings import Settings

console = Console(stderr=True)
# Tables stay readable when piped (CI logs, `| less`), where rich would assume 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)

app = typer.Typer(
    name="rasd",
    help="rasd (رصد) watches Arabic news: feeds → extraction → dedupe → enrichment → "
    "Elasticsearch, with alerts on watched names.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(
    help="The local Kafka and Elasticsearch (no Docker needed).", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's explicit values on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def fail(exc: RasdError) -> None:
    """Print a clear one-line error (and the log tail it carries), then exit 1."""
    console.print(f"[bold red]error:[/] {exc}")
    log_tail = getattr(exc, "log_tail", "")
    if log_tail:
        console.print("[dim]" + log_tail.replace("[", r"\[") + "[/]")
    raise typer.Exit(1)


KafkaPort = Annotated[
    int | None,
    typer.Option(
        envvar="RASD_KAFKA_PORT", show_envvar=True, help="Kafka port on 127.0.0.1 [default: 9092]"
    ),
]
EsPort = Annotated[
    int | None,
    typer.Option(
        envvar="RASD_ES_PORT", show_envvar=True, help="Elasticsearch port [default: 9200]"
    ),
]
StateDir = Annotated[
    Path | None,
    typer.Option(
        envvar="RASD_STATE_DIR", show_envvar=True, help="Data, logs and pid files of the stack."
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        envvar="RASD_CACHE_DIR",
        show_envvar=True,
        help="Downloads and builds, kept between runs [default: ~/.cache/rasd]",
    ),
]


def _stack(
    kafka_port: int | None,
    es_port: int | None,
    state_dir: Path | None,
    cache_dir: Path | None,
    plugin_compiler: str = "auto",
) -> Any:
    from connectors.stack import LocalStack

    settings = settings_from(
        kafka_port=kafka_port, es_port=es_port, state_dir=state_dir, cache_dir=cache_dir
    )
    return LocalStack(settings, plugin_compiler=plugin_compiler)


@stack_app.command("up")
def stack_up(
    kafka_port: KafkaPort = None,
    es_port: EsPort = None,
    state_dir: StateDir = None,
    cache_dir: CacheDir = None,
    plugin_compiler: Annotated[
        str,
        typer.Option(
            envvar="RASD_PLUGIN_COMPILER",
            show_envvar=True,
            help="auto, javac or ecj: what compiles the Elasticsearch analysis plugin.",
        ),
    ] = "auto",
) -> None:
    """Provision (once) and start Kafka and Elasticsearch; wait until both are ready."""
    from connectors.stack import StackError

    if plugin_compiler not in ("auto", "javac", "ecj"):
        raise typer.BadParameter("choose auto, javac or ecj", param_hint="--plugin-compiler")
    stack = _stack(kafka_port, es_port, state_dir, cache_dir, plugin_compiler)
    try:
        with console.status("rasd stack up") as status:
            report = stack.up(lambda line: status.update(line))
    except StackError as exc:
        fail(exc)
    for name in report.already_running:
        console.print(f"{name}: already running")
    for name in report.started:
        console.print(f"{name}: started")
    console.print(f"stack ready in {report.seconds:.1f}s")
    _print_status(stack.status())


@stack_app.command("down")
def stack_down(state_dir: StateDir = None) -> None:
    """Stop Kafka and Elasticsearch, leaving no process behind."""
    stack = _stack(None, None, state_dir, None)
    stopped = stack.down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def _print_status(health: list[Any]) -> bool:
    table = Table("service", "port", "pid", "version", "health", "rss / peak", "detail")
    for h in health:
        mem = f"{h.rss / 2**20:.0f} / {h.peak_rss / 2**20:.0f} MiB" if h.pid else "-"
        table.add_row(
            h.name,
            str(h.port),
            str(h.pid or "-"),
            h.version,
            "[green]healthy[/]" if h.healthy else "[red]down[/]",
            mem,
            h.detail,
        )
    out.print(table)
    return all(h.healthy for h in health)


@stack_app.command("status")
def stack_status(
    kafka_port: KafkaPort = None, es_port: EsPort = None, state_dir: StateDir = None
) -> None:
    """Each service with its port, pid, version, health and memory. Exit 1 if any is down."""
    stack = _stack(kafka_port, es_port, state_dir, None)
    if not _print_status(stack.status()):
        raise typer.Exit(1)


@stack_app.command("logs")
def stack_logs(
    service: Annotated[
        str | None, typer.Argument(help="kafka or elasticsearch (default: both)")
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines of each log.")] = 40,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    state_dir: StateDir = None,
) -> None:
    """Print the end of each service's log."""
    from connectors.stack import StackError
    from connectors.stack.process import tail

    stack = _stack(None, None, state_dir, None)
    try:
        services = [stack.service(service)] if service else stack.services
    except StackError as exc:
        fail(exc)
    logs = [p for svc in services for p in svc.log_files if p.exists()]
    if not logs:
        console.print("no logs yet: has `rasd stack up` run with this state directory?")
        raise typer.Exit(1)
    for log in logs:
        out.print(f"==> {log} <==", markup=False, highlight=False)
        out.print(tail(log, lines), markup=False, highlight=False)
    if follow:
        offsets = {log: log.stat().st_size for log in logs}
        try:
            while True:
                for log in logs:
                    size = log.stat().st_size
                    if size > offsets[log]:
                        with log.open("rb") as fh:
                            fh.seek(offsets[log])
                            sys.stdout.write(fh.read().decode("utf-8", "replace"))
                            sys.stdout.flush()
                    offsets[log] = size
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


def main() -> None:
    app()
