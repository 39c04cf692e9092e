"""The language of an article (``ar``, ``fa``, ``ur``, ``en``, ``und``), from script evidence."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import ahocorasick

from pipeline.arabic import IGNORABLE_CHARS, normalize

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


def _is_latin_letter(ch: str) -> bool:
    return ch.isascii() or unicodedata.name(ch, "").startswith("LATIN")


def _letters(test: Callable[[str], bool], *blocks: range) -> str:
    """The body of a character class of the letters in ``blocks`` that pass ``test``:
    counting them with one C-level regex pass replaces a Python test per character."""
    chars = [chr(cp) for block in blocks for cp in block if chr(cp).isalpha() and test(chr(cp))]
    return "".join(re.escape(c) for c in chars)


_ARABIC_LETTERS: Final = _letters(
    _is_arabic_script, range(0x0600, 0x0700), range(0x0750, 0x0780), range(0x08A0, 0x0900)
)
_LATIN_LETTERS: Final = _letters(
    _is_latin_letter, range(0x0000, 0x0250), range(0x1E00, 0x1F00), range(0x2C60, 0x2C80),
    range(0xA720, 0xA800), range(0xAB30, 0xAB70),
)  # fmt: skip
_ARABIC_RUNS: Final = re.compile(f"[{_ARABIC_LETTERS}]+")
_LATIN_RUNS: Final = re.compile(f"[{_LATIN_LETTERS}]+")
_WORD_RE: Final = re.compile(r"[^\W_]+")
_NON_WORD_RUNS: Final = re.compile(r"[\W_]+")
# Raw words are compared without marks, tatweel and zero-width characters
# (Persian writes می‌شود with a ZWNJ).
_MARKS_RE: Final = re.compile(
    "["
    + re.escape(IGNORABLE_CHARS)
    + "\u0640"
    + "".join(
        re.escape(chr(cp)) for cp in range(0x0300, 0x2000) if unicodedata.category(chr(cp)) == "Mn"
    )
    + "\ufe20-\ufe2f]+"
)


def _raw_spellings(word: str) -> set[str]:
    """The raw spellings whose canonical form is ``word`` (فی, في and فى for في)."""
    same: dict[str, set[str]] = {}
    for ch in (chr(cp) for cp in range(0x0620, 0x0700)):
        same.setdefault(normalize(ch), set()).add(ch)
    out = {""}
    for ch in word:
        out = {prefix + c for prefix in out for c in same.get(ch, set()) | {ch}}
    return out


def _function_words() -> Any:
    """One automaton over the space-joined raw words: the votes of the three languages."""
    table: dict[str, set[str]] = {}
    for lang, words in (("ur", _URDU_WORDS), ("fa", _PERSIAN_WORDS)):
        for w in words:
            table.setdefault(f" {w} ", set()).add(lang)
    for w in _ARABIC_WORDS:
        for spelling in _raw_spellings(w):
            table.setdefault(f" {spelling} ", set()).add("ar")
    automaton = ahocorasick.Automaton()
    for pattern, langs in table.items():
        automaton.add_word(pattern, tuple(sorted(langs)))
    automaton.make_automaton()
    return automaton


_FUNCTION_WORDS: Final = _function_words()
#: How much of a text :func:`detect_language` reads.
SAMPLE_CHARS: Final = 2500


def detect_language(text: str) -> str:
    """``ar``, ``fa``, ``ur``, ``en`` or ``und`` (undetermined), from script evidence.

    Distinctive letters and a handful of function words decide; this is enough
    to route Arabic away from Persian and Urdu feeds and to flag Latin-script
    pages, not a general language identifier. It runs on every article, so
    letters are counted by regular expressions and the function words found by
    one Aho-Corasick pass, never character by character in Python. The
    evidence is read from the first ``SAMPLE_CHARS`` characters (a few hundred
    words, far more than the letters and function words need): a long article
    costs no more than a short one.
    """
    text = unicodedata.normalize("NFKC", text[:SAMPLE_CHARS])
    arabic = sum(map(len, _ARABIC_RUNS.findall(text)))
    latin = sum(map(len, _LATIN_RUNS.findall(text)))
    if arabic == 0 and latin == 0:
        return "und"
    if latin > arabic:
        return "en" if set(_WORD_RE.findall(text.lower())) & _ENGLISH_WORDS else "und"
    urdu_letters = sum(text.count(c) for c in _URDU_LETTERS)
    persian_letters = sum(text.count(c) for c in _PERSIAN_LETTERS)

    votes: Counter[str] = Counter()
    spaced = f" {_NON_WORD_RUNS.sub(' ', _MARKS_RE.sub('', text))} "
    for _, langs in _FUNCTION_WORDS.iter(spaced):
        votes.update(langs)
    urdu_votes, persian_votes, arabic_votes = votes["ur"], votes["fa"], votes["ar"]

    if urdu_letters / arabic >= _URDU_LETTER_SHARE or urdu_votes > max(persian_votes, arabic_votes):
        return "ur"
    if persian_votes > arabic_votes or (
        arabic_votes == 0 and persian_letters / arabic >= _PERSIAN_LETTER_SHARE
    ):
        return "fa"
    return "ar"
