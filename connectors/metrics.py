"""Counters of every outcome, per stage, for summaries, logs and Prometheus.

Each stage counts what happened to each message (``ok``, ``dlq``, ``duplicate``,
``retried``...). ``rasd run --once`` prints them as its summary; a long-running
``rasd run`` logs them periodically.
"""

from __future__ import annotations

import threading
from collections import Counter


class Stats:
    """Thread-safe counters keyed by (stage, outcome)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def inc(self, stage: str, outcome: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[(stage, outcome)] += n

    def get(self, stage: str, outcome: str) -> int:
        with self._lock:
            return self._counts[(stage, outcome)]

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (stage, outcome), n in sorted(self._counts.items()):
                out.setdefault(stage, {})[outcome] = n
            return out
