"""The chaos harness's plan is a function of its seed (a failing run can be
replayed), covers every kind of fault, and its site has what the checks need."""

from __future__ import annotations

import itertools
import random

from bench.chaos import KEYWORD, WORKERS, Site, schedule
from connectors.kafka import BROKER_MESSAGE_BYTES, record_size, topic_limits


def test_the_same_seed_gives_the_same_faults_and_site() -> None:
    def plan(seed: int) -> tuple[list[tuple[float, str, str, float]], list[str]]:
        rng = random.Random(seed)
        site = Site.generate(rng, 50, 2000, 420)
        faults = schedule(rng, 600, long=True)
        return [(f.at, f.kind, f.target, f.lasts) for f in faults], [p.title for p in site.pages]

    assert plan(7) == plan(7)
    assert plan(7) != plan(8)


def test_a_long_run_kills_every_kind_of_worker_three_times_and_each_service() -> None:
    faults = schedule(random.Random(3), 600, long=True)
    kills = [f.target.rsplit("-", 1)[0] for f in faults if f.kind == "kill-worker"]
    assert all(kills.count(stage) == 3 for stage, _ in WORKERS)
    kinds = {f.kind for f in faults}
    assert {
        "kill-kafka",
        "kill-elasticsearch",
        "pause-elasticsearch",
        "block-elasticsearch",
        "down-webhook",
    } <= kinds
    # One broker outage outlasts the consumers' session timeout (45 s).
    assert max(f.lasts for f in faults if f.kind == "kill-kafka") > 45
    services = sorted((f.at, f.at + f.lasts) for f in faults if f.kind != "kill-worker")
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(services))


def test_the_site_has_wire_copies_failing_pages_and_alerting_stories() -> None:
    site = Site.generate(random.Random(1), 50, 2000, 420)
    assert len({p.feed for p in site.pages}) == 50 and len(site.pages) == 2000
    copies = [p for p in site.pages if p.story != p.n]
    assert copies and all(not site.pages[p.story].fails for p in copies)
    assert any(p.fails for p in site.pages)
    alerting = [p for p in site.pages if p.alerts]
    assert alerting and all(KEYWORD in " ".join(p.paragraphs) for p in alerting)
    assert not any(KEYWORD in " ".join(p.paragraphs) for p in site.pages if not p.alerts)


def test_record_size_and_topic_limits() -> None:
    assert record_size(b"k", b"vv", [("h", b"123")]) == 1 + 2 + 1 + 3
    described = {"topic": {"small": {"max.message.bytes": {"value": "100000"}}, "plain": {}}}
    assert topic_limits(described) == {"small": 100_000, "plain": BROKER_MESSAGE_BYTES}
