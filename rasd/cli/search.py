"""``rasd search``: the indexed articles, as precise as the alerts by default."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from connectors.elastic import ElasticStore
from pipeline.search import build_query, filters, parse_since

from .common import AsJson, Namespace, console, out, settings_from

_SNIPPET_FIELDS = ("body.exact", "body", "title.exact", "title")


def snippet(hit: dict[str, Any]) -> str:
    """The first highlighted fragment of a hit, body before title."""
    highlight = hit.get("highlight", {})
    return next((v[0] for k in _SNIPPET_FIELDS if (v := highlight.get(k))), "")


def hit_json(hit: dict[str, Any]) -> str:
    src = hit["_source"]
    return json.dumps(
        {
            "id": hit["_id"],
            "url": src.get("url"),
            "title": src.get("title"),
            "outlet": src.get("outlet"),
            "published_at": src.get("published_at"),
            "cluster_id": src.get("cluster_id"),
            "is_duplicate": src.get("is_duplicate"),
            "snippet": snippet(hit),
            "score": hit.get("_score"),
        },
        ensure_ascii=False,
    )


def print_hit(hit: dict[str, Any]) -> None:
    src = hit["_source"]
    out.print(f"[bold]{src.get('title')}[/]", highlight=False)
    out.print(
        f"  {src.get('outlet')} · {src.get('published_at') or '?'} · {src.get('url')}",
        highlight=False,
        markup=False,
    )
    text = snippet(hit)
    if text:
        marked = escape(text).replace("<em>", "[bold yellow]").replace("</em>", "[/bold yellow]")
        out.print(f"  {marked}", highlight=False)


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
    try:
        es_query = build_query(query, stem=stem)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="QUERY") from None
    try:
        when = parse_since(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    store = ElasticStore.from_settings(settings_from(namespace=namespace))
    try:
        hits = store.search(es_query, size=size, filters=filters(when, outlet))
    except Exception as exc:  # the client's errors are many; all mean "cannot search"
        console.print(f"[bold red]error:[/] search failed: {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        store.close()
    for hit in hits:
        if as_json:
            print(hit_json(hit))
        else:
            print_hit(hit)
    if not hits and not as_json:
        console.print("no matching articles")
