"""The bundled demo site: served correctly, and true to its own expectations.yaml.

The demo (``rasd demo``) and the e2e tests rely on ``tests/fixtures/site``. These
tests serve it with :class:`rasd.demo.FixtureSite` and check that every feed
parses, every linked page exists (except the one meant to answer 404),
trafilatura recovers the gold body of every page, and only the designated
article contains the watched name قيصر as a word of its own.
"""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx
import pytest
import trafilatura
import yaml

from rasd.demo import FixtureSite, default_site_root, write_feeds_file

SITE = Path(__file__).resolve().parent.parent / "fixtures" / "site"
EXPECT: dict[str, Any] = yaml.safe_load((SITE / "expectations.yaml").read_text(encoding="utf-8"))
ARTICLES: list[dict[str, Any]] = EXPECT["articles"]
GOOD_FEEDS = [f for f in EXPECT["feeds"] if not f["broken"]]

# قيصر as a word of its own, with an optional proclitic (و ف ب ل, ال, وال/فال/بال, لل).
CAESAR = re.compile(r"(?<!\w)(?:[وفب]?ال|لل|[وفبل])?قيصر(?!\w)")
_MARKS = re.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u0640]")  # harakat, tatweel


def caesar_hits(text: str) -> list[str]:
    return [m.group(0) for m in CAESAR.finditer(_MARKS.sub("", text))]


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def gold(article: dict[str, Any]) -> list[str]:
    lines = (SITE / article["gold"]).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["path"] for item in items]


