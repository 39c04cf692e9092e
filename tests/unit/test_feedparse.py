"""Feed bytes to FeedItems: encodings, relative links, bad input as a value.

The last test sweeps feedparser's own fixture suite, read in place from
``../shared/corpus/feedparser-tests`` (never copied into the repository).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from connectors.feedparse import FeedParse, parse_feed
from pipeline.errors import PermanentError
from pipeline.feeds import Feed
from pipeline.text import plain_text
from pipeline.urls import article_id, canonicalize_url

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FEED = Feed(
    url="https://www.enabbaladi.net/feed/", name="عنب بلدي", outlet="Enab Baladi", country="sy"
)
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "feedparser-tests"


def parse(
    content: bytes, content_type: str | None = "application/rss+xml", url: str = FEED.url
) -> FeedParse:
    return parse_feed(
        content, FEED, fetched_url=url, content_type=content_type, namespace="rasd", now=NOW
    )


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
<channel>
  <title>عنب بلدي</title>
  <link>https://www.enabbaladi.net/</link>
  <item>
    <title>قيصر يتحدث &lt;b&gt;للمرة الأولى&lt;/b&gt;</title>
    <link>https://www.enabbaladi.net/742513/?utm_source=rss</link>
    <description><![CDATA[<p>قال المنشق المعروف باسم <a href="javascript:alert(1)">قيصر</a>
      إن الصور&nbsp;توثق</p><script>alert("x")</script><p>مقتل معتقلين.</p>]]></description>
    <pubDate>Thu, 19 Nov 2026 09:30:00 +0300</pubDate>
  </item>
  <item>
    <title>خبر من المستقبل</title>
    <link>https://www.enabbaladi.net/742514/</link>
    <pubDate>Mon, 01 Jan 2035 00:00:00 GMT</pubDate>
  </item>
  <item>
    <title>بلا رابط</title>
    <description>عنصر لا رابط له</description>
  </item>
  <item>
    <title>رابط خطر</title>
    <link>javascript:alert(1)</link>
  </item>
</channel>
</rss>
"""


def test_rss_utf8() -> None:
    result = parse(RSS.encode("utf-8"))
    assert result.bozo is False
    assert result.encoding == "utf-8"
    assert (result.entries_total, result.entries_without_link, len(result.items)) == (4, 2, 2)
    first, future = result.items
    assert first.url == "https://www.enabbaladi.net/742513/?utm_source=rss"
    assert first.canonical_url == "https://enabbaladi.net/742513"
    assert first.id == article_id(first.canonical_url)
    assert first.title == "قيصر يتحدث للمرة الأولى"
    assert first.summary == "قال المنشق المعروف باسم قيصر إن الصور توثق مقتل معتقلين."
    assert first.published_at == datetime(2026, 11, 19, 6, 30, tzinfo=UTC)
    assert first.first_seen == NOW
    assert first.index_name == "rasd-articles-2026.11"
    assert (first.outlet, first.feed_name, first.country, first.language) == (
        "Enab Baladi",
        "عنب بلدي",
        "sy",
        "ar",
    )
    assert first.feed_url == FEED.url
    assert future.published_at == NOW  # clamped: nothing is newer than first sight


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://almashreq.example/ar/">
  <title>المشرق</title>
  <id>urn:almashreq</id>
  <updated>2026-11-20T08:00:00Z</updated>
  <entry>
    <title type="html">إعادة الإعمار &amp;amp; &lt;i&gt;الجنوب&lt;/i&gt;</title>
    <link rel="alternate" href="articles/2026/11/south-lebanon.html"/>
    <id>urn:1</id>
    <updated>2026-11-20T07:00:00+02:00</updated>
    <summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">ملخص <b>قصير</b></div></summary>
  </entry>
  <entry xml:base="https://cdn.almashreq.example/other/">
    <title>مقال بقاعدة أخرى</title>
    <link href="x/y.html"/>
    <id>urn:2</id>
    <updated>2026-11-19T07:00:00Z</updated>
  </entry>
