"""Alert destinations (webhook, Slack, email, log), and the sink that delivers to one.

Each configured destination is delivered by its own consumer group on
``<ns>.alerts`` (the ``deliver-<name>`` stages of :mod:`rasd.stages.deliver`),
so a slow or failing destination never holds up another one, nor the alert
stage, and an alert waits in Kafka until it has been delivered or recorded as
undeliverable: a crash loses nothing. :func:`deliver` sends one alert with
retries, exponential backoff and jitter; a ``PermanentAlertError`` (a 4xx
other than 408/429, a refused recipient) stops at once. :class:`DeliverySink`
is the :class:`connectors.worker.Sink` of a delivery stage, and what ``rasd
alerts resend`` flushes too: it sends each alert once and writes every outcome
to the delivery records (:class:`connectors.alert_state.AlertStateIndex`),
which makes a redelivered or duplicated message a no-op. The HTTP destinations
share :class:`HttpDestination`, which takes an ``httpx`` transport (tests pass
``httpx.MockTransport``).
"""

from __future__ import annotations

import logging
import os
import random
import smtplib
import ssl
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from pipeline.alerting import (
    EmailSpec,
    SlackSpec,
    WebhookSpec,
    email_message,
    signature,
    slack_payload,
    webhook_body,
)
from pipeline.errors import RetriableError
from pipeline.models import Alert

from .worker import BatchResult, BufferedSink

__all__ = [
    "DeliveryLedger",
    "DeliverySink",
    "Destination",
    "EmailDestination",
    "HttpDestination",
    "LogDestination",
    "PermanentAlertError",
    "SlackDestination",
    "WebhookDestination",
    "deliver",
    "make_destination",
]

log = logging.getLogger("rasd.alerts")
_MAX_BACKOFF = 60.0


class PermanentAlertError(Exception):
    """The destination refused the alert for good: retrying cannot help."""


