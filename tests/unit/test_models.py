"""Messages: JSON round trips, UTC handling, and undecodable input as PermanentError."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.enrichment import enrich
from pipeline.errors import PermanentError
from pipeline.models import (
    Alert,
    Article,
    EnrichedArticle,
    FeedItem,
    alert_id,
    monthly_index,
)

from .helpers import SEEN, article, item
from .helpers import alert as make_alert


def test_monthly_index_uses_the_utc_month() -> None:
    beirut = timezone(timedelta(hours=2))
    # 1 January 00:30 in Beirut is still December in UTC.
    assert (
        monthly_index("rasd", datetime(2025, 1, 1, 0, 30, tzinfo=beirut)) == "rasd-articles-2024.12"
    )
    assert monthly_index("t1", datetime(2025, 3, 5, tzinfo=beirut)) == "t1-articles-2025.03"
    with pytest.raises(ValueError):
        monthly_index("rasd", datetime(2025, 1, 1))


def test_feed_item_round_trip() -> None:
    original = item()
    decoded = FeedItem.from_json(original.to_json())
    assert decoded == original
    assert decoded.index_name == "rasd-articles-2024.12"


def test_datetimes_are_converted_to_utc() -> None:
    data = item().model_dump(mode="json")
    data["first_seen"] = "2025-01-01T02:30:00+03:00"
    decoded = FeedItem.from_json(FeedItem(**data).to_json())
    assert decoded.first_seen.utcoffset() == timedelta(0)
    assert decoded.first_seen.hour == 23


def test_naive_datetimes_are_rejected() -> None:
    data = item().model_dump(mode="json")
    data["first_seen"] = "2024-12-31T23:30:00"
    raw = json.dumps(data).encode()
    with pytest.raises(PermanentError) as err:
        FeedItem.from_json(raw)
    assert err.value.reason == "undecodable"
    assert "first_seen" in err.value.detail


def test_article_and_enriched_round_trip_keep_arabic_text() -> None:
    a = article()
    assert Article.from_json(a.to_json()) == a
    e = enrich(a)
    again = EnrichedArticle.from_json(e.to_json())
    assert again == e
    assert "قيصر" in again.body
    assert "قيصر".encode() in e.to_json()  # UTF-8 on the wire, not \\u escapes


def test_alert_round_trip_and_stable_id() -> None:
    alert = make_alert()
    assert Alert.from_json(alert.to_json()) == alert
    assert alert_id("caesar", "c1") == alert_id("caesar", "c1")
    assert alert_id("caesar", "c1") != alert_id("caesar", "c2")
    assert alert_id("caesar", "c1") != alert_id("caesar-act", "c1")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"id": "x"}',  # required fields missing
    ],
)
def test_undecodable_input_is_a_permanent_error(raw: bytes) -> None:
    with pytest.raises(PermanentError) as err:
        FeedItem.from_json(raw)
    assert err.value.reason == "undecodable"


def test_newer_schema_version_is_refused() -> None:
    data = item().model_dump(mode="json")
    data["schema_version"] = FeedItem.SCHEMA_VERSION + 1
    with pytest.raises(PermanentError, match="schema_version"):
        FeedItem.from_json(FeedItem(**data).to_json())


def test_unknown_fields_are_ignored() -> None:
    raw = item().to_json()[:-1] + b', "added_later": 1}'
    assert FeedItem.from_json(raw) == item()


def test_article_from_item_copies_item_fields() -> None:
    it = item()
    a = Article.from_item(it, body="نص", fetched_at=SEEN, http_status=200, charset="windows-1256")
    assert (a.id, a.index_name, a.canonical_url) == (it.id, it.index_name, it.canonical_url)
    assert a.charset == "windows-1256"
    # Passing a subclass instance (an Article) works and does not carry its body over.
    b = Article.from_item(a, body="نص آخر", fetched_at=SEEN, http_status=200)
    assert b.body == "نص آخر" and b.charset is None
