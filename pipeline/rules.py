"""Watch rules and the Arabic-aware matcher that runs them on the stream.

A :class:`Rule` fires on an article when any of its ``any`` terms occurs (or
``any`` is empty), every ``all`` term occurs, and no ``none`` term occurs, in
the title or the body. A multi-word term is a phrase: its words must be
adjacent tokens separated only by whitespace. Matching compares
:func:`pipeline.arabic.tokenize` tokens with ة folded on both sides (see
:mod:`pipeline.arabic`). Before the first word of a term a proclitic chain is
allowed: an optional conjunction (و ف), an optional preposition (ب ك ل) and an
optional article ال, with ل+ال written لل; so وقيصر, بقيصر, لقيصر, والقيصر,
وبالقيصر and للقيصر all match قيصر, and a term written with ال (الأسد) also
matches بالأسد and للأسد. Suffixes are never stripped, so قيصرية, قيصري and
القيصرية do not match قيصر. Each hit reports the rule, the term as the rule
wrote it, the surface form from the original text, the field and the
character span. Lookup goes through a dict from every allowed first-token
spelling to the terms starting with it, so the cost grows with the article,
not with the number of rules; issue 7 replaces it with an automaton and adds
per-term modes (exact, stem, prefix).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.arabic import IGNORABLE_CHARS, Token, tokenize
from pipeline.configfile import entry_error, format_validation_error, read_yaml_list
from pipeline.models import Article, Match

__all__ = [
    "PROCLITICS",
    "Rule",
    "RuleHit",
    "RuleMatcher",
    "clitic_spellings",
    "load_rules",
    "term_words",
]

_ARTICLE: Final = "ال"
_CONJUNCTIONS: Final = ("", "و", "ف")
_PREPOSITIONS: Final = ("", "ب", "ك", "ل")


def _proclitic_chains() -> tuple[str, ...]:
    chains: list[str] = []
    for conj in _CONJUNCTIONS:
        for prep in _PREPOSITIONS:
            for art in ("", _ARTICLE):
                # ل + ال is written لل (للقيصر), never لال.
                chain = conj + ("لل" if prep == "ل" and art else prep + art)
                if chain not in chains:
                    chains.append(chain)
    return tuple(chains)


#: Every allowed proclitic chain before the first word of a term ("" included).
PROCLITICS: Final = _proclitic_chains()

Role = Literal["any", "all", "none"]


def term_words(term: str) -> tuple[str, ...]:
    """The canonical words of a rule term (ة folded), as the matcher compares them."""
    return tuple(t.norm for t in tokenize(term, fold_teh_marbuta=True))


class Rule(BaseModel):
    """One watch rule from ``rules.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str = Field(min_length=1)
    any: list[str] = Field(default_factory=list)
    all: list[str] = Field(default_factory=list)
    none: list[str] = Field(default_factory=list)

    @field_validator("any", "all", "none")
    @classmethod
    def _terms_have_words(cls, terms: list[str]) -> list[str]:
        for term in terms:
            if not term_words(term):
                raise ValueError(f"term {term!r} has no letters or digits")
        return [t.strip() for t in terms]

    @model_validator(mode="after")
    def _has_positive_terms(self) -> Rule:
        if not self.any and not self.all:
            raise ValueError("a rule needs at least one 'any' or 'all' term")
        return self


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

    def to_match(self) -> Match:
        return Match(
            term=self.term, surface=self.surface, field=self.field, start=self.start, end=self.end
        )


@dataclass(frozen=True, slots=True)
class _Occurrence:
    field: str
    start: int
    end: int
    surface: str


# Phrase words may be separated by whitespace and invisible characters only;
# a comma or a full stop between them means they are not one phrase.
_PHRASE_GAP: Final = re.compile(rf"[\s{re.escape(IGNORABLE_CHARS)}]*")


def clitic_spellings(word: str) -> set[str]:
    """Every spelling of canonical ``word`` with an allowed proclitic chain before it."""
    if word.startswith(_ARTICLE) and len(word) > len(_ARTICLE) + 1:
        bare = word[len(_ARTICLE) :]
        # The term has its own article: allow the chains that end in ال
        # (which then spell the term) and the لل contraction.
        return {
            chain + bare for chain in PROCLITICS if chain.endswith(_ARTICLE) or chain.endswith("لل")
        }
    return {chain + word for chain in PROCLITICS}


