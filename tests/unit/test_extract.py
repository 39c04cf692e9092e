"""Article extraction: plain text only, charsets, and pages that are not articles.

The article page below is written for this test in the style of an Arabic news
site, with the boilerplate and the hostile bits real pages carry (navigation,
footer, a related box, ``<script>``, an ``onclick=`` handler, a ``javascript:``
link and a ``javascript:`` image). The charset fixtures are read in place from
``../shared/corpus/articles``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.extract import decode_page, extract_article
from connectors.http import FetchResult, decode_body
from pipeline.errors import PermanentError
from pipeline.models import Article
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