class _Head(HTMLParser):
    """Collects <meta> and <link> attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.charset: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta":
            if "charset" in a:
                self.charset = a["charset"]
            key = a.get("property") or a.get("name")
            if key and key not in self.meta:
                self.meta[key] = a.get("content", "")
        elif tag == "link" and "rel" in a:
            self.links.setdefault(a["rel"], a.get("href", ""))


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    with FixtureSite(SITE) as s:
        yield s


@pytest.fixture(scope="module")
def client(site: FixtureSite) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def parse_feed(resp: httpx.Response) -> Any:
    return feedparser.parse(
        resp.content,
        response_headers={
            "content-location": str(resp.url),
            "content-type": resp.headers["content-type"],
        },
    )


# --------------------------------------------------------------------------- server
def test_default_root_is_this_site() -> None:
    assert default_site_root() == SITE


def test_base_url_and_request_log(site: FixtureSite, client: httpx.Client) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", site.base_url)
    assert site.port > 0
    client.get(site.url("/wire/rss.xml?x=1"))
    assert site.requests_for("/wire/rss.xml")
    assert any(r.path == "/wire/rss.xml?x=1" for r in site.requests)


def test_base_placeholder_substituted(site: FixtureSite, client: httpx.Client) -> None:
    for path in [*ids(EXPECT["feeds"]), *ids(ARTICLES), "/feeds.yaml", "/index.html"]:
        body = client.get(site.url(path)).text
        assert "{BASE}" not in body, path
    assert site.base_url + "/sham/articles/" in client.get(site.url("/sham/feed.xml")).text


def test_missing_page_answers_404(site: FixtureSite, client: httpx.Client) -> None:
    assert client.get(site.url(EXPECT["missing_path"])).status_code == 404
    assert client.head(site.url(EXPECT["missing_path"])).status_code == 404
    assert not (SITE / EXPECT["missing_path"].lstrip("/")).exists()


def test_no_escape_from_root(site: FixtureSite) -> None:
    with socket.create_connection((site.host, site.port), timeout=5) as sock:
        sock.sendall(
            b"GET /../../../pyproject.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        reply = sock.recv(200)
    assert reply.startswith(b"HTTP/1.1 404")


def test_conditional_get(site: FixtureSite, client: httpx.Client) -> None:
    url = site.url("/sham/feed.xml")
    first = client.get(url)
    assert first.headers["etag"] and first.headers["last-modified"]
    assert client.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    since = first.headers["last-modified"]
    assert client.get(url, headers={"If-Modified-Since": since}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_override(site: FixtureSite, client: httpx.Client) -> None:
    site.override("/sham/feed.xml", status=503, body="busy {BASE}", headers={"Retry-After": "5"})
    try:
        resp = client.get(site.url("/sham/feed.xml"))
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "5"
        assert resp.text == f"busy {site.base_url}"
    finally:
        site.clear_override("/sham/feed.xml")
    assert client.get(site.url("/sham/feed.xml")).status_code == 200


def test_write_feeds_file(site: FixtureSite, tmp_path: Path) -> None:
    dest = write_feeds_file(SITE, site.base_url, tmp_path / "sub" / "feeds.yaml")
    data = yaml.safe_load(dest.read_text(encoding="utf-8"))
    feeds = data["feeds"]
    assert [f["url"] for f in feeds] == [site.url(f["path"]) for f in EXPECT["feeds"]]
    for f in feeds:
        assert {"url", "name", "outlet", "country", "language"} <= f.keys()
        assert f["language"] == "ar"
    assert {f["outlet"] for f in feeds} == {f["outlet"] for f in EXPECT["feeds"]}


# ---------------------------------------------------------------------------- feeds
@pytest.mark.parametrize("feed", GOOD_FEEDS, ids=ids(GOOD_FEEDS))
def test_feed_parses(site: FixtureSite, client: httpx.Client, feed: dict[str, Any]) -> None:
    resp = client.get(site.url(feed["path"]))
    assert resp.status_code == 200
    ctype = resp.headers["content-type"]
    expected = "application/atom+xml" if feed["format"] == "atom" else "application/rss+xml"
    assert ctype.startswith(expected) and "charset=utf-8" in ctype
    parsed = parse_feed(resp)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == ("atom10" if feed["format"] == "atom" else "rss20")
    assert len(parsed.entries) == feed["items"]
    for entry in parsed.entries:
        assert entry.title and entry.link
        assert entry.get("published_parsed") is not None


def test_broken_feed(site: FixtureSite, client: httpx.Client) -> None:
    resp = client.get(site.url(EXPECT["broken_feed_path"]))
    assert resp.status_code == 200
    parsed = parse_feed(resp)
    assert parsed.bozo
    assert len(parsed.entries) == 0


def test_feed_links_resolve_to_pages(site: FixtureSite, client: httpx.Client) -> None:
    article_paths = set(ids(ARTICLES))
    linked: dict[str, set[str]] = {}
    for feed in GOOD_FEEDS:
        parsed = parse_feed(client.get(site.url(feed["path"])))
        for entry in parsed.entries:
            assert entry.link.startswith(site.base_url + "/"), entry.link
            path = urlsplit(entry.link).path
            linked.setdefault(path, set()).add(feed["path"])
            resp = client.get(entry.link)
            if path == EXPECT["missing_path"]:
                assert resp.status_code == 404
                assert feed["path"] == EXPECT["missing_linked_from"]
            else:
                assert resp.status_code == 200, entry.link
                assert resp.headers["content-type"] == "text/html; charset=utf-8"
                assert path in article_paths, path
    assert set(linked) == article_paths | {EXPECT["missing_path"]}
    for article in ARTICLES:
        assert linked[article["path"]] == set(article["feeds"]), article["path"]


def test_atom_links_are_relative(site: FixtureSite, client: httpx.Client) -> None:
    feed = next(f for f in GOOD_FEEDS if f["format"] == "atom")
    raw = (SITE / feed["path"].lstrip("/")).read_text(encoding="utf-8")
    hrefs = re.findall(r'<link rel="alternate" type="text/html" href="([^"]+)"', raw)
    assert hrefs and not any(h.startswith(("http:", "https:", "{BASE}")) for h in hrefs)
    parsed = parse_feed(client.get(site.url(feed["path"])))
    for entry in parsed.entries:
        assert client.get(entry.link).status_code == 200, entry.link


def test_tracking_link_serves_the_same_article(site: FixtureSite, client: httpx.Client) -> None:
    for t in EXPECT["tracking_urls"]:
        assert "utm_" in t["url"]
        with_utm = client.get(site.url(t["url"]))
        clean = client.get(site.url(t["canonical"]))
        assert with_utm.status_code == clean.status_code == 200
        assert with_utm.content == clean.content
        head = _Head()
        head.feed(with_utm.text)
        assert head.links["canonical"] == site.url(t["canonical"])
        parsed = parse_feed(client.get(site.url(t["linked_from"])))
        assert site.url(t["url"]) in [e.link for e in parsed.entries]


# ---------------------------------------------------------------------------- pages
@pytest.mark.parametrize("article", ARTICLES, ids=ids(ARTICLES))
def test_page_metadata(site: FixtureSite, client: httpx.Client, article: dict[str, Any]) -> None:
    resp = client.get(site.url(article["path"]))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    head = _Head()
    head.feed(resp.text)
    assert head.charset == "utf-8"
    assert head.links["canonical"] == site.url(article["path"])
    assert head.meta["og:url"] == site.url(article["path"])
    assert html.unescape(head.meta["og:title"]) == article["title"]
    assert head.meta["article:published_time"] == article["published"]
    assert head.meta["author"] == article["author"]
    assert f">{html.escape(article['title'], quote=False)}</h1>" in resp.text


@pytest.mark.parametrize("article", ARTICLES, ids=ids(ARTICLES))
def test_gold_matches_page(article: dict[str, Any]) -> None:
    paragraphs = gold(article)
    assert 4 <= len(paragraphs) <= 10
    words = sum(len(p.split()) for p in paragraphs)
    assert 150 <= words <= 500, words
    page = html.unescape((SITE / article["path"].lstrip("/")).read_text(encoding="utf-8"))
    for p in paragraphs:
        assert p in page, p[:60]


@pytest.mark.parametrize("article", ARTICLES, ids=ids(ARTICLES))
def test_trafilatura_recovers_body(
    site: FixtureSite, client: httpx.Client, article: dict[str, Any]
) -> None:
    page = client.get(site.url(article["path"])).text
    extracted = norm(trafilatura.extract(page) or "")
    paragraphs = gold(article)
    found = [p for p in paragraphs if norm(p) in extracted]
    assert len(found) >= 0.8 * len(paragraphs), [p[:50] for p in paragraphs if p not in found]


# ------------------------------------------------------------- content expectations
def test_only_the_designated_article_names_caesar() -> None:
    flagged = [a["path"] for a in ARTICLES if a["alert_caesar"]]
    assert flagged == [EXPECT["caesar_rule"]["article"]]
    for article in ARTICLES:
        page = html.unescape((SITE / article["path"].lstrip("/")).read_text(encoding="utf-8"))
        hits = caesar_hits(page)
        assert bool(hits) == article["alert_caesar"], (article["path"], hits)


def test_caesar_article_uses_inflected_forms() -> None:
    article = next(a for a in ARTICLES if a["alert_caesar"])
    body = "\n".join(gold(article))
    for form in EXPECT["caesar_rule"]["inflected_forms"]:
        assert form in body, form
    assert {"قيصر", "وقيصر", "لقيصر"} <= set(caesar_hits(body))


def test_decoys_contain_their_lookalikes() -> None:
    by_path = {a["path"]: a for a in ARTICLES}
    bodies = {p: "\n".join(gold(by_path[p])) for p in EXPECT["caesar_rule"]["decoys"]}
    assert any(w in body for body in bodies.values() for w in ("قيصرية", "القيصرية"))
    assert any(re.search(r"(?<!\w)[بل]?قيصري(?!\w)", body) for body in bodies.values())
    for path, body in bodies.items():
        assert "قيصر" in body and not caesar_hits(body), path


def test_caesar_regex() -> None:
    for word in ["قيصر", "وقيصر", "لقيصر", "بقيصر", "فقيصر", "القيصر", "«قيصر»", "قيصرُ"]:
        assert caesar_hits(f"قال {word} ذلك"), word
    for word in ["قيصرية", "القيصرية", "قيصري", "بقيصري", "قياصرة"]:
        assert not caesar_hits(f"في {word} اليوم"), word


def test_syndicated_copies() -> None:
    by_path = {a["path"]: a for a in ARTICLES}
    copies = [a for a in ARTICLES if a["syndicated_from"]]
    assert copies
    clusters = {frozenset(c) for c in EXPECT["near_duplicate_clusters"]}
    for copy in copies:
        original = by_path[copy["syndicated_from"]]
        assert copy["outlet"] != original["outlet"]
        assert copy["title"] != original["title"]
        copy_body, original_body = gold(copy), gold(original)
        assert copy_body[1:] == original_body  # an added intro line, then verbatim
        assert frozenset({copy["path"], original["path"]}) in clusters


def test_counts() -> None:
    counts = EXPECT["counts"]
    assert counts["feed_items"] == sum(f["items"] for f in GOOD_FEEDS)
    assert counts["unique_articles"] == len(ARTICLES) == len(set(ids(ARTICLES)))
    copies = sum(len(c) - 1 for c in EXPECT["near_duplicate_clusters"])
    assert counts["unique_stories"] == counts["unique_articles"] - copies
    assert counts["caesar_alerts"] == sum(a["alert_caesar"] for a in ARTICLES)
    assert counts["feed_items_missing"] == 1
    assert len({a["outlet"] for a in ARTICLES}) == 3
    assert all((SITE / a["path"].lstrip("/")).is_file() for a in ARTICLES)


def test_demo_rules_file() -> None:
    rule = EXPECT["caesar_rule"]
    rules = yaml.safe_load((SITE / rule["rules_file"]).read_text(encoding="utf-8"))["rules"]
    assert [r["id"] for r in rules] == [rule["rule_id"]]
    assert rule["term"] in rules[0]["any"] and "قانون قيصر" in rules[0]["any"]
    assert all(isinstance(t, str) for t in rules[0]["any"])
