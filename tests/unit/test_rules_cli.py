"""`rasd rules test`: one JSON line per match, nothing when nothing matches, exit 0."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rasd.cli import app

RULES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts" / "rules.yaml"


def run(*args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(app, ["rules", "test", "--rules", str(RULES), *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stdout


def test_text_prints_one_json_line_per_match() -> None:
    text = "فرض «بقانون قيصر» عقوبات، وقال قيصري إن العملية القيصرية نجحت"
    code, lines, _ = run("--text", text)
    assert code == 0
    assert lines == [
        {
            "rule": "caesar",
            "term": "قيصر",
            "surface": "قيصر",
            "field": "text",
            "start": 12,
            "end": 16,
        },
        {
            "rule": "caesar-act",
            "term": "قانون قيصر",
            "surface": "بقانون قيصر",
            "field": "text",
            "start": 5,
            "end": 16,
        },
    ]
    for line in lines:
        assert text[int(str(line["start"])) : int(str(line["end"]))] == line["surface"]


def test_nothing_matched_prints_nothing_and_exits_0() -> None:
    code, lines, stdout = run("--text", "أجريت عملية قيصرية في مستشفى قيصري")
    assert (code, lines, stdout) == (0, [], "")


def test_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("زار الوفد سجن صيدنايا", encoding="utf-8")
    code, lines, _ = run("--file", str(path))
    assert code == 0 and [line["rule"] for line in lines] == ["sednaya"]


def test_exactly_one_source_is_required() -> None:
    result = CliRunner().invoke(app, ["rules", "test", "--rules", str(RULES)])
    assert result.exit_code == 2


def test_a_bad_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {id: x, name: x, any: [{term: a, mode: fuzzy}]}\n", "utf-8")
    result = CliRunner().invoke(app, ["rules", "test", "--rules", str(bad), "--text", "a"])
    assert result.exit_code == 1
    assert "rules[0] (id='x')" in result.output and "mode" in result.output
