"""The ``rasd`` command: the one composition root of rasd.

It reads the settings, builds the adapters and hands them the pure stages.
Every option shows the environment variable behind it in ``--help``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.errors import PermanentError, RasdError
from pipeline.settings import Settings
from rasd.stage_names import WorkerStage

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


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's explicit values on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def fail(exc: RasdError) -> None:
    """Print a clear one-line error (and the log tail it carries), then exit 1."""
    console.print(f"[bold red]error:[/] {escape(str(exc))}")
    log_tail = getattr(exc, "log_tail", "")
    if log_tail:
        console.print("[dim]" + log_tail.replace("[", r"\[") + "[/]")
    raise typer.Exit(1)


KafkaPort = Annotated[
    int | None,
    typer.Option(
        envvar="RASD_KAFKA_PORT",
        show_envvar=True,
        show_default="9092",
        help="Kafka port on 127.0.0.1.",
    ),
]
EsPort = Annotated[
    int | None,
    typer.Option(
        envvar="RASD_ES_PORT",
        show_envvar=True,
        show_default="9200",
        help="Elasticsearch port on 127.0.0.1.",
    ),
]
StateDir = Annotated[
    Path | None,
    typer.Option(
        envvar="RASD_STATE_DIR",
        show_envvar=True,
        show_default="/var/lib/rasd as root, else ~/.local/state/rasd",
        help="Data, logs and pid files of the stack.",
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        envvar="RASD_CACHE_DIR",
        show_envvar=True,
        show_default="~/.cache/rasd",
        help="Downloads and builds, kept between runs.",
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
        Literal["auto", "javac", "ecj"],
        typer.Option(
            envvar="RASD_PLUGIN_COMPILER",
            show_envvar=True,
            help="What compiles the Elasticsearch analysis plugins (auto: javac of a JDK "
            ">= 21 if there is one, else the Eclipse compiler).",
        ),
    ] = "auto",
) -> None:
    """Provision (once) and start Kafka and Elasticsearch; wait until both are ready."""
    from connectors.stack import StackError

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


# --- the pipeline ---------------------------------------------------------------------

Namespace = Annotated[
    str | None,
    typer.Option(
        envvar="RASD_NAMESPACE",
        show_envvar=True,
        show_default="rasd",
        help="Prefix of every topic, group and index.",
    ),
]
FeedsFile = Annotated[
    Path | None,
    typer.Option(
        "--feeds",
        envvar="RASD_FEEDS_FILE",
        show_envvar=True,
        show_default="config/feeds.yaml",
        help="Feed catalogue.",
    ),
]
RulesFile = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        envvar="RASD_RULES_FILE",
        show_envvar=True,
        show_default="config/rules.yaml",
        help="Watch rules.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _logging(settings: Settings) -> None:
    import logging

    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.WARNING,
        format="%(name)s: %(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, markup=False)],
    )
    for name in ("rasd", "connectors", "pipeline"):
        logging.getLogger(name).setLevel(settings.log_level.upper())


def _pipeline(settings: Settings) -> Any:
    from rasd.app import Pipeline

    try:
        return Pipeline(settings)
    except RasdError as exc:
        fail(exc)


def _print_summary(summary: Any, as_json: bool) -> None:
    import json

    data = summary.as_dict()
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("", "count", title="rasd run --once")
    for key, value in data.items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
    for poll in summary.polls:
        if not poll.ok:
            out.print(f"[red]feed failed[/] {poll.feed.url}: {poll.error}", highlight=False)


@app.command("run")
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
    import signal

    settings = settings_from(feeds_file=feeds, rules_file=rules, namespace=namespace)
    _logging(settings)
    pipeline = _pipeline(settings)

    def on_signal(signum: int, frame: object) -> None:
        console.print(f"signal {signum}: finishing the current batches, then stopping")
        pipeline.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if once:
            with console.status("rasd run --once") as status:
                summary = pipeline.run_once(lambda line: status.update(line))
            _print_summary(summary, as_json)
            if not summary.drained and pipeline.stop.is_set():
                console.print("[red]interrupted[/] before the pipeline drained")
                raise typer.Exit(130)
            if not summary.drained:
                console.print(
                    "[red]error:[/] the pipeline did not drain within "
                    f"{settings.drain_timeout:.0f}s (RASD_DRAIN_TIMEOUT)"
                )
                raise typer.Exit(3)
        else:
            pipeline.run_forever()
    except RasdError as exc:
        fail(exc)


@app.command("worker")
def worker(
    stage: Annotated[
        WorkerStage,
        typer.Argument(
            help="The stage to run: a poller instance, a Kafka stage, or alert delivery.",
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
    import signal

    if destination and stage != "deliver":
        raise typer.BadParameter("only the deliver stage takes --destination")

    settings = settings_from(feeds_file=feeds, rules_file=rules, namespace=namespace)
    _logging(settings)
    pipeline = _pipeline(settings)
    signal.signal(signal.SIGTERM, lambda *_: pipeline.stop.set())
    threads: list[Any] = []
    try:
        pipeline.prepare()
        if stage == "poll":
            # One member of the poller group: start several and they share the feeds.
            with contextlib.suppress(KeyboardInterrupt):
                pipeline.sharded_poller().run()
        elif stage == "deliver":
            stages = pipeline.delivery_stages()
            if destination:
                named = {s.removeprefix("deliver-"): s for s in stages}
                unknown = [d for d in destination if d not in named]
                if unknown:
                    raise typer.BadParameter(
                        f"{unknown[0]!r} is not a webhook, Slack or email destination of "
                        f"the rules (they name: {', '.join(named) or 'none'})",
                        param_hint="--destination",
                    )
                stages = tuple(named[d] for d in destination)
            if not stages:
                console.print(
                    "the rules name no destination besides the built-ins "
                    "(alerts topic, alerts index, log): nothing to deliver"
                )
            threads = pipeline.start_workers(stages)
            with contextlib.suppress(KeyboardInterrupt):
                pipeline.stop.wait()
        else:
            with contextlib.suppress(KeyboardInterrupt):
                pipeline.worker(stage).run()
    except RasdError as exc:
        fail(exc)
    finally:
        pipeline.shutdown(threads)


topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
index_app = typer.Typer(help="Elasticsearch templates and indices.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(index_app, name="index")


@topics_app.command("create")
def topics_create(namespace: Namespace = None) -> None:
    """Create the pipeline's topics if they are missing (idempotent)."""
    from connectors.kafka import Topics, ensure_topics

    settings = settings_from(namespace=namespace)
    created = ensure_topics(settings.kafka_servers, Topics(settings.namespace), settings.partitions)
    console.print(f"created: {', '.join(created)}" if created else "all topics exist")


