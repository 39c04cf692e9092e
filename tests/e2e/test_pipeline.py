"""The whole pipeline on the real stack: poll → extract → dedupe → enrich → index → alert.

The demo site's feeds (RSS 2.0 in UTF-8, Atom with relative links, a wire
agency's RSS, and a malformed feed) and pages go through `rasd run --once`
into a namespace of the test's own. What each page should produce is stated by
``tests/fixtures/site/expectations.yaml``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from connectors.kafka import Bootstrap, new_consumer, new_producer

from .conftest import SITE, Run

pytestmark = pytest.mark.e2e


def _docs(es: Any, run: Run) -> list[dict[str, Any]]:
    es.indices.refresh(index=f"{run.namespace}-articles")
    found = es.search(index=f"{run.namespace}-articles", size=100, query={"match_all": {}})["hits"][
        "hits"
    ]
    return [{"_id": h["_id"], **h["_source"]} for h in found]


def _alert_count(es: Any, run: Run) -> int:
    es.indices.refresh(index=f"{run.namespace}-alerts")
    return int(es.count(index=f"{run.namespace}-alerts")["count"])


def _topic(kafka_bootstrap: Bootstrap, topic: str) -> list[Any]:
    consumer = new_consumer(kafka_bootstrap, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    records: list[Any] = []
    deadline = time.monotonic() + 30
    while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    consumer.close()
    return records


def _gold_first_line(article: dict[str, Any]) -> str:
    return (SITE / article["gold"]).read_text(encoding="utf-8").splitlines()[0].strip()


def test_every_article_once_searchable_and_one_alert(
    run: Run, es: Any, kafka_bootstrap: Bootstrap, expectations: dict[str, Any]
) -> None:
    summary = run.once()
    counts = expectations["counts"]
    assert summary["feeds_failed"] == 1  # the malformed feed, reported, not fatal
    assert summary["feeds_ok"] == 3
    assert summary["items"] == counts["feed_items"]
    assert summary["dlq"] == counts["feed_items_missing"]  # the 404 page
    assert summary["alerts"] == counts["caesar_alerts"] == 1
    assert summary["drained"] is True

    docs = _docs(es, run)
    urls = [d["canonical_url"] for d in docs]
    assert len(docs) == counts["unique_articles"]
    assert len(set(urls)) == len(urls), "an article was indexed twice"
    by_path = {d["canonical_url"].split(str(run.site.port), 1)[1]: d for d in docs}
    for article in expectations["articles"]:
        doc = by_path[article["path"]]
        assert _gold_first_line(article) in doc["body"], article["path"]
        assert "<" not in doc["body"] and doc["word_count"] > 100

    # Search finds the قيصر article through its inflected forms, and only it.
    caesar = expectations["caesar_rule"]["article"]
    for query in ("قيصر", "وقيصر"):
        done = run.rasd("search", "--json", query)
        assert done.returncode == 0, done.stderr
        hits = [json.loads(line) for line in done.stdout.splitlines()]
        assert [h["url"].split(str(run.site.port), 1)[1] for h in hits] == [caesar], query

    def found(*args: str) -> int:
        done = run.rasd("search", "--json", *args)
        assert done.returncode == 0, done.stderr
        return len(done.stdout.splitlines())

    # Filters: the story is from sham-news, published on 2026-11-17.
    assert found("--outlet", "sham-news", "قيصر") == 1
    assert found("--outlet", "almashreq", "قيصر") == 0
    assert found("--since", "2026-11-17", "قيصر") == 1
    assert found("--since", "2026-11-18", "قيصر") == 0
    # --stem widens to the stemmed field: the caesarean story comes in too.
    assert found("--stem", "قيصر") > 1

    alerts = _topic(kafka_bootstrap, f"{run.namespace}.alerts")
    assert len(alerts) == 1
    alert = json.loads(alerts[0].value)
    assert alert["rule_id"] == expectations["caesar_rule"]["rule_id"]
    assert alert["url"].endswith(caesar)
    assert _alert_count(es, run) == 1

    dead = _topic(kafka_bootstrap, f"{run.namespace}.dlq")
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["rasd.stage"] == "extract"
    assert headers["rasd.reason"] == "http_404"
    assert headers["rasd.source.topic"] == f"{run.namespace}.items"

    # A second run over the same feeds adds no document and no alert.
    again = run.once()
    assert again["alerts"] == 0
    assert len(_docs(es, run)) == counts["unique_articles"]
    assert _alert_count(es, run) == 1
    assert len(_topic(kafka_bootstrap, f"{run.namespace}.alerts")) == 1


def test_undecodable_messages_go_to_the_dlq_and_the_pipeline_goes_on(
    run: Run, es: Any, kafka_bootstrap: Bootstrap, expectations: dict[str, Any]
) -> None:
    created = run.rasd("topics", "create")
    assert created.returncode == 0, created.stderr
    producer = new_producer(kafka_bootstrap, acks="all")
    producer.send(f"{run.namespace}.items", key=b"poison-1", value=b"\xff\xfe not json")
    producer.send(f"{run.namespace}.enriched", key=b"poison-2", value=b'{"id": 1}')
    producer.flush()
    producer.close()

    summary = run.once()
    assert summary["drained"] is True
    # 404 page + poison on items + poison on enriched (seen by index and alert stages).
    assert summary["dlq"] == counts_dlq(expectations) + 3
    assert len(_docs(es, run)) == expectations["counts"]["unique_articles"]

    reasons = {
        (h["rasd.stage"], h["rasd.reason"], r.key)
        for r in _topic(kafka_bootstrap, f"{run.namespace}.dlq")
        for h in [{k: v.decode() for k, v in r.headers}]
    }
    assert ("extract", "undecodable", b"poison-1") in reasons
    assert ("index", "undecodable", b"poison-2") in reasons
    assert ("alert", "undecodable", b"poison-2") in reasons


def counts_dlq(expectations: dict[str, Any]) -> int:
    return int(expectations["counts"]["feed_items_missing"])


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_sigterm_mid_stream_then_restart_loses_and_duplicates_nothing(
    run: Run,
    es: Any,
    kafka_bootstrap: Bootstrap,
    expectations: dict[str, Any],
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also with the dedupe window on disk (RASD_DEDUPE_STORE=disk), which ``rasd
    run`` opens in one thread and decides with in another."""
    monkeypatch.setenv("RASD_DEDUPE_STORE", store)
    monkeypatch.setenv("RASD_DEDUPE_SNAPSHOT_DIR", str(tmp_path / "dedupe"))
    proc = run.start()
    try:
        # Stop it as soon as the first article page is being fetched: mid-stream.
        deadline = time.monotonic() + 120
        while not any("/articles/" in r.path or "/news/" in r.path for r in run.site.requests):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "rasd run never fetched an article"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = len(_docs(es, run)) if es.indices.exists(index=f"{run.namespace}-articles") else 0
    assert partial < expectations["counts"]["unique_articles"], "not stopped mid-stream"

    summary = run.once()
    assert summary["drained"] is True
    docs = _docs(es, run)
    assert len(docs) == expectations["counts"]["unique_articles"]
    assert len({d["canonical_url"] for d in docs}) == len(docs)
    assert _alert_count(es, run) == 1
    # The only dead letter is the 404 page: no verdict failed.
    dead = _topic(kafka_bootstrap, f"{run.namespace}.dlq")
    assert [dict(d.headers)["rasd.reason"] for d in dead] == [b"http_404"]
    if store == "disk":
        assert list((tmp_path / "dedupe").glob("*.sqlite"))