class RuleMatcher:
    """Matches a fixed set of rules against articles or raw text fields."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        # first-token spelling -> distinct term word tuples starting with it
        self._by_first: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        # term word tuple -> (rule index, role, term as written)
        self._users: dict[tuple[str, ...], list[tuple[int, Role, str]]] = defaultdict(list)
        self._words_of: dict[str, tuple[str, ...]] = {}
        for idx, rule in enumerate(self.rules):
            roles: tuple[tuple[Role, list[str]], ...] = (
                ("any", rule.any),
                ("all", rule.all),
                ("none", rule.none),
            )
            for role, terms in roles:
                for term in terms:
                    words = self._words_of.setdefault(term, term_words(term))
                    if words not in self._users:
                        for spelling in clitic_spellings(words[0]):
                            self._by_first[spelling].append(words)
                    self._users[words].append((idx, role, term))

    def match(self, article: Article) -> list[RuleHit]:
        """Hits of every rule that fires on the article's title and body."""
        return self.match_fields({"title": article.title, "body": article.body})

    def match_text(self, text: str, field: str = "text") -> list[RuleHit]:
        """Hits on a single text (``rasd rules test --text``)."""
        return self.match_fields({field: text})

    def match_fields(self, fields: Mapping[str, str]) -> list[RuleHit]:
        """Hits of every rule that fires on the union of ``fields`` (name → text)."""
        found: dict[tuple[str, ...], list[_Occurrence]] = defaultdict(list)
        for field, text in fields.items():
            if text:
                self._scan(field, text, found)
        if not found:
            return []

        seen_terms: dict[int, dict[Role, set[str]]] = defaultdict(lambda: defaultdict(set))
        for words in found:
            for idx, role, term in self._users[words]:
                seen_terms[idx][role].add(term)

        hits: list[RuleHit] = []
        for idx in sorted(seen_terms):
            rule, seen = self.rules[idx], seen_terms[idx]
            if seen["none"]:
                continue
            if rule.any and not seen["any"]:
                continue
            if not seen["all"].issuperset(rule.all):
                continue
            for term in [*rule.any, *rule.all]:
                if term in seen["any"] or term in seen["all"]:
                    hits.extend(
                        RuleHit(rule.id, rule.name, term, o.surface, o.field, o.start, o.end)
                        for o in found[self._words_of[term]]
                    )
        return hits

    def _scan(self, field: str, text: str, found: dict[tuple[str, ...], list[_Occurrence]]) -> None:
        tokens: list[Token] = tokenize(text, fold_teh_marbuta=True)
        n = len(tokens)
        for i, first in enumerate(tokens):
            candidates = self._by_first.get(first.norm)
            if not candidates:
                continue
            for words in candidates:
                last = i + len(words) - 1
                if last >= n:
                    continue
                if all(
                    tokens[i + k].norm == words[k]
                    and _PHRASE_GAP.fullmatch(text, tokens[i + k - 1].end, tokens[i + k].start)
                    for k in range(1, len(words))
                ):
                    end = tokens[last].end
                    found[words].append(
                        _Occurrence(field, first.start, end, text[first.start : end])
                    )


def load_rules(path: str | Path) -> list[Rule]:
    """Read and validate a rules file; raise ``ConfigError`` naming file and rule.

    An empty list is allowed (alerting off); a missing ``rules:`` key is not.
    """
    entries = read_yaml_list(path, "rules")
    rules: list[Rule] = []
    first_index: dict[str, int] = {}
    for i, entry in enumerate(entries):
        label = f"id={entry.get('id')!r}" if isinstance(entry, dict) and "id" in entry else ""
        if not isinstance(entry, dict):
            raise entry_error(path, "rules", i, label, "each rule must be a mapping")
        try:
            rule = Rule.model_validate(entry)
        except ValidationError as exc:
            raise entry_error(path, "rules", i, label, format_validation_error(exc)) from exc
        if rule.id in first_index:
            raise entry_error(
                path,
                "rules",
                i,
                label,
                f"duplicate id, first used by rules[{first_index[rule.id]}]",
            )
        first_index[rule.id] = i
        rules.append(rule)
    return rules