class Destination:
    """Where an alert goes: ``send`` one alert (raising on failure), with a retry budget."""

    def __init__(self, name: str, retries: int = 1, backoff: float = 1.0) -> None:
        self.name, self.retries, self.backoff = name, retries, backoff

    def send(self, alert: Alert) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; nothing to release by default."""


class HttpDestination(Destination):
    """A destination reached by an HTTP POST; ``transport`` replaces the network in tests."""

    def __init__(
        self,
        name: str,
        spec: WebhookSpec | SlackSpec,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(name, spec.retries, spec.backoff)
        self.spec = spec
        self._transport = transport
        self._client: httpx.Client | None = None

    def post(self, **request: Any) -> None:
        """POST to the spec's URL; map a failure to retriable or permanent."""
        if self._client is None:
            self._client = httpx.Client(timeout=self.spec.timeout, transport=self._transport)
        try:
            response = self._client.post(self.spec.url, **request)
        except httpx.HTTPError as exc:
            raise RetriableError(f"{type(exc).__name__}: {exc}") from exc
        code = response.status_code
        if code < 300:
            return
        if code in (408, 429) or code >= 500:
            raise RetriableError(f"HTTP {code}")
        raise PermanentAlertError(f"HTTP {code}: {response.text[:200]}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class WebhookDestination(HttpDestination):
    """JSON POST; ``X-Rasd-Signature: sha256=<hmac>`` when ``secret_env`` is set."""

    spec: WebhookSpec

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
        self.post(content=body, headers=headers)


class SlackDestination(HttpDestination):
    """A Slack incoming webhook."""

    def send(self, alert: Alert) -> None:
        self.post(json=slack_payload(alert))


class EmailDestination(Destination):
    """One email per alert over SMTP (STARTTLS and login when configured)."""

    def __init__(self, name: str, spec: EmailSpec) -> None:
        super().__init__(name, spec.retries, spec.backoff)
        self.spec = spec

    def send(self, alert: Alert) -> None:
        spec = self.spec
        login = bool(spec.username_env and spec.password_env)
        if login and not spec.starttls:
            # EmailSpec refuses this at start-up; never rely on that alone.
            raise PermanentAlertError(
                "refusing to send SMTP credentials over a connection without TLS "
                "(set starttls: true)"
            )
        message = email_message(alert, spec.sender, spec.to)
        try:
            with smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout) as smtp:
                if spec.starttls:
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        # A server (or a man in the middle) that strips STARTTLS.
                        raise PermanentAlertError(
                            f"SMTP server {spec.host}:{spec.port} does not offer STARTTLS; "
                            "nothing was sent"
                        )
                    # smtplib's own default context checks no certificate: verify it.
                    smtp.starttls(context=ssl.create_default_context(cafile=spec.ca_file))
                    smtp.ehlo()
                if login:
                    assert spec.username_env and spec.password_env
                    smtp.login(
                        os.environ.get(spec.username_env, ""),
                        os.environ.get(spec.password_env, ""),
                    )
                smtp.send_message(message)
        except ssl.SSLCertVerificationError as exc:
            raise PermanentAlertError(
                f"SMTP server {spec.host}:{spec.port}: certificate not trusted "
                f"({exc.verify_message}); set ca_file"
            ) from exc
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise PermanentAlertError(f"SMTP refused: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentAlertError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
            raise RetriableError(f"SMTP {exc.smtp_code}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise RetriableError(f"SMTP {type(exc).__name__}: {exc}") from exc


class LogDestination(Destination):
    """The built-in ``log`` destination: one warning line per alert, at once."""

    def __init__(self, name: str = "log") -> None:
        super().__init__(name)

    def send(self, alert: Alert) -> None:
        log.warning(
            "ALERT [%s] [%s] %s | %s | %s",
            alert.severity,
            alert.rule_name,
            alert.title,
            alert.outlet,
            alert.url,
        )


def make_destination(
    name: str, spec: Any, transport: httpx.BaseTransport | None = None
) -> Destination:
    """The destination for a ``destinations:`` entry of the rules file."""
    if isinstance(spec, WebhookSpec):
        return WebhookDestination(name, spec, transport)
    if isinstance(spec, SlackSpec):
        return SlackDestination(name, spec, transport)
    if isinstance(spec, EmailSpec):
        return EmailDestination(name, spec)
    return LogDestination(name)


def deliver(
    destination: Destination, alert: Alert, wait: Callable[[float], bool]
) -> tuple[bool, str, int]:
    """Send ``alert`` with retries and backoff; return (delivered, last error, attempts).

    ``wait(seconds)`` sleeps between attempts and returns True when the worker is
    stopping: the attempt is then abandoned with ``RetriableError``, so the
    record is not committed and the next worker sends it.
    """
    error = ""
    attempt = 0
    for attempt in range(1, destination.retries + 1):
        try:
            destination.send(alert)
            return True, "", attempt
        except PermanentAlertError as exc:
            return False, f"permanent: {exc}", attempt
        except Exception as exc:  # retriable, or a bug in one destination: both get retries
            error = f"{type(exc).__name__}: {exc}"
            if attempt < destination.retries:
                delay = min(_MAX_BACKOFF, destination.backoff * 2 ** (attempt - 1))
                if wait(delay * random.uniform(0.5, 1.0)):
                    raise RetriableError(
                        f"stopping while delivering to {destination.name}"
                    ) from exc
    log.error(
        "alert %s not delivered to %s after %d attempt(s): %s",
        alert.id,
        destination.name,
        attempt,
        error,
    )
    return False, error, attempt


class DeliveryLedger(Protocol):
    """Where delivery outcomes are kept: one record per alert and destination."""

    def delivery_state(self, alert_id: str, destination: str) -> str | None: ...

    def record_delivery(
        self, alert: Alert, destination: str, delivered: bool, error: str, attempts: int
    ) -> None: ...


#: Told of each alert sent: the destination, the alert, whether it was delivered, the error.
OnDelivery = Callable[[str, Alert, bool, str], None]


class DeliverySink(BufferedSink):
    """Deliver alerts to one destination, each once, recording every outcome.

    An alert that already has a delivery record is skipped and counted
    ``duplicate`` (a redelivered message); with ``resend=True`` only an alert
    recorded as ``delivered`` is skipped, counted ``delivered_meanwhile``.
    Outcomes: ``delivered``, ``undelivered``.

    An outcome whose record could not be written (Elasticsearch down or
    refusing writes) is kept in memory until it is: the retried batch writes
    the record instead of sending the alert again. Only a process that dies
    between the send and the record re-sends it.
    """

    def __init__(
        self,
        destination: Destination,
        ledger: DeliveryLedger,
        wait: Callable[[float], bool],
        *,
        resend: bool = False,
        on_delivery: OnDelivery | None = None,
    ) -> None:
        super().__init__()
        self.destination = destination
        self.name = destination.name
        self.ledger = ledger
        self.wait = wait
        self.resend = resend
        self.on_delivery = on_delivery
        #: Outcomes sent but not yet recorded, by alert id.
        self._unrecorded: dict[str, tuple[bool, str, int]] = {}

    def flush(self) -> BatchResult:
        result = BatchResult()
        alert: Alert
        for _, alert in self.take():
            self._one(alert, result)
        return result

    def _one(self, alert: Alert, result: BatchResult) -> None:
        outcome = self._unrecorded.get(alert.id)
        if outcome is None:
            state = self.ledger.delivery_state(alert.id, self.name)
            if state == "delivered" or (state is not None and not self.resend):
                result.count("delivered_meanwhile" if self.resend else "duplicate")
                return
            outcome = deliver(self.destination, alert, self.wait)
            self._unrecorded[alert.id] = outcome
        delivered, error, attempts = outcome
        self.ledger.record_delivery(alert, self.name, delivered, error, attempts)
        del self._unrecorded[alert.id]
        result.count("delivered" if delivered else "undelivered")
        if self.on_delivery is not None:
            self.on_delivery(self.name, alert, delivered, error)

    def close(self) -> None:
        self.destination.close()
