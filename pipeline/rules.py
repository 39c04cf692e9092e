"""Watch rules and the Arabic-aware matcher that runs them on the stream.

A :class:`Rule` fires on an article when any of its ``any`` terms occurs (or
``any`` is empty), every ``all`` term occurs, and no ``none`` term occurs, in
the rule's ``fields`` (title and body by default), and the article passes the
rule's ``sources`` and ``languages`` filters. A term is a string or a mapping
``{term, aliases, mode}``; its aliases (other scripts, other spellings: قانون
قيصر / Caesar Act / قانون سيزر) count as the same term. A multi-word term is a
phrase: its words must be adjacent tokens separated only by whitespace (or one
hyphen, as in al-Saleh).
Matching compares :func:`pipeline.arabic.tokenize` tokens with ة folded on both
sides (see :mod:`pipeline.arabic`). Modes: ``exact`` (the words as written),
``clitics`` (the default: before the first word an optional conjunction و ف,
an optional preposition ب ك ل and an optional article ال, with ل+ال written لل;
a term written with ال only takes the chains that end in ال or لل), ``stem``
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

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import ahocorasick
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from pipeline.arabic import IGNORABLE_CHARS, Token, tokenize
from pipeline.configfile import entry_error, load_entries
from pipeline.errors import ConfigError
from pipeline.models import Article, Match, RuleMatch

__all__ = [
    "BUILTIN_DESTINATIONS",
    "PROCLITICS",
    "STEM_SUFFIXES",
    "Rule",
    "RuleHit",
    "RuleMatcher",
    "Term",
    "clitic_spellings",
    "load_rules",
    "parse_duration",
    "term_words",
]

_ARTICLE: Final = "ال"
_CONJUNCTIONS: Final = ("", "و", "ف")
_PREPOSITIONS: Final = ("", "ب", "ك", "ل")

#: Suffixes the ``stem`` mode adds to a word (after ة→ه folding): dual, sound
#: plurals and the feminine. The nisba ي is deliberately absent: it makes a new
#: word (قيصري is Kayseri, not a form of قيصر).
STEM_SUFFIXES: Final = ("ان", "ين", "ون", "ات", "ه", "تان", "تين")

#: Destinations every rule may name without defining them in ``destinations:``.
#: ``kafka`` and ``elasticsearch`` always receive every alert (they are the
#: record of what was raised); naming them is allowed and changes nothing.
BUILTIN_DESTINATIONS: Final = frozenset({"log", "kafka", "elasticsearch"})


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
Mode = Literal["exact", "clitics", "stem", "prefix"]
FieldName = Literal["title", "body"]
Severity = Literal["info", "low", "medium", "high", "critical"]


def _clean(norm: str) -> str:
    # NFKC can expand one ligature (ﷺ) into several words; the joined token
    # stream uses spaces and "|" as structure, so they must not occur inside a token.
    return norm.replace(" ", "_").replace("|", "_")


def term_words(term: str) -> tuple[str, ...]:
    """The canonical words of a rule term (ة folded), as the matcher compares them."""
    return tuple(_clean(t.norm) for t in tokenize(term, fold_teh_marbuta=True))


_DURATION: Final = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int) -> int:
    """Seconds in ``"90s"``, ``"30m"``, ``"2h"``, ``"7d"`` or a plain integer."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"duration {value!r}: expected e.g. 90s, 30m, 2h, 7d")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


