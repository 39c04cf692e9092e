"""The `rasd search` language: parsing, precise vs stemmed queries, and filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.search import build_query, filters, parse, parse_since


def test_parse_words_phrases_or_and_exclusions() -> None:
    groups, excluded = parse('قيصر "قانون قيصر" OR سيزر -قيصرية -"عملية قيصرية"')
    assert [[c.words for c in g] for g in groups] == [[("قيصر",)], [("قانون", "قيصر"), ("سيزر",)]]
    assert [c.words for c in excluded] == [("قيصريه",), ("عمليه", "قيصريه")]


def test_precise_word_is_a_match_on_the_clitic_fields() -> None:
    # The analyzer of the .clitics fields finds وقيصر and القيصر; the query is Kibana's.
    clause = build_query("قيصر")["bool"]["must"][0]["bool"]["should"]
    assert clause == [{"match": {"title.clitics": "قيصر"}}, {"match": {"body.clitics": "قيصر"}}]


def test_precise_phrase_is_a_match_phrase() -> None:
    clause = build_query('"قانون قيصر"')["bool"]["must"][0]["bool"]["should"]
    assert clause[0] == {"match_phrase": {"title.clitics": "قانون قيصر"}}


def test_stem_mode_uses_the_stemmed_fields() -> None:
    query = build_query("قيصر", stem=True)
    clause = query["bool"]["must"][0]["multi_match"]
    assert clause["fields"] == ["title^2", "body"]


def test_nothing_to_search_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to search"):
        build_query("  -قيصر ، ")


def test_since_spans_and_dates() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a span"):
        parse_since("last week")


def test_filters() -> None:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    clauses = filters(since, ["sham-news"])
    assert clauses[1] == {"terms": {"outlet": ["sham-news"]}}
    text = json.dumps(clauses[0])
    assert "published_at" in text and "first_seen" in text and since.isoformat() in text
    assert filters() == []