def test_a_dead_letter_replays_once_its_cause_is_fixed(
    run: Run, es: Any, expectations: dict[str, Any]
) -> None:
    """The missing page appears later: `rasd dlq replay` brings its item back."""
    first = run.once()
    assert first["dlq"] == counts_dlq(expectations)
    missing = expectations["missing_path"]
    caesar = SITE / expectations["caesar_rule"]["article"].lstrip("/")
    run.site.override(
        missing,
        caesar.read_bytes().replace(b"{BASE}", run.site.base_url.encode()),
        content_type="text/html; charset=utf-8",
    )
    replayed = run.rasd("dlq", "replay", "--reason", "http_404")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letter" in replayed.stderr
    # The cursor moved: replaying again sends nothing twice.
    twice = run.rasd("dlq", "replay", "--reason", "http_404")
    assert "replayed 0 dead letter" in twice.stderr, twice.stderr
    # Poll only the broken feed this time, so the item can only come from the replay.
    broken = expectations["broken_feed_path"]
    run.feeds.write_text(
        f"feeds:\n  - {{url: '{run.site.base_url}{broken}', name: broken, outlet: broken, "
        "country: sy, language: ar}\n",
        encoding="utf-8",
    )
    again = run.once()
    assert again["items"] == 0
    assert again["articles_extracted"] == 1
    docs = {d["url"].split(str(run.site.port), 1)[1]: d for d in _docs(es, run)}
    assert missing in docs
    assert len(docs) == expectations["counts"]["unique_articles"] + 1
    # The page now served there is the Caesar article, rel=canonical included:
    # it is indexed, and marked as a copy of the Caesar article by that link.
    copy, caesar_doc = docs[missing], docs[expectations["caesar_rule"]["article"]]
    assert copy["canonical_url"] == caesar_doc["canonical_url"]
    assert (copy["is_duplicate"], copy["duplicate_kind"]) == (True, "url")
    assert copy["cluster_id"] == caesar_doc["cluster_id"]
    assert _alert_count(es, run) == 1


