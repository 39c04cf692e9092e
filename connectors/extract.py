"""Turns a fetched article page into an :class:`~pipeline.models.Article` with trafilatura.

The page is decoded by :func:`pipeline.text.decode_body` (byte-order mark,
HTTP charset, ``<meta>``/XML declaration, strict UTF-8, an explicit
windows-1256/ISO-8859-6 path, then ``charset_normalizer``), and the charset
used is recorded on the article. trafilatura runs first with
``favor_precision`` and, when that pass finds nothing or too little, again
with ``favor_recall``. Both choices are measurements, not taste
(``bench/extraction_eval.py``): on the corpus' hand-gold Arabic pages the
precise pass scores macro F1 0.98 against 0.94 for trafilatura's defaults, and
as a fallback ``favor_recall`` scores as well as readability-lxml (0.97 vs
0.96) at half its time and without another dependency. The body's first and
last lines are then trimmed of the boilerplate Arabic outlets put around an
article (comment policies, "the views expressed…" disclaimers, "read also",
follow-us and app prompts, copyright lines): a general lexicon applied only at
the edges, never per site. Pages that are not articles are refused with a
``PermanentError`` whose reason says why (:data:`NOT_ARTICLE_REASONS`): a home
or section page, a video-only page, a live blog, a paywall stub, or fewer than
:data:`MIN_WORDS` words (``no_article_text``); a non-HTML page is
``not_html``. Every field leaves as plain text
(:func:`pipeline.text.plain_text`), and the link fields (image,
rel=canonical) must be http(s): nothing from the page's markup, scripts or
``javascript:`` links reaches Elasticsearch. The feed's title and date win
over the page's; the page's date comes from its metadata (trafilatura's
header search) and only then from htmldate's extensive search of the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urljoin, urlsplit

import lxml.etree  # type: ignore[import-untyped]  # lxml ships no type information
import lxml.html  # type: ignore[import-untyped]
import trafilatura
from htmldate import find_date
from trafilatura.settings import Document

from connectors.http import FetchResult
from pipeline.arabic_dates import parse_arabic_date
from pipeline.errors import PermanentError
from pipeline.language import detect_language
from pipeline.models import Article, FeedItem
from pipeline.text import decode_body, plain_text
from pipeline.urls import page_canonical

__all__ = [
    "MIN_WORDS",
    "NOT_ARTICLE_REASONS",
    "Extraction",
    "classify_page",
    "decode_page",
    "extract_article",
    "extract_text",
]

#: Below this many words a page is a stub, a video page or a teaser, not an article.
MIN_WORDS: Final = 40
#: A page with fewer words than this that carries a video, paywall or listing
#: signal is that kind of page; a long text with such a signal is still an article.
_STUB_WORDS: Final = 150
#: Reasons of the ``PermanentError`` for pages that are not articles.
NOT_ARTICLE_REASONS: Final = (
    "not_article_home_page",
    "not_article_video",
    "not_article_live_blog",
    "not_article_paywall",
    "no_article_text",
)
_HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})

# Boilerplate lines that Arabic outlets put before or after the article text.
# They are matched only on the body's edge lines (see _trim_edges), so a quote
# that happens to contain one of these words mid-article is never touched.
_EDGE_BOILERPLATE: Final = re.compile(
    r"التعليقات|تعليقات?ك|الآراء الواردة|لا تعبر عن رأي|تعبر عن رأي|"
    r"[اإأ]قر[أا] (?:أيضا|ايضا|أيضاً|ايضاً|المزيد)|"
    r"تابعونا|تابعوا|(?:حمل|حمّل|نزّل|نزل) تطبيق|اشترك في النشرة|اشترك(?:وا)? في قناة|"
    r"جميع الحقوق محفوظة|حقوق النشر|شارك (?:هذا|المقال|الخبر)|"
    r"أرسل(?:ت)? إلى صديق|للمزيد من الأخبار|المصدر\s*[:：]|"
    r"سياسة الخصوصية|شروط (?:ال)?استخدام|إرشادات الاستخدام",
)
# An edge line is boilerplate if it is short and has one of those phrases, if
# it starts with one, or if it has two different ones; a line of prose that
# merely ends in "share this" (a link folded into the paragraph) stays.
_EDGE_SHORT_WORDS: Final = 12
_EDGE_LEAD_CHARS: Final = 40
_EDGE_MAX_WORDS: Final = 70  # longer edge lines are prose, whatever words they contain
_LINK_TAG: Final = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_ATTR: Final = re.compile(r"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_HTML_LANG: Final = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3})", re.IGNORECASE)
_META: Final = re.compile(r"<meta\b[^>]*>", re.IGNORECASE)
_JSON_LD: Final = re.compile(
    r"<script[^>]*application/ld\+json[^>]*>(.*?)</script>", re.IGNORECASE | re.DOTALL
)
_VIDEO_EMBED: Final = re.compile(
    r"<video\b|<iframe[^>]+(?:youtube\.com|youtube-nocookie\.com|dailymotion\.com|vimeo\.com)",
    re.IGNORECASE,
)
_PAYWALL: Final = re.compile(
    r"للمشتركين فقط|حصري(?:ة)? للمشتركين|اشترك (?:الآن )?ل(?:متابعة|مواصلة|إكمال) القراءة|"
    r"لقراءة (?:المقال|باقي المقال|المزيد) (?:كاملا|كاملاً )?اشترك|"
    r"subscribe to (?:continue|read)|subscribers only",
    re.IGNORECASE,
)
_LIVE_TITLE: Final = re.compile(r"مباشر|لحظة بلحظة|أولا بأول|أولاً بأول|\blive\b", re.IGNORECASE)
_TIMESTAMP_LINE: Final = re.compile(r"^\s*\d{1,2}[:.]\d{2}\b")
_ARTICLE_TYPES: Final = frozenset({"NewsArticle", "Article", "ReportageNewsArticle"})
_HEADLINE_LINK: Final = re.compile(
    r"<h[2-4][^>]*>\s*<a\b[^>]*>(.*?)</a>|<a\b[^>]*>\s*<h[2-4][^>]*>(.*?)</h[2-4]>",
    re.IGNORECASE | re.DOTALL,
)
_PRUNE: Final = (
    "//h1",
    "//*[contains(@class, 'deck') or contains(@class, 'subtitle')"
    " or contains(@class, 'sub-title') or contains(@class, 'kicker')]",
)
_NON_TEXT_TAGS: Final = ("script", "style", "noscript", "template", "iframe", "svg", "select")
_BLOCK_TAGS: Final = frozenset(
    {"p", "div", "table", "tr", "td", "ul", "ol", "li", "h2", "h3", "h4", "h5", "h6",
     "blockquote", "section", "article", "figure", "figcaption", "form", "hr"}
)  # fmt: skip


@dataclass(frozen=True)
class Extraction:
    """What trafilatura found on a page, already reduced to plain text."""

    body: str
    title: str | None
    author: str | None
    date: datetime | None
    image_url: str | None
    language: str | None = None
    canonical_url: str | None = None


def decode_page(content: bytes, declared_charset: str | None = None) -> tuple[str, str]:
    """Decode page bytes; return the text and the charset label used."""
    return decode_body(content, declared_charset)


def _looks_like_html(text: str) -> bool:
    head = text[:2048].lstrip().lower()
    return head.startswith(("<!doctype html", "<html")) or "<body" in head or "<p" in head


def _trim_edges(lines: list[str]) -> list[str]:
    """Drop boilerplate lines from both ends of the body (see _EDGE_BOILERPLATE)."""

    def boilerplate(line: str) -> bool:
        words = len(line.split())
        found = list(_EDGE_BOILERPLATE.finditer(line))
        if not found or words > _EDGE_MAX_WORDS:
            return False
        return (
            words <= _EDGE_SHORT_WORDS
            or found[0].start() < _EDGE_LEAD_CHARS
            or len({m.group(0) for m in found}) >= 2
        )

    start, end = 0, len(lines)
    while end > start and boilerplate(lines[end - 1]):
        end -= 1
    while start < end and boilerplate(lines[start]):
        start += 1
    return lines[start:end]


def _plain_body(text: str) -> str:
    lines = [plain_text(line) for line in text.splitlines()]
    return "\n".join(_trim_edges([line for line in lines if line]))


def _http_url(value: str | None, base: str) -> str | None:
    """``value`` resolved against ``base`` if it is a clean http(s) URL, else None."""
    if not value:
        return None
    url = urljoin(base, value.strip())
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if any(c.isspace() or c in "<>\"'`" for c in url):
        return None
    return url


def _attrs(tag: str) -> dict[str, str]:
    return {
        m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or ""
        for m in _ATTR.finditer(tag)
    }


def _canonical(html: str, base: str) -> str | None:
    for tag in _LINK_TAG.finditer(html[:200_000]):
        attrs = _attrs(tag.group(0))
        if "canonical" in attrs.get("rel", "").lower().split():
            return _http_url(attrs.get("href"), base)
    return None


def _meta(html: str, key: str) -> str | None:
    for tag in _META.finditer(html[:200_000]):
        attrs = _attrs(tag.group(0))
        if (attrs.get("property") or attrs.get("name") or "").lower() == key:
            return attrs.get("content")
    return None


def _json_ld_types(html: str) -> tuple[set[str], bool]:
    """The ``@type`` values of the page's JSON-LD, and whether any says not free."""
    types: set[str] = set()
    paywalled = False

    def walk(node: object) -> None:
        nonlocal paywalled
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            kind = node.get("@type")
            for value in kind if isinstance(kind, list) else [kind]:
                if isinstance(value, str):
                    types.add(value)
            if str(node.get("isAccessibleForFree", "")).lower() == "false":
                paywalled = True
            for key in ("@graph", "mainEntity", "mainEntityOfPage", "video"):
                if key in node:
                    walk(node[key])

    for block in _JSON_LD.finditer(html):
        try:
            walk(json.loads(block.group(1)))
        except ValueError:  # broken JSON-LD is common; it tells us nothing
            continue
    return types, paywalled


