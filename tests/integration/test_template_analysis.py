"""Golden ``_analyze`` cases for the index template's own fields on the real server.

``body`` is stemmed (recall), ``body.exact`` is not (precision); both run rasd's
canonical form (``rasd_arabic_fold``) in a pinned order. Each case states its
tokens; where the light stemmer is known to be wrong the case says so and
asserts the wrong output on purpose (mission-anchors §5), so an improvement is
noticed and the case updated knowingly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.elastic import load_template
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    field: str
    text: str
    tokens: list[str]
    limitation: str = ""


CASES = [
    # The canonical form, in both fields.
    Case("body.exact", "ﻗﻴﺼﺮ", ["قيصر"]),
    Case("body", "ﻗﻴﺼﺮ", ["قيصر"]),
    Case("body.exact", "ٱلأسد", ["الاسد"]),
    Case("body.exact", "کتاب سوریه", ["كتاب", "سوريه"]),
    Case("body.exact", "قيـــصر قَيْصَر", ["قيصر", "قيصر"]),
    Case("body.exact", "قي\u200cصر", ["قيصر"]),
    Case("body.exact", "١٢٣ ۱۲۳", ["123", "123"]),
    Case("body.exact", "ا\u0654حمد", ["احمد"]),
    # Precision: the exact field keeps suffixes (and clitics; rasd search adds those).
    Case("body.exact", "قيصرية قيصري لبنان قانون", ["قيصريه", "قيصري", "لبنان", "قانون"]),
    Case("body.exact", "وقيصر", ["وقيصر"]),
    # Recall: the stemmed field strips ال/وال/بال/لل/و and one suffix.
    Case("body", "والأسد بالأسد للأسد", ["اسد", "اسد", "اسد"]),
    Case("body", "قيصرية", ["قيصر"], "caesarean collides with Caesar in the stemmed field"),
    Case("body", "لبنان", ["لبن"], "Lebanon collides with milk"),
    Case("body", "قانون", ["قان"], "law is over-stemmed"),
    Case("body", "سوريا سورية", ["سوريا", "سور"], "the two spellings of Syria never meet"),
    Case("body", "بقيصر لقيصر", ["بقيصر", "لقيصر"], "ب and ل alone are not stripped"),
    # Stop words go before the fold, because the stop list is written with hamza.
    Case("body", "إلى أن قيصر", ["قيصر"]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.field}:{c.text}")
def test_template_field_analysis(es: Any, articles_index: str, case: Case) -> None:
    result = es.indices.analyze(index=articles_index, body={"field": case.field, "text": case.text})
    assert [t["token"] for t in result["tokens"]] == case.tokens, case.limitation


def test_keyword_normalizer_folds(es: Any, articles_index: str) -> None:
    es.index(
        index=articles_index, id="k", document={"id": "k", "author": "سلمى الخطيب"}, refresh=True
    )
    hits = es.search(index=articles_index, query={"term": {"author.keyword": "سلمي الخطيب"}})
    assert hits["hits"]["total"]["value"] == 1


def test_the_pinned_order_is_the_shipped_one(settings: Settings) -> None:
    analysis = json.loads(settings.index_template_file.read_text())["template"]["settings"][
        "analysis"
    ]
    assert analysis["analyzer"]["rasd_arabic"]["filter"] == [
        "lowercase",
        "decimal_digit",
        "rasd_arabic_stop",
        "rasd_arabic_fold",
        "arabic_normalization",
        "arabic_stem",
    ]
    assert analysis["analyzer"]["rasd_arabic_exact"]["filter"] == [
        "lowercase",
        "decimal_digit",
        "rasd_arabic_fold",
        "arabic_normalization",
    ]


def test_the_stock_variant_needs_no_plugin_filter(es: Any, settings: Settings, unique: str) -> None:
    """Without the rasd-fold plugin the template still applies (documented variant)."""
    name = f"test-stock-{unique}"
    template = load_template(settings.index_template_file, f"{name}-*", name, fold_filter=False)
    assert "rasd_arabic_fold" not in json.dumps(template["template"]["settings"])
    es.indices.put_index_template(name=name, **template)
    try:
        es.indices.create(index=f"{name}-2026.11")
        tokens = es.indices.analyze(
            index=f"{name}-2026.11", body={"field": "body.exact", "text": "کتاب ﻗﻴﺼﺮ"}
        )
        # ک still folds (persian_normalization); presentation forms do not.
        assert [t["token"] for t in tokens["tokens"]] == ["كتاب", "ﻗﻴﺼﺮ"]
    finally:
        es.indices.delete(index=f"{name}-*", ignore_unavailable=True, allow_no_indices=True)
        es.indices.delete_index_template(name=name)
