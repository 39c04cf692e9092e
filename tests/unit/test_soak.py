"""The sustained-load bench's pure parts: its publishing schedule and its summary."""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path

import pytest

from bench.chaos import vocabulary
from bench.soak import (
    MB,
    Goals,
    Sample,
    percentile,
    publish_times,
    quarters,
    rule_terms,
    summarize,
    write_rules,
)
from pipeline.matching import RuleMatcher
from pipeline.rules import load_rule_set


def test_the_schedule_publishes_the_rate_on_average_with_bursts() -> None:
    times = publish_times(12, 600, burst_every=60, burst_seconds=5, burst_factor=4)
    assert len(times) == 7200
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] < 600
    # Base rate: 12 * 60 / (55 + 20) = 9.6/s; the burst, 27.5-32.5 s into each
    # minute, runs at 38.4/s.
    in_burst = [t for t in times if 27.5 <= t % 60 < 32.5]
    assert len(in_burst) == pytest.approx(10 * 5 * 38.4, abs=10)
    quiet = [t for t in times if t % 60 < 25 or t % 60 >= 35]
    assert len(quiet) == pytest.approx(10 * 50 * 9.6, abs=10)
    per_minute = [sum(1 for t in times if m * 60 <= t < (m + 1) * 60) for m in range(10)]
    assert set(per_minute) <= {719, 720, 721}


def test_without_bursts_articles_are_evenly_spaced() -> None:
    times = publish_times(4, 10, burst_factor=1)
    assert len(times) == 40
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.25}


def test_a_schedule_needs_sensible_bursts() -> None:
    assert publish_times(0, 60) == []
    with pytest.raises(ValueError):
        publish_times(12, 60, burst_every=10, burst_seconds=10)
    with pytest.raises(ValueError):
        publish_times(12, 60, burst_factor=0.5)


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 50) == pytest.approx(statistics.median(values))
    assert percentile([3.0], 95) == 3.0
    assert math.isnan(percentile([], 95))


def test_quarters_show_a_leak_and_not_noise() -> None:
    leak = [(float(t), 100 + t * 0.5) for t in range(100)]
    first, last = quarters(leak)
    assert last - first == pytest.approx(37.5)
    noise = [(float(t), 100.0 + (t * 37) % 11 - 5) for t in range(100)]  # within ±5
    first, last = quarters(noise)
    assert abs(last - first) <= 2


def samples(seconds: int, rate: float, rss_mb: float, leak_mb_per_s: float = 0.0) -> list[Sample]:
    return [
        Sample(
            t=float(t),
            published=int(t * rate),
            searchable=int(t * rate),
            alerts=t // 10,
            lag={"extract": 0, "index": 0},
            rss={"run": int((rss_mb + leak_mb_per_s * t) * MB)},
            cpu={"run": t * 0.5},
            index_ms=t * 24.0,
        )
        for t in range(0, seconds + 1, 5)
    ]


def rows_by_measure(rows: list[object]) -> dict[str, object]:
    return {r.measure.split(" p50")[0].split(":")[0]: r for r in rows}  # type: ignore[attr-defined]


def test_a_run_that_holds_every_goal() -> None:
    lat = {
        "feed listed -> searchable": [1.0] * 95 + [1.9] * 5,
        "page fetched -> alert": [0.5] * 100,
    }
    rows = summarize(samples(600, 12, 200), lat, Goals(), bare_pages_per_s=15)
    by = rows_by_measure(rows)
    assert by["articles searchable /s (sustained)"].value == "12.00"  # type: ignore[attr-defined]
    assert by["pipeline / bare extraction"].value == "0.800"  # type: ignore[attr-defined]
    assert by["RSS run"].value == "200, 200 -> 200"  # type: ignore[attr-defined]
    assert by["CPU run (cores)"].value == "0.50"  # type: ignore[attr-defined]
    # 24 ms of indexing per second over 12 articles per second.
    assert by["Elasticsearch indexing time (ms per article)"].value == "2.00"  # type: ignore[attr-defined]
    verdicts = [r.verdict for r in rows if r.verdict]
    assert verdicts and set(verdicts) == {"met"}


def test_the_rate_is_taken_after_the_warm_up() -> None:
    run = samples(600, 12, 200)
    for s in run:  # nothing searchable in the first 30 s, then the rate is held
        s.searchable = max(0, int((s.t - 30) * 12))
    by = rows_by_measure(summarize(run, {}, Goals(), bare_pages_per_s=15))
    assert by["articles searchable /s (sustained)"].value == "12.00"  # type: ignore[attr-defined]
    by = rows_by_measure(summarize(run, {}, Goals(warmup=0), bare_pages_per_s=15))
    assert float(by["articles searchable /s (sustained)"].value) < 12  # type: ignore[attr-defined]


def test_the_rate_to_hold_leaves_out_the_pages_that_cannot_be_indexed() -> None:
    goals = Goals(rate=12, indexable=0.975)
    by = rows_by_measure(summarize(samples(600, 11.7, 200), {}, goals, bare_pages_per_s=15))
    row = by["articles searchable /s (sustained)"]
    assert (row.value, row.goal, row.verdict) == ("11.70", ">= 11.70 (less the 404s)", "met")  # type: ignore[attr-defined]
    by = rows_by_measure(summarize(samples(600, 11.5, 200), {}, goals, bare_pages_per_s=15))
    assert by["articles searchable /s (sustained)"].verdict == "MISSED"  # type: ignore[attr-defined]


def test_a_run_that_misses_says_which_goals() -> None:
    run = samples(600, 6, 250, leak_mb_per_s=0.2)
    run[-1].lag = {"extract": 500, "index": 20}
    lat = {"feed listed -> searchable": [3.0] * 100, "page fetched -> alert": []}
    rows = summarize(run, lat, Goals(), bare_pages_per_s=30)
    missed = {r.measure.split(" p50")[0].split(":")[0] for r in rows if r.verdict == "MISSED"}
    assert missed == {
        "articles searchable /s (sustained)",
        "consumer lag at the end (records)",
        "feed listed -> searchable",
        "page fetched -> alert",  # no alert at all is a miss, not a pass
        "RSS run",  # 250 MB rising to 370 MB
        "pipeline / bare extraction",
    }


def test_every_rule_has_its_own_word_that_the_text_never_has() -> None:
    words = vocabulary()
    terms = rule_terms(1000, words)
    assert len(set(terms)) == 1000
    assert not set(terms) & set(words)
    assert not any(w.endswith(t) for w in words for t in terms[:50])


def test_each_rules_word_raises_that_rule_and_no_other(tmp_path: Path) -> None:
    terms = rule_terms(1000, vocabulary())
    write_rules(tmp_path / "rules.yaml", terms, "http://127.0.0.1:9/hook")
    matcher = RuleMatcher(load_rule_set(tmp_path / "rules.yaml").rules)
    for i, term in enumerate(terms):
        hits = matcher.match_text(f"قال المتحدث إن {term} وصل صباح اليوم.")
        assert [h.rule_id for h in hits] == [f"soak-{i:04d}"], term
