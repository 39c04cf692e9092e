"""Rule matching: clitic-aware positives, suffix-trap negatives, phrases, spans."""

from __future__ import annotations

import pytest

from pipeline.matching import PROCLITICS, RuleMatcher
from pipeline.rules import Rule

from .helpers import article

CAESAR = Rule(
    id="caesar", name="قيصر", any=["قيصر", "سيزر", "Caesar"], none=["عملية قيصرية", "ولادة قيصرية"]
)
CAESAR_ACT = Rule(
    id="caesar-act", name="قانون قيصر", any=["قانون قيصر", "Caesar Act", "قانون سيزر"]
)
ASSAD = Rule(id="assad", name="الأسد", any=["الأسد"])
MATCHER = RuleMatcher([CAESAR, CAESAR_ACT, ASSAD])


def rules_hit(text: str) -> set[str]:
    return {h.rule_id for h in MATCHER.match_text(text)}


@pytest.mark.parametrize(
    "text",
    [
        "قيصر",
        "وقيصر",
        "فقيصر",
        "بقيصر",
        "لقيصر",
        "كقيصر",
        "القيصر",  # ال is an allowed proclitic (decision: the list includes it)
        "والقيصر",
        "بالقيصر",
        "للقيصر",
        "وبقيصر",
        "«قيصر»",
        "(قيصر)",
        "قيصر،",
        "قيصر؟",
        "“قيصر”",
        "ﻗﻴﺼﺮ",  # presentation forms
        "قَيْصَرُ",  # tashkeel
        "قيـــصر",  # tatweel
        "قي\u200cصر",  # ZWNJ inside
        "سيزر",
        "CAESAR",
        "Caesar's photos",
    ],
)
def test_caesar_positives(text: str) -> None:
    assert "caesar" in rules_hit(f"قال {text} اليوم")


@pytest.mark.parametrize(
    "text",
    [
        "قيصرية",  # caesarean
        "قيصري",  # Kayseri
        "القيصرية",
        "قيصرون",
        "بقيصرية",
        "قياصرة",
        "Caesarean",
        "قيصرر",
        "اقيصر",  # ا is not a proclitic
        "مقيصر",
    ],
)
def test_caesar_suffix_and_prefix_traps(text: str) -> None:
    assert "caesar" not in rules_hit(f"أجريت {text} في المستشفى")


def test_none_terms_suppress_the_rule() -> None:
    assert rules_hit("خضعت لعملية قيصرية وقال قيصر") == set()
    # ة/ه spelling of the exclusion is folded too.
    assert rules_hit("ولاده قيصريه ثم قيصر") == set()
    assert "caesar" in rules_hit("عملية جراحية وقال قيصر")


@pytest.mark.parametrize(
    "text",
    [
        "صدر قانون قيصر",
        "بقانون قيصر",
        "لقانون قيصر",
        "والقانون قيصر",  # odd Arabic but the proclitic chain allows it
        "«قانون قيصر»",
        "قانون  \u200fقيصر",  # extra space and RLM between the words
        "the Caesar Act sanctions",
        "قانونُ قَيصر",
    ],
)
def test_phrase_positives(text: str) -> None:
    assert "caesar-act" in rules_hit(text)


@pytest.mark.parametrize(
    "text",
    [
        "قانون جديد قيصر",  # not adjacent
        "قيصر قانون",  # wrong order
        "قانون، قيصر",  # punctuation between the words
        "قانون. قيصر",
        "قانون وقيصر",  # clitics only before the FIRST word
        "قانون قيصري",
        "Caesar acted",
    ],
)
def test_phrase_negatives(text: str) -> None:
    assert "caesar-act" not in rules_hit(text)


@pytest.mark.parametrize(
    "text", ["الأسد", "الاسد", "والأسد", "بالأسد", "للأسد", "فللأسد", "وبالأسد"]
)
def test_term_written_with_article(text: str) -> None:
    assert "assad" in rules_hit(f"قال {text} أمس")


@pytest.mark.parametrize("text", ["الأسدي", "الأسود", "أسد", "وأسد", "لالأسد"])
def test_term_written_with_article_negatives(text: str) -> None:
    assert "assad" not in rules_hit(f"قال {text} أمس")


def test_hit_reports_rule_term_surface_field_and_span() -> None:
    text = "وقال «وقيصر» إن"
    [hit] = MATCHER.match_text(text, field="body")
    assert (hit.rule_id, hit.rule_name, hit.term, hit.field) == ("caesar", "قيصر", "قيصر", "body")
    assert hit.surface == "وقيصر"
    assert text[hit.start : hit.end] == "وقيصر"
    assert hit.to_match().model_dump(exclude={"schema_version"}) == {
        "term": "قيصر",
        "surface": "وقيصر",
        "field": "body",
        "start": 6,
        "end": 11,
    }


def test_phrase_span_covers_both_words() -> None:
    text = "فرض بقانون قيصر عقوبات"
    hits = [h for h in MATCHER.match_text(text) if h.rule_id == "caesar-act"]
    assert [(h.surface, h.start, h.end) for h in hits] == [("بقانون قيصر", 4, 15)]


def test_match_article_searches_title_and_body() -> None:
    a = article(title="لقاء مع سيزر", body="لا شيء هنا عن الموضوع")
    hits = MATCHER.match(a)
    assert [(h.field, h.surface, h.term) for h in hits] == [("title", "سيزر", "سيزر")]


def test_all_terms_are_required_across_fields() -> None:
    rule = Rule(id="d", name="d", any=["المعتقلين"], all=["صيدنايا"])
    m = RuleMatcher([rule])
    assert m.match_text("أفرج عن المعتقلين") == []
    hits = m.match_fields({"title": "سجن صيدنايا", "body": "أفرج عن للمعتقلين"})
    assert {(h.field, h.term) for h in hits} == {("title", "صيدنايا"), ("body", "المعتقلين")}


def test_rule_with_only_all_terms() -> None:
    m = RuleMatcher([Rule(id="x", name="x", all=["حلب", "ادلب"])])
    assert m.match_text("حلب") == []
    assert len(m.match_text("من حلب إلى إدلب")) == 2


def test_every_occurrence_is_reported() -> None:
    assert (
        len([h for h in MATCHER.match_text("قيصر ثم وقيصر ثم لقيصر") if h.rule_id == "caesar"]) == 3
    )


def test_shared_terms_across_rules_report_each_rules_spelling() -> None:
    m = RuleMatcher([Rule(id="a", name="a", any=["مدرسة"]), Rule(id="b", name="b", any=["مدرسه"])])
    hits = m.match_text("في المدرسة")
    assert {(h.rule_id, h.term) for h in hits} == {("a", "مدرسة"), ("b", "مدرسه")}


def test_proclitic_chains() -> None:
    assert "لال" not in PROCLITICS  # ل + ال is spelled لل
    assert {"", "و", "ف", "ب", "ك", "ل", "ال", "وال", "بال", "فال", "كال", "لل", "ولل"} <= set(
        PROCLITICS
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "x", "name": "x"},  # no any/all
        {"id": "x", "name": "x", "any": ["«»"]},  # a term without letters
        {"id": "Bad Id", "name": "x", "any": ["a"]},
        {"id": "x", "name": "", "any": ["a"]},
        {"id": "x", "name": "x", "any": ["a"], "nome": ["b"]},  # typo
    ],
)
def test_invalid_rules_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Rule.model_validate(bad)