def test_the_caesar_story_across_outlets_and_its_places(
    run: Run, es: Any, expectations: dict[str, Any]
) -> None:
    """`rasd story` lists the outlets that carried the Caesar story, in time order, and the
    indexed documents carry their places with coordinates."""
    first = run.once()
    assert first["drained"] is True
    caesar_path = expectations["caesar_rule"]["article"]
    docs = {d["url"].split(str(run.site.port), 1)[1]: d for d in _docs(es, run)}
    caesar = docs[caesar_path]
    # The places of every document have their coordinates (and GeoNames ids where known).
    with_places = [d for d in docs.values() if d["places"]]
    assert len(with_places) >= len(docs) // 2
    for doc in with_places:
        for place in doc["places"]:
            assert -90 <= place["location"]["lat"] <= 90 and -180 <= place["location"]["lon"] <= 180
            assert place["country"] and place["id"]
    names = {p["name"] for p in caesar["places"]}
    assert "دمشق" in names, names
    assert caesar["primary_place"]["location"]
    assert "SY" in caesar["countries"]
    assert "caesar" in {e["id"] for e in caesar["entities"]}
    # The map can aggregate on the points: a geo query finds the article near Damascus.
    near = es.count(
        index=f"{run.namespace}-articles",
        query={
            "geo_distance": {"distance": "50km", "places.location": {"lat": 33.51, "lon": 36.29}}
        },
    )
    assert int(near["count"]) >= 1

    # A wire agency carries the same story later, under its own URL.
    copy_path = "/wire/news/2026/11/caesar-photos-files-missing.html"
    page = (SITE / caesar_path.lstrip("/")).read_text(encoding="utf-8")
    page = page.replace(caesar_path, copy_path).replace("{BASE}", run.site.base_url)
    run.site.override(copy_path, page.encode(), content_type="text/html; charset=utf-8")
    wire = (SITE / "wire" / "rss.xml").read_text(encoding="utf-8")
    item = (
        f"<item><title>صور قيصر تعود إلى الواجهة</title><link>{{BASE}}{copy_path}</link>"
        f"<pubDate>Thu, 19 Nov 2026 08:00:00 GMT</pubDate><guid>{{BASE}}{copy_path}</guid></item>"
    )
    wire = wire.replace("</channel>", item + "</channel>").replace("{BASE}", run.site.base_url)
    run.site.override("/wire/rss.xml", wire.encode(), content_type="application/rss+xml")
    second = run.once()
    assert second["drained"] is True
    assert second["alerts"] == 0  # the same story: no second alert

    for ref in (caesar["_id"], caesar["cluster_id"]):
        done = run.rasd("story", ref, "--json")
        assert done.returncode == 0, done.stderr
        story = json.loads(done.stdout)
        assert story["cluster_id"] == caesar["cluster_id"]
        copies = story["copies"]
        assert [c["outlet"] for c in copies] == ["sham-news", "arab-wire"]
        assert [c["first_seen"] for c in copies] == sorted(c["first_seen"] for c in copies)
        assert copies[0]["role"] == "original" and copies[0]["id"] == caesar["_id"]
        assert copies[1]["role"].startswith("copy (") and copies[1]["url"].endswith(copy_path)
        assert copies[0]["published_at"].startswith("2026-11-17")
    human = run.rasd("story", caesar["_id"])
    assert human.returncode == 0 and "2 copies" in human.stdout, human.stdout
    unknown = run.rasd("story", "no-such-story")
    assert unknown.returncode == 1 and "no story or article" in unknown.stderr + unknown.stdout


def test_a_drain_that_times_out_says_so_and_exits_3(run: Run) -> None:
    """Not an interruption (130): the drain timeout, named with its setting."""
    done = subprocess.run(
        [sys.executable, "-m", "rasd", "run", "--once"],
        env=run.env({"RASD_DRAIN_TIMEOUT": "0.001"}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 3, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "did not drain within" in done.stderr and "RASD_DRAIN_TIMEOUT" in done.stderr
    assert "interrupted" not in done.stderr
