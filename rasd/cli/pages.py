"""``rasd extract`` and ``rasd dedupe``: what the pipeline makes of one page, or of two."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from connectors.extract import decode_page, extract_text
from pipeline.errors import RasdError
from pipeline.neardup import compare
from rasd.stages.base import near_config

from .common import AsJson, console, fail, fetch_page, out, settings_from

dedupe_app = typer.Typer(
    help="Duplicate detection: compare two texts or pages.", no_args_is_help=True
)


def extraction(source: str, base_url: str | None = None) -> dict[str, Any]:
    """The fields the extract stage finds in a URL or a saved HTML file, body last."""
    status: int | None = None
    if source.startswith(("http://", "https://")):
        page = fetch_page(source)
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
    return {
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
    fields = extraction(source, base_url)
    if as_json:
        print(json.dumps(fields, ensure_ascii=False, indent=2))
        return
    for key, value in fields.items():
        if key != "body":
            console.print(f"[bold]{key}:[/] {escape(str(value))}")
    print()
    print(fields["body"])


def text_of(source: str) -> str:
    """The body the dedupe stage would see: a page's extracted text, or a file's text."""
    if source.startswith(("http://", "https://")):
        page = fetch_page(source)
        html, _ = decode_page(page.content, page.charset)
        try:
            return extract_text(html, page.final_url, datetime.now(UTC)).body
        except RasdError as exc:
            fail(exc)
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
    config = near_config(settings_from())
    result = compare(text_of(a), text_of(b), config)
    if as_json:
        print(json.dumps(asdict(result), ensure_ascii=False))
        return
    out.print(
        f"similarity {result.similarity:.3f} (MinHash estimate; exact Jaccard "
        f"{result.jaccard:.3f}, word {config.shingle}-shingles), threshold "
        f"{result.threshold:.2f}: [bold]{result.verdict}[/]",
        highlight=False,
    )
