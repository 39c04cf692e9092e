"""The extended rule schema: modes, aliases, fields, filters, severity, realert, destinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.alerting import parse_destinations
from pipeline.errors import ConfigError
from pipeline.matching import RuleMatcher
from pipeline.rules import Rule, load_rule_set, parse_duration

from .helpers import article


def fired(rule: Rule, text: str) -> list[str]:
    return [h.surface for h in RuleMatcher([rule]).match_text(text)]


@pytest.mark.parametrize(
    ("mode", "text", "surfaces"),
    [
        ("exact", "قيصر وقيصر القيصر قيصرية", ["قيصر"]),
        ("clitics", "قيصر وقيصر القيصر قيصرية", ["قيصر", "وقيصر", "القيصر"]),
        ("stem", "معتقل معتقلين للمعتقلين معتقلهم", ["معتقل", "معتقلين", "للمعتقلين"]),
        ("prefix", "كيماوي الكيماويات بتروكيماويات", ["كيماوي", "الكيماويات"]),
    ],
)
def test_term_modes(mode: str, text: str, surfaces: list[str]) -> None:
    word = "معتقل" if mode == "stem" else "كيماوي" if mode == "prefix" else "قيصر"
    rule = Rule.model_validate({"id": "r", "name": "r", "any": [{"term": word, "mode": mode}]})
    assert fired(rule, text) == surfaces


def test_rule_level_mode_and_aliases_apply_to_plain_terms() -> None:
    rule = Rule.model_validate(
        {"id": "r", "name": "r", "mode": "exact", "any": ["قيصر"], "aliases": {"قيصر": ["Caesar"]}}
    )
    assert fired(rule, "وقيصر Caesar قيصر") == ["Caesar", "قيصر"]
    hits = RuleMatcher([rule]).match_text("Caesar")
    assert hits[0].term == "Caesar"  # the alias as written is reported


def test_an_alias_satisfies_an_all_term() -> None:
    rule = Rule.model_validate(
        {
            "id": "r",
            "name": "r",
            "any": ["عقوبات"],
            "all": [{"term": "قانون قيصر", "aliases": ["Caesar Act"]}],
        }
    )
    assert RuleMatcher([rule]).match_text("عقوبات Caesar Act")
    assert not RuleMatcher([rule]).match_text("عقوبات جديدة")


def test_fields_source_and_language_filters() -> None:
    a = article(title="قيصر في العنوان", body="لا شيء")
    title_only = Rule(id="t", name="t", any=["قيصر"], fields=("title",))  # type: ignore[list-item]
    body_only = Rule(id="b", name="b", any=["قيصر"], fields=("body",))  # type: ignore[list-item]
    assert [h.rule_id for h in RuleMatcher([title_only, body_only]).match(a)] == ["t"]
    by_outlet = Rule(id="o", name="o", any=["قيصر"], sources=("enab baladi",))  # type: ignore[list-item]
    other = Rule(id="x", name="x", any=["قيصر"], sources=("سانا",))  # type: ignore[list-item]
    persian = Rule(id="p", name="p", any=["قيصر"], languages=("fa",))  # type: ignore[list-item]
    assert {h.rule_id for h in RuleMatcher([by_outlet, other, persian]).match(a)} == {"o"}


def test_hits_carry_severity() -> None:
    rule = Rule.model_validate({"id": "r", "name": "r", "any": ["قيصر"], "severity": "critical"})
    assert RuleMatcher([rule]).match_text("قيصر")[0].severity == "critical"


@pytest.mark.parametrize(
    ("value", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), (45, 45)]
)
def test_durations(value: str | int, seconds: int) -> None:
    assert parse_duration(value) == seconds
    rule = Rule.model_validate({"id": "r", "name": "r", "any": ["x"], "realert": value})
    assert rule.realert == seconds


@pytest.mark.parametrize(
    "bad",
    [
        {"any": [{"term": "قيصر", "mode": "fuzzy"}]},
        {"any": [{"term": "قيصر", "alias": ["x"]}]},  # typo of aliases
        {"any": ["قيصر"], "aliases": {"سيزر": ["Caesar"]}},  # alias of a term the rule lacks
        {"any": ["قيصر"], "realert": "soon"},
        {"any": ["قيصر"], "severity": "urgent"},
        {"any": ["قيصر"], "fields": ["summary"]},
        {"any": ["قيصر"], "fields": []},
        {"any": [{"term": "«»"}]},
        {"any": [42]},
    ],
)
def test_invalid_extensions_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Rule.model_validate({"id": "r", "name": "r", **bad})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_errors_name_the_file_and_the_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  - {id: ok, name: ok, any: [x]}\n"
        "  - {id: bad-mode, name: b, any: [{term: y, mode: fuzzy}]}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_rule_set(path)
    assert str(path) in str(err.value)
    assert "rules[1] (id='bad-mode')" in str(err.value)
    assert "mode" in str(err.value)


def test_unknown_destination_is_an_error_naming_the_rule(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - {id: r1, name: r, any: [x], destinations: [pager]}\n")
    with pytest.raises(ConfigError, match=r"rules\[0\] \(id='r1'\): unknown destination 'pager'"):
        load_rule_set(path)


def test_destinations_are_validated(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  - {id: r1, name: r, any: [x], destinations: [hook, log]}\n"
        "destinations:\n  hook: {type: webhook, url: 'http://127.0.0.1:1/x', secret_env: S}\n",
    )
    rule_set = load_rule_set(path)
    specs = parse_destinations(path, rule_set.destinations)
    assert set(specs) == {"hook", "log"}
    with pytest.raises(ConfigError, match=r"destinations.hook: url"):
        parse_destinations(path, {"hook": {"type": "webhook", "url": "ftp://x"}})
    with pytest.raises(ConfigError, match=r"destinations.mail: to"):
        parse_destinations(path, {"mail": {"type": "email", "sender": "a@b.c", "to": []}})


def test_shipped_rules_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    rule_set = load_rule_set(root / "config" / "rules.yaml")
    parse_destinations(root / "config" / "rules.yaml", rule_set.destinations)
    assert {r.id for r in rule_set.rules} >= {"caesar", "caesar-act"}
