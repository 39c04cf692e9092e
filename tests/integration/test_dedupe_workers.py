"""Dedupe with two workers on a topic of six partitions, on the real Kafka and Elasticsearch.

One article arrives through two feeds under two URL variants, and another
outlet carries a syndicated copy with its own headline, dateline and footer.
Expected: one cluster, one document per article (never a second one for the
URL variant), the copy indexed and marked as a near-duplicate, and one alert.
Then the workers restart: a re-delivery keeps its verdict and a late copy still
joins the cluster (the state was read back, not forgotten).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import Producer
from pipeline.feed_items import make_feed_item
from pipeline.feeds import Feed
from pipeline.models import Article
from pipeline.settings import Settings
from rasd.app import Runtime, reset_namespace
from tests.fixtures.dedupe.labelled import HERE, load_group

pytestmark = pytest.mark.integration

TEXTS, _ = load_group(HERE / "01-sednaya.yaml")
ENAB_RSS = Feed(
    url="https://www.enabbaladi.net/feed/", name="عنب بلدي", outlet="Enab Baladi", country="sy"
)
ENAB_SYRIA = Feed(
    url="https://www.enabbaladi.net/category/syria/feed/",
    name="عنب بلدي سوريا",
    outlet="Enab Baladi",
    country="sy",
)
SYRIA_TV = Feed(
    url="https://www.syria.tv/rss.xml", name="تلفزيون سوريا", outlet="Syria TV", country="sy"
)
RULES = """\
rules:
  - id: sednaya
    name: سجن صيدنايا
    any: [صيدنايا]
"""
STAGES = ("sign", "sign", "cluster", "cluster", "enrich", "index", "alert")


@pytest.fixture
def settings_t6(es: Any, kafka_bootstrap: str, unique: str, tmp_path: Path) -> Iterator[Settings]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    settings = Settings(namespace=f"t6-{unique}", rules_file=rules, partitions=6)
    try:
        yield settings
    finally:
        reset_namespace(settings)


def _article(
    feed: Feed, link: str, body: str, ns: str, seen: datetime, title: str = "قوائم معتقلي صيدنايا"
) -> Article:
    item = make_feed_item(feed, link=link, first_seen=seen, namespace=ns, title=title)
    return Article.from_item(item, body=body, fetched_at=seen, http_status=200)


def _run(settings: Settings, articles: list[Article]) -> Runtime:
    """Start the workers, produce ``articles`` to the articles topic, wait until all is done."""
    pipeline = Runtime(settings)
    pipeline.prepare()
    threads = pipeline.start_workers(STAGES)
    try:
        deadline = time.monotonic() + 60
        for worker in pipeline.workers:
            if worker.stage != "cluster":  # the standby cluster worker gets no partition
                assert worker.ready.wait(max(0.1, deadline - time.monotonic())), worker.stage
        # Both sign workers share the six partitions (a rebalance may still be
        # settling when the second one is ready, hence the wait).
        dedupers = [w for w in pipeline.workers if w.stage == "sign"]
        while time.monotonic() < deadline:
            shares = [len(w.consumer.assignment()) for w in dedupers if w.consumer]
            if len(shares) == 2 and all(shares) and sum(shares) == 6:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the two sign workers never shared the six partitions")
        sink = Producer(settings.kafka)
        try:
            for a in articles:
                sink.send(pipeline.topics.articles, a.id, a.to_json())
            sink.flush()
        finally:
            sink.close()
        assert pipeline.wait_drained(120, lambda n: None), "the pipeline did not drain"
    finally:
        pipeline.shutdown(threads)
    return pipeline


def _docs(es: Any, settings: Settings) -> list[dict[str, Any]]:
    es.indices.refresh(index=f"{settings.namespace}-articles")
    hits = es.search(index=f"{settings.namespace}-articles", size=100)["hits"]["hits"]
    return [h["_source"] | {"_id": h["_id"]} for h in hits]


def _alerts(es: Any, settings: Settings) -> list[dict[str, Any]]:
    index = f"{settings.namespace}-alerts"
    es.indices.refresh(index=index)
    return [h["_source"] for h in es.search(index=index, size=100)["hits"]["hits"]]


def test_two_workers_six_partitions_one_cluster_one_document_one_alert(
    es: Any, settings_t6: Settings
) -> None:
    ns, now = settings_t6.namespace, datetime.now(UTC)
    variant_a = _article(
        ENAB_RSS, "https://www.enabbaladi.net/812345/?utm_source=rss", TEXTS["agency"], ns, now
    )
    variant_b = _article(
        ENAB_SYRIA, "https://m.enabbaladi.net/812345/amp/", TEXTS["agency"], ns, now
    )
    copy = _article(SYRIA_TV, "https://www.syria.tv/node/99881", TEXTS["wire_tv"], ns, now)
    other = _article(
        SYRIA_TV,
        "https://www.syria.tv/node/99882",
        TEXTS["other_detainees"],
        ns,
        now,
        title="الإفراج عن موقوفين في حمص",
    )
    assert variant_a.id == variant_b.id != copy.id
    assert variant_a.url != variant_b.url

    _run(settings_t6, [variant_a, copy, variant_b, other])

    docs = {d["_id"]: d for d in _docs(es, settings_t6)}
    assert set(docs) == {variant_a.id, copy.id, other.id}  # one document per article
    # The two stories reach the single writer in either order: whichever came
    # first is the cluster, the other is marked a near-duplicate of it.
    cluster = {docs[variant_a.id]["cluster_id"], docs[copy.id]["cluster_id"]}
    assert len(cluster) == 1
    (cluster_id,) = cluster
    assert cluster_id in (variant_a.id, copy.id)
    head = docs[cluster_id]
    tail = docs[copy.id if cluster_id == variant_a.id else variant_a.id]
    assert head["is_duplicate"] is False
    assert (tail["is_duplicate"], tail["duplicate_kind"]) == (True, "near")
    assert tail["duplicate_of"] == cluster_id
    assert (docs[other.id]["is_duplicate"], docs[other.id]["cluster_id"]) == (False, other.id)

    alerts = _alerts(es, settings_t6)
    assert len(alerts) == 1, alerts
    assert alerts[0]["cluster_id"] == cluster_id

    # Restart: the state is read back from the changelog. A re-delivery keeps its
    # verdict, a late rewrite joins the cluster, and no alert is raised again.
    late = _article(SYRIA_TV, "https://www.syria.tv/node/99883", TEXTS["rewrite"], ns, now)
    _run(settings_t6, [copy, variant_b, late])
    docs = {d["_id"]: d for d in _docs(es, settings_t6)}
    assert set(docs) == {variant_a.id, copy.id, other.id, late.id}
    assert docs[tail["_id"]]["duplicate_kind"] == "near"  # the same verdict as before
    assert docs[head["_id"]]["is_duplicate"] is False
    assert (docs[late.id]["duplicate_kind"], docs[late.id]["cluster_id"]) == ("near", cluster_id)
    assert len(_alerts(es, settings_t6)) == 1


def test_threads_are_not_left_behind() -> None:
    # The workers are daemon threads joined by shutdown(); none may outlive a run.
    assert not [t for t in threading.enumerate() if t.name.startswith("worker-")]