def _language(body: str, html: str) -> str | None:
    # The text decides: templates carry wrong lang attributes (lang="en-US" on
    # Arabic pages is common); the attribute only fills in when the text cannot.
    found = detect_language(body)
    if found != "und":
        return found
    declared = _HTML_LANG.search(html[:4096])
    return declared.group(1).lower() if declared else None


def _page_date(value: str | None, now: datetime) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    # A date after the fetch is a template's clock or timezone error.
    return min(when, now)


def _author(value: str | None) -> str | None:
    # Metadata "authors" are sometimes logo file names or URLs; those are not people.
    text = plain_text(value)
    parts = [
        part.strip()
        for part in text.split(";")
        if part.strip() and not re.search(r"https?|www\.|logo|\.(?:png|jpe?g|svg)", part, re.I)
    ]
    return "; ".join(parts) or None


def _run(html: str, url: str, now: datetime, *, precise: bool) -> Extraction | None:
    doc = trafilatura.bare_extraction(
        html,
        url=url,
        favor_precision=precise,
        favor_recall=not precise,
        # trafilatura's own fallback (readability/jusText, then a whole-page
        # baseline) is skipped: on the corpus it changes no page's score, it
        # doubles the time, and its baseline dumps whole table layouts, which
        # _dense_block reads better (bench/extraction_eval.py).
        fast=True,
        # The headline and the deck under it are not body text; trafilatura
        # keeps them when they sit inside <article>.
        prune_xpath=list(_PRUNE),
        include_comments=False,
        # Tables on news pages are mostly layout and share widgets; the few
        # real ones (results, prices) read badly as flattened text anyway.
        include_tables=False,
        include_links=False,
        include_images=False,
        with_metadata=True,
        # Page metadata only here; htmldate's search of the whole text is the
        # last resort (see extract_text), as it also finds unrelated dates.
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if not isinstance(doc, Document):  # None: nothing found (a dict only with as_dict)
        return None
    return Extraction(
        body=_plain_body(doc.text or ""),
        title=plain_text(doc.title) or None,
        author=_author(doc.author),
        date=_page_date(doc.date, now),
        image_url=_http_url(doc.image, url),
    )


def _segments(element: lxml.html.HtmlElement) -> tuple[list[str], int]:
    """The element's own text split at ``<br>``/block children, and its words outside links."""
    lines: list[list[str]] = [[]]
    own = 0

    def add(text: str | None, counted: bool = True) -> None:
        nonlocal own
        if text and text.strip():
            lines[-1].append(text)
            if counted:
                own += len(text.split())

    add(element.text)
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == "br" or tag in _BLOCK_TAGS:
            lines.append([])
        elif tag and tag not in _NON_TEXT_TAGS:
            add(child.text_content(), counted=tag != "a")
        add(child.tail)
    return [" ".join(" ".join(parts).split()) for parts in lines if parts], own


def _dense_block(html: str) -> str:
    """The body of a page whose text is one block of ``<br>``-separated lines.

    Older templates (table layouts, many Egyptian and Gulf CMSs) put the whole
    article in one element as text and ``<br><br>``, with no ``<p>``, which
    trafilatura's paragraph-based extraction does not see. The element with
    the most words of its own (not in links, not in child blocks) is taken.
    """
    try:
        root = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return ""
    lxml.etree.strip_elements(
        root, *_NON_TEXT_TAGS, "nav", "header", "footer", "aside", "form", with_tail=False
    )
    best: tuple[int, list[str]] = (0, [])
    for element in root.iter("div", "td", "section", "article", "font", "span"):
        lines, own = _segments(element)
        if own > best[0]:
            best = (own, lines)
    return "\n".join(best[1])


def _words(text: str) -> int:
    return len(text.split())


def classify_page(html: str, found: Extraction | None) -> str | None:
    """The reason this page is not an article, or None if it is one.

    Signals come from the page's own declarations (JSON-LD ``@type`` and
    ``isAccessibleForFree``, ``og:type``), its embeds and the extracted text;
    a listing, video or paywall signal counts only when the text is short,
    because real articles embed videos and sit on paywalled sites too.
    """
    words = 0 if found is None else _words(found.body)
    types, not_free = _json_ld_types(html)
    og_type = (_meta(html, "og:type") or "").lower()
    if "LiveBlogPosting" in types:
        return "not_article_live_blog"
    if found is not None and found.title and _LIVE_TITLE.search(found.title):
        stamped = sum(bool(_TIMESTAMP_LINE.match(line)) for line in found.body.splitlines())
        if stamped >= 5:
            return "not_article_live_blog"
    if words < _STUB_WORDS:
        if not_free or _PAYWALL.search(html):
            return "not_article_paywall"
        if og_type.startswith("video") or ("VideoObject" in types and not types & _ARTICLE_TYPES):
            return "not_article_video"
        if _VIDEO_EMBED.search(html) and words < MIN_WORDS:
            return "not_article_video"
        listing = og_type == "website" or bool(types & {"WebSite", "CollectionPage", "ItemList"})
        # A listing declaration alone is weak (many article templates say
        # og:type=website): the page must also be mostly linked headlines.
        headline_words = sum(
            len(plain_text(m.group(1) or m.group(2)).split()) for m in _HEADLINE_LINK.finditer(html)
        )
        if listing and not types & _ARTICLE_TYPES and headline_words * 2 >= words:
            return "not_article_home_page"
    if words < MIN_WORDS:
        return "no_article_text"
    return None


# Elements where pages print their date: <time>, and classes such as "date",
# "post-time", "published".
_DATE_ELEMENTS: Final = (
    "//time | //*[contains(@class, 'date') or contains(@class, 'time') "
    "or contains(@class, 'publish')]"
)


def arabic_page_date(html: str, now: datetime) -> datetime | None:
    """A date that only Arabic readers' conventions give: in a page's date element,
    a Hijri date, Arabic month names, or a relative one (منذ 3 ساعات, أمس) anchored
    on the fetch time. The first element that holds one wins; never after ``now``."""
    try:
        root = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return None
    for element in root.xpath(_DATE_ELEMENTS)[:20]:
        text = " ".join(str(element.text_content()).split())
        if text and len(text) <= 120:
            when = parse_arabic_date(text, now=now)
            if when is not None:
                return min(when, now)
    return None


def extract_text(html: str, url: str, now: datetime) -> Extraction:
    """Extract the article; raise ``PermanentError`` with a reason if the page is none.

    trafilatura runs precise first, then recall-oriented if that found too
    little; the page is then classified (:func:`classify_page`), and language,
    rel=canonical and, if the metadata had none, htmldate's date are added.
    """
    best = _run(html, url, now, precise=True)
    if best is None or _words(best.body) < MIN_WORDS:
        # The fallback, chosen by measurement (bench/extraction_eval.py scores
        # each candidate alone on every page): a page whose text is one
        # <br>-separated block is read from that block; any other page gets
        # trafilatura's recall-oriented pass, which also supplies the metadata.
        recall = _run(html, url, now, precise=False)
        dense = _plain_body(_dense_block(html))
        if _words(dense) >= MIN_WORDS:
            base = recall or best or Extraction("", None, None, None, None)
            best = replace(base, body=dense)
        elif recall is not None and (best is None or _words(recall.body) > _words(best.body)):
            best = recall
    reason = classify_page(html, best)
    if reason is not None or best is None:
        words = 0 if best is None else _words(best.body)
        raise PermanentError(reason or "no_article_text", f"{url}: {words} words")
    date = best.date
    if date is None:
        # A date element in Arabic (Hijri, relative, month names) before htmldate's
        # guess: htmldate's extensive search takes any year it sees (a copyright line).
        date = arabic_page_date(html, now)
    if date is None:
        date = _page_date(find_date(html, extensive_search=True, original_date=True), now)
    return Extraction(
        body=best.body,
        title=best.title,
        author=best.author,
        date=date,
        image_url=best.image_url,
        language=_language(best.body, html),
        canonical_url=_canonical(html, url),
    )


def extract_article(item: FeedItem, page: FetchResult, now: datetime) -> Article:
    """Build the article for ``item`` from its fetched ``page``; see the module docstring."""
    if page.content_type is not None and page.content_type not in _HTML_TYPES:
        raise PermanentError("not_html", f"{page.final_url}: {page.content_type}")
    if not page.content.strip():
        raise PermanentError("no_article_text", f"{page.final_url}: empty page")
    html, charset = decode_page(page.content, page.charset)
    if page.content_type is None and not _looks_like_html(html):
        raise PermanentError("not_html", f"{page.final_url}: no content type, no HTML")
    found = extract_text(html, page.final_url, now)
    updates: dict[str, object] = {}
    if not item.title and found.title:
        updates["title"] = found.title
    if item.published_at is None and found.date is not None:
        updates["published_at"] = found.date
    canonical = page_canonical(item.canonical_url, page.final_url, found.canonical_url)
    if canonical != item.canonical_url:
        updates["canonical_url"] = canonical
    if updates:
        item = item.model_copy(update=updates)
    return Article.from_item(
        item,
        body=found.body,
        fetched_at=now,
        http_status=page.status,
        author=found.author,
        image_url=found.image_url,
        charset=charset,
        extracted_title=found.title,
        page_language=found.language,
        page_canonical_url=found.canonical_url,
    )
