"""The Arabic-aware matcher that runs the watch rules (:mod:`pipeline.rules`) on the stream.

Matching compares :func:`pipeline.arabic.tokenize` tokens with ة folded on both
sides (see :mod:`pipeline.arabic`). Modes: ``exact`` (the words as written),
``clitics`` (the default: before the first word an optional conjunction و ف,
an optional preposition ب ك ل and an optional article ال, with ل+ال written لل;
ال is a clitic like the others, so المنشقين also finds منشقين and لمنشقين; the
test is :func:`pipeline.arabic.clitic_variants`'s, the one the index's
``rasd_arabic_clitics`` fields use, with its minimum base and its protected
words such as وزير and لبنان), ``stem``
(clitics, plus the dual, sound-plural and feminine suffixes ان ين ون ات ة تان
تين on every word, for common nouns) and ``prefix`` (clitics, and the last word
may continue: any suffix). Suffixes are never stripped otherwise, so قيصرية,
قيصري and القيصرية do not match قيصر. Every spelling of every term becomes one
string pattern over the space-joined token stream in a single Aho-Corasick
automaton (pyahocorasick), so the cost grows with the article, not with the
number of rules; a punctuation gap joins tokens with ``" | "`` so a phrase
cannot cross it. Each hit reports the rule, the term as the rule wrote it, the
surface form from the original text, the field and the character span.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import ahocorasick

from pipeline.arabic import (
    CLITIC_EQUIVALENTS,
    PROCLITICS,
    clitic_variants,
)
from pipeline.models import Article, Match, RuleMatch
from pipeline.rules import Mode, Role, Rule, Term, term_words
from pipeline.tokens import TokenStream

__all__ = [
    "PROCLITICS",
    "STEM_SUFFIXES",
    "RuleHit",
    "RuleMatcher",
    "clitic_spellings",
    "stem_forms",
]

#: Suffixes the ``stem`` mode adds to a word (after ة→ه folding): dual, sound
#: plurals and the feminine. The nisba ي is deliberately absent: it makes a new
#: word (قيصري is Kayseri, not a form of قيصر).
STEM_SUFFIXES: Final = ("ان", "ين", "ون", "ات", "ه", "تان", "تين")


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One occurrence of one term of a rule that fired."""

    rule_id: str
    rule_name: str
    term: str
    surface: str
    field: str
    start: int
    end: int
    severity: str = "medium"

    def to_match(self) -> Match:
        return Match(
            term=self.term, surface=self.surface, field=self.field, start=self.start, end=self.end
        )

    def to_rule_match(self) -> RuleMatch:
        return RuleMatch(
            term=self.term,
            surface=self.surface,
            field=self.field,
            start=self.start,
            end=self.end,
            rule_id=self.rule_id,
            rule_name=self.rule_name,
            severity=self.severity,
        )

    def as_json(self) -> dict[str, Any]:
        """The line ``rasd rules test`` prints."""
        return {
            "rule": self.rule_id,
            "term": self.term,
            "surface": self.surface,
            "field": self.field,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True)
class _Occurrence:
    field: str
    start: int
    end: int
    surface: str


@dataclass(slots=True)
class _Use:
    """A spelling of a term as one rule uses it."""

    rule: int
    role: Role
    group: int  # index of the term within the rule's role list
    written: str  # the spelling as the rule wrote it, reported as ``term``


@dataclass(slots=True)
class _Variant:
    words: tuple[str, ...]
    mode: Mode
    uses: list[_Use] = field(default_factory=list)


def clitic_spellings(word: str) -> set[str]:
    """Every token that means canonical ``word`` with proclitics: the same test as
    the index's ``rasd_arabic_clitics`` fields, where a token and a query word
    meet when their :func:`~pipeline.arabic.clitic_variants` do.

    So قيصر gives وقيصر, بالقيصر and للقيصر; المنشقين also gives منشقين and
    لمنشقين (ال is a clitic too); وزير never gives زير, and ولبنان is لبنان.
    """
    forms = set(clitic_variants(word))
    # A spelling that stands for one of the forms (سوريه for سوريا) is one too.
    stems = forms | {k for k, v in CLITIC_EQUIVALENTS.items() if v in forms}
    # A base of its own that keeps its article (الاسد) is written لل + اسد after ل.
    candidates = {chain + form for form in stems for chain in PROCLITICS} | {
        chain + form[2:]
        for form in stems
        if form.startswith("ال")
        for chain in PROCLITICS
        if chain.endswith("لل")
    }
    return {token for token in candidates if forms.intersection(clitic_variants(token))}


def stem_forms(word: str) -> set[str]:
    """``word`` and its ``stem``-mode endings (ة folded first: مقبره → مقبر + ات...)."""
    base = word[:-1] if word.endswith("ه") and len(word) > 2 else word
    return {word} | {base + s for s in STEM_SUFFIXES}


def _patterns(words: tuple[str, ...], mode: Mode) -> set[str]:
    """Every string the automaton looks for to find ``words`` in ``mode``."""
    per_word: list[set[str]] = [stem_forms(w) if mode == "stem" else {w} for w in words]
    if mode != "exact":
        per_word[0] = {c for form in per_word[0] for c in clitic_spellings(form)}
    phrases = [""]
    for i, forms in enumerate(per_word):
        phrases = [p + (" " if i else "") + f for p in phrases for f in sorted(forms)]
    tail = "" if mode == "prefix" else " "
    return {" " + p + tail for p in phrases}


