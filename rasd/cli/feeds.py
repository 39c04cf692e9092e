"""``rasd feeds``: the feed catalogue and the poller's view of it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from connectors.feed_check import check_feed
from connectors.feed_shards import KafkaFeedStateStore
from connectors.http import GuardedClient
from connectors.kafka import Bootstrap, Producer, Topics
from pipeline.errors import RasdError
from pipeline.feeds import Feed, load_feeds
from pipeline.schedule import FeedState, ScheduleBounds, items_per_day

from .common import FeedsFile, Namespace, fail, out, settings_from

app = typer.Typer(help="The feed catalogue and the poller's view of it.", no_args_is_help=True)


@app.command("check")
def feeds_check(
    source: Annotated[str, typer.Argument(help="A feed URL, or a feed file to parse.")],
    limit: Annotated[int, typer.Option(help="Entries to list.")] = 20,
) -> None:
    """What the poller sees in one feed: entries, encoding, validators, bozo reason.

    A feed the poller would count as failed exits 1 with the poller's reason
    (http_403, challenge_page, html_not_feed, empty_feed, ...) and its detail.
    """
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


def feed_states(bootstrap: Bootstrap, namespace: str) -> dict[str, FeedState]:
    """Every feed's poller state, as the poller group last saved it."""
    # Read-only: the producer is never used, so no Kafka producer is created.
    store = KafkaFeedStateStore(bootstrap, Topics(namespace).feeds_state, Producer(bootstrap))
    store.load()
    return store.all()


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"


def status_row(feed: Feed, st: FeedState | None, now: float) -> list[str]:
    """One row of ``rasd feeds status``."""
    if st is None:
        return [escape(feed.url), "never polled", "-", "-", "-", "-", "-"]
    health = "dead" if st.dead else ("failing" if st.consecutive_failures else "ok")
    error = f"{_when(st.last_error_at)} {st.last_error}" if st.last_error else "-"
    return [
        escape(feed.url), health, _when(st.last_success), escape(error[:80]),
        f"{items_per_day(st, now, ScheduleBounds()):.1f}",
        f"{int(st.interval or 0) // 60} min", _when(st.next_due),
    ]  # fmt: skip


@app.command("status")
def feeds_status(feeds: FeedsFile = None, namespace: Namespace = None) -> None:
    """Per feed: last success, last error, items/day, current interval and state."""
    settings = settings_from(feeds_file=feeds, namespace=namespace)
    try:
        catalogue = load_feeds(settings.feeds_path)
    except RasdError as exc:
        fail(exc)
    states = feed_states(settings.kafka, settings.namespace)
    now = time.time()
    table = Table("feed", "state", "last success", "last error", "items/day", "interval", "next")
    for feed in catalogue:
        table.add_row(*status_row(feed, states.get(feed.url), now))
    out.print(table)
