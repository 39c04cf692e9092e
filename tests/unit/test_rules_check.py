"""`rasd rules check FILE`: validates a rules file; every mistake names file, rule and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.settings import PROJECT_CONFIG_DIR
from rasd.cli import app

VALID = """\
rules:
  - id: caesar
    name: قيصر
    any: [قيصر, سيزر]
    none: [عملية قيصرية]
    destinations: [log, team]
  - id: sednaya
    name: صيدنايا
    any:
      - term: سجن صيدنايا
        aliases: [Sednaya prison]
        mode: exact
destinations:
  team:
    type: webhook
    url: https://hooks.example.org/rasd
"""


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    # Wide enough that rich does not wrap the one-line error.
    result = CliRunner().invoke(app, ["rules", "check", str(path)], env={"COLUMNS": "400"})
    return result.exit_code, " ".join(result.output.split())


def test_a_valid_file_passes_with_a_summary(tmp_path: Path) -> None:
    code, output = check(tmp_path, VALID)
    assert code == 0, output
    assert "ok, 2 rule(s)" in output and "2 destination(s)" in output  # log + team


def test_the_shipped_rules_file_passes() -> None:
    path = PROJECT_CONFIG_DIR / "rules.yaml"
    result = CliRunner().invoke(app, ["rules", "check", str(path)])
    assert result.exit_code == 0, result.output


# (what is wrong, the replacement in VALID, what the error must name besides the file)
MISTAKES = [
    (
        "unknown field",
        ("    none: [عملية قيصرية]\n", "    nonee: [عملية قيصرية]\n"),
        ["rules[0]", "id='caesar'", "nonee", "Extra inputs are not permitted"],
    ),
    (
        "unknown field of a term",
        ("        mode: exact\n", "        mod: exact\n"),
        ["rules[1]", "id='sednaya'", "mod", "Extra inputs are not permitted"],
    ),
    (
        "duplicate id",
        ("  - id: sednaya\n", "  - id: caesar\n"),
        ["rules[1]", "id='caesar'", "duplicate id, first used by rules[0]"],
    ),
    (
        "empty term",
        ("    any: [قيصر, سيزر]\n", '    any: [قيصر, ""]\n'),
        ["rules[0]", "id='caesar'", "any.term", "at least 1 character"],
    ),
    (
        "term without letters",
        ("    any: [قيصر, سيزر]\n", '    any: [قيصر, "؟!"]\n'),
        ["rules[0]", "id='caesar'", "any", "has no letters or digits"],
    ),
    (
        "no positive term",
        ("    any: [قيصر, سيزر]\n", ""),
        ["rules[0]", "id='caesar'", "at least one 'any' or 'all' term"],
    ),
    (
        "wrong type",
        ("    name: صيدنايا\n", "    name: صيدنايا\n    severity: urgent\n"),
        ["rules[1]", "id='sednaya'", "severity"],
    ),
    (
        "bad id",
        ("  - id: sednaya\n", "  - id: Sednaya Prison\n"),
        ["rules[1]", "id='Sednaya Prison'", "id: String should match pattern"],
    ),
    (
        "missing name",
        ("    name: قيصر\n", ""),
        ["rules[0]", "id='caesar'", "name: Field required"],
    ),
    (
        "unknown destination",
        ("    destinations: [log, team]\n", "    destinations: [log, teem]\n"),
        ["rules[0]", "id='caesar'", "unknown destination 'teem'"],
    ),
    (
        "bad destination settings",
        ("    url: https://hooks.example.org/rasd\n", "    urll: https://hooks.example.org/rasd\n"),
        ["destinations.team", "urll"],
    ),
    (
        "alias of no term",
        ("    none: [عملية قيصرية]\n", "    none: [عملية قيصرية]\n    aliases: {كيصر: [x]}\n"),
        ["rules[0]", "id='caesar'", "aliases", "'كيصر' is not a term of this rule"],
    ),
    (
        "invalid YAML",
        ("    any: [قيصر, سيزر]\n", "    any: [قيصر, سيزر\n"),
        ["invalid YAML"],
    ),
    (
        "no rules list",
        ("rules:\n", "rule:\n"),
        ["expected a mapping with a top-level 'rules:' list"],
    ),
]


@pytest.mark.parametrize(("kind", "edit", "named"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_fails_naming_file_rule_and_field(
    tmp_path: Path, kind: str, edit: tuple[str, str], named: list[str]
) -> None:
    old, new = edit
    assert old in VALID, kind
    code, output = check(tmp_path, VALID.replace(old, new, 1))
    assert code == 1, output
    assert output.startswith(f"error: {tmp_path / 'rules.yaml'}: "), output
    for part in named:
        assert part in output, (part, output)


def test_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["rules", "check", str(tmp_path / "nope.yaml")], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert "nope.yaml: cannot read" in result.output