class RuleMatcher:
    """Matches a fixed set of rules against articles or raw text fields."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._fields: tuple[str, ...] = tuple(
            dict.fromkeys(f for r in self.rules for f in r.fields)
        ) or ("title", "body")
        variants: dict[tuple[tuple[str, ...], Mode], _Variant] = {}
        for idx, rule in enumerate(self.rules):
            roles: tuple[tuple[Role, list[Term]], ...] = (
                ("any", rule.any),
                ("all", rule.all),
                ("none", rule.none),
            )
            for role, terms in roles:
                for group, term in enumerate(terms):
                    for spelling in term.spellings:
                        key = (term_words(spelling), term.mode)
                        variant = variants.setdefault(key, _Variant(key[0], term.mode))
                        variant.uses.append(_Use(idx, role, group, spelling))
        self._variants: list[_Variant] = list(variants.values())
        table: dict[str, list[int]] = defaultdict(list)
        for vid, variant in enumerate(self._variants):
            for pattern in _patterns(variant.words, variant.mode):
                table[pattern].append(vid)
        self._automaton: Any = ahocorasick.Automaton()
        for pattern, vids in table.items():
            self._automaton.add_word(pattern, (len(pattern), tuple(vids)))
        if table:
            self._automaton.make_automaton()
        self._empty = not table

    @property
    def pattern_count(self) -> int:
        """How many surface patterns the automaton holds (a rules file's size at a glance)."""
        return 0 if self._empty else len(self._automaton)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def match(
        self, article: Article, streams: Mapping[str, TokenStream] | None = None
    ) -> list[RuleHit]:
        """Hits of every rule that fires on the article (its fields, source and language)."""
        language = getattr(article, "language_detected", None) or article.language
        return self.match_fields(
            {"title": article.title, "body": article.body},
            outlet=article.outlet,
            feed_name=article.feed_name,
            language=language,
            streams=streams,
        )

    def match_text(self, text: str, field: str = "text") -> list[RuleHit]:
        """Hits on a single text (``rasd rules test --text``); field filters do not apply."""
        return self.match_fields({field: text})

    def match_fields(
        self,
        fields: Mapping[str, str],
        *,
        outlet: str | None = None,
        feed_name: str | None = None,
        language: str | None = None,
        streams: Mapping[str, TokenStream] | None = None,
    ) -> list[RuleHit]:
        """Hits of every rule that fires on the union of ``fields`` (name → text).

        ``streams`` are the fields already tokenized (:class:`~pipeline.tokens.TokenStream`,
        shared with the gazetteers), used instead of tokenizing ``fields`` again.

        Fields named ``title``/``body`` count only for rules that watch them; any
        other name (``text``) counts for every rule. Without ``outlet`` and
        ``language`` the source filters are not applied.
        """
        found: dict[int, list[_Occurrence]] = defaultdict(list)
        if self._empty:
            return []
        for name, text in fields.items():
            if text and (name in self._fields or name not in ("title", "body")):
                shared = streams.get(name) if streams else None
                self._scan(shared if shared is not None else TokenStream(text, name), found)
        if not found:
            return []

        # rule -> role -> term groups seen
        seen: dict[int, dict[Role, set[int]]] = defaultdict(lambda: defaultdict(set))
        occurrences: dict[int, list[tuple[int, str, _Occurrence]]] = defaultdict(list)
        for vid, occs in found.items():
            for use in self._variants[vid].uses:
                rule = self.rules[use.rule]
                in_fields = [
                    o for o in occs if o.field not in ("title", "body") or o.field in rule.fields
                ]
                if not in_fields:
                    continue
                seen[use.rule][use.role].add(use.group)
                if use.role != "none":
                    occurrences[use.rule].extend((vid, use.written, o) for o in in_fields)

        hits: list[RuleHit] = []
        for idx in sorted(seen):
            rule, got = self.rules[idx], seen[idx]
            fires = not got["none"] and (not rule.any or got["any"])
            if not fires or len(got["all"]) < len(rule.all):
                continue
            if outlet is not None and not rule.accepts_source(
                outlet, feed_name or "", language or ""
            ):
                continue
            hits.extend(_hits_of(rule, occurrences[idx]))
        return hits

    def _scan(self, stream: TokenStream, found: dict[int, list[_Occurrence]]) -> None:
        if not stream.tokens:
            return
        text, field, variants = stream.text, stream.field, self._variants
        for end_idx, (length, vids) in self._automaton.iter(stream.joined):
            first = stream.index_at(end_idx - length + 2)
            for vid in vids:
                last = first + len(variants[vid].words) - 1
                start, end = stream.span(first, last)
                found[vid].append(_Occurrence(field, start, end, text[start:end]))


def _hits_of(rule: Rule, occurrences: list[tuple[int, str, _Occurrence]]) -> list[RuleHit]:
    """One hit per place and term of a rule that fired, title first, then by position."""
    hits: list[RuleHit] = []
    reported: set[tuple[str, int, int, str]] = set()
    for _, written, o in sorted(
        occurrences, key=lambda x: (x[2].field != "title", x[2].start, -x[2].end)
    ):
        key = (o.field, o.start, o.end, written)
        if key not in reported:
            reported.add(key)
            hits.append(
                RuleHit(
                    rule.id, rule.name, written, o.surface, o.field, o.start, o.end, rule.severity
                )
            )
    return hits
