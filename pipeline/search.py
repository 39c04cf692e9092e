"""The search language of ``rasd search``, turned into an Elasticsearch query.

Syntax: words are ANDed; ``"two words"`` is a phrase; ``OR`` between two
clauses makes either one enough; ``-word`` or ``-"a phrase"`` excludes.

By default a search is as precise as the alerts, and is the very query that
Kibana's query bar sends: ``match`` and ``match_phrase`` on the ``.clitics``
fields (the index's ``index.query.default_field``), whose analyzer puts each
word's proclitic-free base (و ف, ب ك ل, ال, لل; never a suffix) at the same
position, at index and at query time. So قيصر finds وقيصر, للقيصر and «قيصر»
but not قيصرية, and المنشقين finds منشقين and لمنشقين. ``stem=True`` searches
the stemmed fields instead, for recall.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.rules import term_words

#: The precise fields, and Kibana's default ones (``index.query.default_field``).
CLITIC_FIELDS = ("title.clitics", "body.clitics")
STEMMED_FIELDS = ("title^2", "body")

_TOKEN = re.compile(r'-?"[^"]*"|\S+')


@dataclass(frozen=True)
class Clause:
    """One word or phrase of a query, with whether it is excluded."""

    words: tuple[str, ...]
    text: str
    excluded: bool = False


def parse(query: str) -> tuple[list[list[Clause]], list[Clause]]:
    """(groups that must all match, each an OR of clauses; clauses that must not)."""
    groups: list[list[Clause]] = []
    excluded: list[Clause] = []
    join_next = False
    for token in _TOKEN.findall(query):
        if token in ("OR", "|"):
            join_next = bool(groups)
            continue
        negative = token.startswith("-") and len(token) > 1
        raw = token[1:] if negative else token
        raw = raw.strip('"')
        words = term_words(raw)
        if not words:
            continue
        clause = Clause(words, raw, negative)
        if negative:
            excluded.append(clause)
        elif join_next:
            groups[-1].append(clause)
        else:
            groups.append([clause])
        join_next = False
    return groups, excluded


def _clause_query(clause: Clause, stem: bool) -> dict[str, Any]:
    if stem:
        kind = "phrase" if len(clause.words) > 1 else "best_fields"
        return {
            "multi_match": {
                "query": clause.text,
                "fields": list(STEMMED_FIELDS),
                "type": kind,
                "operator": "and",
            }
        }
    kind = "match_phrase" if len(clause.words) > 1 else "match"
    # The analyzer turns each word into its spellings; one field is enough per clause.
    return {
        "bool": {
            "should": [{kind: {f: clause.text}} for f in CLITIC_FIELDS],
            "minimum_should_match": 1,
        }
    }


def build_query(query: str, *, stem: bool = False) -> dict[str, Any]:
    """The Elasticsearch ``query`` for ``query``; ValueError if nothing is searchable."""
    groups, excluded = parse(query)
    if not groups:
        raise ValueError(f"nothing to search for in {query!r}")
    must = [
        _clause_query(group[0], stem)
        if len(group) == 1
        else {
            "bool": {"should": [_clause_query(c, stem) for c in group], "minimum_should_match": 1}
        }
        for group in groups
    ]
    must_not = [_clause_query(c, stem) for c in excluded]
    return {"bool": {"must": must, "must_not": must_not}}


_SPAN = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``7d``, ``24h``, ``90m``, ``2w`` ago, or an ISO 8601 date/time (UTC if naive)."""
    text = value.strip()
    span = _SPAN.match(text)
    if span:
        amount, unit = int(span.group(1)), span.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a span like 7d/24h/90m/2w nor an ISO date"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def filters(
    since: datetime | None = None, outlets: list[str] | None = None
) -> list[dict[str, Any]]:
    """Filter clauses: published (or, undated, first seen) since ``since``; from ``outlets``."""
    clauses: list[dict[str, Any]] = []
    if since is not None:
        iso = since.isoformat()
        clauses.append(
            {
                "bool": {
                    "should": [
                        {"range": {"published_at": {"gte": iso}}},
                        {
                            "bool": {
                                "must_not": {"exists": {"field": "published_at"}},
                                "filter": {"range": {"first_seen": {"gte": iso}}},
                            }
                        },
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    if outlets:
        clauses.append({"terms": {"outlet": outlets}})
    return clauses
