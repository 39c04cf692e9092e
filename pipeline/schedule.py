"""When to poll a feed next: adaptive intervals, server hints and failure backoff.

Pure functions over :class:`FeedState` (no I/O, no clock of its own: ``now`` is
always passed in), so the poller, ``rasd feeds status`` and the tests share one
policy. The interval follows the posting rate observed for the feed (the
Miniflux "entry frequency" idea: half the mean gap between new items over a
window, so a feed is polled about twice per new item), clamped to
:class:`ScheduleBounds`. A server's hints are floors, never ceilings we would
poll faster than: ``Retry-After``, ``Cache-Control: max-age``, RSS ``<ttl>``
and ``sy:updatePeriod``/``sy:updateFrequency``; a hint above the maximum is
capped there, so a mistaken ``ttl`` of a week does not hide a live outlet.
Failures add a weight to a decaying counter (Media Cloud rss-fetcher: hard 1,
soft 0.5, temporary 0.25); the interval doubles with the counter, and once it
reaches ``dead_after`` the feed is dead and tried only every ``dead_retry``
seconds until a success revives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

__all__ = [
    "FeedState",
    "ScheduleBounds",
    "classify_failure",
    "failure_weight",
    "hint_seconds",
    "max_age_seconds",
    "next_interval",
    "record_failure",
    "record_success",
    "update_period_seconds",
    "wants_unconditional",
]

# Severity of a failure reason: "hard" means the URL is probably wrong (404,
# 410, not a feed) or the server refuses rasd until someone changes something
# (401, 403, a bot-protection page, which rasd cannot pass: it runs no
# JavaScript and solves no captcha, so retrying soon only adds load); "soft" a
# broken but live server; "temporary" the network.
_HARD: Final = frozenset(
    {"http_404", "http_410", "http_401", "http_403", "challenge_page", "bad_url", "bad_scheme",
     "not_a_feed", "malformed_feed", "html_not_feed", "blocked_address", "redirect_downgrade"}
)  # fmt: skip
_TEMPORARY: Final = frozenset(
    {"timeout", "connection_error", "dns", "http_429", "http_503", "host_paused", "publish_failed"}
)
WEIGHTS: Final = {"hard": 1.0, "soft": 0.5, "temporary": 0.25}

_PERIODS: Final = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000,
                   "yearly": 31536000}  # fmt: skip
_MAX_AGE: Final = re.compile(r"(?:^|,)\s*(s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class ScheduleBounds:
    """The policy's knobs, in seconds unless stated."""

    min_interval: float = 300.0
    max_interval: float = 6 * 3600.0
    default_interval: float = 900.0
    #: How far back new items count towards the posting rate.
    rate_window: float = 7 * 86400.0
    #: Weighted failures at which a feed is dead (rss-fetcher: 30).
    dead_after: float = 10.0
    dead_retry: float = 86400.0
    #: Every N-th poll goes out without validators (lying ETags).
    unconditional_every: int = 10
    #: Each success takes this much off the failure counter.
    success_credit: float = 1.0


