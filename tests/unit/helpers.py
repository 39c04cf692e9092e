"""Small builders shared by the unit tests (no network, no fixtures on disk)."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.models import Article, FeedItem, monthly_index
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
