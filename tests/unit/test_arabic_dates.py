"""Dates with Arabic month names: the three families, digits, AM/PM, offsets, and the feed path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.feedparse import parse_feed
from pipeline.arabic_dates import find_arabic_dates, parse_arabic_date
from pipeline.feeds import Feed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Egypt and the Gulf, with a weekday, a dash and PM
        ("السبت، 28 نوفمبر 2026 - 10:30 م", datetime(2026, 11, 28, 22, 30)),
        ("12 أبريل 2024 12:15 ص", datetime(2024, 4, 12, 0, 15)),  # 12 AM is midnight
        ("12 إبريل 2024 12:15 م", datetime(2024, 4, 12, 12, 15)),  # 12 PM is noon
        ("5 يونية 2023", datetime(2023, 6, 5)),
        ("الخميس 2 يناير 2025 09:00 صباحا", datetime(2025, 1, 2, 9, 0)),
        ("الخميس 2 يناير 2025 09:00 مساءً", datetime(2025, 1, 2, 21, 0)),
        # The Levant and Iraq; Arabic-Indic digits; two-word months
        ("٢٨ تشرين الثاني ٢٠٢٦ ١٠:٣٠", datetime(2026, 11, 28, 10, 30)),
        ("1 كانون الأول 2025", datetime(2025, 12, 1)),
        ("1 كانون الثاني 2025", datetime(2025, 1, 1)),
        ("الأحد 15 آب 2021 09:05 +03:00", datetime(2021, 8, 15, 6, 5)),
        ("9 أيار، 2022", datetime(2022, 5, 9)),
        # The Maghreb
        ("3 جويلية 2025", datetime(2025, 7, 3)),
        ("الاثنين, 01 ديسمبر 2025 16:50:00 GMT+2", datetime(2025, 12, 1, 14, 50)),
        ("14 غشت 2024 - 18:45", datetime(2024, 8, 14, 18, 45)),
        ("20 شتنبر 2024", datetime(2024, 9, 20)),
        ("نشر في 7 فيفري 2026 على 08:10 -01:00", datetime(2026, 2, 7, 9, 10)),
        # A time before the date
        ("10:30 - 28 نوفمبر 2026", datetime(2026, 11, 28, 10, 30)),
        ("10:30 م، السبت 28 نوفمبر 2026", datetime(2026, 11, 28, 22, 30)),
        ("28 نوفمبر 2026 الساعة 10:30", datetime(2026, 11, 28, 10, 30)),
        # A time that belongs to another date is not this date's
        ("3 آب 2026 - آخر تحديث 29 آب 2026 14:05", datetime(2026, 8, 3)),
        # An impossible time leaves the date
        ("28 نوفمبر 2026 10:75", datetime(2026, 11, 28)),
        ("28 نوفمبر 2026 25:00", datetime(2026, 11, 28)),
        # A range, not an offset
        ("28 نوفمبر 2026 10:30-12:00", datetime(2026, 11, 28, 10, 30)),
    ],
)
def test_arabic_dates(text: str, expected: datetime) -> None:
    assert parse_arabic_date(text) == expected.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "Sat, 28 Nov 2026 10:30:00 GMT",  # feedparser's own business
        "2026-11-28T10:30:00Z",
        "نوفمبر 2026",  # no day
        "28 نوفمبر",  # no year
        "31 شباط 2024",  # no such day
        "قبل ساعتين",  # "two hours ago"
        "28 نوفمبرات 2026",  # not a month name
        "",
    ],
)
def test_not_a_full_arabic_date(text: str) -> None:
    assert parse_arabic_date(text) is None


def test_feed_items_get_their_arabic_dates() -> None:
    """Arabic month names, a date in the future, a relative date and an unreadable one."""
    rss = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>سانا</title><link>https://example.org/</link>
<item><title>خبر</title><link>https://example.org/a</link>
<pubDate>الأحد، 15 تشرين الثاني 2026 - 09:05 م</pubDate></item>
<item><title>خبر من المستقبل</title><link>https://example.org/b</link>
<pubDate>1 كانون الثاني 2030</pubDate></item>
<item><title>خبر بتاريخ نسبي</title><link>https://example.org/c</link>
<pubDate>قبل ساعتين</pubDate></item>
<item><title>خبر بلا تاريخ مفهوم</title><link>https://example.org/d</link>
<pubDate>قريبا</pubDate></item>
</channel></rss>""".encode()
    feed = Feed(url="https://example.org/rss", name="سانا", outlet="SANA", country="sy")
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    parsed = parse_feed(
        rss, feed, fetched_url=feed.url, content_type="application/rss+xml",
        namespace="rasd", now=now,
    )  # fmt: skip
    dates = {item.url: item.published_at for item in parsed.items}
    assert dates == {
        "https://example.org/a": datetime(2026, 11, 15, 21, 5, tzinfo=UTC),
        "https://example.org/b": now,  # never in the future
        # Relative, anchored on the moment the feed was fetched.
        "https://example.org/c": now - timedelta(hours=2),
        "https://example.org/d": None,
    }


ANCHOR = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15 جمادى الأولى 1448 هـ", datetime(2026, 10, 26, tzinfo=UTC)),
        ("١ رمضان ١٤٤٧هـ - 10:30", datetime(2026, 2, 18, 10, 30, tzinfo=UTC)),
        ("الخميس 7 ذو الحجة 1447", datetime(2026, 5, 24, tzinfo=UTC)),
    ],
)
def test_hijri_dates_become_gregorian(text: str, expected: datetime) -> None:
    assert parse_arabic_date(text) == expected


def test_an_impossible_hijri_date_is_none() -> None:
    assert parse_arabic_date("31 محرم 1448") is None


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("منذ 3 ساعات", timedelta(hours=3)),
        ("منذ ٣ ساعات", timedelta(hours=3)),
        ("منذ ساعتين", timedelta(hours=2)),
        ("قبل 5 دقائق", timedelta(minutes=5)),
        ("نشر منذ يومين", timedelta(days=2)),
        ("منذ ساعة", timedelta(hours=1)),
        ("أمس", timedelta(days=1)),
        ("البارحة الساعة", timedelta(days=1)),
        ("اليوم", timedelta(0)),
    ],
)
def test_relative_dates_are_anchored_on_the_fetch_time(text: str, ago: timedelta) -> None:
    assert parse_arabic_date(text, now=ANCHOR) == ANCHOR - ago
    # Without an anchor there is nothing to count from.
    assert parse_arabic_date(text) is None


def test_a_full_date_wins_over_a_relative_word() -> None:
    assert parse_arabic_date("أمس، 20 نوفمبر 2026", now=ANCHOR) == datetime(
        2026, 11, 20, tzinfo=UTC
    )


def test_every_date_of_a_text() -> None:
    # 1 Muharram 1448 is 16 June 2026 (Umm al-Qura); 13 Jumada al-Akhira is 160 days on.
    text = "قال أمس إن الاجتماع في 3 ديسمبر 2026، لا في 13 جمادى الآخرة 1448"
    assert find_arabic_dates(text, now=ANCHOR) == [
        ANCHOR - timedelta(days=1),
        datetime(2026, 12, 3, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    ]
