"""No markup, event handler or javascript: URL reaches Elasticsearch.

A hostile feed and a hostile page, written here and in
``tests/fixtures/extract/articles/hb-levant-wire-0001.html``, carry ``<script>``
blocks, ``on*=`` handlers and ``javascript:`` URLs in every place a real page
can: the head, the body, an image, the share links, the feed's title, summary
and link. They go through feed parsing, extraction and enrichment, and the
document the indexer would send (``ElasticStore.document``) is checked field
by field; link fields must be http(s). No Elasticsearch is contacted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.elastic import ElasticStore
from connectors.extract import extract_article
from connectors.feedparse import parse_feed
from connectors.http import FetchResult
from pipeline.enrichment import enrich
from pipeline.feeds import Feed

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "tests" / "fixtures" / "extract" / "articles" / "hb-levant-wire-0001.html"
FEED = Feed(url="https://mashreq-news.example/rss", name="المشرق", outlet="Mashreq", country="sy")
HOSTILE_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>المشرق</title>
<item>
  <title>فيضان &lt;script&gt;alert(1)&lt;/script&gt;العاصي
    &lt;img src=x onerror=alert(2)&gt;</title>
  <link>https://mashreq-news.example/local/2025/02/11/orontes-flood</link>
  <description><![CDATA[<p onclick="steal()">غمرت المياه
    <a href="javascript:alert(3)">الحقول</a></p>
    <script>document.cookie</script><iframe src="javascript:alert(4)"></iframe>]]></description>
</item>
<item><title>رابط خبيث</title><link>javascript:alert(5)</link></item>
<item><title>رابط بيانات</title>
  <link>data:text/html,&lt;script&gt;alert(6)&lt;/script&gt;</link></item>
</channel></rss>
"""
FORBIDDEN = ("<script", "script>", "onerror", "onclick", "onload", "javascript:", "data:text")
LINK_FIELDS = ("url", "canonical_url", "feed_url", "image_url", "page_canonical_url")


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def test_the_fixtures_carry_all_three_threats() -> None:
    # A sanitizing test on clean input could not fail.
    page = PAGE.read_text(encoding="utf-8")
    for text in (page, HOSTILE_FEED):
        assert "<script" in text.lower() or "&lt;script" in text
        assert "javascript:" in text
    assert "onerror=" in page and "onload=" in page


def test_nothing_hostile_reaches_the_indexed_document() -> None:
    parsed = parse_feed(
        HOSTILE_FEED.encode("utf-8"),
        FEED,
        fetched_url=FEED.url,
        content_type="application/rss+xml",
        namespace="t5",
        now=NOW,
    )
    # The javascript: and data: links are not articles at all.
    assert len(parsed.items) == 1
    assert parsed.entries_without_link == 2
    item = parsed.items[0]
    page = FetchResult(
        url=item.url,
        final_url=item.url,
        status=200,
        headers={},
        content=PAGE.read_bytes(),
        content_type="text/html",
        charset="utf-8",
        elapsed=0.1,
    )
    article = extract_article(item, page, NOW)
    store = ElasticStore("http://127.0.0.1:1", "t5", ROOT / "config")
    doc = store.document(enrich(article), NOW)
    assert doc["body"] and doc["title"] and doc["summary"]
    for text in strings(doc):
        lowered = text.lower()
        for token in FORBIDDEN:
            assert token not in lowered, (token, text[:200])
        assert "<" not in text and ">" not in text, text[:200]
    for field in LINK_FIELDS:
        value = doc.get(field)
        assert value is None or value.startswith(("http://", "https://")), (field, value)
