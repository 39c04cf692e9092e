"""The labelled near-duplicate set is well formed and covers what the dedupe evaluation needs.

The measured precision and recall are printed by ``bench/dedupe_eval.py``; this
test checks the set itself, and that the chosen threshold gets every labelled
pair right (a failing pair here names itself).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.neardup import NearDupConfig, compare
from tests.fixtures.dedupe.labelled import HERE, Pair, load_group, load_pairs

PAIRS = load_pairs()
GROUPS = sorted(HERE.glob("*.yaml"))


def test_at_least_sixty_pairs_both_labels() -> None:
    assert len(PAIRS) >= 60
    assert sum(p.near for p in PAIRS) >= 25
    assert sum(not p.near for p in PAIRS) >= 25


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: p.stem)
def test_each_topic_has_a_wire_copy_a_rewrite_and_a_different_story(path: Path) -> None:
    _, pairs = load_group(path)
    kinds = {(p.a, p.b): p.near for p in pairs}
    assert any(near and "wire" in b for (_, b), near in kinds.items())
    assert any(near and "rewrite" in b for (_, b), near in kinds.items())
    assert any(not near for near in kinds.values())
    for p in pairs:
        assert p.text_a != p.text_b, f"{p.a} and {p.b} are the same text"


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p.group}:{p.a}-{p.b}")
def test_the_chosen_threshold_decides_each_pair_as_labelled(pair: Pair) -> None:
    result = compare(pair.text_a, pair.text_b, NearDupConfig())
    expected = "near-duplicate" if pair.near else "different"
    assert result.verdict == expected, f"{pair.why}: similarity {result.similarity:.3f}"
