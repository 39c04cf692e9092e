"""Article extraction: plain text only, charsets, and pages that are not articles.

The article page below is written for this test in the style of an Arabic news
site, with the boilerplate and the hostile bits real pages carry (navigation,
footer, a related box, ``<script>``, an ``onclick=`` handler, a ``javascript:``
link and a ``javascript:`` image). The charset fixtures are read in place from
``../shared/corpus/articles``.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.extract import (
    NOT_ARTICLE_REASONS,
    classify_page,
    decode_page,
    extract_article,
    extract_text,
)
from connectors.http import FetchResult
from pipeline.arabic import normalize
from pipeline.errors import PermanentError
from pipeline.models import Article
from pipeline.text import decode_body
from pipeline.urls import canonicalize_url
from tests.unit.helpers import item

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "articles"
URL = "https://www.enabbaladi.net/742513/"

PARAGRAPHS = [
    "قال المنشق المعروف باسم قيصر، في أول مقابلة مصورة له منذ سقوط النظام، إن آلاف الصور "
    "التي سربها من سجون الأجهزة الأمنية توثق مقتل معتقلين تحت التعذيب في دمشق وريفها.",
    "وأضاف أن فريق التوثيق الذي عمل معه طوال سنوات احتفظ بنسخ أصلية من الملفات، وأن هذه "
    "النسخ سلمت إلى لجنة تحقيق دولية مستقلة تعمل على مطابقة الصور مع أسماء المفقودين.",
    "وطالب قيصر بمحاسبة المسؤولين عن هذه الجرائم أمام المحاكم الدولية، مؤكدًا أن العدالة "
    "للضحايا وذويهم هي الشرط الأول لأي مصالحة وطنية حقيقية في سوريا بعد الحرب.",
    "من جهتها، قالت منظمات حقوقية سورية إن شهادة قيصر تفتح الباب أمام مئات العائلات "
    "لمعرفة مصير أبنائها، ودعت السلطات الجديدة إلى فتح أرشيف السجون أمام المحققين.",
]

PAGE = f"""<!DOCTYPE html>
<html lang="ar" dir="rtl">
<head>
  <meta charset="utf-8">
  <title>قيصر يتحدث للمرة الأولى | عنب بلدي</title>
  <meta property="og:title" content="قيصر يتحدث للمرة الأولى">
  <meta property="og:image" content="javascript:alert('og')">
  <meta name="author" content="فريق التحرير">
  <meta property="article:published_time" content="2026-11-19T09:30:00+03:00">
  <script>window.dataLayer = [{{"secret": "TRACKER-SCRIPT-TEXT"}}];</script>
  <style>.nav {{ color: red }} /* STYLE-TEXT */</style>
</head>
<body>
  <header>
    <nav class="menu">
      <a href="/">الرئيسية</a> <a href="/politics/">سياسة</a> <a href="/economy/">اقتصاد</a>
      <a href="javascript:void(0)" onclick="openMenu()">القائمة الكاملة</a>
    </nav>
  </header>
  <main>
    <article>
      <h1>قيصر يتحدث للمرة الأولى</h1>
      <div class="byline">عنب بلدي — دمشق</div>
      <p>{PARAGRAPHS[0]}</p>
      <p>{PARAGRAPHS[1]}</p>
      <script>document.write("INLINE-SCRIPT-TEXT");</script>
      <p onclick="track('p3')">{PARAGRAPHS[2]}</p>
      <aside class="related"><h3>اقرأ أيضًا</h3>
        <ul><li><a href="/742400/">تقرير سابق عن المعتقلين</a></li></ul></aside>
      <p>{PARAGRAPHS[3]} <a href="javascript:alert(1)">شارك الخبر</a></p>
    </article>
  </main>
  <footer>
    <p>جميع الحقوق محفوظة لعنب بلدي 2026 — سياسة الخصوصية — اتصل بنا</p>
    <a href="javascript:subscribe()" onclick="subscribe()">اشترك في النشرة البريدية</a>
  </footer>
  <script src="/static/app.js"></script>
  <script>console.log("FOOTER-SCRIPT-TEXT")</script>
