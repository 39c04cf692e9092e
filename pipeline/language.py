"""The language of an article (``ar``, ``fa``, ``ur``, ``en``, ``und``), from script evidence."""

from __future__ import annotations

import unicodedata
from typing import Final

from pipeline.arabic import normalize, tokenize

__all__ = ["detect_language"]

# Letters only Urdu uses (Persian and Arabic never do).
_URDU_LETTERS: Final = frozenset("ٹڈڑںےۓ")
# Letters of Persian (and Urdu) that Arabic lacks. ک and ی are left out on
# purpose: Arabic typed on a Persian keyboard is full of them.
_PERSIAN_LETTERS: Final = frozenset("پچژگ")
# Function words, compared after NFKC and mark removal but before letter folds
# (Persian "که" must not be confused with anything Arabic).
_URDU_WORDS: Final = frozenset({"ہے", "ہیں", "کے", "کی", "کا", "کو", "نے", "سے", "میں", "اور"})
_PERSIAN_WORDS: Final = frozenset(
    {"است", "این", "که", "را", "می", "های", "برای", "آن", "شد", "بود"}
)
# Arabic ones are compared on the canonical form, so فی/علی typed with ی count.
_ARABIC_WORDS: Final = frozenset(
    {"في", "على", "الي", "الى", "عن", "مع", "التي", "الذي", "هذا", "هذه", "ذلك", "قد", "كان", "او"}
)
_ENGLISH_WORDS: Final = frozenset(
    {"the", "and", "of", "to", "in", "is", "on", "for", "with", "that", "was", "by"}
)
# Below this share of Urdu-only letters, a few Urdu names in an Arabic text do
# not flip its language.
_URDU_LETTER_SHARE: Final = 0.005
_PERSIAN_LETTER_SHARE: Final = 0.01


def _is_arabic_script(ch: str) -> bool:
    return "\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f" or "\u08a0" <= ch <= "\u08ff"


def detect_language(text: str) -> str:
    """``ar``, ``fa``, ``ur``, ``en`` or ``und`` (undetermined), from script evidence.

    Distinctive letters and a handful of function words decide; this is enough
    to route Arabic away from Persian and Urdu feeds and to flag Latin-script
    pages, not a general language identifier.
    """
    text = unicodedata.normalize("NFKC", text)
    arabic = latin = urdu_letters = persian_letters = 0
    for ch in text:
        if ch.isalpha():
            if _is_arabic_script(ch):
                arabic += 1
                if ch in _URDU_LETTERS:
                    urdu_letters += 1
                elif ch in _PERSIAN_LETTERS:
                    persian_letters += 1
            elif ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"):
                latin += 1
    if arabic == 0 and latin == 0:
        return "und"
    tokens = tokenize(text)
    if latin > arabic:
        return "en" if {t.norm for t in tokens} & _ENGLISH_WORDS else "und"

    raw_words = [
        "".join(c for c in t.surface if unicodedata.category(c) != "Mn" and c != "\u200c")
        for t in tokens
    ]
    urdu_votes = sum(w in _URDU_WORDS for w in raw_words)
    persian_votes = sum(w in _PERSIAN_WORDS for w in raw_words)
    arabic_votes = sum(normalize(w) in _ARABIC_WORDS for w in raw_words)

    if urdu_letters / arabic >= _URDU_LETTER_SHARE or urdu_votes > max(persian_votes, arabic_votes):
        return "ur"
    if persian_votes > arabic_votes or (
        arabic_votes == 0 and persian_letters / arabic >= _PERSIAN_LETTER_SHARE
    ):
        return "fa"
    return "ar"
