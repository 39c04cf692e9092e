"""Alert delivery without a network: retries, backoff, permanent errors, payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
import pytest

from connectors.destinations import (
    DeliverySink,
    Destination,
    PermanentAlertError,
    SlackDestination,
    WebhookDestination,
    deliver,
)
from pipeline.alerting import (
    SlackSpec,
    WebhookSpec,
    email_message,
    signature,
    slack_payload,
    throttle_bucket,
    webhook_body,
)
from pipeline.errors import RetriableError
from pipeline.models import Alert

from .helpers import alert

ALERT = alert()


class FakeDestination(Destination):
    def __init__(self, name: str, failures: int = 0, permanent: bool = False) -> None:
        super().__init__(name, retries=4, backoff=1.0)
        self.failures, self.permanent = failures, permanent
        self.attempts = 0
        self.sent: list[str] = []

    def send(self, alert: Alert) -> None:
        self.attempts += 1
        if self.permanent:
            raise PermanentAlertError("HTTP 400")
        if self.attempts <= self.failures:
            raise RetriableError("HTTP 503")
        self.sent.append(alert.id)


def test_retries_with_growing_backoff_then_delivers() -> None:
    flaky = FakeDestination("hook", failures=2)
    waits: list[float] = []
    assert deliver(flaky, ALERT, lambda s: bool(waits.append(s))) == (True, "", 3)
    assert flaky.sent == [ALERT.id]
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0


def test_exhausted_retries_report_the_last_error() -> None:
    down = FakeDestination("hook", failures=99)
    assert deliver(down, ALERT, lambda s: False) == (False, "RetriableError: HTTP 503", 4)


def test_permanent_failure_is_not_retried() -> None:
    refused = FakeDestination("hook", permanent=True)
    waits: list[float] = []
    outcome = deliver(refused, ALERT, lambda s: bool(waits.append(s)))
    assert outcome == (False, "permanent: HTTP 400", 1)
    assert waits == []


def test_a_stopping_worker_abandons_the_alert_uncommitted() -> None:
    down = FakeDestination("hook", failures=99)
    with pytest.raises(RetriableError, match="stopping"):
        deliver(down, ALERT, lambda s: True)
    assert down.attempts == 1


def test_a_bug_in_a_sink_is_retried_then_reported() -> None:
    class Broken(FakeDestination):
        def send(self, alert: Alert) -> None:
            raise KeyError("oops")

    assert deliver(Broken("b"), ALERT, lambda s: False) == (False, "KeyError: 'oops'", 4)


def test_webhook_body_is_utf8_json_and_signed() -> None:
    body = webhook_body(ALERT)
    assert "قيصر".encode() in body  # not \\u escapes
    doc = json.loads(body)
    assert doc["id"] == ALERT.id and doc["severity"] == "high"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret", body) == f"sha256={expected}"


def test_slack_and_email_payloads() -> None:
    assert "شهادة جديدة لقيصر" in slack_payload(ALERT)["text"]
    msg = email_message(ALERT, "rasd@example.org", ["desk@example.org"])
    assert "قيصر" in str(msg["Subject"])
    assert "لقيصر" in msg.get_content()


def test_throttle_buckets() -> None:
    t = datetime(2026, 11, 28, 5, 0, 59, tzinfo=UTC)
    assert throttle_bucket(t, 60) == throttle_bucket(t.replace(second=0), 60)
    assert throttle_bucket(t.replace(minute=1), 60) == throttle_bucket(t, 60) + 1


# --- the HTTP destinations, on httpx.MockTransport --------------------------------------


def _hook(
    answer: httpx.Response | Exception, **spec: object
) -> tuple[WebhookDestination, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    url = "https://hooks.example/rasd"
    hook = WebhookDestination(
        "hook", WebhookSpec(type="webhook", url=url, **spec), httpx.MockTransport(handle)
    )
    return hook, seen


def test_webhook_posts_the_signed_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T7_SECRET", "s3cret")
    hook, seen = _hook(httpx.Response(204), secret_env="T7_SECRET")
    hook.send(ALERT)
    (request,) = seen
    assert request.content == webhook_body(ALERT)
    assert request.headers["X-Rasd-Alert-Id"] == ALERT.id
    assert request.headers["X-Rasd-Signature"] == signature("s3cret", request.content)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(503), RetriableError),
        (httpx.Response(429), RetriableError),
        (httpx.Response(408), RetriableError),
        (httpx.ConnectError("refused"), RetriableError),
        (httpx.Response(400, text="bad payload"), PermanentAlertError),
        (httpx.Response(404), PermanentAlertError),
    ],
)
def test_http_failures_are_retriable_or_permanent(
    answer: httpx.Response | Exception, error: type[Exception]
) -> None:
    hook, _ = _hook(answer)
    with pytest.raises(error):
        hook.send(ALERT)


def test_slack_posts_its_payload() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    spec = SlackSpec(type="slack", url="https://hooks.slack.example/T0/B0")
    SlackDestination("slack", spec, httpx.MockTransport(handle)).send(ALERT)
    assert json.loads(seen[0].content) == slack_payload(ALERT)


class Ledger:
    """The delivery records, in memory."""

    def __init__(self, **states: str) -> None:
        self.states = dict(states)
        self.records: list[tuple[str, bool, int]] = []

    def delivery_state(self, alert_id: str, destination: str) -> str | None:
        return self.states.get(f"{alert_id}:{destination}")

    def record_delivery(
        self, alert: Alert, destination: str, delivered: bool, error: str, attempts: int
    ) -> None:
        self.states[f"{alert.id}:{destination}"] = "delivered" if delivered else "undelivered"
        self.records.append((alert.id, delivered, attempts))


def test_the_delivery_sink_sends_once_and_records_each_outcome() -> None:
    target = FakeDestination("hook")
    ledger = Ledger()
    sink = DeliverySink(target, ledger, lambda s: False)
    sink.write([(None, ALERT), (None, ALERT)])
    assert sink.flush().outcomes == {"delivered": 1, "duplicate": 1}
    assert target.sent == [ALERT.id] and ledger.records == [(ALERT.id, True, 1)]


def test_a_resend_skips_only_what_was_delivered_meanwhile() -> None:
    target = FakeDestination("hook")
    other = alert("c2")
    ledger = Ledger(**{f"{ALERT.id}:hook": "delivered", f"{other.id}:hook": "undelivered"})
    sink = DeliverySink(target, ledger, lambda s: False, resend=True)
    sink.write([(None, ALERT), (None, other)])
    assert sink.flush().outcomes == {"delivered_meanwhile": 1, "delivered": 1}
    assert target.sent == [other.id]