</body>
</html>
"""


def page(
    html: str | bytes,
    *,
    content_type: str | None = "text/html",
    charset: str | None = "utf-8",
    url: str = URL,
) -> FetchResult:
    content = html.encode("utf-8") if isinstance(html, str) else html
    return FetchResult(
        url=url,
        final_url=url,
        status=200,
        headers={},
        content=content,
        content_type=content_type,
        charset=charset,
        elapsed=0.1,
    )


def all_text(article: Article) -> str:
    return " ".join(str(v) for v in article.model_dump().values() if v is not None)


def test_article_body_is_the_paragraphs_in_plain_text() -> None:
    article = extract_article(item(URL, title=""), page(PAGE), NOW)
    for paragraph in PARAGRAPHS:
        assert paragraph in article.body
    assert article.body.count("\n") >= 3  # one paragraph per line
    for boilerplate in ("الرئيسية", "جميع الحقوق محفوظة", "اشترك في النشرة", "القائمة الكاملة"):
        assert boilerplate not in article.body
    assert article.charset == "utf-8"
    assert article.http_status == 200
    assert article.fetched_at == NOW


def test_no_markup_script_or_javascript_reaches_any_field() -> None:
    article = extract_article(item(URL, title=""), page(PAGE), NOW)
    text = all_text(article)
    for token in ("<", ">", "script", "SCRIPT-TEXT", "STYLE-TEXT", "onclick", "javascript:"):
        assert token not in text, token
    assert article.image_url is None  # the og:image was a javascript: URL


def test_page_title_and_date_fill_the_gaps_left_by_the_feed() -> None:
    article = extract_article(item(URL, title=""), page(PAGE), NOW)
    assert article.title == "قيصر يتحدث للمرة الأولى"
    assert article.extracted_title == "قيصر يتحدث للمرة الأولى"
    assert article.published_at is not None
    assert article.published_at.date().isoformat() == "2026-11-19"


def test_feed_title_and_date_win() -> None:
    fed = item(URL, title="عنوان من الخلاصة").model_copy(
        update={"published_at": datetime(2026, 11, 18, tzinfo=UTC)}
    )
    article = extract_article(fed, page(PAGE), NOW)
    assert article.title == "عنوان من الخلاصة"
    assert article.published_at == datetime(2026, 11, 18, tzinfo=UTC)
    assert article.id == fed.id and article.index_name == fed.index_name


def test_http_image_is_kept_and_resolved() -> None:
    html = PAGE.replace("javascript:alert('og')", "/uploads/2026/11/caesar.jpg")
    article = extract_article(item(URL), page(html), NOW)
    assert article.image_url == "https://www.enabbaladi.net/uploads/2026/11/caesar.jpg"


def test_windows_1256_page_without_any_declaration() -> None:
    html = PAGE.replace('<meta charset="utf-8">', "").encode("cp1256", errors="strict")
    article = extract_article(item(URL), page(html, charset=None), NOW)
    assert article.charset == "windows-1256"
    assert PARAGRAPHS[0] in article.body
    assert "\ufffd" not in article.body


def test_wrong_utf8_header_on_a_windows_1256_page() -> None:
    html = PAGE.replace('<meta charset="utf-8">', '<meta charset="windows-1256">')
    article = extract_article(item(URL), page(html.encode("cp1256"), charset="utf-8"), NOW)
    assert article.charset == "windows-1256"
    assert PARAGRAPHS[2] in article.body


def test_latin_label_on_arabic_bytes_is_read_as_windows_1256() -> None:
    text, charset = decode_body(PARAGRAPHS[0].encode("cp1256"), "iso-8859-1")
    assert (text, charset) == (PARAGRAPHS[0], "windows-1256")
    french = "Le café de l'été à Genève".encode("latin-1")
    assert decode_body(french, "iso-8859-1") == ("Le café de l'été à Genève", "iso-8859-1")


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("ar-chardet-cp1256-0001.html", "windows-1256"),
        ("ar-chardet-iso88596-0001.html", "iso-8859-6"),
    ],
)
def test_corpus_arabic_single_byte_fixtures_decode_cleanly(fixture: str, expected: str) -> None:
    path = CORPUS / fixture
    if not path.is_file():
        pytest.fail(f"corpus fixture {path} is missing; it lives in ../shared/corpus/articles")
    text, charset = decode_page(path.read_bytes())
    assert charset == expected
    assert "\ufffd" not in text
    assert "كتائب الشهيد عز الدين القسام" in text
    assert "قطاع غزة" in text


@pytest.mark.parametrize(
    ("data", "declared", "charset"),
    [
        ("\ufeffقيصر".encode(), "windows-1256", "utf-8"),  # the BOM beats the label
        ("\ufeffقيصر".encode("utf-16-le"), "utf-8", "utf-16-le"),
        ("قيصر".encode(), None, "utf-8"),
        ("قيصر".encode("cp1256"), "utf-8", "windows-1256"),  # a wrong label falls through
    ],
)
def test_charset_order(data: bytes, declared: str | None, charset: str) -> None:
    assert decode_body(data, declared) == ("قيصر", charset)


def test_near_empty_page_is_not_an_article() -> None:
    stub = """<html><head><title>فيديو</title></head><body><nav><a href="/">الرئيسية</a></nav>
    <article><h1>شاهد الفيديو</h1><p>اضغط لمشاهدة الفيديو.</p></article></body></html>"""
    with pytest.raises(PermanentError) as err:
        extract_article(item(URL), page(stub), NOW)
    assert err.value.reason == "no_article_text"


def test_empty_body_is_not_an_article() -> None:
    with pytest.raises(PermanentError) as err:
        extract_article(item(URL), page(b""), NOW)
    assert err.value.reason == "no_article_text"


@pytest.mark.parametrize("content_type", ["application/pdf", "image/jpeg", "application/json"])
def test_non_html_content_type(content_type: str) -> None:
    with pytest.raises(PermanentError) as err:
        extract_article(item(URL), page(PAGE, content_type=content_type), NOW)
    assert err.value.reason == "not_html"


def test_unlabelled_non_html_bytes() -> None:
    with pytest.raises(PermanentError) as err:
        extract_article(item(URL), page(b"%PDF-1.7 binary", content_type=None, charset=None), NOW)
    assert err.value.reason == "not_html"


# --------------------------------------------------------------------------- quality

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "extract"


def _tokens(text: str) -> Counter[str]:
    # The corpus README's convention (bench/extraction_eval.py prints the same figures).
    out: Counter[str] = Counter()
    for raw in normalize(text).split():
        token = "".join(c for c in raw if not unicodedata.category(c).startswith("P"))
        if token:
            out[token] += 1
    return out


def _f1(gold: str, found: str) -> float:
    g, o = _tokens(gold), _tokens(found)
    overlap = sum((g & o).values())
    if not overlap:
        return 0.0
    p, r = overlap / sum(o.values()), overlap / sum(g.values())
    return 2 * p * r / (p + r)


def _gold_pages(folder: Path) -> list[tuple[str, Path]]:
    return [(g.name.removesuffix(".gold.txt"), g) for g in sorted(folder.glob("*.gold.txt"))]


def _body_f1(folder: Path, page_id: str) -> float:
    html, _ = decode_body((folder / f"{page_id}.html").read_bytes())
    found = extract_text(html, f"https://news.example/{page_id}", NOW)
    return _f1((folder / f"{page_id}.gold.txt").read_text(encoding="utf-8"), found.body)


@pytest.mark.parametrize("folder", [CORPUS, FIXTURES / "articles"], ids=["corpus", "held-back"])
def test_extraction_quality_meets_the_targets(folder: Path) -> None:
    pages = _gold_pages(folder)
    if folder == CORPUS and not pages:
        pytest.fail(f"no gold pages in {CORPUS}; they live in ../shared/corpus/articles")
    scores = {page_id: _body_f1(folder, page_id) for page_id, _ in pages}
    assert min(scores.values()) >= 0.93, scores
    assert sum(scores.values()) / len(scores) >= 0.98, scores


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "non_articles").glob("*.html")), ids=lambda p: p.stem
)
def test_non_articles_are_refused_with_their_reason(path: Path) -> None:
    # Each fixture is named after the reason it must be refused with.
    assert path.stem in NOT_ARTICLE_REASONS
    with pytest.raises(PermanentError) as err:
        extract_article(item(URL, title=""), page(path.read_bytes()), NOW)
    assert err.value.reason == path.stem


def test_real_articles_are_not_classified_as_non_articles() -> None:
    for folder in (CORPUS, FIXTURES / "articles"):
        for page_id, _ in _gold_pages(folder):
            html, _ = decode_body((folder / f"{page_id}.html").read_bytes())
            found = extract_text(html, URL, NOW)
            assert classify_page(html, found) is None, page_id


def test_a_long_article_with_a_video_and_a_listing_signal_is_an_article() -> None:
    video = '<video src="https://cdn.example/v.mp4"></video>'
    html = PAGE.replace("<main>", f'<main>{video}<meta property="og:type" content="website">')
    article = extract_article(item(URL, title=""), page(html), NOW)
    assert PARAGRAPHS[0] in article.body


# --------------------------------------------------------------------------- fields


def test_held_back_page_fields() -> None:
    folder = FIXTURES / "articles"
    html = (folder / "hb-gulf-economy-0001.html").read_bytes()
    article = extract_article(
        item("https://gulf-econ.example/ports/x", title=""),
        page(html, url="https://gulf-econ.example/ports/x"),
        NOW,
    )
    # lang="en" on the page: the text decides.
    assert article.page_language == "ar"
    assert article.page_canonical_url == "https://gulf-econ.example/ports/2024/10/container-growth"
    assert article.published_at is not None
    assert article.published_at.date() == datetime(2024, 10, 2).date()  # htmldate: day precision
    assert article.title == "موانئ المنطقة تسجل نموا قياسيا في مناولة الحاويات"
    assert article.author == "ريم الكعبي"
    # The headline and the deck are not body text.
    assert not article.body.startswith("موانئ المنطقة")
    assert "تقترب من حدودها القصوى" not in article.body


def test_persian_page_is_recorded_as_persian() -> None:
    html = (CORPUS / "fa-khabaronline-0001.html").read_bytes()
    article = extract_article(item(URL, title=""), page(html, charset=None), NOW)
    assert article.page_language == "fa"


def test_canonical_link_must_be_http() -> None:
    html = PAGE.replace("<head>", '<head><link rel="canonical" href="javascript:alert(1)">')
    article = extract_article(item(URL, title=""), page(html), NOW)
    assert article.page_canonical_url is None
    html = PAGE.replace("<head>", '<head><link rel="canonical" href="/742513/slug">')
    article = extract_article(item(URL, title=""), page(html), NOW)
    assert article.page_canonical_url == "https://www.enabbaladi.net/742513/slug"


def test_the_dedupe_canonical_comes_from_the_page() -> None:
    original = item(URL, title="")
    assert original.canonical_url == canonicalize_url(URL)
    # rel=canonical (relative here) becomes the article's canonical URL.
    html = PAGE.replace("<head>", '<head><link rel="canonical" href="/742513/slug?utm_medium=x">')
    article = extract_article(original, page(html), NOW)
    assert article.canonical_url == "https://enabbaladi.net/742513/slug"
    assert article.id == original.id  # the id fixed at discovery never changes
    # A home-page canonical is ignored; the URL the redirects ended on counts.
    html = PAGE.replace("<head>", '<head><link rel="canonical" href="/">')
    article = extract_article(
        original, page(html, url="https://www.enabbaladi.net/2026/11/x/"), NOW
    )
    assert article.canonical_url == "https://enabbaladi.net/2026/11/x"
    article = extract_article(original, page(PAGE), NOW)
    assert article.canonical_url == original.canonical_url


def test_date_from_htmldate_when_the_metadata_has_none() -> None:
    html = PAGE.replace(
        '<meta property="article:published_time" content="2026-11-19T09:30:00+03:00">', ""
    )
    html = html.replace('<div class="byline">', '<div class="byline">نشر في 2026-11-18 ')
    article = extract_article(item(URL, title=""), page(html), NOW)
    assert article.published_at is not None
    assert article.published_at.date() == datetime(2026, 11, 18).date()


@pytest.mark.parametrize(
    ("byline", "expected"),
    [
        ('<span class="post-date">منذ 3 ساعات</span>', NOW - timedelta(hours=3)),
        ("<time>أمس</time>", NOW - timedelta(days=1)),
        ('<span class="date">15 جمادى الأولى 1448 هـ</span>', datetime(2026, 10, 26, tzinfo=UTC)),
    ],
)
def test_arabic_relative_and_hijri_dates_on_the_page(byline: str, expected: datetime) -> None:
    """When neither the metadata nor htmldate has a date, the page's date element is read."""
    html = PAGE.replace(
        '<meta property="article:published_time" content="2026-11-19T09:30:00+03:00">', ""
    )
    html = html.replace('<div class="byline">', f'<div class="byline">{byline} ')
    article = extract_article(item(URL, title=""), page(html), NOW)
    assert article.published_at == expected


