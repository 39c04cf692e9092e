"""Golden ``_analyze`` cases for the Arabic analysis on the real Elasticsearch.

Each case states the tokens it expects. Where the stock Lucene filters are
known to be wrong, the case says so (``limitation``) and asserts the current,
wrong output on purpose: the day the analysis improves, the test fails and the
case is updated knowingly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    text: str
    tokens: list[str]
    why: str
    limitation: str = ""


STOCK_ARABIC = [
    Case("والأسد", ["اسد"], "the light stemmer strips وال, and the hamza on alef is folded"),
    Case("بالأسد", ["اسد"], "بال is stripped"),
    Case("للأسد", ["اسد"], "لل (ل + ال) is stripped"),
    Case(
        "قيصرية",
        ["قيصر"],
        "the feminine suffix ية is stripped",
        limitation="caesarean (قيصرية) collides with Caesar (قيصر); alerts must not stem",
    ),
    Case(
        "ﻗﻴﺼﺮ",
        ["ﻗﻴﺼﺮ"],
        "presentation forms are not folded by the stock chain",
        limitation="ﻗﻴﺼﺮ never matches قيصر; NFKC folding needs rasd's own filter",
    ),
    Case("قَيْصَر", ["قيصر"], "harakat are removed by arabic_normalization"),
    Case("قيـــصر", ["قيصر"], "tatweel is removed by arabic_normalization"),
    Case("١٢٣", ["123"], "Arabic-Indic digits become ASCII through decimal_digit"),
    Case(
        "لبنان",
        ["لبن"],
        "the stemmer strips ان",
        limitation="Lebanon (لبنان) collides with milk (لبن)",
    ),
    Case(
        "قانون قيصر",
        ["قان", "قيصر"],
        "the stemmer strips ون from قانون",
        limitation="law (قانون) becomes قان; the exact field keeps قانون",
    ),
]

# The index template's unstemmed analyzer: folds, but keeps clitics and suffixes.
EXACT = [
    Case("قيصرية", ["قيصريه"], "no stemming; ة is folded to ه by arabic_normalization"),
    Case(
        "وقيصر",
        ["وقيصر"],
        "no clitic stripping in the exact field",
        limitation="the exact field cannot see قيصر inside وقيصر; rasd search handles clitics",
    ),
    Case("ی ک", ["ي", "ك"], "persian_normalization folds Farsi yeh and keheh"),
    Case("أحمد إسماعيل آمنة", ["احمد", "اسماعيل", "امنه"], "alef variants fold to bare alef"),
]


def _tokens(es: Any, body: dict[str, Any], index: str | None = None) -> list[str]:
    result = es.indices.analyze(index=index, body=body) if index else es.indices.analyze(body=body)
    return [t["token"] for t in result["tokens"]]


@pytest.mark.parametrize("case", STOCK_ARABIC, ids=lambda c: c.text)
def test_stock_arabic_analyzer(es: Any, case: Case) -> None:
    assert _tokens(es, {"analyzer": "arabic", "text": case.text}) == case.tokens, case.why


@pytest.mark.parametrize(
    "name", ["arabic_normalization", "arabic_stem", "decimal_digit", "persian_normalization"]
)
def test_plugin_filters_exist_by_name_and_type(es: Any, name: str) -> None:
    by_name = _tokens(es, {"tokenizer": "standard", "filter": [name], "text": "abc"})
    by_type = _tokens(es, {"tokenizer": "standard", "filter": [{"type": name}], "text": "abc"})
    assert by_name == by_type == ["abc"]


def test_filters_in_a_custom_chain(es: Any) -> None:
    chain = [
        "lowercase",
        "decimal_digit",
        "persian_normalization",
        "arabic_normalization",
        "arabic_stem",
    ]
    text = "الكتابات ١٢٣ کتاب"
    assert _tokens(es, {"tokenizer": "standard", "filter": chain, "text": text}) == [
        "كتاب",
        "123",
        "كتاب",
    ]


def test_arabic_analyzer_type_takes_stopwords_and_stem_exclusion(es: Any, unique: str) -> None:
    index = f"test-analyzer-{unique}"
    es.indices.create(
        index=index,
        settings={
            "analysis": {
                "analyzer": {
                    "ar": {
                        # Exclusions are matched after normalization, so ة must be written ه.
                        "type": "arabic",
                        "stopwords": ["في"],
                        "stem_exclusion": ["قيصريه"],
                    }
                }
            }
        },
    )
    try:
        assert _tokens(es, {"analyzer": "ar", "text": "في قيصرية والأسد"}, index) == [
            "قيصريه",
            "اسد",
        ]
    finally:
        es.indices.delete(index=index)


@pytest.mark.parametrize("case", EXACT, ids=lambda c: c.text)
def test_template_exact_analyzer(es: Any, articles_index: str, case: Case) -> None:
    tokens = _tokens(es, {"field": "body.exact", "text": case.text}, articles_index)
    assert tokens == case.tokens, case.why
