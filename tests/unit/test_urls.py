"""URL canonicalization: every variant of one article gives one id."""

from __future__ import annotations

import pytest

from pipeline.errors import PermanentError
from pipeline.urls import article_id, canonicalize_url, page_canonical

ITEM_URL = "https://www.enabbaladi.net/?p=742513"
ITEM_CANONICAL = canonicalize_url(ITEM_URL)

AJ = "https://aljazeera.net/news/2024/12/9/قيصر-يكشف"
AJ_ENC = "https://aljazeera.net/news/2024/12/9/%D9%82%D9%8A%D8%B5%D8%B1-%D9%8A%D9%83%D8%B4%D9%81"


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        # Al Jazeera: raw vs percent-encoded Arabic slug, AMP prefix, tracking, fragment.
        (AJ, AJ_ENC),
        (AJ_ENC.lower(), AJ_ENC),  # lowercase hex escapes
        ("https://www.aljazeera.net/amp/news/2024/12/9/قيصر-يكشف", AJ_ENC),
        (f"{AJ}?utm_source=twitter&utm_medium=social#comments", AJ_ENC),
        ("HTTPS://WWW.ALJAZEERA.NET:443/news/2024/12/9/قيصر-يكشف/", AJ_ENC),
        # BBC Arabic: mobile host, AMP suffix, fbclid, http.
        (
            "https://www.bbc.com/arabic/articles/c4g0q1wkp2zo",
            "https://bbc.com/arabic/articles/c4g0q1wkp2zo",
        ),
        (
            "http://m.bbc.com/arabic/articles/c4g0q1wkp2zo?fbclid=IwAR0x",
            "https://bbc.com/arabic/articles/c4g0q1wkp2zo",
        ),
        (
            "https://www.bbc.com/arabic/articles/c4g0q1wkp2zo.amp",
            "https://bbc.com/arabic/articles/c4g0q1wkp2zo",
        ),
        (
            "https://www.bbc.com/arabic/articles/c4g0q1wkp2zo?at_medium=RSS&at_campaign=rss"
            "&ns_source=twitter&ns_mchannel=social",
            "https://bbc.com/arabic/articles/c4g0q1wkp2zo",
        ),
        (
            "https://www.bbc.com/arabic/articles/c4g0q1wkp2zo/amp",
            "https://bbc.com/arabic/articles/c4g0q1wkp2zo",
        ),
        # Enab Baladi (WordPress): ?amp, trailing slash, gclid; ?p= is meaningful.
        ("https://www.enabbaladi.net/742513/?amp", "https://enabbaladi.net/742513"),
        ("https://www.enabbaladi.net/742513/?gclid=abc&amp=1", "https://enabbaladi.net/742513"),
        ("https://www.enabbaladi.net/?p=742513", "https://enabbaladi.net/?p=742513"),
        # Syria TV: mobile. prefix, query params sorted, default port.
        ("https://mobile.syria.tv:443/node/12345?b=2&a=1", "https://syria.tv/node/12345?a=1&b=2"),
        # Asharq Al-Awsat: amp. host, outputType=amp, trailing /amp.
        ("https://amp.aawsat.com/node/5090123", "https://aawsat.com/node/5090123"),
        ("https://aawsat.com/node/5090123/amp?outputType=amp", "https://aawsat.com/node/5090123"),
        # Non-default port is kept; an escaped slash stays escaped.
        ("http://example.org:8080/a%2Fb/", "https://example.org:8080/a%2Fb"),
        # Root path.
        ("https://www.syria.tv", "https://syria.tv/"),
        # Al Arabiya and Sky News Arabia: /amp/ section prefix, share and ref params.
        (
            "https://www.alarabiya.net/amp/arab-and-world/syria/2025/11/20/صيدنايا?share=wa",
            "https://alarabiya.net/arab-and-world/syria/2025/11/20/"
            "%D8%B5%D9%8A%D8%AF%D9%86%D8%A7%D9%8A%D8%A7",
        ),
        (
            "https://www.skynewsarabia.com/amp/middle-east/1790123-قانون-قيصر?ref=rss",
            "https://skynewsarabia.com/middle-east/1790123-"
            "%D9%82%D8%A7%D9%86%D9%88%D9%86-%D9%82%D9%8A%D8%B5%D8%B1",
        ),
        # Al-Quds Al-Arabi (WordPress): /amp/ suffix, Matomo campaign, fragment.
        (
            "https://www.alquds.co.uk/مقبرة-جماعية/amp/?mtm_campaign=feed#respond",
            "https://alquds.co.uk/%D9%85%D9%82%D8%A8%D8%B1%D8%A9-"
            "%D8%AC%D9%85%D8%A7%D8%B9%D9%8A%D8%A9",
        ),
        # France 24 Arabic: AT Internet params, xtor; the desktop host is bare.
        (
            "https://www.france24.com/ar/الشرق-الأوسط/20251120-سوريا?xtor=RSS-1&at_custom1=x",
            "https://france24.com/ar/%D8%A7%D9%84%D8%B4%D8%B1%D9%82-"
            "%D8%A7%D9%84%D8%A3%D9%88%D8%B3%D8%B7/20251120-%D8%B3%D9%88%D8%B1%D9%8A%D8%A7",
        ),
        # CNN Arabic: mobile host, http, double slash kept (a distinct path).
        (
            "http://m.arabic.cnn.com/middle-east/article/2025/11/20/syria-detainees/?utm_term=a",
            "https://arabic.cnn.com/middle-east/article/2025/11/20/syria-detainees",
        ),
        # An ID query that selects the article (Anadolu, SANA ?p=) stays.
        ("https://sana.sy/?p=2290123&utm_source=tg", "https://sana.sy/?p=2290123"),
        # Upper-case tracking keys are tracking too.
        (
            "https://www.annahar.com/arabic/section/1-x?UTM_SOURCE=fb&FBCLID=1",
            "https://annahar.com/arabic/section/1-x",
        ),
    ],
)
def test_canonicalize_url_table(variant: str, canonical: str) -> None:
    assert canonicalize_url(variant) == canonical


