"""The labelled alert set (tests/fixtures/alerts/): every case must fire exactly its rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.matching import RuleMatcher
from pipeline.rules import load_rules

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "alerts"
RULES = load_rules(HERE / "rules.yaml")
MATCHER = RuleMatcher(RULES)
CASES: list[dict[str, Any]] = yaml.safe_load((HERE / "cases.yaml").read_text("utf-8"))["cases"]


def fired(case: dict[str, Any]) -> set[str]:
    hits = MATCHER.match_fields(
        {"title": case.get("title", ""), "body": case.get("body", "")},
        outlet=case.get("outlet", "وكالة المرصد"),
        feed_name="",
        language=case.get("language", "ar"),
    )
    return {h.rule_id for h in hits}


def test_the_set_is_large_and_covers_every_rule() -> None:
    assert len(CASES) >= 150
    expected = {r for case in CASES for r in case["expect"]}
    assert expected == {r.id for r in RULES}
    assert sum(not case["expect"] for case in CASES) >= 40  # negatives


@pytest.mark.parametrize("case", CASES, ids=[c["note"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    assert fired(case) == set(case["expect"]), case.get("title", "") + " | " + case["body"]


def test_every_hit_span_is_its_surface() -> None:
    for case in CASES:
        fields = {"title": case.get("title", ""), "body": case.get("body", "")}
        for hit in MATCHER.match_fields(fields):
            assert fields[hit.field][hit.start : hit.end] == hit.surface
