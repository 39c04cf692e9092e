"""The Arabic canonical form: every fold the design lists, and token spans."""

from __future__ import annotations

import pytest

from pipeline.arabic import es_mapping_rules, normalize, tokenize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ﻗﻴﺼﺮ", "قيصر"),  # presentation forms (NFKC)
        ("قَيْصَر", "قيصر"),  # harakat
        ("قيـــصر", "قيصر"),  # tatweel
        ("قي\u200cصر", "قيصر"),  # ZWNJ
        ("قي\u200bصر", "قيصر"),  # ZWSP
        ("\u200fقيصر\u200e", "قيصر"),  # RLM / LRM
        ("\ufeffقيصر", "قيصر"),  # BOM
        ("\u2067قيصر\u2069", "قيصر"),  # bidi isolates
        ("ٱلقيصر", "القيصر"),  # alef wasla
        ("أحمد", "احمد"),
        ("إدلب", "ادلب"),
        ("آل", "ال"),
        ("\u0627\u0654حمد", "احمد"),  # decomposed alef + hamza above
        ("\u0627\u0655دلب", "ادلب"),  # decomposed alef + hamza below
        ("مستشفى", "مستشفي"),  # alef maksura
        ("سوری", "سوري"),  # Farsi yeh
        ("کتاب", "كتاب"),  # keheh
        ("هٰذا", "هذا"),  # superscript alef (U+0670)
        ("١٢٣", "123"),  # Arabic-Indic digits
        ("۱۲۳", "123"),  # Extended Arabic-Indic digits
        ("Caesar ACT", "caesar act"),
        ("مسؤول", "مسؤول"),  # ؤ kept
        ("\u0648\u0654", "ؤ"),  # decomposed waw + hamza composes to ؤ, kept
        ("رئيس", "رئيس"),  # ئ kept
        ("مدرسة", "مدرسة"),  # ة kept by default
        ("ﷲ", "الله"),  # ligature with shadda: NFKC then marks removed
    ],
)
def test_normalize_vectors(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_teh_marbuta_is_folded_only_on_request() -> None:
    assert normalize("عملية قيصرية", fold_teh_marbuta=True) == "عمليه قيصريه"
    assert normalize("عملية قيصرية") == "عملية قيصرية"


def test_normalize_is_idempotent_on_mixed_text() -> None:
    text = "قَالَ «ﻗﻴﺼﺮ»، إنّ ٱلمعتقلین ١٢٣ — Caesar!"
    once = normalize(text, fold_teh_marbuta=True)
    assert normalize(once, fold_teh_marbuta=True) == once


def test_normalize_keeps_whitespace_and_punctuation() -> None:
    assert normalize("قال: «قيصر»؟") == "قال: «قيصر»؟"


def test_tokenize_spans_point_into_the_original_text() -> None:
    text = "قالَ «قيـصر»، و\u200fقيصر؟ Caesar's act"
    tokens = tokenize(text)
    assert [t.norm for t in tokens] == ["قال", "قيصر", "وقيصر", "caesar", "s", "act"]
    for t in tokens:
        assert text[t.start : t.end] == t.surface
    assert tokens[1].surface == "قيـصر"
    # The RLM inside the word is kept in the surface (it is inside the span).
    assert tokens[2].surface == "و\u200fقيصر"


@pytest.mark.parametrize(
    "sep", ["،", "؛", "؟", "«", "»", "“", "”", "‹", "›", ",", ".", "!", "(", "-", "_", "/", ":"]
)
def test_punctuation_is_a_boundary(sep: str) -> None:
    assert [t.norm for t in tokenize(f"قيصر{sep}سيزر")] == ["قيصر", "سيزر"]


def test_tokenize_trims_invisible_edges_and_drops_lone_marks() -> None:
    text = "\u200f\u200bقيصر\u200b \u064e"
    tokens = tokenize(text)
    assert len(tokens) == 1
    assert (tokens[0].start, tokens[0].end) == (2, 6)


def test_tokenize_harakat_do_not_split_words() -> None:
    assert [t.norm for t in tokenize("قَيْصَرُ سُورِيَا")] == ["قيصر", "سوريا"]


def test_tokenize_with_teh_folding() -> None:
    assert [t.norm for t in tokenize("ولادة قيصرية", fold_teh_marbuta=True)] == ["ولاده", "قيصريه"]


def test_es_mapping_rules_cover_the_folds_lucene_lacks() -> None:
    rules = es_mapping_rules()
    assert "\\u0671 => \\u0627" in rules  # ٱ
    assert "\\u06CC => \\u064A" in rules  # ی
    assert "\\u06A9 => \\u0643" in rules  # ک
    assert "\\u0661 => 1" in rules  # ١
