"""What every command group shares: the consoles, settings, one-line errors and option types.

Every option shows the environment variable behind it in ``--help``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typer.models import OptionInfo

from connectors.http import FetchResult, GuardedClient
from pipeline.alerting import parse_destinations
from pipeline.errors import RasdError
from pipeline.matching import RuleMatcher
from pipeline.redact import redact
from pipeline.rules import load_rule_set
from pipeline.settings import Settings
from rasd.logs import configure_logging

console = Console(stderr=True)
# Tables stay readable when piped (CI logs, `| less`), where rich would assume 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's explicit values on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def fail(exc: RasdError) -> NoReturn:
    """Print a clear one-line error (and the log tail it carries), then exit 1."""
    secrets = _known_secrets()
    console.print(f"[bold red]error:[/] {escape(redact(str(exc), secrets))}", soft_wrap=True)
    log_tail = redact(getattr(exc, "log_tail", ""), secrets)
    if log_tail:
        console.print("[dim]" + log_tail.replace("[", r"\[") + "[/]")
    raise typer.Exit(1)


def _known_secrets() -> list[str]:
    try:
        return Settings().secret_values()
    except Exception:  # a broken setting is reported elsewhere; nothing to mask then
        return []


def setup_logging(settings: Settings) -> None:
    """Logging in the configured format (``RASD_LOG_FORMAT``: console or json)."""
    configure_logging(settings, console)


@dataclass(frozen=True)
class Bar:
    """What :func:`progress` yields: ``advance(n)`` and ``total(n)`` (once it is known)."""

    advance: Callable[[int], None]
    total: Callable[[int], None]


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[Bar]:
    """A progress bar on stderr for long work.

    On a terminal it redraws in place; piped, rich prints only the final state,
    so logs stay readable.
    """
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield Bar(
            lambda n: bar.advance(task, n),
            lambda n: bar.update(task, total=n),
        )


def fetch_page(url: str) -> FetchResult:
    """One page through the pipeline's guarded client; a refusal exits 1 with the reason."""
    settings = settings_from()
    client = GuardedClient(
        settings.user_agent, allow_private_networks=settings.allow_private_networks
    )
    try:
        return client.fetch(url)
    except RasdError as exc:
        fail(exc)
    finally:
        client.close()


def matcher_from(rules: Path | None) -> RuleMatcher:
    """The rules file's matcher (its destinations checked too); a bad file exits 1."""
    settings = settings_from(rules_file=rules)
    try:
        rule_set = load_rule_set(settings.rules_path)
        parse_destinations(settings.rules_path, rule_set.destinations)
    except RasdError as exc:
        fail(exc)
    return RuleMatcher(rule_set.rules)


# --- option types ---------------------------------------------------------------------


def env_option(envvar: str, help: str, *names: str, default: str | None = None) -> OptionInfo:
    """An option read from ``envvar`` too; ``--help`` shows the variable and ``default``."""
    option: OptionInfo = typer.Option(
        *names,
        envvar=envvar,
        show_envvar=True,
        # Shown as text: rich would read "[default: ...]" in a help string as markup.
        show_default=default if default is not None else False,
        help=help,
    )
    return option


Namespace = Annotated[
    str | None,
    env_option("RASD_NAMESPACE", "Prefix of every topic, group and index.", default="rasd"),
]
FeedsFile = Annotated[
    Path | None,
    env_option("RASD_FEEDS_FILE", "Feed catalogue.", "--feeds", default="config/feeds.yaml"),
]
RulesFile = Annotated[
    Path | None,
    env_option("RASD_RULES_FILE", "Watch rules.", "--rules", default="config/rules.yaml"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Since = Annotated[
    str, typer.Option("--since", help="Published since: 7d, 24h, 90m, 2w or an ISO date.")
]
