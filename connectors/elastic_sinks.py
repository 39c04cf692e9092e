"""The Elasticsearch outputs of the index and alert stages, as sinks (:mod:`connectors.worker`).

:class:`ArticleSink` bulk-indexes a batch of enriched articles; an article
Elasticsearch refuses for good goes to the DLQ, a batch it cannot take now is
retried. :class:`AlertLedger` records each raised alert in ``<ns>-alerts``,
after the alert is on the alerts topic: the index is the ledger of what was
raised, and a rule that names the ``log`` destination logs the alert here, at
once. Both write through a shared :class:`ElasticStore`, which its owner closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pipeline.errors import PermanentError, RetriableError
from pipeline.models import Alert, EnrichedArticle

from .elastic import ElasticStore
from .worker import BatchResult, BufferedSink

__all__ = ["AlertLedger", "ArticleSink", "record_ref"]

log = logging.getLogger("rasd")


class ArticleSink(BufferedSink):
    """Bulk-index articles into their monthly index (outcome ``indexed``)."""

    name = "articles"

    def __init__(self, store: ElasticStore, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.store, self.clock = store, clock

    def flush(self) -> BatchResult:
        batch: list[tuple[Any, EnrichedArticle]] = self.take()
        result = BatchResult()
        if not batch:
            return result
        now = self.clock()
        report = self.store.write([a for _, a in batch], now)
        failed = {a.id: exc for a, exc in report.failed}
        result.failed = [(source, failed[a.id]) for source, a in batch if a.id in failed]
        # One observation per document written: a batch may carry an article twice
        # (a redelivered record, a later version); the bulk request holds the last one.
        result.count("indexed", len(report.written))
        for article in report.written:
            result.fresh("indexed", (now - article.first_seen).total_seconds())
        return result


def record_ref(record: Any) -> str:
    """An input record's place, ``topic/partition/offset``: what raised an alert."""
    return f"{record.topic}/{record.partition}/{record.offset}"


class AlertLedger(BufferedSink):
    """Record raised alerts in the alerts index (outcomes ``alerts``, ``throttled``,
    ``index_failed``); a new one whose rule names ``log`` goes to ``announce``, and
    its ``age`` (seconds since its article was first seen) to the freshness metric.

    Each document names the input record that raised it (``raised_by``). With
    ``exactly_once`` (the alert stage's outputs are transactional) the document
    can outlive an aborted transaction, so an alert found already raised *by the
    same record* is that record's own, raised again with the redone batch; found
    raised by another record that is not committed yet (a second alert worker
    racing on the same story), the batch is redone, and then skips it.
    """

    name = "alerts"

    def __init__(
        self,
        store: ElasticStore,
        logs: Callable[[Alert], bool],
        announce: Callable[[Alert], None],
        age: Callable[[Alert], float | None] = lambda alert: None,
        exactly_once: bool = False,
    ) -> None:
        super().__init__()
        self.store, self.logs, self.announce = store, logs, announce
        self.exactly_once = exactly_once
        #: Seconds since the alert's article was first seen (None: unknown).
        self.age = age

    def flush(self) -> BatchResult:
        result = BatchResult()
        alert: Alert
        for source, alert in self.take():
            ref = record_ref(source) if self.exactly_once else None
            again = False
            try:
                created = self.store.record_alert(alert, ref)
                if not created and self.exactly_once:
                    owner = self.store.alert_raised_by(alert.id)
                    if owner != ref:
                        raise RetriableError(
                            f"alert {alert.id} was raised meanwhile by {owner or 'another worker'}"
                        )
                    created = again = True  # this record's own, from an aborted batch
            except PermanentError as exc:
                # The alert is on the topic; it still goes to the log, only Kibana misses it.
                result.count("index_failed")
                log.error(
                    "alert %s could not be stored in %s: %s", alert.id, self.store.alerts_index, exc
                )
                created = True
            if created and alert.throttled:
                result.count("throttled")
            elif created:
                result.count("alerts")
                age = self.age(alert)
                if age is not None:
                    result.fresh("alerted", age)
                # Webhooks, Slack and email have their own consumer groups on the
                # alerts topic (deliver-<name>); the log is immediate.
                if self.logs(alert) and not again:
                    self.announce(alert)
        return result
