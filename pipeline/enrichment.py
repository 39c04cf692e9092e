"""The enrich stage: language, canonical text, word count and the rules an article matches.

:func:`enrich` is the one place the rules are matched against an article: the
hits travel on with it (``rule_matches``), so the alert stage builds its
alerts from them without matching again.
"""

from __future__ import annotations

from typing import Any

from pipeline.arabic import body_hash, normalize, tokenize
from pipeline.language import detect_language
from pipeline.matching import RuleMatcher
from pipeline.models import Article, DedupedArticle, EnrichedArticle, article_fields

__all__ = ["enrich"]


def enrich(article: Article, matcher: RuleMatcher | None = None) -> EnrichedArticle:
    """Language, canonical text, word count (and the rule matches, given a matcher).

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
    matches = [hit.to_rule_match() for hit in matcher.match(article)] if matcher else []
    return EnrichedArticle(
        **article_fields(article),
        **verdict,
        language_detected=detect_language(f"{title}\n{article.body}"),
        normalized_title=normalize(article.title),
        normalized_body=normalize(article.body),
        word_count=len(tokenize(article.body)),
        matched_rules=list(dict.fromkeys(m.rule_id for m in matches)),
        rule_matches=matches,
    )
