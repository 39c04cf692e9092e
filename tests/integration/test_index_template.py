"""The index template in ``config/`` applies on the real Elasticsearch as written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from elasticsearch import BadRequestError

from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def test_template_file_is_the_one_applied(
    es: Any, settings: Settings, articles_index: str, template_name: str
) -> None:
    shipped = json.loads(settings.index_template_file.read_text())
    stored = es.indices.get_index_template(name=template_name)["index_templates"][0]
    assert stored["index_template"]["_meta"] == shipped["_meta"]
    mapping = es.indices.get_mapping(index=articles_index)[articles_index]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["body"]["analyzer"] == "rasd_arabic"
    assert mapping["properties"]["body"]["fields"]["exact"]["analyzer"] == "rasd_arabic_exact"
    assert set(mapping["properties"]) == set(shipped["template"]["mappings"]["properties"])


def test_alias_points_at_the_monthly_index(es: Any, articles_index: str, alias: str) -> None:
    assert articles_index in es.indices.get_alias(name=alias)


def test_strict_mapping_rejects_unknown_fields(es: Any, articles_index: str) -> None:
    with pytest.raises(BadRequestError) as err:
        es.index(index=articles_index, id="x", document={"id": "x", "no_such_field": 1})
    assert "strict_dynamic_mapping_exception" in str(err.value)


def test_stemmed_and_exact_fields_search_differently(es: Any, articles_index: str) -> None:
    es.index(
        index=articles_index,
        id="a",
        document={"id": "a", "body": "ارتفاع نسبة الولادة القيصرية"},
        refresh=True,
    )
    stemmed = es.search(index=articles_index, query={"match": {"body": "قيصر"}})
    exact = es.search(index=articles_index, query={"match": {"body.exact": "قيصر"}})
    # The stemmed field conflates caesarean with Caesar; the exact field does not.
    assert stemmed["hits"]["total"]["value"] == 1
    assert exact["hits"]["total"]["value"] == 0