class Term(BaseModel):
    """One term of a rule: its main spelling, its aliases and its matching mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    term: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    mode: Mode = "clitics"

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.term, *self.aliases)

    @model_validator(mode="after")
    def _spellings_have_words(self) -> Term:
        for spelling in self.spellings:
            if not term_words(spelling):
                raise ValueError(f"term {spelling!r} has no letters or digits")
        return self


def _as_terms(raw: Any) -> list[Term]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("expected a list of terms")
    terms: list[Term] = []
    for item in raw:
        if isinstance(item, str):
            terms.append(Term(term=item.strip()))
        elif isinstance(item, Term):
            terms.append(item)
        elif isinstance(item, dict):
            terms.append(Term.model_validate(item))
        else:
            raise ValueError(f"a term is a string or a mapping, got {item!r}")
    return terms


class Rule(BaseModel):
    """One watch rule from ``rules.yaml`` (see ``config/rules.yaml`` for the schema)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str = Field(min_length=1)
    any: list[Term] = Field(default_factory=list)
    all: list[Term] = Field(default_factory=list)
    none: list[Term] = Field(default_factory=list)
    #: Extra spellings for a term used in any/all/none, keyed by that term.
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    #: Default mode of this rule's terms written as plain strings.
    mode: Mode = "clitics"
    fields: tuple[FieldName, ...] = ("title", "body")
    #: Outlet or feed names (case-insensitive); empty = every source.
    sources: tuple[str, ...] = ()
    #: Language codes (the enrich stage's detection, else the feed's); empty = all.
    languages: tuple[str, ...] = ()
    severity: Severity = "medium"
    #: Throttle: at most one alert of this rule per window (seconds); 0 = off.
    realert: int = 0
    destinations: tuple[str, ...] = ("log",)

    @field_validator("any", "all", "none", mode="before")
    @classmethod
    def _parse_terms(cls, raw: Any) -> list[Term]:
        return _as_terms(raw)

    @field_validator("realert", mode="before")
    @classmethod
    def _parse_realert(cls, raw: Any) -> int:
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            return parse_duration(raw)
        raise ValueError("realert is a duration such as 10m, 2h or 1d")

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("fields must name title and/or body")
        return value

    @model_validator(mode="before")
    @classmethod
    def _widen_terms(cls, data: Any) -> Any:
        """Give plain terms the rule's default ``mode`` and its ``aliases`` entries."""
        if not isinstance(data, dict):
            return data
        aliases = data.get("aliases") or {}
        mode = data.get("mode", "clitics")
        if not aliases and mode == "clitics":
            return data
        if not isinstance(aliases, dict):
            raise ValueError("aliases must map a term of the rule to its other spellings")
        out, used = dict(data), set()
        for role in ("any", "all", "none"):
            terms = data.get(role)
            if not isinstance(terms, list):
                continue
            widened = []
            for raw in terms:
                term = {"term": raw.strip()} if isinstance(raw, str) else raw
                if isinstance(term, dict) and isinstance(term.get("term"), str):
                    term = {"mode": mode, **term}
                    key = term["term"].strip()
                    if key in aliases:
                        term["aliases"] = [*term.get("aliases", ()), *aliases[key]]
                        used.add(key)
                widened.append(term)
            out[role] = widened
        unknown = sorted(set(aliases) - used)
        if unknown:
            raise ValueError(f"aliases: {unknown[0]!r} is not a term of this rule")
        return out

    @model_validator(mode="after")
    def _has_positive_terms(self) -> Rule:
        if not self.any and not self.all:
            raise ValueError("a rule needs at least one 'any' or 'all' term")
        return self

    def accepts_source(self, outlet: str, feed_name: str, language: str) -> bool:
        """Whether the rule's source and language filters let this article through."""
        if self.sources:
            wanted = {s.casefold() for s in self.sources}
            if outlet.casefold() not in wanted and feed_name.casefold() not in wanted:
                return False
        return not self.languages or language in self.languages


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


# Phrase words may be separated by whitespace and invisible characters, and at
# most one hyphen (al-Saleh, Abu-Mohammad: names are hyphenated in Latin script);
# a comma, a full stop or a quotation mark between them means they are not one phrase.
_SPACE: Final = rf"[\s{re.escape(IGNORABLE_CHARS)}]*"
_PHRASE_GAP: Final = re.compile(rf"{_SPACE}(?:[-\u2010\u2011]{_SPACE})?")


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


def _stem_forms(word: str) -> set[str]:
    base = word[:-1] if word.endswith("ه") and len(word) > 2 else word
    return {word} | {base + s for s in STEM_SUFFIXES}


