"""``rasd stack``: the local Kafka and Elasticsearch (no Docker needed)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from connectors.stack import LocalStack, StackError
from connectors.stack.process import tail
from connectors.stack.services import Health

from .common import console, env_option, fail, out, settings_from

app = typer.Typer(
    help="The local Kafka and Elasticsearch (no Docker needed).", no_args_is_help=True
)


KafkaPort = Annotated[
    int | None, env_option("RASD_KAFKA_PORT", "Kafka port on 127.0.0.1.", default="9092")
]
EsPort = Annotated[
    int | None,
    env_option("RASD_ES_PORT", "Elasticsearch port on 127.0.0.1.", default="9200"),
]
StateDir = Annotated[
    Path | None,
    env_option(
        "RASD_STATE_DIR",
        "Data, logs and pid files of the stack.",
        default="/var/lib/rasd as root, else ~/.local/state/rasd",
    ),
]
CacheDir = Annotated[
    Path | None,
    env_option(
        "RASD_CACHE_DIR", "Downloads and builds, kept between runs.", default="~/.cache/rasd"
    ),
]
PluginCompiler = Literal["auto", "javac", "ecj"]


def local_stack(
    kafka_port: int | None = None,
    es_port: int | None = None,
    state_dir: Path | None = None,
    cache_dir: Path | None = None,
    plugin_compiler: PluginCompiler = "auto",
    secure: bool = False,
) -> LocalStack:
    settings = settings_from(
        kafka_port=kafka_port, es_port=es_port, state_dir=state_dir, cache_dir=cache_dir
    )
    return LocalStack(settings, plugin_compiler=plugin_compiler, secure=secure)


@app.command("up")
def stack_up(
    kafka_port: KafkaPort = None,
    es_port: EsPort = None,
    state_dir: StateDir = None,
    cache_dir: CacheDir = None,
    plugin_compiler: Annotated[
        PluginCompiler,
        typer.Option(
            envvar="RASD_PLUGIN_COMPILER",
            show_envvar=True,
            help="What compiles the Elasticsearch analysis plugins (auto: javac of a JDK "
            ">= 21 if there is one, else the Eclipse compiler).",
        ),
    ] = "auto",
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="TLS and authentication on both: Kafka on SASL_SSL (SCRAM-SHA-512, ACLs), "
            "Elasticsearch with security and TLS, a local CA. The state directory remembers it.",
        ),
    ] = False,
) -> None:
    """Provision (once) and start Kafka and Elasticsearch; wait until both are ready."""
    stack = local_stack(kafka_port, es_port, state_dir, cache_dir, plugin_compiler, secure)
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
    if stack.secure is not None:
        console.print(
            f"secured: CA {stack.secure.ca_cert}; rasd's clients use "
            f"{stack.secure.state_file} unless RASD_KAFKA_*/RASD_ES_* say otherwise"
        )
    print_status(stack.status())


@app.command("down")
def stack_down(state_dir: StateDir = None) -> None:
    """Stop Kafka and Elasticsearch, leaving no process behind."""
    stopped = local_stack(state_dir=state_dir).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


Service = Annotated[str, typer.Argument(help="kafka or elasticsearch")]


@app.command("start")
def stack_start(service: Service, state_dir: StateDir = None) -> None:
    """Start one service (after `kill` or `stop`) on its data, and wait until it is ready."""
    stack = local_stack(state_dir=state_dir)
    try:
        with console.status(f"rasd stack start {service}") as status:
            report = stack.up(lambda line: status.update(line), only=service)
    except StackError as exc:
        fail(exc)
    state = "already running" if report.already_running else "started"
    console.print(f"{service}: {state} ({report.seconds:.1f}s)")


def _one(action: str, service: str, state_dir: Path | None) -> None:
    stack = local_stack(state_dir=state_dir)
    try:
        pid = getattr(stack, action)(service)
    except StackError as exc:
        fail(exc)
    console.print(f"{service}: {action} (pid {pid})")


@app.command("kill")
def stack_kill(service: Service, state_dir: StateDir = None) -> None:
    """kill -9 one service (its whole process group): a crash. `rasd stack start` restarts it."""
    _one("kill", service, state_dir)


@app.command("stop")
def stack_stop(service: Service, state_dir: StateDir = None) -> None:
    """Stop one service cleanly (SIGTERM; SIGKILL after 60 s)."""
    _one("stop", service, state_dir)


@app.command("pause")
def stack_pause(service: Service, state_dir: StateDir = None) -> None:
    """SIGSTOP one service: it hangs, its connections stay open. `rasd stack resume` ends it."""
    _one("pause", service, state_dir)


@app.command("resume")
def stack_resume(service: Service, state_dir: StateDir = None) -> None:
    """SIGCONT a paused service."""
    _one("resume", service, state_dir)


def print_status(health: Sequence[Health]) -> bool:
    """Print one row per service; True if every one is healthy."""
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


@app.command("status")
def stack_status(
    kafka_port: KafkaPort = None, es_port: EsPort = None, state_dir: StateDir = None
) -> None:
    """Each service with its port, pid, version, health and memory. Exit 1 if any is down."""
    if not print_status(local_stack(kafka_port, es_port, state_dir).status()):
        raise typer.Exit(1)


@app.command("logs")
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
    stack = local_stack(state_dir=state_dir)
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
        follow_logs(logs)


def follow_logs(logs: list[Path]) -> None:
    """Print what is appended to ``logs`` until Ctrl-C."""
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
