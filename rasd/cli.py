"""The ``rasd`` command: the one composition root of rasd.

It reads the settings, builds the adapters and hands them the pure stages.
Every option shows the environment variable behind it in ``--help``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
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
    console.print(f"[bold red]error:[/] {escape(str(exc))}")
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


# --- the pipeline ---------------------------------------------------------------------

Namespace = Annotated[
    str | None,
    typer.Option(
        envvar="RASD_NAMESPACE",
        show_envvar=True,
        help="Prefix of every topic, group and index [default: rasd]",
    ),
]
FeedsFile = Annotated[
    Path | None,
    typer.Option(
        "--feeds",
        envvar="RASD_FEEDS_FILE",
        show_envvar=True,
        help="Feed catalogue [default: config/feeds.yaml]",
    ),
]
RulesFile = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        envvar="RASD_RULES_FILE",
        show_envvar=True,
        help="Watch rules [default: config/rules.yaml]",
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
    stage: Annotated[str, typer.Argument(help="poll, extract, dedupe, enrich, index or alert")],
    feeds: FeedsFile = None,
    rules: RulesFile = None,
    namespace: Namespace = None,
) -> None:
    """Run one stage alone (start several to scale out; partitions spread across them)."""
    import signal

    from rasd.app import STAGES

    if stage not in (*STAGES, "poll"):
        raise typer.BadParameter(f"choose one of poll, {', '.join(STAGES)}", param_hint="STAGE")
    settings = settings_from(feeds_file=feeds, rules_file=rules, namespace=namespace)
    _logging(settings)
    pipeline = _pipeline(settings)
    signal.signal(signal.SIGTERM, lambda *_: pipeline.stop.set())
    try:
        pipeline.prepare()
        if stage == "poll":
            from connectors.poller import FeedScheduler

            scheduler = FeedScheduler(pipeline.poller(), pipeline.feeds, settings.poll_interval)
            scheduler.start()
            with contextlib.suppress(KeyboardInterrupt):
                pipeline.stop.wait()
            scheduler.stop()
        else:
            with contextlib.suppress(KeyboardInterrupt):
                pipeline.worker(stage).run()
    except RasdError as exc:
        fail(exc)
    finally:
        pipeline.shutdown([])


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