def _patterns(words: tuple[str, ...], mode: Mode) -> set[str]:
    """Every string the automaton looks for to find ``words`` in ``mode``."""
    per_word: list[set[str]] = [_stem_forms(w) if mode == "stem" else {w} for w in words]
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

    def match(self, article: Article) -> list[RuleHit]:
        """Hits of every rule that fires on the article (its fields, source and language)."""
        language = getattr(article, "language_detected", None) or article.language
        return self.match_fields(
            {"title": article.title, "body": article.body},
            outlet=article.outlet,
            feed_name=article.feed_name,
            language=language,
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
    ) -> list[RuleHit]:
        """Hits of every rule that fires on the union of ``fields`` (name → text).

        Fields named ``title``/``body`` count only for rules that watch them; any
        other name (``text``) counts for every rule. Without ``outlet`` and
        ``language`` the source filters are not applied.
        """
        found: dict[int, list[_Occurrence]] = defaultdict(list)
        if self._empty:
            return []
        for name, text in fields.items():
            if text and (name in self._fields or name not in ("title", "body")):
                self._scan(name, text, found)
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
            if got["none"]:
                continue
            if rule.any and not got["any"]:
                continue
            if len(got["all"]) < len(rule.all):
                continue
            if outlet is not None and not rule.accepts_source(
                outlet, feed_name or "", language or ""
            ):
                continue
            reported: set[tuple[str, int, int, str]] = set()
            for _, written, o in sorted(
                occurrences[idx], key=lambda x: (x[2].field != "title", x[2].start, -x[2].end)
            ):
                key = (o.field, o.start, o.end, written)
                if key in reported:
                    continue
                reported.add(key)
                hits.append(
                    RuleHit(
                        rule.id,
                        rule.name,
                        written,
                        o.surface,
                        o.field,
                        o.start,
                        o.end,
                        rule.severity,
                    )
                )
        return hits

    def _scan(self, field: str, text: str, found: dict[int, list[_Occurrence]]) -> None:
        tokens: list[Token] = tokenize(text, fold_teh_marbuta=True)
        if not tokens:
            return
        parts = [" "]
        starts: list[int] = []
        pos = 1
        for i, tok in enumerate(tokens):
            if i:
                # Adjacent words of a phrase are separated by whitespace only.
                gap = " " if _PHRASE_GAP.fullmatch(text, tokens[i - 1].end, tok.start) else " | "
                parts.append(gap)
                pos += len(gap)
            norm = _clean(tok.norm)
            starts.append(pos)
            parts.append(norm)
            pos += len(norm)
        parts.append(" ")
        joined = "".join(parts)
        for end_idx, (length, vids) in self._automaton.iter(joined):
            first = bisect.bisect_left(starts, end_idx - length + 2)
            for vid in vids:
                last = first + len(self._variants[vid].words) - 1
                start, end = tokens[first].start, tokens[last].end
                found[vid].append(_Occurrence(field, start, end, text[start:end]))


class RuleSet(BaseModel):
    """The whole rules file: the rules and the destinations they may name."""

    model_config = ConfigDict(frozen=True)

    rules: list[Rule]
    destinations: dict[str, dict[str, Any]] = Field(default_factory=dict)


def load_rule_set(path: str | Path) -> RuleSet:
    """Read and validate a rules file with its ``destinations:`` section.

    Raises ``ConfigError`` naming the file and the rule (or destination). A rule
    naming a destination that is neither built in nor defined is an error too.
    """
    rules = load_rules(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:  # load_rules has read it already
        raise ConfigError(f"{path}: {exc}") from exc
    raw = data.get("destinations") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: 'destinations' must be a mapping of name to settings")
    for name, spec in raw.items():
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConfigError(f"{path}: destinations.{name}: needs a mapping with a 'type'")
    known = BUILTIN_DESTINATIONS | set(raw)
    for i, rule in enumerate(rules):
        for dest in rule.destinations:
            if dest not in known:
                raise entry_error(
                    path, "rules", i, f"id={rule.id!r}", f"unknown destination {dest!r}"
                )
    return RuleSet(rules=rules, destinations=raw)


def load_rules(path: str | Path) -> list[Rule]:
    """Read and validate a rules file; raise ``ConfigError`` naming file and rule.

    An empty list is allowed (alerting off); a missing ``rules:`` key is not.
    """
    return load_entries(
        path,
        "rules",
        Rule,
        label="id",
        identity=lambda rule: rule.id,
        duplicate="duplicate id, first used by rules[{first}]",
    )