</feed>
"""


def test_atom_relative_links_and_xml_base() -> None:
    result = parse(ATOM.encode(), "application/atom+xml", url="https://almashreq.example/atom.xml")
    assert result.bozo is False
    urls = [i.url for i in result.items]
    assert urls == [
        "https://almashreq.example/ar/articles/2026/11/south-lebanon.html",
        "https://cdn.almashreq.example/other/x/y.html",
    ]
    assert result.items[0].title == "إعادة الإعمار & الجنوب"
    assert result.items[0].summary == "ملخص قصير"
    assert result.items[0].published_at == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)


def test_relative_link_without_base_resolves_against_the_fetched_url() -> None:
    rss = RSS.replace("https://www.enabbaladi.net/742513/?utm_source=rss", "/742513/")
    result = parse(rss.encode(), url="https://www.enabbaladi.net/feed/")
    assert result.items[0].url == "https://www.enabbaladi.net/742513/"


def _cp1256_feed(declaration: str) -> bytes:
    return (
        f"{declaration}<rss version='2.0'><channel><title>الوطن</title>"
        "<item><title>قانون قيصر يدخل حيز التنفيذ</title>"
        "<link>https://alwatan.example/a/1</link>"
        "<description>فرضت الولايات المتحدة عقوبات جديدة بموجب قانون قيصر على كيانات "
        "سورية، وقال مسؤولون إن الهدف حماية المدنيين.</description></item></channel></rss>"
    ).encode("cp1256")


@pytest.mark.parametrize(
    ("declaration", "content_type"),
    [
        ('<?xml version="1.0"?>', "text/xml"),  # RFC 3023 would even say us-ascii
        ('<?xml version="1.0"?>', None),
        ("", "application/rss+xml"),
        ('<?xml version="1.0" encoding="utf-8"?>', "application/rss+xml; charset=utf-8"),
    ],
)
def test_windows_1256_without_a_usable_charset(declaration: str, content_type: str | None) -> None:
    result = parse(_cp1256_feed(declaration), content_type)
    assert result.encoding == "windows-1256"
    (item,) = result.items
    assert item.title == "قانون قيصر يدخل حيز التنفيذ"
    assert "بموجب قانون قيصر" in item.summary
    assert "\ufffd" not in item.title + item.summary


def test_windows_1256_declared_in_the_xml() -> None:
    result = parse(_cp1256_feed('<?xml version="1.0" encoding="windows-1256"?>'), "text/xml")
    assert result.encoding == "windows-1256"
    assert result.items[0].title == "قانون قيصر يدخل حيز التنفيذ"


def test_persian_feed_from_the_corpus() -> None:
    path = CORPUS.parent / "feeds" / "fa-feed-hoder-0001.xml"
    if not path.is_file():
        pytest.fail(f"corpus feed {path} is missing; it lives in ../shared/corpus/feeds")
    result = parse(path.read_bytes(), "text/xml", url="http://editormyself.info/rss.xml")
    assert result.items
    assert all("\ufffd" not in i.title + i.summary for i in result.items)
    assert any("\u0600" <= c <= "\u06ff" for i in result.items for c in i.summary)


def test_html_page_instead_of_a_feed() -> None:
    page = b"""<!DOCTYPE html><html><head><title>Enab Baladi</title></head>
    <body><h1>Home</h1><a href="/742513/">story</a><p>Not a feed.</p></body></html>"""
    with pytest.raises(PermanentError) as err:
        parse(page, "text/html; charset=utf-8")
    assert err.value.reason == "malformed_feed"


def test_garbage_is_malformed() -> None:
    with pytest.raises(PermanentError) as err:
        parse(b"\x00\x01 not xml at all {", None)
    assert err.value.reason == "malformed_feed"


def test_empty_feed_has_no_items_and_no_error() -> None:
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    result = parse(empty)
    assert result.items == []
    assert result.bozo is False
    assert result.entries_total == 0


def test_bozo_but_parseable_feed_is_kept() -> None:
    # An undefined entity and a bare "&": not well-formed XML, still readable.
    broken = RSS.replace("<title>عنب بلدي</title>", "<title>عنب &bogus; & بلدي</title>")
    result = parse(broken.encode())
    assert result.bozo is True
    assert result.bozo_reason
    assert [i.url for i in result.items] == [
        "https://www.enabbaladi.net/742513/?utm_source=rss",
        "https://www.enabbaladi.net/742514/",
    ]


def test_feedparser_never_reads_a_local_file(tmp_path: Path) -> None:
    # feedparser.parse(bytes) would open the bytes as a file name if it could.
    secret = tmp_path / "secret.xml"
    secret.write_text(RSS)
    with pytest.raises(PermanentError):
        parse(str(secret).encode(), None)


def test_billion_laughs_is_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "ha">'
        + "".join(f'<!ENTITY {c} "&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};">'
                  for p, c in zip("abcdefgh", "bcdefghi", strict=True))
        + ']><rss version="2.0"><channel><item><title>&i;</title>'
        "<link>https://x.example/1</link></item></channel></rss>"
    )  # fmt: skip
    with pytest.raises(PermanentError) as err:
        parse(bomb.encode(), "application/rss+xml")
    assert err.value.reason == "malformed_feed"


def test_quadratic_blowup_is_refused() -> None:
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{"x" * 100_000}">]>'
        '<rss version="2.0"><channel><item><title>' + "&a;" * 10_000 + "</title>"
        "<link>https://x.example/1</link></item></channel></rss>"
    )
    with pytest.raises(PermanentError) as err:
        parse(bomb.encode(), "application/rss+xml")
    assert err.value.reason == "malformed_feed"


def test_external_entities_are_not_fetched_or_read() -> None:
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY f SYSTEM "file:///etc/passwd">'
        '<!ENTITY h SYSTEM "http://169.254.169.254/latest/">]>'
        '<rss version="2.0"><channel><item><title>a&f;b&h;c</title>'
        "<link>https://x.example/1</link></item></channel></rss>"
    )
    result = parse(xxe.encode(), "application/rss+xml")
    assert all("root:" not in i.title for i in result.items)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("", ""),
        ("قيصر", "قيصر"),
        ("<p>أ</p><p>ب</p>", "أ ب"),
        ("&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;خبر", "خبر"),
        ("<style>p{}</style>  نص \n\t عادي ", "نص عادي"),
        ("AT&amp;T &lt; 3", "AT&T < 3"),
        ("<img src=x onerror=alert(1)>صورة", "صورة"),
    ],
)
def test_plain_text(raw: str, text: str) -> None:
    assert plain_text(raw) == text


def test_feedparser_corpus_never_crashes() -> None:
    if not CORPUS.is_dir():
        pytest.fail(f"feedparser corpus not found at {CORPUS}; it lives in ../shared/corpus")
    files = sorted(CORPUS.rglob("*.xml"))
    assert len(files) > 2000
    started = time.monotonic()
    with_items = malformed = 0
    for path in files:
        try:
            result = parse(path.read_bytes(), None, url="http://example.org/feeds/test.xml")
        except PermanentError as exc:
            assert exc.reason == "malformed_feed", path
            malformed += 1
            continue
        for item in result.items:
            assert urlsplit(item.url).scheme in ("http", "https"), (path, item.url)
            assert canonicalize_url(item.url) == item.canonical_url
            assert "<" not in item.title or "<" not in plain_text(item.title), path
        if result.items:
            with_items += 1
    print(
        f"\nfeedparser corpus: {with_items} of {len(files)} fixtures yield items, "
        f"{malformed} malformed, in {time.monotonic() - started:.1f} s"
    )
    assert with_items > 0
