"""Small builders shared by the unit tests (no network, no fixtures on disk)."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.enrichment import enrich
from pipeline.matching import RuleMatcher
from pipeline.models import (
    Alert,
    Article,
    DedupedArticle,
    EnrichedArticle,
    FeedItem,
    Match,
    alert_id,
    article_fields,
    monthly_index,
)
from pipeline.urls import article_id, canonicalize_url

SEEN = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)

BODY = (
    "قال المنشق المعروف باسم قيصر إن آلاف الصور التي سربها من سجون النظام السوري "
    "توثق مقتل معتقلين تحت التعذيب، وطالب بمحاسبة المسؤولين عن هذه الجرائم أمام "
    "المحاكم الدولية بعد سقوط النظام في دمشق."
)


def item(url: str = "https://www.enabbaladi.net/742513/", title: str = "قيصر يتحدث") -> FeedItem:
    canonical = canonicalize_url(url)
    return FeedItem(
        id=article_id(canonical),
        url=url,
        canonical_url=canonical,
        feed_url="https://www.enabbaladi.net/feed/",
        outlet="Enab Baladi",
        feed_name="عنب بلدي",
        country="sy",
        language="ar",
        title=title,
        summary="",
        published_at=None,
        first_seen=SEEN,
        index_name=monthly_index("rasd", SEEN),
    )


def article(
    url: str = "https://www.enabbaladi.net/742513/", body: str = BODY, title: str = "قيصر يتحدث"
) -> Article:
    return Article.from_item(item(url, title), body=body, fetched_at=SEEN, http_status=200)


def alert(
    cluster_id: str = "c1",
    article_id: str = "a1",
    title: str = "شهادة جديدة لقيصر",
    rule_id: str = "caesar",
) -> Alert:
    """An alert of rule ``caesar`` whose title matched قيصر."""
    return Alert(
        id=alert_id(rule_id, cluster_id),
        rule_id=rule_id,
        rule_name="قيصر",
        article_id=article_id,
        cluster_id=cluster_id,
        url="https://example.org/1",
        title=title,
        outlet="وكالة المرصد",
        matches=[Match(term="قيصر", surface="لقيصر", field="title", start=10, end=15)],
        created_at=datetime(2026, 11, 28, 5, 0, tzinfo=UTC),
        severity="high",
    )


def enriched(
    article_id: str,
    cluster_id: str,
    body: str,
    *,
    title: str,
    when: datetime,
    namespace: str,
    matcher: RuleMatcher,
    outlet: str = "وكالة المرصد",
) -> EnrichedArticle:
    """An article of ``https://outlet.example/`` as the enrich stage hands it on (a copy
    when its id is not its cluster's), with the rules of ``matcher`` matched."""
    url = f"https://outlet.example/{article_id}"
    plain = Article(
        id=article_id,
        url=url,
        canonical_url=url,
        feed_url="https://outlet.example/feed",
        outlet=outlet,
        feed_name=outlet,
        country="sy",
        language="ar",
        title=title,
        body=body,
        first_seen=when,
        index_name=monthly_index(namespace, when),
        fetched_at=when,
        http_status=200,
    )
    deduped = DedupedArticle(
        **article_fields(plain),
        body_hash=article_id,
        cluster_id=cluster_id,
        is_duplicate=article_id != cluster_id,
    )
    return enrich(deduped, matcher)
