"""The shared proclitic vectors, checked against pipeline.arabic.clitic_base.

The same file is checked against Elasticsearch's ``rasd_arabic_clitics`` filter
in tests/integration/test_clitic_analysis.py, so Kibana, ``rasd search`` and the
alerts agree on which tokens are one word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.arabic import clitic_base, clitic_variants, tokenize
from pipeline.matching import clitic_spellings

VECTORS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "fixtures" / "arabic_clitic_vectors.yaml").read_text(
        encoding="utf-8"
    )
)["vectors"]


def python_positions(text: str) -> list[list[str]]:
    return [list(clitic_variants(t.norm)) for t in tokenize(text, fold_teh_marbuta=True)]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["why"] for v in VECTORS])
def test_python_clitic_base(vector: dict[str, Any]) -> None:
    assert python_positions(vector["text"]) == vector["tokens"]


def test_the_rules_spellings_are_the_tokens_that_meet_the_word() -> None:
    # Every spelling the matcher looks for has a base that meets the term's, and back.
    assert {"وقيصر", "بالقيصر", "للقيصر", "قيصر"} <= clitic_spellings("قيصر")
    assert "قيصريه" not in clitic_spellings("قيصر")
    assert {"منشقين", "لمنشقين", "والمنشقين"} <= clitic_spellings("المنشقين")
    assert "زير" not in clitic_spellings("وزير") and "وزير" not in clitic_spellings("زير")
    assert "ولبنان" not in clitic_spellings("بنان")
    assert "اسد" not in clitic_spellings("الاسد") and "للاسد" in clitic_spellings("الاسد")
    for token in clitic_spellings("المعتقلين"):
        assert {token, clitic_base(token)} & {"المعتقلين", "معتقلين"}