def test_relative_links_resolve_against_base() -> None:
    base = "https://www.syria.tv/rss.xml"
    assert canonicalize_url("/node/1?utm_campaign=x", base=base) == "https://syria.tv/node/1"
    assert (
        canonicalize_url("node/2", base="https://www.syria.tv/news/")
        == "https://syria.tv/news/node/2"
    )


def test_non_tracking_params_are_kept() -> None:
    assert canonicalize_url("https://x.com/a?id=7&utm_id=1") == "https://x.com/a?id=7"


def test_bare_two_label_hosts_are_not_stripped() -> None:
    assert canonicalize_url("https://m.com/a") == "https://m.com/a"


@pytest.mark.parametrize(
    "bad", ["ftp://x.com/a", "javascript:alert(1)", "/relative/only", "https://", "http://[::1"]
)
def test_bad_urls_are_permanent_errors(bad: str) -> None:
    with pytest.raises(PermanentError) as err:
        canonicalize_url(bad)
    assert err.value.reason == "bad_url"


def test_article_id_is_stable_and_distinguishes_urls() -> None:
    a = article_id(canonicalize_url("https://www.bbc.com/arabic/articles/x1?utm_source=a"))
    b = article_id(canonicalize_url("http://m.bbc.com/arabic/articles/x1/"))
    c = article_id(canonicalize_url("https://www.bbc.com/arabic/articles/x2"))
    assert a == b != c
    assert len(a) == 32 and int(a, 16) >= 0
    # Pinned so that a change of the hash scheme (which would re-key every
    # stored article) cannot go unnoticed.
    assert article_id("https://bbc.com/arabic/articles/x1") == ("4202ee8244e26c7653b115f0f0d88cae")


@pytest.mark.parametrize(
    ("rel", "final", "expected"),
    [
        # rel=canonical wins, in canonical form
        (
            "https://www.enabbaladi.net/742513/?utm_source=x",
            ITEM_URL,
            "https://enabbaladi.net/742513",
        ),
        # no rel=canonical: the URL the redirects ended on
        (None, "https://syria.tv/node/7?fbclid=1", "https://syria.tv/node/7"),
        # a home page is never a canonical: the redirect target, then the item's
        ("https://www.enabbaladi.net/", "https://syria.tv/node/7", "https://syria.tv/node/7"),
        ("https://www.enabbaladi.net/", "https://syria.tv/", ITEM_CANONICAL),
        # unusable claims fall through
        ("javascript:alert(1)", "", ITEM_CANONICAL),
        ("not a url", "https://syria.tv/node/8", "https://syria.tv/node/8"),
    ],
)
def test_page_canonical(rel: str | None, final: str, expected: str) -> None:
    assert page_canonical(ITEM_CANONICAL, final, rel) == expected
