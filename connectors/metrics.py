"""rasd's metrics: prometheus-client collectors, one registry per process.

Every stage counts what happened to each message (``ok``, ``dlq``,
``duplicate``, ``retried``...) in ``rasd_messages_total{stage,outcome}``; those
counters *are* the counts: ``rasd run --once`` prints its summary from them, a
long-running ``rasd run`` logs them, and ``/metrics`` serves them
(:mod:`connectors.telemetry`). Next to them: the time each stage spends on a
batch, how fresh an article is when it is indexed and when it is alerted on,
HTTP fetches by outcome, alert deliveries by destination and outcome, the size
of the near-duplicate window, and the process's own RSS and CPU. The consumer
lag and the feeds' health are read when scraped, by the collectors the process
registers with :meth:`Stats.register` (see :mod:`connectors.telemetry`).

Names and units follow Prometheus's conventions: ``rasd_`` prefix, seconds,
``_total`` for counters. docs/operations.md lists them all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.registry import Collector

__all__ = ["FRESHNESS_BUCKETS", "Stats"]

#: Seconds from first seen to indexed or alerted: sub-second to an hour.
FRESHNESS_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Seconds a stage spends on one batch.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Stats:
    """The process's metrics, in a registry of its own (so that two pipelines in one
    process, as in the tests, never share a count)."""

    def __init__(self, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self.messages = Counter(
            "rasd_messages",
            "Messages a stage handled, by what became of them.",
            ("stage", "outcome"),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "rasd_stage_batch_seconds",
            "Seconds a stage spent on one batch, from poll to commit.",
            ("stage",),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.freshness_seconds = Histogram(
            "rasd_freshness_seconds",
            "Seconds from an article's first sighting in a feed until it was indexed "
            "or alerted on.",
            ("until",),
            buckets=FRESHNESS_BUCKETS,
            registry=self.registry,
        )
        self.http_fetches = Counter(
            "rasd_http_fetches",
            "HTTP fetches (feeds, pages, robots.txt) by outcome.",
            ("outcome",),
            registry=self.registry,
        )
        self.deliveries = Counter(
            "rasd_alert_deliveries",
            "Alert deliveries by destination and outcome.",
            ("destination", "outcome"),
            registry=self.registry,
        )
        self.duplicates = Counter(
            "rasd_duplicates",
            "Articles the cluster stage found to be copies, by what they share "
            "(url, body or near: the same story in other words).",
            ("kind",),
            registry=self.registry,
        )
        self.batch_retries = Counter(
            "rasd_batch_retries",
            "Batches a stage tried again because a server or sink was down.",
            ("stage",),
            registry=self.registry,
        )
        self._dedupe_window: Gauge | None = None
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    # --- counts --------------------------------------------------------------------

    def inc(self, stage: str, outcome: str, n: int = 1) -> None:
        if n:
            self.messages.labels(stage, outcome).inc(n)

    def get(self, stage: str, outcome: str) -> int:
        value = self.registry.get_sample_value(
            "rasd_messages_total", {"stage": stage, "outcome": outcome}
        )
        return int(value or 0)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{stage: {outcome: count}}`` of every message counter, sorted."""
        out: dict[str, dict[str, int]] = {}
        for metric in self.messages.collect():
            for sample in sorted(metric.samples, key=lambda s: tuple(s.labels.values())):
                if sample.name.endswith("_total") and sample.value:
                    labels = sample.labels
                    out.setdefault(labels["stage"], {})[labels["outcome"]] = int(sample.value)
        return dict(sorted(out.items()))

    # --- the other metrics -----------------------------------------------------------

    def fetched(self, outcome: str) -> None:
        self.http_fetches.labels(outcome).inc()

    def delivered(self, destination: str, outcome: str) -> None:
        self.deliveries.labels(destination, outcome).inc()

    def batch_took(self, stage: str, seconds: float) -> None:
        self.batch_seconds.labels(stage).observe(seconds)

    def fresh(self, until: str, seconds: Iterable[float]) -> None:
        histogram = self.freshness_seconds.labels(until)
        for s in seconds:
            histogram.observe(max(0.0, s))

    def zero(self, stage: str, outcomes: Iterable[str]) -> None:
        """Export ``stage``'s ``outcomes`` at 0 from the start, so that ``rate()`` and
        ``increase()`` see the first increments after a restart."""
        for outcome in outcomes:
            self.messages.labels(stage, outcome)
        self.batch_retries.labels(stage)

    def window_size(self, articles: int) -> None:
        """The near-duplicate window's size (only a cluster worker has one)."""
        with self._lock:
            if self._dedupe_window is None:
                self._dedupe_window = Gauge(
                    "rasd_dedupe_window_articles",
                    "Articles in the near-duplicate window of this cluster worker.",
                    registry=self.registry,
                )
        self._dedupe_window.set(articles)

    def register(self, collector: Collector) -> None:
        """Add a collector read at scrape time (lag, feed health)."""
        with self._lock:
            self.registry.register(collector)
