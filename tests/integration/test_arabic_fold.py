"""The shared Arabic canonical-form vectors, checked against Elasticsearch's
``rasd_arabic_fold`` filter (the rasd-fold plugin) on the real server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_arabic_fold_vectors import VECTORS

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("vector", VECTORS, ids=[v["why"] for v in VECTORS])
def test_elasticsearch_canonical_form(es: Any, vector: dict[str, Any]) -> None:
    result = es.indices.analyze(
        body={"tokenizer": "standard", "filter": ["rasd_arabic_fold"], "text": vector["text"]}
    )
    assert [t["token"] for t in result["tokens"]] == [str(t) for t in vector["tokens"]]


def test_the_filter_works_by_type_and_in_a_normalizer(es: Any, unique: str) -> None:
    index = f"test-fold-{unique}"
    es.indices.create(
        index=index,
        settings={
            "analysis": {
                "filter": {"fold": {"type": "rasd_arabic_fold"}},
                "normalizer": {"folded": {"type": "custom", "filter": ["rasd_arabic_fold"]}},
            }
        },
        mappings={"properties": {"name": {"type": "keyword", "normalizer": "folded"}}},
    )
    try:
        es.index(index=index, id="1", document={"name": "ﻗﻴﺼﺮ"}, refresh=True)
        hits = es.search(index=index, query={"term": {"name": "قَيْصَر"}})["hits"]["total"]
        assert hits["value"] == 1
    finally:
        es.indices.delete(index=index)
