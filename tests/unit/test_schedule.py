"""The pure scheduling policy: posting-rate intervals, server hints, weighted backoff."""

from __future__ import annotations

import pytest

from pipeline.schedule import (
    FeedState,
    ScheduleBounds,
    classify_failure,
    items_per_day,
    max_age_seconds,
    next_interval,
    record_failure,
    record_success,
    update_period_seconds,
    wants_unconditional,
)

B = ScheduleBounds(min_interval=300, max_interval=6 * 3600, default_interval=900)
T = 1_800_000_000.0


def test_busy_feed_is_polled_twice_per_item_within_bounds() -> None:
    # 24 items in the last 12 hours: one every 30 min -> poll every 15 min.
    times = tuple(T - i * 1800 for i in range(1, 25))
    assert next_interval(FeedState("u", new_item_times=times), T, B) == pytest.approx(900, rel=0.05)
    # 1,000 items in an hour would ask for 1.8 s: clamped to the minimum.
    burst = tuple(T - i * 3.6 for i in range(1, 1001))
    assert next_interval(FeedState("u", new_item_times=burst), T, B) == 300


def test_new_feed_starts_at_default_and_a_silent_one_drifts_to_the_maximum() -> None:
    assert next_interval(FeedState("u"), T, B) == 900
    assert next_interval(FeedState("u", polls=50), T, B) == B.max_interval
    old = (T - 30 * 86400, T - 29 * 86400)  # outside the rate window
    assert next_interval(FeedState("u", polls=50, new_item_times=old), T, B) == B.max_interval


def test_fixed_interval_from_the_catalogue_wins_over_the_rate() -> None:
    assert next_interval(FeedState("u"), T, B, fixed=600) == 600


def test_server_hints_are_floors_capped_at_the_maximum() -> None:
    assert next_interval(FeedState("u", hint=3600), T, B) == 3600
    assert next_interval(FeedState("u", hint=10), T, B) == 900
    assert next_interval(FeedState("u", hint=7 * 86400), T, B) == B.max_interval


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("max-age=600", 600), ("public, s-maxage=120, max-age=60", 120), ("no-cache", None),
     (None, None), ('max-age="30"', 30)],
)  # fmt: skip
def test_cache_control_max_age(header: str | None, seconds: float | None) -> None:
    assert max_age_seconds(header) == seconds


@pytest.mark.parametrize(
    ("period", "freq", "seconds"),
    [("hourly", "1", 3600), ("daily", "4", 21600), ("Weekly", None, 604800), ("daily", "x", 86400),
     ("fortnightly", "1", None), (None, "2", None), ("hourly", "0", 3600)],
)  # fmt: skip
def test_sy_update_period(period: str | None, freq: str | None, seconds: float | None) -> None:
    assert update_period_seconds(period, freq) == seconds


def test_failures_are_weighted_and_back_off_exponentially() -> None:
    assert [classify_failure(r) for r in ("http_404", "http_500", "timeout", "html_not_feed")] == [
        "hard", "soft", "temporary", "hard",
    ]  # fmt: skip
    state = FeedState("u")
    intervals = []
    for _ in range(3):
        state = record_failure(state, T, B, reason="http_500")
        intervals.append(state.interval)
    assert state.failures == 1.5 and state.consecutive_failures == 3
    assert intervals == sorted(intervals) and intervals[0] is not None and intervals[0] > 900
    assert state.next_due == T + intervals[-1]  # type: ignore[operator]
    assert state.counts["failed:http_500"] == 3


def test_dead_after_threshold_retried_rarely_and_revived_by_success() -> None:
    bounds = ScheduleBounds(dead_after=3, dead_retry=86400)
    state = FeedState("u")
    for _ in range(2):
        state = record_failure(state, T, bounds, reason="http_410")
    assert not state.dead
    state = record_failure(state, T, bounds, reason="http_410")
    assert state.dead and state.interval == 86400
    state = record_success(state, T + 86400, bounds, outcome="new", new_item_times=(T,))
    assert not state.dead and state.failures == 2.0 and state.consecutive_failures == 0


def test_retry_after_is_honoured_then_forgotten_after_success() -> None:
    state = record_failure(FeedState("u"), T, B, reason="http_429", retry_after=4000)
    assert state.interval is not None and state.interval >= 4000
    state = record_success(state, T + 4000, B, outcome="new")
    assert state.hint is None and state.interval is not None and state.interval < 4000


def test_unconditional_every_n_polls_and_when_no_validators() -> None:
    bounds = ScheduleBounds(unconditional_every=4)
    assert wants_unconditional(FeedState("u"), bounds)
    assert not wants_unconditional(FeedState("u", etag='"x"', polls_since_unconditional=2), bounds)
    assert wants_unconditional(FeedState("u", etag='"x"', polls_since_unconditional=3), bounds)


def test_rate_sample_is_bounded_to_the_window() -> None:
    state = FeedState("u", new_item_times=(T - 30 * 86400,))
    state = record_success(state, T, B, outcome="new", new_item_times=(T - 60, T - 30))
    assert state.new_item_times == (T - 60, T - 30)
    assert items_per_day(state, T, B) == pytest.approx(48.0)
