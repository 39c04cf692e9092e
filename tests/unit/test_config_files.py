"""The shipped config files are valid, and bad files fail naming file and entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.feeds import load_feeds
from pipeline.matching import RuleMatcher
from pipeline.rules import load_rules
from pipeline.settings import PROJECT_CONFIG_DIR
from pipeline.urls import canonicalize_url

FEEDS_FILE = PROJECT_CONFIG_DIR / "feeds.yaml"
RULES_FILE = PROJECT_CONFIG_DIR / "rules.yaml"

REQUIRED_OUTLETS = {
    "Al Jazeera",
    "BBC Arabic",
    "Enab Baladi",
    "Syria TV",
    "Asharq Al-Awsat",
    "Al Arabiya",
    "France 24 Arabic",
    "DW Arabic",
    "Sky News Arabia",
    "Independent Arabia",
    "Anadolu Agency Arabic",
    "SANA",
    "Youm7",
    "Hespress",
    "Al-Quds Al-Arabi",
}


# --------------------------------------------------------------------------- shipped files


def test_shipped_feed_catalogue_is_valid_and_large_enough() -> None:
    feeds = load_feeds(FEEDS_FILE)
    assert len({f.outlet for f in feeds}) >= 30
    assert {f.outlet for f in feeds} >= REQUIRED_OUTLETS
    assert all(f.language == "ar" for f in feeds)
    assert all(f.url.startswith("https://") for f in feeds)
    assert len({canonicalize_url(f.url) for f in feeds}) == len(feeds)


def test_every_feed_mark_is_one_the_header_explains() -> None:
    # An entry's comments come right after its url line: "weak: ..." or "note: ...".
    lines = FEEDS_FILE.read_text(encoding="utf-8").splitlines()
    header = lines[: lines.index("feeds:")]
    assert any("# weak: ..." in line for line in header)
    assert any("# note: ..." in line for line in header)
    marks = []
    for i, line in enumerate(lines):
        if line.startswith("  - url: ") and lines[i + 1].lstrip().startswith("#"):
            marks.append(lines[i + 1].strip())
    assert marks, "no entry carries a mark"
    bad = [m for m in marks if not m.startswith(("# weak: ", "# note: "))]
    assert not bad, f"marks the header does not explain: {bad}"


def test_shipped_rules_are_valid_and_behave() -> None:
    rules = load_rules(RULES_FILE)
    ids = {r.id for r in rules}
    assert {"caesar", "caesar-act"} <= ids and len(rules) >= 4
    m = RuleMatcher(rules)

    def fired(text: str) -> set[str]:
        return {h.rule_id for h in m.match_text(text)}

    assert "caesar" in fired("وقال قيصر في شهادته")
    assert "caesar-act" in fired("العقوبات بموجب بقانون قيصر")
    assert "caesar-act" in fired("sanctions under the Caesar Act")
    assert fired("أجريت لها عملية قيصرية") == set()
    assert fired("رحلة إلى قيصري التركية") == set()
    assert "sednaya-detainees" in fired("مصير المعتقلين في سجن صيدنايا")


# --------------------------------------------------------------------------- feeds errors


def write(tmp_path: Path, text: str, name: str = "f.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def feed_entry(url: str, extra: str = "") -> str:
    return f"  - url: {url}\n    name: n\n    outlet: o\n    country: sy\n{extra}"


def test_feed_errors_name_file_index_and_url(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "feeds:\n" + feed_entry("https://a.example/rss") + feed_entry("ftp://b.example/rss"),
    )
    with pytest.raises(ConfigError) as err:
        load_feeds(p)
    msg = str(err.value)
    assert str(p) in msg and "feeds[1]" in msg and "ftp://b.example/rss" in msg


def test_duplicate_feeds_are_found_through_canonical_urls(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "feeds:\n" + feed_entry("https://www.a.example/rss/") + feed_entry("http://a.example/rss"),
    )
    with pytest.raises(ConfigError, match=r"feeds\[1\].*duplicate.*feeds\[0\]"):
        load_feeds(p)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("feeds:\n" + feed_entry("https://a.example/rss", "    intervall: 60\n"), "intervall"),
        ("feeds:\n" + feed_entry("https://a.example/rss", "    interval: 5\n"), "interval"),
        ("feeds:\n  - url: https://a.example/rss\n", "name"),
        ("feeds:\n  - just a string\n", "feeds[0]"),
        ("feeds: {}\n", "must be a list"),
        ("other: []\n", "'feeds:'"),
        ("feeds: [\n", "invalid YAML"),
    ],
)
def test_feed_file_validation(tmp_path: Path, text: str, fragment: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_feeds(p)
    assert str(p) in str(err.value)
    assert fragment in str(err.value)


def test_missing_feed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_feeds(tmp_path / "absent.yaml")


def test_valid_feed_file_loads(tmp_path: Path) -> None:
    p = write(tmp_path, "feeds:\n" + feed_entry("https://a.example/rss", "    interval: 600\n"))
    [feed] = load_feeds(p)
    assert (feed.url, feed.interval, feed.language) == ("https://a.example/rss", 600, "ar")


# --------------------------------------------------------------------------- rules errors


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "rules:\n  - id: ok\n    name: ok\n    any: [قيصر]\n  - id: bad\n    name: x\n",
            ["rules[1]", "'bad'"],
        ),
        ("rules:\n  - id: a\n    name: a\n    any: ['«»']\n", ["rules[0]", "'a'", "no letters"]),
        (
            "rules:\n  - id: a\n    name: a\n    any: [x]\n  - id: a\n    name: b\n    any: [y]\n",
            ["rules[1]", "duplicate id", "rules[0]"],
        ),
        ("rules:\n  - name: nameless\n    any: [x]\n", ["rules[0]", "id"]),
        ("rules:\n  - id: a\n    name: a\n    any: [x]\n    non: [y]\n", ["rules[0]", "non"]),
        ("rules: 3\n", ["must be a list"]),
    ],
)
def test_rule_file_validation(tmp_path: Path, text: str, fragments: list[str]) -> None:
    p = write(tmp_path, text, "rules.yaml")
    with pytest.raises(ConfigError) as err:
        load_rules(p)
    assert str(p) in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_empty_rule_list_is_allowed(tmp_path: Path) -> None:
    assert load_rules(write(tmp_path, "rules: []\n")) == []
