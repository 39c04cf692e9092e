"""``rasd dlq``: the dead-letter topic, what failed, and replaying it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from connectors.dead_letters import DeadLetter, DeadLetterReader, replay_dead_letters
from connectors.kafka import Producer, Topics
from pipeline.settings import Settings

from .common import AsJson, Namespace, console, out, progress, settings_from

app = typer.Typer(
    help="The dead-letter topic: what failed, and replaying it.", no_args_is_help=True
)
StageFilter = Annotated[str | None, typer.Option("--stage", help="Only this stage's letters.")]
ReasonFilter = Annotated[str | None, typer.Option("--reason", help="Only this reason.")]


def dead_letters(
    settings: Settings,
    stage: str | None = None,
    reason: str | None = None,
    cursor: str | None = None,
    reader: DeadLetterReader | None = None,
) -> list[DeadLetter]:
    """The dead letters (of one stage, with one reason); all of them, or from ``reader``."""
    topics = Topics(settings.namespace)
    own = reader is None
    reader = reader or DeadLetterReader(settings.kafka, topics.dlq, cursor)
    try:
        return [
            d
            for d in reader.read()
            if (stage is None or d.stage == stage) and (reason is None or d.reason == reason)
        ]
    finally:
        if own:
            reader.close()


def replay(
    settings: Settings,
    stage: str | None,
    reason: str | None,
    from_start: bool,
    advance: Callable[[int], None] = lambda n: None,
    total: Callable[[int], None] = lambda n: None,
) -> int:
    """Send the matching letters back to their source topics; return how many were sent.

    Each replay starts where the previous one ended, unless ``from_start``.
    """
    topics = Topics(settings.namespace)
    cursor = None if from_start else topics.group("dlq-replay")
    reader = DeadLetterReader(settings.kafka, topics.dlq, cursor)
    producer = Producer(settings.kafka, client_id="rasd-dlq-replay")
    try:
        letters = dead_letters(settings, stage, reason, reader=reader)
        total(len(letters))
        sent = replay_dead_letters(producer, letters, topics.dlq, advance)
        reader.mark_done()
        return sent
    finally:
        producer.close()
        reader.close()


def _as_json(d: DeadLetter) -> str:
    key = d.key.decode("utf-8", "replace") if d.key else None
    return json.dumps(
        {"partition": d.partition, "offset": d.offset, "key": key, **d.headers},
        ensure_ascii=False,
    )


@app.command("show")
def dlq_show(
    stage: StageFilter = None,
    reason: ReasonFilter = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """List the dead letters: stage, reason, error and where each came from."""
    letters = dead_letters(settings_from(namespace=namespace), stage, reason)
    if as_json:
        for d in letters:
            print(_as_json(d))
        return
    table = Table("offset", "stage", "reason", "source", "error")
    for d in letters:
        source = (
            f"{d.headers.get('rasd.source.topic')}:{d.headers.get('rasd.source.partition')}"
            f"@{d.headers.get('rasd.source.offset')}"
        )
        table.add_row(
            f"{d.partition}@{d.offset}",
            d.stage,
            d.reason,
            source,
            d.headers.get("rasd.error", "")[:120],
        )
    out.print(table)
    console.print(f"{len(letters)} dead letter(s)")


@app.command("replay")
def dlq_replay(
    stage: StageFilter = None,
    reason: ReasonFilter = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Also letters that earlier replays passed.")
    ] = False,
    namespace: Namespace = None,
) -> None:
    """Send dead letters back to their source topic, e.g. once a fixed bug or a
    recovered site makes them processable. Each replay starts where the previous
    one ended (letters its filters skipped included), unless --from-start."""
    with progress("replaying dead letters", None) as bar:
        sent = replay(
            settings_from(namespace=namespace),
            stage,
            reason,
            from_start,
            advance=bar.advance,
            total=bar.total,
        )
    console.print(f"replayed {sent} dead letter(s)")
