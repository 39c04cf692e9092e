"""The ``rasd`` command: the command line's half of the composition root.

Each command group is a module of this package; a command parses its
arguments and calls a function of its module (or of :mod:`rasd.app`) that a
test can call too. :func:`main` turns a server that is down or a bad setting
into one clear line, not a traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as package_version
from typing import Annotated

import typer
from elastic_transport import TransportError as EsTransportError
from elasticsearch import ApiError
from kafka.errors import KafkaError
from pydantic import ValidationError
from rich.markup import escape

from connectors.elastic import explain as explain_es
from connectors.kafka import explain as explain_kafka
from pipeline.errors import RasdError
from pipeline.redact import redact
from pipeline.settings import Settings

from . import (
    alerts,
    certs,
    dlq,
    feeds,
    kibana,
    pages,
    rules,
    run,
    search,
    stack,
    status,
    storage,
    story,
)
from .common import console

__all__ = ["app", "main"]

app = typer.Typer(
    name="rasd",
    help="rasd (رصد) watches Arabic news: feeds → extraction → dedupe → enrichment → "
    "Elasticsearch, with alerts on watched names.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"rasd {package_version('rasd')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """rasd (رصد) watches Arabic news: feeds → extraction → dedupe → enrichment →
    Elasticsearch, with alerts on watched names."""


app.add_typer(stack.app, name="stack")
app.command("run")(run.run)
app.command("worker")(run.worker)
app.command("status")(status.status)
app.add_typer(storage.topics_app, name="topics")
app.add_typer(storage.index_app, name="index")
app.add_typer(dlq.app, name="dlq")
app.command("reset")(run.reset)
app.command("search")(search.search)
app.add_typer(rules.app, name="rules")
app.add_typer(alerts.app, name="alerts")
app.command("demo")(run.demo)
app.add_typer(feeds.app, name="feeds")
app.command("extract")(pages.extract)
app.add_typer(pages.dedupe_app, name="dedupe")
app.add_typer(kibana.app, name="kibana", no_args_is_help=True)
app.add_typer(certs.app, name="certs")
app.command("story")(story.story)
app.command("enrich")(story.enrich)


def main() -> None:
    """Run the CLI; a server that is down or a bad setting is one clear line, not a traceback."""
    try:
        app()
    except RasdError as exc:
        _error(str(exc))
        sys.exit(1)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        _error(f"invalid setting: {problems}")
        sys.exit(2)
    except KafkaError as exc:
        settings = _settings_or_none()
        _error(explain_kafka(exc, settings.kafka if settings else "the configured servers"))
        sys.exit(1)
    except (EsTransportError, ApiError) as exc:
        settings = _settings_or_none()
        _error(explain_es(exc, settings.elasticsearch if settings else "the configured URL"))
        sys.exit(1)


def _error(message: str) -> None:
    """One line on stderr, never wrapped, with every known secret blanked out."""
    settings = _settings_or_none()
    line = redact(message, settings.secret_values() if settings else [])
    console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)


def _settings_or_none() -> Settings | None:
    try:
        return Settings()
    except Exception:  # only for naming the endpoint in an error message
        return None
