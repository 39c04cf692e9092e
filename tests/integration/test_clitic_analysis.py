"""The proclitic analysis of the ``.clitics`` fields on the real server.

The shared vectors (tests/fixtures/arabic_clitic_vectors.yaml) must come out of
``_analyze`` on an index made from the shipped template exactly as
pipeline.arabic computes them, position by position; a query word with a
clitic must find the word's other clitic forms; and the stock fallback
(``pattern_capture``, without the plugin) is checked for what it keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.elastic import load_template
from pipeline.settings import Settings
from tests.unit.test_clitic_vectors import VECTORS

pytestmark = pytest.mark.integration


def positions(es: Any, index: str, text: str, field: str = "body.clitics") -> list[list[str]]:
    tokens = es.indices.analyze(index=index, body={"field": field, "text": text})["tokens"]
    out: dict[int, list[str]] = {}
    for t in tokens:
        out.setdefault(t["position"], []).append(t["token"])
    return [out[p] for p in sorted(out)]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["why"] for v in VECTORS])
def test_elasticsearch_clitic_base(es: Any, articles_index: str, vector: dict[str, Any]) -> None:
    assert positions(es, articles_index, vector["text"]) == vector["tokens"]


@pytest.mark.parametrize("text", ["وقيصر", "لقيصر", "بالقيصر", "القيصر"])
def test_golden_clitics_yield_caesar_at_the_same_position(
    es: Any, articles_index: str, text: str
) -> None:
    [position] = positions(es, articles_index, text)
    assert "قيصر" in position and len(position) == 2


@pytest.mark.parametrize("text", ["قيصرية", "قيصري", "القيصرية"])
def test_golden_suffixes_never_yield_caesar(es: Any, articles_index: str, text: str) -> None:
    assert "قيصر" not in positions(es, articles_index, text)[0]


def test_query_word_with_a_clitic_finds_the_other_forms(es: Any, articles_index: str) -> None:
    bodies = {"a": "منشقين", "b": "لمنشقين", "c": "والمنشقين", "d": "المنشقين", "e": "منشق"}
    for doc_id, body in bodies.items():
        es.index(index=articles_index, id=doc_id, document={"id": doc_id, "body": body})
    es.indices.refresh(index=articles_index)
    for query in ({"query_string": {"query": "المنشقين"}}, {"match": {"body.clitics": "لمنشقين"}}):
        hits = es.search(index=articles_index, query=query)["hits"]["hits"]
        assert {h["_id"] for h in hits} == {"a", "b", "c", "d"}, query


def test_default_field_is_the_clitic_fields(es: Any, articles_index: str) -> None:
    settings = es.indices.get_settings(index=articles_index)[articles_index]["settings"]
    assert settings["index"]["query"]["default_field"] == ["title.clitics", "body.clitics"]


@pytest.fixture
def stock_index(es: Any, settings: Settings, unique: str) -> Iterator[str]:
    """An index from the template as a plugin-less Elasticsearch gets it."""
    name = f"test-stock-clitics-{unique}"
    template = load_template(settings.index_template_file, f"{name}-*", name, fold_filter=False)
    es.indices.create(index=f"{name}-2026.11", **template["template"])
    yield f"{name}-2026.11"
    es.indices.delete(index=f"{name}-2026.11", ignore_unavailable=True)


def test_stock_fallback_strips_the_plain_chains(es: Any, stock_index: str) -> None:
    assert positions(es, stock_index, "وقيصر بالقيصر قيصرية")[0] == ["وقيصر", "قيصر"]
    assert positions(es, stock_index, "بالقيصر")[0] == ["بالقيصر", "قيصر"]
    assert positions(es, stock_index, "القيصرية") == [["القيصريه", "قيصريه"]]
    assert positions(es, stock_index, "وزير لبنان ولبنان") == [
        ["وزير"],
        ["لبنان"],
        ["ولبنان", "لبنان"],
    ]


def test_stock_fallback_differs_where_the_guard_needs_the_whole_word(
    es: Any, stock_index: str, articles_index: str
) -> None:
    # The regex refuses الاسد's tail everywhere, so للأسد no longer meets الأسد;
    # the plugin knows that ل + الاسد is written للاسد.
    assert positions(es, stock_index, "للأسد") == [["للاسد"]]
    assert positions(es, articles_index, "للأسد") == [["للاسد", "الاسد"]]
