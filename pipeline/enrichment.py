"""The enrich stage: language, canonical text, word count, rules, places and entities.

:class:`Enricher` is the one place the rules are matched against an article:
the hits travel on with it (``rule_matches``), so the alert stage builds its
alerts from them without matching again. The title and the body are
canonicalized and tokenized once (:class:`pipeline.tokens.TokenStream`), and
the same streams serve the rules, the gazetteers and the word count.
"""

from __future__ import annotations

from typing import Any

from pipeline.arabic import body_hash
from pipeline.gazetteer import Gazetteers, PlaceHit
from pipeline.language import detect_language
from pipeline.matching import RuleMatcher
from pipeline.models import (
    Article,
    DedupedArticle,
    EnrichedArticle,
    Entity,
    GeoPoint,
    Place,
    article_fields,
)
from pipeline.tokens import TokenStream

__all__ = ["Enricher", "enrich", "place_of"]


def place_of(hit: PlaceHit) -> Place:
    p = hit.place
    location = GeoPoint(lat=p.lat, lon=p.lon) if p.lat is not None and p.lon is not None else None
    return Place(
        name=p.name,
        id=p.id,
        geonames_id=p.geonames_id,
        kind=p.kind,
        country=p.country,
        admin1=hit.admin1_name or None,
        location=location,
    )


class Enricher:
    """Turns an article into an :class:`EnrichedArticle` (rules and gazetteers optional)."""

    def __init__(
        self, matcher: RuleMatcher | None = None, gazetteers: Gazetteers | None = None
    ) -> None:
        self.matcher = matcher
        self.gazetteers = gazetteers

    def __call__(self, article: Article) -> EnrichedArticle:
        return self.enrich(article)

    def enrich(self, article: Article) -> EnrichedArticle:
        """Language, canonical text, word count, rule matches, places and entities.

        A ``DedupedArticle`` keeps its verdict; a plain ``Article`` is treated as a
        new story (its own cluster, not a duplicate).
        """
        if isinstance(article, DedupedArticle):
            verdict: dict[str, Any] = {
                "body_hash": article.body_hash,
                "is_duplicate": article.is_duplicate,
                "duplicate_kind": article.duplicate_kind,
                "duplicate_of": article.duplicate_of,
                "cluster_id": article.cluster_id,
            }
        else:
            verdict = {"body_hash": body_hash(article.body), "cluster_id": article.id}
        title = article.extracted_title or article.title
        streams = {
            "title": TokenStream(article.title, "title"),
            "body": TokenStream(article.body, "body"),
        }
        hits = self.matcher.match(article, streams) if self.matcher else []
        matches = [hit.to_rule_match() for hit in hits]
        tags: dict[str, Any] = {}
        if self.gazetteers is not None:
            found = self.gazetteers.tag(
                [streams["title"], streams["body"]], outlet_country=article.country or None
            )
            tags = {
                "places": [place_of(h) for h in found.places],
                "countries": found.countries,
                "entities": [
                    Entity(name=e.entity.name, type=e.entity.type, id=e.entity.id)
                    for e in found.entities
                ],
                "primary_place": place_of(found.primary_place) if found.primary_place else None,
            }
        return EnrichedArticle(
            **article_fields(article),
            **verdict,
            language_detected=detect_language(f"{title}\n{article.body}"),
            normalized_title=streams["title"].normalized,
            normalized_body=streams["body"].normalized,
            word_count=len(streams["body"].tokens),
            matched_rules=list(dict.fromkeys(m.rule_id for m in matches)),
            rule_matches=matches,
            **tags,
        )


def enrich(
    article: Article, matcher: RuleMatcher | None = None, gazetteers: Gazetteers | None = None
) -> EnrichedArticle:
    """:meth:`Enricher.enrich` in one call."""
    return Enricher(matcher, gazetteers).enrich(article)
