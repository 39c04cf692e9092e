"""Watch rules: the rules file's model, checked when it is loaded.

A :class:`Rule` fires on an article when any of its ``any`` terms occurs (or
``any`` is empty), every ``all`` term occurs, and no ``none`` term occurs, in
the rule's ``fields`` (title and body by default), and the article passes the
rule's ``sources`` and ``languages`` filters. A term is a string or a mapping
``{term, aliases, mode}``; its aliases (other scripts, other spellings: قانون
قيصر / Caesar Act / قانون سيزر) count as the same term. A multi-word term is a
phrase: its words must be adjacent tokens separated only by whitespace (or one
hyphen, as in al-Saleh). :mod:`pipeline.matching` runs the rules on articles.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from pipeline.arabic import tokenize
from pipeline.configfile import entry_error, load_entries
from pipeline.errors import ConfigError

__all__ = [
    "BUILTIN_DESTINATIONS",
    "Mode",
    "Role",
    "Rule",
    "RuleSet",
    "Term",
    "load_rule_set",
    "load_rules",
    "parse_duration",
    "term_words",
]

Role = Literal["any", "all", "none"]
Mode = Literal["exact", "clitics", "stem", "prefix"]
FieldName = Literal["title", "body"]
Severity = Literal["info", "low", "medium", "high", "critical"]

#: Destinations every rule may name without defining them in ``destinations:``.
#: ``kafka`` and ``elasticsearch`` always receive every alert (they are the
#: record of what was raised); naming them is allowed and changes nothing.
BUILTIN_DESTINATIONS: Final = frozenset({"log", "kafka", "elasticsearch"})


def clean_token(norm: str) -> str:
    # NFKC can expand one ligature (ﷺ) into several words; the joined token
    # stream uses spaces and "|" as structure, so they must not occur inside a token.
    return norm.replace(" ", "_").replace("|", "_")


def term_words(term: str) -> tuple[str, ...]:
    """The canonical words of a rule term (ة folded), as the matcher compares them."""
    return tuple(clean_token(t.norm) for t in tokenize(term, fold_teh_marbuta=True))


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