@index_app.command("create")
def index_create(namespace: Namespace = None) -> None:
    """Put the index templates and create the current indices (idempotent)."""
    from connectors.elastic import ElasticStore

    settings = settings_from(namespace=namespace)
    store = ElasticStore.from_settings(settings)
    try:
        created = store.ensure()
    finally:
        store.close()
    console.print(
        f"created: {', '.join(created)}"
        if created
        else f"templates updated; indices exist behind {store.alias}"
    )


dlq_app = typer.Typer(
    help="The dead-letter topic: what failed, and replaying it.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
StageFilter = Annotated[str | None, typer.Option("--stage", help="Only this stage's letters.")]
ReasonFilter = Annotated[str | None, typer.Option("--reason", help="Only this reason.")]


def _dead_letters(settings: Settings, stage: str | None, reason: str | None) -> list[Any]:
    from connectors.kafka import Topics, read_dead_letters

    letters = read_dead_letters(settings.kafka_servers, Topics(settings.namespace).dlq)
    return [
        d
        for d in letters
        if (stage is None or d.stage == stage) and (reason is None or d.reason == reason)
    ]


@dlq_app.command("show")
def dlq_show(
    stage: StageFilter = None,
    reason: ReasonFilter = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """List the dead letters: stage, reason, error and where each came from."""
    import json

    settings = settings_from(namespace=namespace)
    letters = _dead_letters(settings, stage, reason)
    if as_json:
        for d in letters:
            print(
                json.dumps(
                    {
                        "partition": d.partition,
                        "offset": d.offset,
                        "key": d.key.decode("utf-8", "replace") if d.key else None,
                        **d.headers,
                    },
                    ensure_ascii=False,
                )
            )
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


@dlq_app.command("replay")
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
    from connectors.kafka import DeadLetterReader, KafkaSink, Topics, replay_dead_letters

    settings = settings_from(namespace=namespace)
    topics = Topics(settings.namespace)
    cursor = None if from_start else topics.group("dlq-replay")
    reader = DeadLetterReader(settings.kafka_servers, topics.dlq, cursor)
    sink = KafkaSink(settings.kafka_servers, client_id="rasd-dlq-replay")
    try:
        letters = [
            d
            for d in reader.read()
            if (stage is None or d.stage == stage) and (reason is None or d.reason == reason)
        ]
        sent = replay_dead_letters(sink, letters, topics.dlq)
        reader.mark_done()
    finally:
        sink.close()
        reader.close()
    console.print(f"replayed {sent} dead letter(s)")


@app.command("reset")
def reset(
    namespace: Annotated[
        str,
        typer.Option(envvar="RASD_NAMESPACE", show_envvar=True, help="The namespace to delete."),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a namespace: its topics, consumer groups, indices and templates."""
    from rasd.app import reset_namespace

    if not yes:
        typer.confirm(
            f"Delete every topic, group and index of namespace {namespace!r}?", abort=True
        )
    deleted = reset_namespace(settings_from(namespace=namespace))
    console.print(f"deleted: {', '.join(deleted)}" if deleted else "nothing to delete")


@index_app.command("migrate")
def index_migrate(
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the old indices, read-only.")
    ] = False,
    namespace: Namespace = None,
) -> None:
    """Move every month to indices made from the current template (after a template
    change): copy, check, swap the aliases atomically. Writes wait while a month moves."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from connectors.elastic import ElasticStore

    settings = settings_from(namespace=namespace)
    store = ElasticStore.from_settings(settings)
    try:
        store.ensure()  # the current template, which the new indices are made from
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            tasks: dict[str, Any] = {}

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


@app.command("search")
def search(
    query: Annotated[
        str, typer.Argument(help='Words (ANDed), "a phrase", OR between clauses, -word to exclude.')
    ],
    stem: Annotated[
        bool,
        typer.Option("--stem", help="Search the stemmed fields (more recall, less precision)."),
    ] = False,
    size: Annotated[int, typer.Option("--size", "-n", help="How many hits.")] = 10,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Published since: 7d, 24h, 90m, 2w or an ISO date."),
    ] = None,
    outlet: Annotated[
        list[str] | None, typer.Option("--outlet", help="Only this outlet (repeatable).")
    ] = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """Search the indexed articles. By default as precise as the alerts: قيصر finds
    وقيصر and «قيصر», not قيصرية."""
    import json

    from connectors.elastic import ElasticStore
    from pipeline.search import build_query, filters, parse_since

    settings = settings_from(namespace=namespace)
    store = ElasticStore.from_settings(settings)
    try:
        es_query = build_query(query, stem=stem)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="QUERY") from None
    try:
        when = parse_since(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    try:
        hits = store.search(es_query, size=size, filters=filters(when, outlet))
    except Exception as exc:  # the client's errors are many; all mean "cannot search"
        console.print(f"[bold red]error:[/] search failed: {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        store.close()
    for hit in hits:
        src = hit["_source"]
        highlight = hit.get("highlight", {})
        snippet = next(
            (
                v[0]
                for k in ("body.exact", "body", "title.exact", "title")
                if (v := highlight.get(k))
            ),
            "",
        )
        if as_json:
            print(
                json.dumps(
                    {
                        "id": hit["_id"],
                        "url": src.get("url"),
                        "title": src.get("title"),
                        "outlet": src.get("outlet"),
                        "published_at": src.get("published_at"),
                        "cluster_id": src.get("cluster_id"),
                        "is_duplicate": src.get("is_duplicate"),
                        "snippet": snippet,
                        "score": hit.get("_score"),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            out.print(f"[bold]{src.get('title')}[/]", highlight=False)
            out.print(
                f"  {src.get('outlet')} · {src.get('published_at') or '?'} · {src.get('url')}",
                highlight=False,
                markup=False,
            )
            if snippet:
                marked = (
                    escape(snippet)
                    .replace("<em>", "[bold yellow]")
                    .replace("</em>", "[/bold yellow]")
                )
                out.print(f"  {marked}", highlight=False)
    if not hits and not as_json:
        console.print("no matching articles")


rules_app = typer.Typer(
    help="Watch rules: try them on a text, a file or a page, or on what is indexed.",
    no_args_is_help=True,
)
app.add_typer(rules_app, name="rules")


def _matcher(rules: Path | None) -> Any:
    from pipeline.alerting import parse_destinations
    from pipeline.rules import RuleMatcher, load_rule_set

    settings = settings_from(rules_file=rules)
    try:
        rule_set = load_rule_set(settings.rules_path)
        parse_destinations(settings.rules_path, rule_set.destinations)
    except RasdError as exc:
        fail(exc)
    return RuleMatcher(rule_set.rules)


@rules_app.command("check")
def rules_check(
    file: Annotated[Path, typer.Argument(help="The rules file to validate.", show_default=False)],
) -> None:
    """Validate a rules file without running anything; exit 1 naming file, rule and field.

    Checks the schema (unknown or misspelt fields, wrong types), duplicate ids, empty
    terms, unknown destinations and the destinations' own settings.
    """
    from pipeline.alerting import parse_destinations
    from pipeline.rules import RuleMatcher, load_rule_set

    try:
        rule_set = load_rule_set(file)
        destinations = parse_destinations(file, rule_set.destinations)
        matcher = RuleMatcher(rule_set.rules)
    except RasdError as exc:
        fail(exc)
    out.print(
        f"{file}: ok, {len(rule_set.rules)} rule(s), {matcher.pattern_count} pattern(s), "
        f"{len(destinations)} destination(s)",
        highlight=False,
    )


@rules_app.command("test")
def rules_test(
    rules: RulesFile = None,
    text: Annotated[str | None, typer.Option("--text", help="The text to match.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A UTF-8 text file to match.")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="A page to fetch and extract, then match.")
    ] = None,
) -> None:
    """Print one JSON line per match (rule, term, surface, field, start, end); nothing if none."""
    import json
    from datetime import UTC, datetime

    if sum(x is not None for x in (text, file, url)) != 1:
        raise typer.BadParameter("give exactly one of --text, --file, --url")
    matcher = _matcher(rules)
    if text is not None:
        hits = matcher.match_text(text)
    elif file is not None:
        try:
            content = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"{file}: {exc}", param_hint="--file") from None
        hits = matcher.match_text(content)
    else:
        from connectors.extract import decode_page, extract_text

        assert url is not None
        page = _fetch(url)
        html, _ = decode_page(page.content, page.charset)
        try:
            found = extract_text(html, page.final_url, datetime.now(UTC))
        except RasdError as exc:
            fail(exc)
            raise
        hits = matcher.match_fields({"title": found.title or "", "body": found.body})
    for hit in hits:
        print(json.dumps(hit.as_json(), ensure_ascii=False))


@rules_app.command("backtest")
def rules_backtest(
    since: Annotated[
        str, typer.Option("--since", help="Published since: 7d, 24h, 90m, 2w or an ISO date.")
    ] = "7d",
    rules: RulesFile = None,
    namespace: Namespace = None,
) -> None:
    """Run the rules over the indexed articles; print one JSON line per rule and article.

    Nothing is alerted or delivered. The last line on stderr counts, per rule,
    the articles and the story clusters (the alerts it would have raised)."""
    import json

    from elasticsearch import helpers

    from connectors.elastic import ElasticStore
    from pipeline.search import filters, parse_since

    try:
        when = parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    matcher = _matcher(rules)
    settings = settings_from(namespace=namespace)
    store = ElasticStore.from_settings(settings)
    clusters: dict[str, set[str]] = {}
    articles: dict[str, int] = {}
    try:
        docs = helpers.scan(
            store.client,
            index=store.alias,
            query={"query": {"bool": {"filter": filters(when, None)}}},
            size=500,
            preserve_order=False,
        )
        for doc in docs:
            src = doc["_source"]
            hits = matcher.match_fields(
                {"title": src.get("title") or "", "body": src.get("body") or ""},
                outlet=src.get("outlet") or "",
                feed_name=src.get("feed_name") or "",
                language=src.get("language_detected") or src.get("language") or "",
            )
            by_rule: dict[str, list[Any]] = {}
            for hit in hits:
                by_rule.setdefault(hit.rule_id, []).append(hit)
            for rule_id, rule_hits in by_rule.items():
                cluster = src.get("cluster_id") or doc["_id"]
                clusters.setdefault(rule_id, set()).add(cluster)
                articles[rule_id] = articles.get(rule_id, 0) + 1
                line = {
                    "rule": rule_id,
                    "article_id": doc["_id"],
                    "cluster_id": cluster,
                    "url": src.get("url"),
                    "title": src.get("title"),
                    "matches": [h.as_json() for h in rule_hits],
                }
                print(json.dumps(line, ensure_ascii=False))
    except Exception as exc:  # the client's errors are many; all mean "cannot read the index"
        console.print(f"[bold red]error:[/] backtest failed: {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        store.close()
    summary = {r: {"articles": articles[r], "clusters": len(c)} for r, c in clusters.items()}
    print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)


alerts_app = typer.Typer(help="Raised alerts and their delivery.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


Destination = Annotated[
    str | None, typer.Option("--destination", help="Only this destination's alerts.")
]


@alerts_app.command("undelivered")
def alerts_undelivered(
    destination: Destination = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (0: all).", min=0)] = 1000,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """Alerts a destination could not take after its retries (newest first)."""
    import json

    from connectors.alert_sinks import AlertStateIndex
    from connectors.elastic import ElasticStore

    settings = settings_from(namespace=namespace)
    store = ElasticStore.from_settings(settings)
    try:
        state = AlertStateIndex(store.client, settings.namespace)
        total = state.count_undelivered(destination)
        rows = list(state.undelivered(destination, limit=limit or None))
    except RasdError as exc:
        fail(exc)
        raise
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


@alerts_app.command("resend")
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
    import threading

    from connectors.alert_sinks import AlertStateIndex, deliver, make_sink
    from connectors.elastic import ElasticStore
    from pipeline.alerting import parse_destinations
    from pipeline.models import Alert
    from pipeline.rules import load_rule_set

    settings = settings_from(rules_file=rules, namespace=namespace)
    try:
        rule_set = load_rule_set(settings.rules_path)
        specs = parse_destinations(settings.rules_path, rule_set.destinations)
    except RasdError as exc:
        fail(exc)
        raise
    store = ElasticStore.from_settings(settings)
    sinks: dict[str, Any] = {}
    sent = failed = skipped = 0
    try:
        state = AlertStateIndex(store.client, settings.namespace)
        # Read them all first: each resend rewrites its record, which would
        # move it between the pages of a listing still being read.
        rows = [(str(r["destination"]), str(r["alert"])) for r in state.undelivered(destination)]
        console.print(f"{len(rows)} undelivered alert(s) to send again")
        for name, raw in rows:
            try:
                alert = Alert.from_json(raw)
            except PermanentError as exc:  # a record written by an incompatible version
                out.print(f"[red]unreadable[/] record for {name}: {escape(str(exc))[:200]}")
                failed += 1
                continue
            if name not in specs:
                out.print(f"[yellow]skipped[/] {alert.id}: no destination {name!r}")
                failed += 1
                continue
            if state.delivery_state(alert.id, name) == "delivered":
                skipped += 1  # the pipeline delivered it since the listing
                continue
            if name not in sinks:
                sinks[name] = make_sink(name, specs[name])
            ok, error, attempts = deliver(sinks[name], alert, threading.Event().wait)
            state.record_delivery(alert, name, ok, error, attempts)
            sent, failed = sent + ok, failed + (not ok)
            mark = "[green]delivered[/]" if ok else f"[red]failed[/] {escape(error[:120])}"
            out.print(f"{alert.id} → {name}: {mark}")
    except RasdError as exc:  # Elasticsearch went away
        # The alert being sent when it failed may have gone out without its
        # record saying so; a later resend would then send it once more.
        out.print(f"{sent} delivered, {failed} still undelivered before the error")
        fail(exc)
        raise
    finally:
        for sink in sinks.values():
            sink.close()
        store.close()
    already = f", {skipped} delivered meanwhile" if skipped else ""
    out.print(f"{sent} delivered, {failed} still undelivered{already}")
    if failed:
        raise typer.Exit(1)


@app.command("demo")
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
    from rasd.demo import FixtureSite, default_site_root, write_feeds_file

    site = FixtureSite(default_site_root(), port=port).start()
    try:
        base = Settings()
        feeds_file = write_feeds_file(
            default_site_root(), site.base_url, base.state_dir / "demo-feeds.yaml"
        )
        console.print(f"demo site on {site.base_url}; feeds in {feeds_file}")
        args = ["run", "--feeds", str(feeds_file), "--namespace", namespace]
        if once:
            args.append("--once")
        import os

        os.environ["RASD_ALLOW_PRIVATE_NETWORKS"] = "true"
        # Without standalone mode, app() returns the exit code instead of raising it.
        code = app(args, standalone_mode=False)
        if isinstance(code, int) and code != 0:
            raise typer.Exit(code)
        if once:
            console.print(f'try: rasd search --namespace {namespace} "قيصر"')
    finally:
        site.stop()


feeds_app = typer.Typer(
    help="The feed catalogue and the poller's view of it.", no_args_is_help=True
)
app.add_typer(feeds_app, name="feeds")


@feeds_app.command("check")
def feeds_check(
    source: Annotated[str, typer.Argument(help="A feed URL, or a feed file to parse.")],
    limit: Annotated[int, typer.Option(help="Entries to list.")] = 20,
) -> None:
    """What the poller sees in one feed: entries, encoding, validators, bozo reason.

    A feed the poller would count as failed exits 1 with the poller's reason
    (http_403, challenge_page, html_not_feed, empty_feed, ...) and its detail.
    """
    from datetime import UTC, datetime

    from connectors.http import GuardedClient
    from connectors.poller import check_feed

    settings = settings_from()
    with GuardedClient(
        settings.user_agent, allow_private_networks=settings.allow_private_networks
    ) as http:
        check = check_feed(http, source, datetime.now(UTC))
    for label, value in (
        ("status", check.status), ("content-type", check.content_type),
        ("encoding", check.encoding), ("etag", check.etag),
        ("last-modified", check.last_modified), ("cache-control", check.cache_control),
        ("poll hint (s)", check.hint), ("bozo", check.bozo_reason),
        ("entries", f"{check.entries_total} ({check.entries_without_link} without a usable link)"),
    ):  # fmt: skip
        out.print(f"{label:>14}: {escape(str(value))}", highlight=False)
    if check.reason:
        out.print(f"[red]{'failed':>14}:[/] {escape(check.reason)}", highlight=False)
        out.print(f"{'detail':>14}: {escape(check.detail or '-')}", highlight=False)
        raise typer.Exit(1)
    table = Table("published (UTC)", "title", "url")
    for title, url, published in check.items[:limit]:
        table.add_row(published or "-", escape(title), escape(url))
    out.print(table)


@feeds_app.command("status")
def feeds_status(feeds: FeedsFile = None, namespace: Namespace = None) -> None:
    """Per feed: last success, last error, items/day, current interval and state."""
    from datetime import UTC, datetime

    from connectors.feed_shards import KafkaFeedStateStore
    from connectors.kafka import KafkaSink, Topics
    from pipeline.feeds import load_feeds
    from pipeline.schedule import ScheduleBounds, items_per_day

    settings = settings_from(feeds_file=feeds, namespace=namespace)
    try:
        catalogue = load_feeds(settings.feeds_path)
    except RasdError as exc:
        fail(exc)
    # Read-only: the sink is never used, so no producer is created.
    sink = KafkaSink(settings.kafka_servers)
    store = KafkaFeedStateStore(
        settings.kafka_servers, Topics(settings.namespace).feeds_state, sink
    )
    store.load()
    states = store.all()
    now = time.time()

    def when(ts: float | None) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"

    table = Table("feed", "state", "last success", "last error", "items/day", "interval", "next")
    for feed in catalogue:
        st = states.get(feed.url)
        if st is None:
            table.add_row(escape(feed.url), "never polled", "-", "-", "-", "-", "-")
            continue
        health = "dead" if st.dead else ("failing" if st.consecutive_failures else "ok")
        error = f"{when(st.last_error_at)} {st.last_error}" if st.last_error else "-"
        table.add_row(
            escape(feed.url), health, when(st.last_success), escape(error[:80]),
            f"{items_per_day(st, now, ScheduleBounds()):.1f}",
            f"{int(st.interval or 0) // 60} min", when(st.next_due),
        )  # fmt: skip
    out.print(table)


def _fetch(url: str) -> Any:
    """One page through the pipeline's guarded client; a refusal exits 1 with the reason."""
    from connectors.http import GuardedClient

    settings = settings_from()
    client = GuardedClient(
        settings.user_agent, allow_private_networks=settings.allow_private_networks
    )
    try:
        return client.fetch(url)
    except RasdError as exc:
        fail(exc)
        raise  # fail() exits; this keeps the type checker informed
    finally:
        client.close()


@app.command("extract")
def extract(
    source: Annotated[str, typer.Argument(help="An http(s) URL to fetch, or a saved HTML file.")],
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="For a file: the URL it was saved from (resolves links)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Print what the extract stage makes of one page: fields, body, or why it is no article.

    A URL goes through the same guarded client as the pipeline (User-Agent,
    address checks, size cap); a refused page exits 1 with the reason
    (``not_article_home_page``, ``no_article_text``, ``blocked_address``…).
    """
    import json
    from datetime import UTC, datetime

    from connectors.extract import decode_page, extract_text

    status: int | None = None
    if source.startswith(("http://", "https://")):
        page = _fetch(source)
        content, declared, url, status = page.content, page.charset, page.final_url, page.status
    else:
        try:
            content = Path(source).read_bytes()
        except OSError as exc:
            raise typer.BadParameter(f"{source}: {exc}") from None
        declared, url = None, base_url or Path(source).resolve().as_uri()
    html, charset = decode_page(content, declared)
    try:
        found = extract_text(html, url, datetime.now(UTC))
    except RasdError as exc:
        fail(exc)
        raise
    fields = {
        "url": url,
        "http_status": status,
        "charset": charset,
        "title": found.title,
        "author": found.author,
        "published": found.date.isoformat() if found.date else None,
        "language": found.language,
        "canonical_url": found.canonical_url,
        "image_url": found.image_url,
        "words": len(found.body.split()),
        "body": found.body,
    }
    if as_json:
        print(json.dumps(fields, ensure_ascii=False, indent=2))
        return
    for key, value in fields.items():
        if key != "body":
            console.print(f"[bold]{key}:[/] {escape(str(value))}")
    print()
    print(found.body)


dedupe_app = typer.Typer(
    help="Duplicate detection: compare two texts or pages.", no_args_is_help=True
)
app.add_typer(dedupe_app, name="dedupe")


def _text_of(source: str) -> str:
    """The body the dedupe stage would see: a page's extracted text, or a file's text."""
    if source.startswith(("http://", "https://")):
        from datetime import UTC, datetime

        from connectors.extract import decode_page, extract_text

        page = _fetch(source)
        html, _ = decode_page(page.content, page.charset)
        try:
            return extract_text(html, page.final_url, datetime.now(UTC)).body
        except RasdError as exc:
            fail(exc)
            raise  # fail() exits; this keeps the type checker informed
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"{source}: {exc}") from None


@dedupe_app.command("compare")
def dedupe_compare(
    a: Annotated[str, typer.Argument(help="A UTF-8 text file, or an http(s) URL to extract.")],
    b: Annotated[str, typer.Argument(help="The other file or URL.")],
    as_json: AsJson = False,
) -> None:
    """The near-duplicate similarity of two articles and the dedupe stage's verdict."""
    import json
    from dataclasses import asdict
    from datetime import timedelta

    from pipeline.neardup import NearDupConfig, compare

    settings = settings_from()
    config = NearDupConfig(
        threshold=settings.dedupe_threshold, window=timedelta(days=settings.dedupe_window_days)
    )
    result = compare(_text_of(a), _text_of(b), config)
    if as_json:
        print(json.dumps(asdict(result), ensure_ascii=False))
        return
    out.print(
        f"similarity {result.similarity:.3f} (MinHash estimate; exact Jaccard "
        f"{result.jaccard:.3f}, word {config.shingle}-shingles), threshold "
        f"{result.threshold:.2f}: [bold]{result.verdict}[/]",
        highlight=False,
    )


kibana_app = typer.Typer(help="Kibana saved objects (data views, searches, dashboard).")
app.add_typer(kibana_app, name="kibana", no_args_is_help=True)


@kibana_app.command("setup")
def kibana_setup(
    url: Annotated[
        str,
        typer.Option(envvar="RASD_KIBANA_URL", show_envvar=True, help="Kibana's base URL."),
    ] = "http://127.0.0.1:5601",
    username: Annotated[
        str | None,
        typer.Option(envvar="RASD_KIBANA_USERNAME", show_envvar=True, help="Kibana user."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="RASD_KIBANA_PASSWORD",
            show_envvar=True,
            help="Its password.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to keep retrying while Kibana starts.")
    ] = 300.0,
    namespace: Namespace = None,
) -> None:
    """Import config/kibana/rasd.ndjson into Kibana (overwriting), waiting until it is up."""
    from connectors.kibana import KibanaClient, for_namespace, ndjson_path

    settings = settings_from(namespace=namespace)
    path = ndjson_path(settings.config_dir)
    ndjson = for_namespace(path.read_text(encoding="utf-8"), settings.namespace)
    try:
        with KibanaClient(url, username, password) as kibana:
            answer = kibana.import_ndjson(ndjson, wait=wait, progress=console.print)
    except RasdError as exc:
        fail(exc)
    console.print(
        f"kibana: imported {answer.get('successCount', 0)} objects from {path} "
        f"for namespace {settings.namespace}"
    )


def main() -> None:
    """Run the CLI; a server that is down or a bad setting is one clear line, not a traceback."""
    from elastic_transport import TransportError as EsTransportError
    from elasticsearch import ApiError
    from kafka.errors import KafkaError
    from pydantic import ValidationError

    try:
        app()
    except RasdError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(1)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        console.print(f"[bold red]error:[/] invalid setting: {escape(problems)}")
        sys.exit(2)
    except KafkaError as exc:
        settings = _settings_or_none()
        where = settings.kafka_servers if settings else "the configured servers"
        console.print(
            f"[bold red]error:[/] Kafka at {where}: {exc!r} (is it running? `rasd stack up`)"
        )
        sys.exit(1)
    except (EsTransportError, ApiError) as exc:
        settings = _settings_or_none()
        where = settings.elasticsearch_url if settings else "the configured URL"
        console.print(
            f"[bold red]error:[/] Elasticsearch at {where}: {escape(str(exc))} (is it running?)"
        )
        sys.exit(1)


def _settings_or_none() -> Settings | None:
    try:
        return Settings()
    except Exception:  # only for naming the endpoint in an error message
        return None
