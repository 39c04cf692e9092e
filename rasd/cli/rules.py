"""``rasd rules``: try the watch rules on a text, a file or a page, or on what is indexed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from connectors.elastic import ElasticStore
from connectors.extract import decode_page, extract_text
from pipeline.alerting import build_alerts, parse_destinations
from pipeline.errors import RasdError
from pipeline.matching import RuleHit, RuleMatcher
from pipeline.models import Alert
from pipeline.rules import load_rule_set
from pipeline.search import filters, parse_since

from .common import (
    Namespace,
    RulesFile,
    Since,
    console,
    fail,
    fetch_page,
    matcher_from,
    out,
    progress,
    settings_from,
)

app = typer.Typer(
    help="Watch rules: try them on a text, a file or a page, or on what is indexed.",
    no_args_is_help=True,
)


def match_page(matcher: RuleMatcher, url: str) -> list[RuleHit]:
    """The hits on a page, fetched and extracted as the pipeline does."""
    page = fetch_page(url)
    html, _ = decode_page(page.content, page.charset)
    try:
        found = extract_text(html, page.final_url, datetime.now(UTC))
    except RasdError as exc:
        fail(exc)
    return matcher.match_fields({"title": found.title or "", "body": found.body})


def check(file: Path) -> str:
    """Validate a rules file as ``rasd run`` would load it; the line that says it is ok.

    Raises ``ConfigError`` naming the file, the rule and the field.
    """
    rule_set = load_rule_set(file)
    destinations = parse_destinations(file, rule_set.destinations)
    matcher = RuleMatcher(rule_set.rules)
    return (
        f"{file}: ok, {len(rule_set.rules)} rule(s), {matcher.pattern_count} pattern(s), "
        f"{len(destinations)} destination(s)"
    )


@app.command("check")
def rules_check(
    file: Annotated[Path, typer.Argument(help="The rules file to validate.", show_default=False)],
) -> None:
    """Validate a rules file without running anything; exit 1 naming file, rule and field.

    Checks the schema (unknown or misspelt fields, wrong types), duplicate ids, empty
    terms, unknown destinations and the destinations' own settings.
    """
    try:
        line = check(file)
    except RasdError as exc:
        fail(exc)
    out.print(line, highlight=False)


@app.command("test")
def rules_test(
    rules: RulesFile = None,
    text: Annotated[str | None, typer.Option("--text", help="The text to match.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A UTF-8 text file to match.")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="A page to fetch and extract, then match.")
    ] = None,
) -> None:
    """Print one JSON line per match (rule, term, surface, field, start, end); nothing if none."""
    if sum(x is not None for x in (text, file, url)) != 1:
        raise typer.BadParameter("give exactly one of --text, --file, --url")
    matcher = matcher_from(rules)
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"{file}: {exc}", param_hint="--file") from None
    hits = matcher.match_text(text) if text is not None else match_page(matcher, str(url))
    for hit in hits:
        print(json.dumps(hit.as_json(), ensure_ascii=False))


@dataclass(frozen=True)
class IndexedArticle:
    """The fields of an indexed document that an alert names."""

    id: str
    cluster_id: str
    url: str
    title: str
    outlet: str

    @classmethod
    def of(cls, doc: dict[str, Any]) -> IndexedArticle:
        src = doc["_source"]
        return cls(
            id=doc["_id"],
            cluster_id=src.get("cluster_id") or doc["_id"],
            url=src.get("url") or "",
            title=src.get("title") or "",
            outlet=src.get("outlet") or "",
        )


def backtest(
    store: ElasticStore,
    matcher: RuleMatcher,
    since: datetime,
    advance: Callable[[int], None] = lambda n: None,
) -> Iterator[Alert]:
    """The alerts the rules would raise on the articles indexed since ``since``,
    one per rule and article (nothing is alerted or delivered); ``advance(1)``
    after each article read."""
    for doc in store.scan(filters(since, None)):
        advance(1)
        src = doc["_source"]
        hits = matcher.match_fields(
            {"title": src.get("title") or "", "body": src.get("body") or ""},
            outlet=src.get("outlet") or "",
            feed_name=src.get("feed_name") or "",
            language=src.get("language_detected") or src.get("language") or "",
        )
        matches = [hit.to_rule_match() for hit in hits]
        yield from build_alerts(IndexedArticle.of(doc), matches, lambda: since)


def backtest_line(alert: Alert) -> dict[str, Any]:
    """The JSON line ``rasd rules backtest`` prints for one alert it would raise."""
    return {
        "rule": alert.rule_id,
        "article_id": alert.article_id,
        "cluster_id": alert.cluster_id,
        "url": alert.url,
        "title": alert.title,
        "matches": [
            {"rule": alert.rule_id, **m.model_dump(exclude={"schema_version"})}
            for m in alert.matches
        ],
    }


@app.command("backtest")
def rules_backtest(
    since: Since = "7d",
    rules: RulesFile = None,
    namespace: Namespace = None,
) -> None:
    """Run the rules over the indexed articles; print one JSON line per rule and article.

    Nothing is alerted or delivered. The last line on stderr counts, per rule,
    the articles and the story clusters (the alerts it would have raised)."""
    try:
        when = parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    matcher = matcher_from(rules)
    store = ElasticStore.from_settings(settings_from(namespace=namespace))
    clusters: dict[str, set[str]] = {}
    articles: dict[str, int] = {}
    try:
        total = store.count(filters(when, None))
        with progress("matching the indexed articles", total) as advance:
            for alert in backtest(store, matcher, when, advance.advance):
                clusters.setdefault(alert.rule_id, set()).add(alert.cluster_id)
                articles[alert.rule_id] = articles.get(alert.rule_id, 0) + 1
                print(json.dumps(backtest_line(alert), ensure_ascii=False))
    except Exception as exc:  # the client's errors are many; all mean "cannot read the index"
        console.print(f"[bold red]error:[/] backtest failed: {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        store.close()
    summary = {r: {"articles": articles[r], "clusters": len(c)} for r, c in clusters.items()}
    print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
