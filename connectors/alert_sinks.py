"""Alert destinations, and the state the alert stages keep beside their ledger.

Each configured destination (webhook, Slack, email) is delivered by its own
consumer group on ``<ns>.alerts`` (``<ns>.deliver-<name>``, see
:mod:`rasd.app`), so a slow or failing destination never holds up another one,
nor the alert stage, and an alert waits in Kafka until it has been delivered or
recorded as undeliverable: a crash loses nothing. :func:`deliver` sends one
alert with retries, exponential backoff and jitter; a ``PermanentAlertError``
(a 4xx other than 408/429, a refused recipient) stops at once. Every outcome is
written to ``<ns>-alerts-deliveries`` (one document per alert and destination:
state ``delivered`` or ``undelivered``, the error, the attempts and the alert
itself), which makes a redelivered or duplicated message a no-op and is what
``rasd alerts undelivered`` lists. :class:`AlertStateIndex` also holds the
realert throttle claims (``<ns>-alerts-throttle``, one document per rule and
window, created with ``op_type=create`` so two alert workers agree on which
alert won the window).
"""

from __future__ import annotations

import logging
import os
import random
import smtplib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from elasticsearch import ApiError, ConflictError, Elasticsearch, NotFoundError, TransportError

from pipeline.alerting import (
    EmailSpec,
    LogSpec,
    SlackSpec,
    WebhookSpec,
    email_message,
    signature,
    slack_payload,
    webhook_body,
)
from pipeline.errors import RetriableError
from pipeline.models import Alert

__all__ = [
    "AlertSink",
    "AlertStateIndex",
    "EmailSink",
    "LogSink",
    "PermanentAlertError",
    "SlackSink",
    "WebhookSink",
    "deliver",
    "make_sink",
]

log = logging.getLogger("rasd.alerts")
_MAX_BACKOFF = 60.0


class PermanentAlertError(Exception):
    """The destination refused the alert for good: retrying cannot help."""


class AlertSink(Protocol):
    name: str
    retries: int
    backoff: float

    def send(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


def _check_http(response: httpx.Response) -> None:
    code = response.status_code
    if code < 300:
        return
    if code in (408, 429) or code >= 500:
        raise RetriableError(f"HTTP {code}")
    raise PermanentAlertError(f"HTTP {code}: {response.text[:200]}")


class WebhookSink:
    """JSON POST; ``X-Rasd-Signature: sha256=<hmac>`` when ``secret_env`` is set."""

    def __init__(self, name: str, spec: WebhookSpec) -> None:
        self.name, self.spec = name, spec
        self.retries, self.backoff = spec.retries, spec.backoff
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.spec.timeout)
        return self._client

    def send(self, alert: Alert) -> None:
        body = webhook_body(alert)
        headers = {
            **self.spec.headers,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "rasd-alerts",
            # Receivers deduplicate by this id: delivery is at-least-once.
            "X-Rasd-Alert-Id": alert.id,
        }
        if self.spec.secret_env:
            secret = os.environ.get(self.spec.secret_env)
            if not secret:
                raise PermanentAlertError(f"${self.spec.secret_env} (the HMAC secret) is not set")
            headers["X-Rasd-Signature"] = signature(secret, body)
        try:
            response = self.client.post(self.spec.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RetriableError(f"{type(exc).__name__}: {exc}") from exc
        _check_http(response)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class SlackSink:
    def __init__(self, name: str, spec: SlackSpec) -> None:
        self.name, self.spec = name, spec
        self.retries, self.backoff = spec.retries, spec.backoff
        self._client: httpx.Client | None = None

    def send(self, alert: Alert) -> None:
        if self._client is None:
            self._client = httpx.Client(timeout=self.spec.timeout)
        try:
            response = self._client.post(self.spec.url, json=slack_payload(alert))
        except httpx.HTTPError as exc:
            raise RetriableError(f"{type(exc).__name__}: {exc}") from exc
        _check_http(response)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class EmailSink:
    def __init__(self, name: str, spec: EmailSpec) -> None:
        self.name, self.spec = name, spec
        self.retries, self.backoff = spec.retries, spec.backoff

    def send(self, alert: Alert) -> None:
        spec = self.spec
        message = email_message(alert, spec.sender, spec.to)
        try:
            with smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout) as smtp:
                if spec.starttls:
                    smtp.starttls()
                if spec.username_env and spec.password_env:
                    smtp.login(
                        os.environ.get(spec.username_env, ""),
                        os.environ.get(spec.password_env, ""),
                    )
                smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise PermanentAlertError(f"SMTP refused: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentAlertError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
            raise RetriableError(f"SMTP {exc.smtp_code}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise RetriableError(f"SMTP {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        pass


class LogSink:
    def __init__(self, name: str = "log", spec: LogSpec | None = None) -> None:
        self.name = name
        self.retries, self.backoff = 1, 1.0

    def send(self, alert: Alert) -> None:
        log.warning(
            "ALERT [%s] [%s] %s | %s | %s",
            alert.severity,
            alert.rule_name,
            alert.title,
            alert.outlet,
            alert.url,
        )

    def close(self) -> None:
        pass


def make_sink(name: str, spec: Any) -> AlertSink:
    if isinstance(spec, WebhookSpec):
        return WebhookSink(name, spec)
    if isinstance(spec, SlackSpec):
        return SlackSink(name, spec)
    if isinstance(spec, EmailSpec):
        return EmailSink(name, spec)
    return LogSink(name)


class AlertStateIndex:
    """Throttle claims and delivery outcomes, in two small indices beside the ledger."""

    def __init__(self, client: Elasticsearch, namespace: str) -> None:
        self.client = client
        self.throttle_index = f"{namespace}-alerts-throttle"
        self.deliveries_index = f"{namespace}-alerts-deliveries"

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


def deliver(sink: AlertSink, alert: Alert, wait: Callable[[float], bool]) -> tuple[bool, str, int]:
    """Send ``alert`` with retries and backoff; return (delivered, last error, attempts).

    ``wait(seconds)`` sleeps between attempts and returns True when the worker is
    stopping: the attempt is then abandoned with ``RetriableError``, so the
    record is not committed and the next worker sends it.
    """
    error = ""
    attempt = 0
    for attempt in range(1, sink.retries + 1):
        try:
            sink.send(alert)
            return True, "", attempt
        except PermanentAlertError as exc:
            return False, f"permanent: {exc}", attempt
        except Exception as exc:  # retriable, or a bug in one sink: both get retries
            error = f"{type(exc).__name__}: {exc}"
            if attempt < sink.retries:
                delay = min(_MAX_BACKOFF, sink.backoff * 2 ** (attempt - 1))
                if wait(delay * random.uniform(0.5, 1.0)):
                    raise RetriableError(f"stopping while delivering to {sink.name}") from exc
    log.error(
        "alert %s not delivered to %s after %d attempt(s): %s", alert.id, sink.name, attempt, error
    )
    return False, error, attempt
