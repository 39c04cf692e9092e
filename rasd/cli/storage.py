"""``rasd topics`` and ``rasd index``: the Kafka topics and the Elasticsearch indices."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from connectors.elastic import ElasticStore
from connectors.kafka import Topics, ensure_topics
from pipeline.errors import RasdError

from .common import Namespace, console, fail, settings_from

topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
index_app = typer.Typer(help="Elasticsearch templates and indices.", no_args_is_help=True)


@topics_app.command("create")
def topics_create(namespace: Namespace = None) -> None:
    """Create the pipeline's topics if they are missing (idempotent)."""
    settings = settings_from(namespace=namespace)
    created = ensure_topics(
        settings.kafka,
        Topics(settings.namespace),
        settings.partitions,
        dedupe_window=timedelta(days=settings.dedupe_window_days),
    )
    console.print(f"created: {', '.join(created)}" if created else "all topics exist")


@index_app.command("create")
def index_create(namespace: Namespace = None) -> None:
    """Put the index templates and create the current indices (idempotent)."""
    store = ElasticStore.from_settings(settings_from(namespace=namespace))
    try:
        created = store.ensure()
    finally:
        store.close()
    console.print(
        f"created: {', '.join(created)}"
        if created
        else f"templates updated; indices exist behind {store.alias}"
    )


@index_app.command("migrate")
def index_migrate(
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the old indices, read-only.")
    ] = False,
    namespace: Namespace = None,
) -> None:
    """Move every month to indices made from the current template (after a template
    change): copy, check, swap the aliases atomically. Writes wait while a month moves."""
    store = ElasticStore.from_settings(settings_from(namespace=namespace))
    try:
        store.ensure()  # the current template, which the new indices are made from
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(month: str, done: int, total: int) -> None:
                if month not in tasks:
                    tasks[month] = bar.add_task(f"copying {month}", total=total)
                bar.update(tasks[month], completed=done)

            moved = store.migrate(progress, keep_old=keep_old)
    except RasdError as exc:
        fail(exc)
    finally:
        store.close()
    for month, old, new, n in moved:
        console.print(f"{month}: {old} → {new} ({n} documents)")
    if not moved:
        console.print(f"every month already uses template version {store.template_version}")
