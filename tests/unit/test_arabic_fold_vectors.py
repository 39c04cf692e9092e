"""The shared Arabic canonical-form vectors, checked against pipeline.arabic.

The same file is checked against Elasticsearch's ``rasd_arabic_fold`` filter in
tests/integration/test_arabic_fold.py, so search and alerts agree on every word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.arabic import tokenize

VECTORS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "fixtures" / "arabic_fold_vectors.yaml").read_text(
        encoding="utf-8"
    )
)["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["why"] for v in VECTORS])
def test_python_canonical_form(vector: dict[str, Any]) -> None:
    tokens = [t.norm for t in tokenize(vector["text"], fold_teh_marbuta=True)]
    assert tokens == [str(t) for t in vector["tokens"]]
