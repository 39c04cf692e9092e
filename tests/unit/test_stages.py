"""Pure stages: discovery, dedupe verdicts, enrichment, language and alerts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.alerting import build_alerts
from pipeline.arabic import body_hash, normalize
from pipeline.dedupe import MIN_BODY_WORDS_FOR_DEDUPE, DedupeEntry, Deduper, InMemoryDedupeState
from pipeline.enrichment import enrich
from pipeline.errors import PermanentError
from pipeline.feed_items import make_feed_item
from pipeline.feeds import Feed
from pipeline.language import SAMPLE_CHARS, detect_language
from pipeline.matching import RuleMatcher
from pipeline.models import Article, DedupedArticle, alert_id
from pipeline.neardup import NearDuplicateIndex
from pipeline.rules import Rule
from pipeline.urls import article_id, canonicalize_url

from .helpers import BODY, SEEN, article

FEED = Feed(
    url="https://www.syria.tv/rss.xml", name="تلفزيون سوريا", outlet="Syria TV", country="sy"
)


# --------------------------------------------------------------------------- discover


def test_make_feed_item_fixes_id_and_index_from_the_canonical_url() -> None:
    a = make_feed_item(FEED, link="/node/99?utm_source=rss", first_seen=SEEN, namespace="t7")
    b = make_feed_item(FEED, link="https://m.syria.tv/node/99/", first_seen=SEEN, namespace="t7")
    assert a.canonical_url == "https://syria.tv/node/99"
    assert a.url == "https://www.syria.tv/node/99?utm_source=rss"  # resolved, as published
    assert b.url == "https://m.syria.tv/node/99/"  # absolute link kept for fetching
    assert a.id == b.id == article_id("https://syria.tv/node/99")
    assert a.index_name == "t7-articles-2024.12"
    assert (a.outlet, a.feed_url, a.language) == ("Syria TV", FEED.url, "ar")


def test_make_feed_item_rejects_non_http_links() -> None:
    with pytest.raises(PermanentError):
        make_feed_item(FEED, link="mailto:x@y.z", first_seen=SEEN, namespace="rasd")


# --------------------------------------------------------------------------- body hash


def test_body_hash_ignores_spelling_noise_but_not_words() -> None:
    noisy = "قالَ  المنشقُّ «قيـصر»، إنّ الصورة…"
    clean = "قال المنشق قيصر ان الصوره"
    assert body_hash(noisy) == body_hash(clean)
    assert body_hash(clean) != body_hash("قال المنشق قيصر ان الصور")


# --------------------------------------------------------------------------- dedupe


def test_first_article_is_its_own_cluster() -> None:
    d = Deduper(InMemoryDedupeState())
    v = d.check(article())
    assert isinstance(v, DedupedArticle)
    assert (v.is_duplicate, v.duplicate_kind, v.duplicate_of, v.cluster_id) == (
        False,
        None,
        None,
        v.id,
    )
    assert v.body_hash == body_hash(BODY)


def test_redelivery_and_update_of_same_article_are_not_duplicates() -> None:
    d = Deduper(InMemoryDedupeState())
    first = d.check(article())
    again = d.check(article())  # at-least-once re-delivery
    updated = d.check(article(body=BODY + " وأضاف أن العدالة لن تتأخر."))
    for v in (again, updated):
        assert v.id == first.id
        assert not v.is_duplicate
        assert v.cluster_id == first.id


def test_same_body_at_another_url_is_a_body_duplicate() -> None:
    d = Deduper(InMemoryDedupeState())
    first = d.check(article("https://www.enabbaladi.net/1/"))
    # Syndicated copy: other outlet, same text with different punctuation/diacritics.
    copy = d.check(
        article("https://www.syria.tv/node/5", body=BODY.replace("،", " ,").replace("قال", "قالَ"))
    )
    assert copy.id != first.id
    assert (copy.is_duplicate, copy.duplicate_kind) == (True, "body")
    assert copy.duplicate_of == first.id
    assert copy.cluster_id == first.id


def test_duplicate_verdict_is_stable_on_redelivery() -> None:
    d = Deduper(InMemoryDedupeState())
    first = d.check(article("https://www.enabbaladi.net/1/"))
    copy1 = d.check(article("https://www.syria.tv/node/5"))
    copy2 = d.check(article("https://www.syria.tv/node/5"))
    again_first = d.check(article("https://www.enabbaladi.net/1/"))
    assert copy2.model_dump() == copy1.model_dump()
    assert not again_first.is_duplicate and again_first.cluster_id == first.id


def test_short_bodies_are_not_deduped_by_hash() -> None:
    short = "اقرأ المزيد"
    assert len(short.split()) < MIN_BODY_WORDS_FOR_DEDUPE
    d = Deduper(InMemoryDedupeState())
    d.check(article("https://x.org/1", body=short))
    v = d.check(article("https://x.org/2", body=short))
    assert not v.is_duplicate and v.cluster_id == v.id


def test_canonical_url_of_an_earlier_article_is_a_url_duplicate() -> None:
    d = Deduper(InMemoryDedupeState())
    first = d.check(article("https://www.enabbaladi.net/1/"))
    # The extract stage found rel=canonical pointing at the first article.
    other = article("https://www.enabbaladi.net/archive/1-old/", body="نص مختلف تماما")
    other = other.model_copy(update={"canonical_url": first.canonical_url})
    v = d.check(other)
    assert (v.is_duplicate, v.duplicate_kind, v.duplicate_of, v.cluster_id) == (
        True,
        "url",
        first.id,
        first.id,
    )
    assert v.id != first.id  # the id fixed at discovery never changes


def _claiming(url: str, canonical: str, body: str) -> Article:
    # As the extract stage sets it (pipeline.urls.page_canonical): in canonical form.
    update = {"canonical_url": canonicalize_url(canonical)}
    return article(url, body=body).model_copy(update=update)


def test_the_original_arriving_after_a_copy_that_named_it_joins_the_copy() -> None:
    d = Deduper(InMemoryDedupeState())
    original_url = "https://www.enabbaladi.net/742513/"
    copy = d.check(_claiming("https://news.example.org/wire/1", original_url, "نص النسخة"))
    original = d.check(article(original_url, body="نص الأصل المختلف في الصياغة"))
    assert not copy.is_duplicate
    assert (original.duplicate_kind, original.duplicate_of, original.cluster_id) == (
        "url",
        copy.id,
        copy.id,
    )
    # A re-delivery of the original keeps that verdict and its first index.
    again = d.check(article(original_url, body="نص الأصل المختلف في الصياغة"))
    assert again.model_dump() == original.model_dump()


def test_a_canonical_shared_by_unrelated_pages_makes_no_copy() -> None:
    # A CMS that gives every article its section page as rel=canonical.
    d = Deduper(InMemoryDedupeState())
    section = "https://www.example-news.org/politics"
    a = d.check(_claiming("https://www.example-news.org/1", section, "خبر أول عن الانتخابات"))
    b = d.check(_claiming("https://www.example-news.org/2", section, "خبر ثان عن الزراعة"))
    assert not a.is_duplicate and not b.is_duplicate
    assert b.cluster_id == b.id


CAESAR_STORY = (
    "قال فريق التوثيق إن الصور التي سربها قيصر من داخل المعتقلات السورية ما زالت "
    "تساعد العائلات على معرفة مصير أبنائها بعد سنوات من الغياب، وإن لجنة جديدة بدأت "
    "مطابقة الصور مع سجلات المفقودين في ثلاث محافظات"
)
HARVEST_STORY = (
    "أعلنت مديرية الزراعة في حماة أن موسم حصاد القمح هذا العام أفضل من الذي سبقه "
    "بفضل الأمطار الغزيرة في الربيع، وأن المراكز ستستلم المحصول من الفلاحين بأسعار "
    "محددة حتى نهاية الشهر المقبل"
)


def _near_deduper() -> Deduper:
    return Deduper(InMemoryDedupeState(), NearDuplicateIndex())


def test_a_story_pinned_as_every_pages_canonical_makes_no_copies() -> None:
    # A CMS that puts its pinned story's URL in every page's rel=canonical: the
    # pinned story is a real article, but the other pages are other stories.
    pinned = "https://www.example-news.org/2026/11/caesar"
    for order in ("pinned first", "pinned last"):
        d = _near_deduper()
        page = _claiming("https://www.example-news.org/2026/11/harvest", pinned, HARVEST_STORY)
        if order == "pinned first":
            story = d.check(article(pinned, body=CAESAR_STORY))
            other = d.check(page)
        else:
            other = d.check(page)
            story = d.check(article(pinned, body=CAESAR_STORY))
        assert not story.is_duplicate, order
        assert not other.is_duplicate and other.cluster_id == other.id, order


def test_a_pinned_story_that_is_itself_a_copy_makes_no_copies_either() -> None:
    # The pinned story arrived as a body copy of a wire story: its entry must
    # still carry its text's MinHash, or the check would be skipped.
    pinned = "https://www.example-news.org/2026/11/caesar"
    d = _near_deduper()
    d.check(article("https://wire.example.org/caesar", body=CAESAR_STORY))
    story = d.check(article(pinned, body=CAESAR_STORY))
    page = d.check(_claiming("https://www.example-news.org/2026/11/harvest", pinned, HARVEST_STORY))
    assert story.duplicate_kind == "body"
    assert not page.is_duplicate and page.cluster_id == page.id


def test_a_copy_that_names_its_original_and_shares_its_text_is_a_url_copy() -> None:
    original_url = "https://www.enabbaladi.net/742513/"
    edited = CAESAR_STORY.replace("ثلاث محافظات", "أربع محافظات") + " وفق ما نشره موقع الوكالة"
    for order in ("original first", "copy first"):
        d = _near_deduper()
        copy_article = _claiming("https://news.example.org/wire/1", original_url, edited)
        if order == "original first":
            first, second = d.check(article(original_url, body=CAESAR_STORY)), d.check(copy_article)
        else:
            first, second = d.check(copy_article), d.check(article(original_url, body=CAESAR_STORY))
        assert not first.is_duplicate, order
        assert (second.duplicate_kind, second.duplicate_of, second.cluster_id) == (
            "url",
            first.id,
            first.id,
        ), order


def test_in_memory_state_is_first_writer_wins_and_bounded() -> None:
    s = InMemoryDedupeState(max_entries=2)
    assert s.put("body", "h", DedupeEntry("a", "a")) == DedupeEntry("a", "a")
    assert s.put("body", "h", DedupeEntry("b", "b")) == DedupeEntry("a", "a")
    s.put("url", "k1", DedupeEntry("k1", "k1"))
    s.put("url", "k2", DedupeEntry("k2", "k2"))  # evicts the least recently used
    assert len(s) == 2
    assert s.get("body", "h") is None
    assert s.get("url", "k2") == DedupeEntry("k2", "k2")


# --------------------------------------------------------------------------- language


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        (BODY, "ar"),
        ("قَالَ الرَّئِيسُ فِي بَيَانٍ إِنَّ الحُكُومَةَ", "ar"),  # fully vocalized
        # Arabic typed on a Persian keyboard: ی and ک throughout.
        ("قال المسئول فی بیان إن الحکومة علی اتصال مع الوفد الذی وصل", "ar"),
        ("رئیس جمهور گفت که این تصمیم برای مردم ایران مهم است", "fa"),
        ("سفر رئیس‌جمهور به چین", "fa"),
        ("وزیراعظم نے کہا کہ پاکستان میں انتخابات ہوں گے", "ur"),
        ("The president said on Monday that the talks would resume", "en"),
        ("Assad Damascus Sednaya", "und"),
        ("12345 !!!", "und"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_one_urdu_name_does_not_make_an_arabic_article_urdu() -> None:
    text = BODY * 3 + " وقال مراسل صحيفة ڈان الباكستانية"
    assert detect_language(text) == "ar"


def test_language_is_read_from_the_beginning_of_a_long_text() -> None:
    arabic = (BODY + " ") * (SAMPLE_CHARS // len(BODY) + 1)
    persian = " رئیس جمهور گفت که این تصمیم برای مردم ایران مهم است" * 200
    assert detect_language(persian) == "fa"
    assert detect_language(arabic + persian) == "ar"  # the tail is past the sample
    assert detect_language(persian + arabic) == "fa"


# --------------------------------------------------------------------------- enrich


def test_enrich_keeps_the_dedupe_verdict_and_adds_text_fields() -> None:
    d = Deduper(InMemoryDedupeState())
    d.check(article("https://www.enabbaladi.net/1/"))
    dup = d.check(article("https://www.syria.tv/node/5", title="قَيْصَر يتحدث"))
    e = enrich(dup)
    assert (e.is_duplicate, e.duplicate_kind, e.cluster_id) == (True, "body", dup.cluster_id)
    assert e.language_detected == "ar"
    assert e.normalized_title == "قيصر يتحدث"
    assert e.normalized_body == normalize(BODY)
    assert "ة" in e.normalized_body  # stored form does not fold teh marbuta
    assert e.word_count == len(BODY.split())
    assert e.title == "قَيْصَر يتحدث"  # the original title stays as written


def test_enrich_plain_article_is_its_own_cluster() -> None:
    e = enrich(article())
    assert (e.is_duplicate, e.cluster_id, e.body_hash) == (False, e.id, body_hash(BODY))
    assert e.matched_rules == []


def test_enrich_with_matcher_records_rule_ids() -> None:
    matcher = RuleMatcher(
        [Rule(id="caesar", name="قيصر", any=["قيصر"]), Rule(id="x", name="x", any=["حلب"])]
    )
    assert enrich(article(), matcher).matched_rules == ["caesar"]


# --------------------------------------------------------------------------- alerts


def test_build_alerts_one_per_rule_keyed_by_cluster() -> None:
    matcher = RuleMatcher(
        [
            Rule(id="caesar", name="قيصر", any=["قيصر"]),
            Rule(id="prisons", name="سجون", any=["سجون النظام"]),
        ]
    )
    e = enrich(article(), matcher)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    alerts = build_alerts(e, e.rule_matches, now=lambda: now)
    assert sorted(a.rule_id for a in alerts) == ["caesar", "prisons"]
    caesar = next(a for a in alerts if a.rule_id == "caesar")
    assert caesar.id == alert_id("caesar", e.cluster_id)
    assert {(m.field, m.surface) for m in caesar.matches} == {("title", "قيصر"), ("body", "قيصر")}
    assert caesar.created_at == now


def test_syndicated_copy_yields_the_same_alert_id() -> None:
    d = Deduper(InMemoryDedupeState())
    matcher = RuleMatcher([Rule(id="caesar", name="قيصر", any=["قيصر"])])
    ids = []
    for url in ("https://www.enabbaladi.net/1/", "https://www.syria.tv/node/5"):
        e = enrich(d.check(article(url)), matcher)
        ids += [a.id for a in build_alerts(e, e.rule_matches, now=lambda: SEEN)]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_no_hits_no_alerts() -> None:
    assert (
        build_alerts(enrich(article(body="خبر عن الطقس", title="طقس")), [], now=lambda: SEEN) == []
    )


def test_article_type_is_accepted_by_enrich_and_dedupe() -> None:
    a: Article = article()
    assert enrich(a).id == Deduper(InMemoryDedupeState()).check(a).id


def test_a_redelivery_in_a_later_month_keeps_the_first_index() -> None:
    """The monthly index is fixed at first sight: a restarted poller that sees the
    article again next month must not make a second document in another index."""
    from pipeline.models import monthly_index

    from .helpers import article as make_article

    deduper = Deduper(InMemoryDedupeState())
    november = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    december = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)

    def seen_at(when: datetime) -> Article:
        a = make_article()
        return a.model_copy(update={"first_seen": when, "index_name": monthly_index("rasd", when)})

    first = deduper.check(seen_at(november))
    again = deduper.check(seen_at(december))
    assert first.index_name == "rasd-articles-2026.11"
    assert again.index_name == first.index_name
    assert again.first_seen == november
