"""The state the alert stages keep in Elasticsearch beside the alerts index.

:class:`AlertStateIndex` holds the realert throttle claims
(``<ns>-alerts-throttle``, one document per rule and window, created with
``op_type=create`` so two alert workers agree on which alert won the window)
and the delivery records (``<ns>-alerts-deliveries``, one document per alert
and destination: state ``delivered`` or ``undelivered``, the error, the
attempts and the alert itself), which make a redelivered message a no-op and
are what ``rasd alerts undelivered`` lists and ``rasd alerts resend`` sends
again. It is made by :meth:`connectors.elastic.ElasticStore.alert_state`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from elasticsearch import (
    ApiError,
    BadRequestError,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    TransportError,
)

from pipeline.errors import RetriableError
from pipeline.models import Alert

__all__ = ["AlertStateIndex"]


class AlertStateIndex:
    """Throttle claims and delivery outcomes, in two small indices beside the ledger."""

    def __init__(self, client: Elasticsearch, namespace: str) -> None:
        self.client = client
        self.throttle_index = f"{namespace}-alerts-throttle"
        self.deliveries_index = f"{namespace}-alerts-deliveries"

    def ensure(self) -> None:
        """Create the two indices, with one replica where the cluster has a node for it.

        Left to auto-creation they would get a replica that a single node can never
        place, and the cluster would stay yellow.
        """
        settings = {"number_of_shards": 1, "auto_expand_replicas": "0-1"}
        for index in (self.throttle_index, self.deliveries_index):
            if not self.client.indices.exists(index=index):
                try:
                    self.client.indices.create(index=index, settings=settings)
                except BadRequestError as exc:
                    if exc.error != "resource_already_exists_exception":
                        raise  # anything but "made meanwhile by another worker"

    def claim_window(self, rule_id: str, bucket: int, alert_id: str) -> bool:
        """True if ``alert_id`` holds the rule's window ``bucket`` (now or from before)."""
        doc_id = f"{rule_id}:{bucket}"
        try:
            self.client.options(max_retries=0, retry_on_timeout=False).create(
                index=self.throttle_index,
                id=doc_id,
                document={"rule_id": rule_id, "bucket": bucket, "alert_id": alert_id},
            )
            return True
        except ConflictError:
            pass
        except (TransportError, ApiError) as exc:
            raise RetriableError(f"{self.throttle_index}: {exc}") from exc
        try:
            # A redelivered batch finds its own claim: the window is still ours.
            held = self.client.get(index=self.throttle_index, id=doc_id)
        except (TransportError, ApiError) as exc:
            raise RetriableError(f"{self.throttle_index}: {exc}") from exc
        return bool(held["_source"].get("alert_id") == alert_id)

    def undelivered_by_destination(self) -> dict[str, int]:
        """How many alerts each destination has not received (only destinations with some)."""
        self._deliveries(self.client.indices.refresh)
        response = self._deliveries(
            self.client.search,
            size=0,
            query=self._undelivered_query(None),
            aggs={"by": {"terms": {"field": "destination.keyword", "size": 1000}}},
        )
        if response is None:
            return {}
        buckets = response["aggregations"]["by"]["buckets"]
        return {str(b["key"]): int(b["doc_count"]) for b in buckets}

    def _deliveries(
        self, method: Callable[..., Any], missing_ok: bool = True, **kwargs: Any
    ) -> Any:
        """One request on the deliveries index: None when it (or the document) does
        not exist and ``missing_ok``; RetriableError when Elasticsearch fails."""
        try:
            return method(index=self.deliveries_index, **kwargs)
        except NotFoundError as exc:
            if not missing_ok:
                raise RetriableError(f"{self.deliveries_index}: {exc}") from exc
            return None
        except (TransportError, ApiError) as exc:
            raise RetriableError(f"{self.deliveries_index}: {exc}") from exc

    def delivery_state(self, alert_id: str, destination: str) -> str | None:
        """``delivered``, ``undelivered`` or None (not tried yet); a real-time GET."""
        doc = self._deliveries(self.client.get, id=f"{alert_id}:{destination}")
        return None if doc is None else str(doc["_source"]["state"])

    def record_delivery(
        self, alert: Alert, destination: str, delivered: bool, error: str, attempts: int
    ) -> None:
        self._deliveries(
            self.client.index,
            missing_ok=False,  # an outcome that cannot be written must not pass silently
            id=f"{alert.id}:{destination}",
            document={
                "alert_id": alert.id,
                "rule_id": alert.rule_id,
                "destination": destination,
                "state": "delivered" if delivered else "undelivered",
                "error": error[:2000],
                "attempts": attempts,
                "at": datetime.now(UTC).isoformat(),
                # The whole alert, so an undelivered one can be read and re-sent.
                "alert": alert.to_json().decode("utf-8"),
            },
        )

    def _undelivered_query(self, destination: str | None) -> dict[str, Any]:
        terms: list[dict[str, Any]] = [{"term": {"state.keyword": "undelivered"}}]
        if destination is not None:
            terms.append({"term": {"destination.keyword": destination}})
        return {"bool": {"filter": terms}}

    def count_undelivered(self, destination: str | None = None) -> int:
        self._deliveries(self.client.indices.refresh)
        response = self._deliveries(self.client.count, query=self._undelivered_query(destination))
        return 0 if response is None else int(response["count"])

    def undelivered(
        self, destination: str | None = None, limit: int | None = None, page: int = 500
    ) -> Iterator[dict[str, Any]]:
        """The undelivered records (of one destination), newest first, all of them
        unless ``limit``; read a page at a time (``search_after``)."""
        self._deliveries(self.client.indices.refresh)
        # A total order (the document id is alert id and destination), so that
        # pages neither skip nor repeat records that share a timestamp.
        sort = [{"at": "desc"}, {"alert_id.keyword": "asc"}, {"destination.keyword": "asc"}]
        after: list[Any] | None = None
        given = 0
        while limit is None or given < limit:
            size = page if limit is None else min(page, limit - given)
            response = self._deliveries(
                self.client.search,
                size=size,
                query=self._undelivered_query(destination),
                sort=sort,
                search_after=after,
            )
            if response is None:
                return
            hits = response["hits"]["hits"]
            for hit in hits:
                yield hit["_source"]
            given += len(hits)
            if len(hits) < size:
                return
            after = hits[-1]["sort"]
