"""The Kibana NDJSON's precise saved searches find what the rules find, on the demo site.

Every article page of the bundled demo site (tests/fixtures/site) is indexed
into an index made from the shipped template; each precise saved search of
config/kibana/rasd.ndjson (plain free text, e.g. ``قيصر or سيزر``) is sent as
Kibana sends a query without a field name, and its hits must be exactly the
articles on which the rules matcher fires that rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.elastic import load_template
from connectors.kibana import NDJSON_NAME
from pipeline.matching import RuleMatcher
from pipeline.rules import load_rule_set
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "tests" / "fixtures" / "site"
PAGES = yaml.safe_load((SITE / "expectations.yaml").read_text(encoding="utf-8"))["articles"]
RULES = load_rule_set(ROOT / "config" / "rules.yaml").rules


def precise_queries() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "config" / "kibana" / NDJSON_NAME).read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        if (
            obj["type"] == "search"
            and obj["id"].startswith("rasd-rule-")
            and not obj["id"].endswith("-stem")
        ):
            source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            out[obj["id"].removeprefix("rasd-rule-")] = source["query"]["query"]
    return out


def as_lucene(kql: str) -> str:
    # The generated KQL uses only words, quoted phrases, parentheses, and/or/not:
    # the same query in Lucene syntax (what query_string reads) has them in capitals.
    return kql.replace(" or ", " OR ").replace(" and not ", " AND NOT ").replace(" and ", " AND ")


@pytest.fixture(scope="module")
def site_index(es: Any, settings: Settings) -> Iterator[str]:
    name = "test-saved-searches-site"
    template = load_template(settings.index_template_file, f"{name}-*", name)
    index = f"{name}-2026.11"
    es.indices.delete(index=index, ignore_unavailable=True)
    es.indices.create(index=index, **template["template"])
    for n, page in enumerate(PAGES):
        body = (SITE / page["gold"]).read_text(encoding="utf-8")
        es.index(
            index=index, id=str(n), document={"id": str(n), "title": page["title"], "body": body}
        )
    es.indices.refresh(index=index)
    yield index
    es.indices.delete(index=index, ignore_unavailable=True)


def test_every_rule_has_a_precise_saved_search() -> None:
    assert set(precise_queries()) == {r.id for r in RULES}


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_saved_search_finds_what_the_rule_fires_on(es: Any, site_index: str, rule: Any) -> None:
    matcher = RuleMatcher([rule])
    fired = {
        str(n)
        for n, page in enumerate(PAGES)
        if matcher.match_fields(
            {"title": page["title"], "body": (SITE / page["gold"]).read_text(encoding="utf-8")}
        )
    }
    query = {"query_string": {"query": as_lucene(precise_queries()[rule.id])}}
    hits = es.search(index=site_index, query=query, size=100)["hits"]["hits"]
    assert {h["_id"] for h in hits} == fired


def test_the_site_makes_the_comparison_count() -> None:
    # The demo's قيصر article fires caesar, caesar-act and mass-graves; the decoys fire none.
    matcher = RuleMatcher(RULES)
    fired = {
        hit.rule_id
        for page in PAGES
        for hit in matcher.match_fields(
            {"title": page["title"], "body": (SITE / page["gold"]).read_text(encoding="utf-8")}
        )
    }
    assert {"caesar", "caesar-act", "mass-graves"} <= fired
