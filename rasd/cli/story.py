"""``rasd story`` and ``rasd enrich``: a story's timeline across outlets, and what the
enrich stage makes of a text.

:func:`story_timeline` finds every indexed copy of a story (its ``cluster_id``,
or the cluster of an article id) and orders them by first sight;
:func:`enrich_report` runs the enrich stage itself (rules, gazetteers, dates)
on a text, a file or a page, the twin of ``rasd rules test``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from connectors.elastic import ElasticStore
from connectors.extract import decode_page, extract_text
from pipeline.arabic_dates import find_arabic_dates
from pipeline.enrichment import Enricher
from pipeline.errors import RasdError
from pipeline.gazetteer import load_gazetteers
from pipeline.models import Article
from pipeline.settings import Settings

from .common import AsJson, Namespace, RulesFile, fail, fetch_page, matcher_from, out, settings_from

__all__ = ["enrich", "enrich_report", "story", "story_timeline"]


@dataclass(frozen=True)
class Copy:
    """One outlet's copy of a story."""

    outlet: str
    first_seen: str
    published_at: str | None
    title: str
    url: str
    id: str
    #: ``original``, or ``copy (url)``, ``copy (body)``, ``copy (near)``.
    role: str


def story_timeline(store: ElasticStore, ref: str, size: int = 1000) -> tuple[str, list[Copy]]:
    """(cluster id, its copies by first sight) for a cluster id or an article id.

    Raises ``RasdError`` when nothing indexed has that id.
    """
    es = store.client

    def copies(cluster: str) -> list[dict[str, Any]]:
        found = es.search(
            index=store.alias,
            query={"term": {"cluster_id": cluster}},
            size=size,
            sort=[{"first_seen": "asc"}, {"id": "asc"}],
            source_excludes=["body"],
        )
        hits: list[dict[str, Any]] = found["hits"]["hits"]
        return hits

    cluster, hits = ref, copies(ref)
    if not hits:
        article = es.search(
            index=store.alias,
            query={"ids": {"values": [ref]}},
            size=1,
            source_includes=["cluster_id"],
        )["hits"]["hits"]
        if not article:
            raise RasdError(f"no story or article {ref!r} in {store.alias}")
        cluster = article[0]["_source"].get("cluster_id") or ref
        hits = copies(cluster)
    rows = []
    for hit in hits:
        src = hit["_source"]
        kind = src.get("duplicate_kind")
        rows.append(
            Copy(
                outlet=src.get("outlet") or "",
                first_seen=src.get("first_seen") or "",
                published_at=src.get("published_at"),
                title=src.get("title") or "",
                url=src.get("url") or "",
                id=hit["_id"],
                role=f"copy ({kind})" if src.get("is_duplicate") else "original",
            )
        )
    return cluster, rows


def story(
    ref: Annotated[str, typer.Argument(help="A story's cluster id, or an article id.")],
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """The story's timeline: each outlet that carried it, first seen, published, title, and
    whether it was the original or a copy (url, body or near)."""
    settings = settings_from(**({"namespace": namespace} if namespace else {}))
    store = ElasticStore.from_settings(settings)
    try:
        cluster, rows = story_timeline(store, ref)
    except RasdError as exc:
        fail(exc)
    finally:
        store.close()
    if as_json:
        print(json.dumps({"cluster_id": cluster, "copies": [asdict(r) for r in rows]},
                         ensure_ascii=False))  # fmt: skip
        return
    out.print(f"story {escape(cluster)}: {len(rows)} cop{'y' if len(rows) == 1 else 'ies'}")
    for r in rows:
        out.print(
            f"{r.first_seen}  {escape(r.outlet):<20} {r.role:<12} "
            f"published {r.published_at or '-'}  {escape(r.title)}",
            highlight=False,
        )


def enrich_report(
    text: str, title: str, enricher: Enricher, now: datetime, country: str = ""
) -> dict[str, Any]:
    """What the enrich stage makes of ``title`` and ``text``: language, places, entities,
    the rules matched, and the dates it holds (relative ones anchored on ``now``)."""
    article = Article(
        id="text",
        url="text:",
        canonical_url="text:",
        feed_url="text:",
        outlet="",
        feed_name="",
        country=country,
        language="",
        title=title,
        first_seen=now,
        index_name="text",
        body=text,
        fetched_at=now,
        http_status=200,
    )
    found = enricher.enrich(article)
    return {
        "language": found.language_detected,
        "word_count": found.word_count,
        "places": [p.model_dump(mode="json") for p in found.places],
        "primary_place": found.primary_place.model_dump(mode="json")
        if found.primary_place
        else None,
        "countries": found.countries,
        "entities": [e.model_dump(mode="json") for e in found.entities],
        "matched_rules": found.matched_rules,
        "dates": [d.isoformat() for d in find_arabic_dates(f"{title}\n{text}", now=now)],
    }


def _enricher(settings: Settings, rules: Path | None) -> Enricher:
    try:
        gazetteers = load_gazetteers(
            [settings.places_file] if settings.places_file else [],
            [settings.entities_file] if settings.entities_file else [],
            cache_dir=settings.cache_dir,
            config_dir=settings.config_dir,
        )
    except RasdError as exc:
        fail(exc)
    return Enricher(matcher_from(rules), gazetteers)


def enrich(
    source: Annotated[
        str | None, typer.Argument(help="A UTF-8 text file, or a page's URL.", show_default=False)
    ] = None,
    text: Annotated[str | None, typer.Option("--text", help="The text to enrich.")] = None,
    country: Annotated[
        str, typer.Option("--country", help="The outlet's country (ISO code), for ambiguous names.")
    ] = "",
    rules: RulesFile = None,
    as_json: AsJson = False,
) -> None:
    """Print what the enrich stage makes of a text: language, places with ids and
    coordinates, entities, dates, rules. The twin of ``rasd rules test``."""
    if (source is None) == (text is None):
        raise typer.BadParameter("give a FILE or URL, or --text")
    settings = settings_from()
    now = datetime.now(UTC)
    title = ""
    if text is None and source is not None and source.startswith(("http://", "https://")):
        page = fetch_page(source)
        html, _ = decode_page(page.content, page.charset)
        try:
            extracted = extract_text(html, page.final_url, now)
        except RasdError as exc:
            fail(exc)
        title, text = extracted.title or "", extracted.body
    elif text is None and source is not None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"{source}: {exc}", param_hint="FILE") from None
    assert text is not None
    report = enrich_report(text, title, _enricher(settings, rules), now, country.upper())
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    out.print(f"language: {report['language']}, {report['word_count']} words")
    for p in report["places"]:
        where = p["location"] or {}
        out.print(
            f"place   {escape(p['name'])} ({p['id']}, {p['country']}"
            f"{', ' + escape(p['admin1']) if p['admin1'] else ''}) "
            f"{where.get('lat', '-')}, {where.get('lon', '-')}",
            highlight=False,
        )
    for e in report["entities"]:
        out.print(f"entity  {escape(e['name'])} ({e['type']}, {e['id']})", highlight=False)
    for d in report["dates"]:
        out.print(f"date    {d}", highlight=False)
    for r in report["matched_rules"]:
        out.print(f"rule    {r}", highlight=False)