def test_hostile_fixture_reaches_elasticsearch_clean() -> None:
    # The held-back wire page carries <script>, on*= handlers and javascript: URLs
    # in the head, the body, an image and the share links.
    raw = (FIXTURES / "articles" / "hb-levant-wire-0001.html").read_text(encoding="utf-8")
    assert "<script" in raw and "onerror=" in raw and "javascript:" in raw
    article = extract_article(item(URL, title=""), page(raw), NOW)
    text = all_text(article)
    for token in ("<script", "script>", "onerror", "onload", "javascript:", "تم الحقن", "<", ">"):
        assert token not in text, token
    for link in (article.image_url, article.page_canonical_url, article.url):
        assert link is None or link.startswith(("http://", "https://"))


# --------------------------------------------------------------------------- rasd extract


def test_rasd_extract_prints_the_fields_of_a_saved_page() -> None:
    import json

    from typer.testing import CliRunner

    from rasd.cli import app

    path = FIXTURES / "articles" / "hb-maghreb-interview-0001.html"
    result = CliRunner().invoke(
        app, ["extract", str(path), "--base-url", "https://sabah-maghreb.example/x", "--json"]
    )
    assert result.exit_code == 0, result.output
    fields = json.loads(result.output)
    assert fields["language"] == "ar"
    assert fields["canonical_url"] == "https://sabah-maghreb.example/culture/interview-carthage"
    assert fields["charset"] == "utf-8"
    assert fields["body"].startswith("تنطلق الدورة الجديدة")
    assert "تعليقات القراء" not in fields["body"]


def test_rasd_extract_says_why_a_page_is_not_an_article() -> None:
    from typer.testing import CliRunner

    from rasd.cli import app

    path = FIXTURES / "non_articles" / "not_article_live_blog.html"
    result = CliRunner().invoke(app, ["extract", str(path)])
    assert result.exit_code == 1
    assert "not_article_live_blog" in result.output