@dataclass(frozen=True)
class FeedState:
    """Everything rasd remembers about one feed between polls (and restarts)."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    polls: int = 0
    polls_since_unconditional: int = 0
    #: item id -> first-seen epoch seconds; bounded by the poller.
    seen: dict[str, float] = field(default_factory=dict)
    #: epoch seconds at which new items appeared (the posting-rate sample).
    new_item_times: tuple[float, ...] = ()
    failures: float = 0.0
    consecutive_failures: int = 0
    dead: bool = False
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    hint: float | None = None
    interval: float | None = None
    next_due: float | None = None
    counts: dict[str, int] = field(default_factory=dict)


def failure_weight(reason: str) -> float:
    """The weight a failure with this reason adds to the counter."""
    if reason in _HARD:
        return WEIGHTS["hard"]
    if reason in _TEMPORARY:
        return WEIGHTS["temporary"]
    return WEIGHTS["soft"]


def classify_failure(reason: str) -> str:
    """``hard``, ``soft`` or ``temporary``: the class counted in stats and status."""
    weight = failure_weight(reason)
    return next(name for name, w in WEIGHTS.items() if w == weight)


def max_age_seconds(cache_control: str | None) -> float | None:
    """``max-age`` (or ``s-maxage``) of a Cache-Control header; ``no-cache`` is no hint."""
    if not cache_control:
        return None
    found = [int(m.group(2)) for m in _MAX_AGE.finditer(cache_control)]
    return float(max(found)) if found else None


def update_period_seconds(period: str | None, frequency: str | None) -> float | None:
    """``sy:updatePeriod`` / ``sy:updateFrequency`` as seconds between updates."""
    if not period:
        return None
    base = _PERIODS.get(period.strip().lower())
    if base is None:
        return None
    try:
        times = max(1, int((frequency or "1").strip()))
    except ValueError:
        times = 1
    return base / times


def hint_seconds(*hints: float | None) -> float | None:
    """The largest server hint: each one says "not before"."""
    values = [h for h in hints if h is not None and h > 0]
    return max(values) if values else None


def _rate_interval(state: FeedState, now: float, bounds: ScheduleBounds) -> float:
    times = sorted(t for t in state.new_item_times if now - t <= bounds.rate_window)
    if len(times) < 2:
        # Too little history: a silent feed drifts towards the maximum, a new
        # one starts at the default.
        return bounds.max_interval if state.polls > 20 and not times else bounds.default_interval
    span = max(now - times[0], 1.0)
    mean_gap = span / len(times)
    return mean_gap / 2


def next_interval(
    state: FeedState, now: float, bounds: ScheduleBounds, fixed: float | None = None
) -> float:
    """Seconds until the next poll of this feed, after the poll recorded in ``state``."""
    if state.dead:
        return bounds.dead_retry
    base = fixed if fixed is not None else _rate_interval(state, now, bounds)
    base = min(max(base, bounds.min_interval), bounds.max_interval)
    if state.failures > 0:
        base = min(base * 2 ** min(state.failures, 10.0), bounds.max_interval)
    if state.hint is not None:
        base = max(base, min(state.hint, bounds.max_interval))
    return base


def wants_unconditional(state: FeedState, bounds: ScheduleBounds) -> bool:
    """True when this poll must go out without validators."""
    if state.etag is None and state.last_modified is None:
        return True
    return state.polls_since_unconditional + 1 >= bounds.unconditional_every


def _count(counts: dict[str, int], *keys: str) -> dict[str, int]:
    out = dict(counts)
    for key in keys:
        out[key] = out.get(key, 0) + 1
    return out


def record_success(
    state: FeedState,
    now: float,
    bounds: ScheduleBounds,
    *,
    outcome: str,
    new_item_times: tuple[float, ...] = (),
    hint: float | None = None,
    fixed: float | None = None,
) -> FeedState:
    """The state after a poll that worked; ``outcome`` names how (``not_modified``…)."""
    window_start = now - bounds.rate_window
    times = tuple(t for t in (*state.new_item_times, *new_item_times) if t >= window_start)
    updated = replace(
        state,
        polls=state.polls + 1,
        failures=max(0.0, state.failures - bounds.success_credit),
        consecutive_failures=0,
        dead=False,
        last_success=now,
        hint=hint,
        new_item_times=times[-500:],
        counts=_count(state.counts, "ok", outcome),
    )
    interval = next_interval(updated, now, bounds, fixed)
    return replace(updated, interval=interval, next_due=now + interval)


def record_failure(
    state: FeedState,
    now: float,
    bounds: ScheduleBounds,
    *,
    reason: str,
    detail: str = "",
    retry_after: float | None = None,
    fixed: float | None = None,
) -> FeedState:
    """The state after a failed poll: weighted counter up, maybe dead, backed off."""
    failures = state.failures + failure_weight(reason)
    updated = replace(
        state,
        polls=state.polls + 1,
        failures=failures,
        consecutive_failures=state.consecutive_failures + 1,
        dead=failures >= bounds.dead_after,
        last_error=f"{reason}: {detail}"[:300] if detail else reason,
        last_error_at=now,
        hint=retry_after,
        counts=_count(state.counts, "failed", f"failed:{reason}"),
    )
    interval = next_interval(updated, now, bounds, fixed)
    return replace(updated, interval=interval, next_due=now + interval)


def items_per_day(state: FeedState, now: float, bounds: ScheduleBounds) -> float:
    """New items per day over the rate window (or over the feed's known life)."""
    times = [t for t in state.new_item_times if now - t <= bounds.rate_window]
    if not times:
        return 0.0
    span = max(now - min(times), 3600.0)
    return len(times) * 86400.0 / span


def as_utc_epoch(when: datetime) -> float:
    """Epoch seconds of an aware datetime (kept here so callers need no tz logic)."""
    return when.timestamp()


def due_in(state: FeedState, now: float) -> timedelta:
    """Time until the feed is due (zero or negative: due now)."""
    return timedelta(seconds=(state.next_due or now) - now)
