"""Alert delivery without a network: retries, backoff, permanent errors, payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from connectors.alert_sinks import PermanentAlertError, deliver
from pipeline.alerting import email_message, signature, slack_payload, throttle_bucket, webhook_body
from pipeline.errors import RetriableError
from pipeline.models import Alert, Match, alert_id

ALERT = Alert(
    id=alert_id("caesar", "c1"),
    rule_id="caesar",
    rule_name="قيصر",
    article_id="a1",
    cluster_id="c1",
    url="https://example.org/1",
    title="شهادة جديدة لقيصر",
    outlet="وكالة المرصد",
    matches=[Match(term="قيصر", surface="لقيصر", field="title", start=10, end=15)],
    created_at=datetime(2026, 11, 28, 5, 0, tzinfo=UTC),
    severity="high",
)


class FakeSink:
    def __init__(self, name: str, failures: int = 0, permanent: bool = False) -> None:
        self.name, self.retries, self.backoff = name, 4, 1.0
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

    def close(self) -> None:
        pass


def test_retries_with_growing_backoff_then_delivers() -> None:
    flaky = FakeSink("hook", failures=2)
    waits: list[float] = []
    assert deliver(flaky, ALERT, lambda s: bool(waits.append(s))) == (True, "", 3)
    assert flaky.sent == [ALERT.id]
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0


def test_exhausted_retries_report_the_last_error() -> None:
    down = FakeSink("hook", failures=99)
    assert deliver(down, ALERT, lambda s: False) == (False, "RetriableError: HTTP 503", 4)


def test_permanent_failure_is_not_retried() -> None:
    refused = FakeSink("hook", permanent=True)
    waits: list[float] = []
    outcome = deliver(refused, ALERT, lambda s: bool(waits.append(s)))
    assert outcome == (False, "permanent: HTTP 400", 1)
    assert waits == []


def test_a_stopping_worker_abandons_the_alert_uncommitted() -> None:
    down = FakeSink("hook", failures=99)
    with pytest.raises(RetriableError, match="stopping"):
        deliver(down, ALERT, lambda s: True)
    assert down.attempts == 1


def test_a_bug_in_a_sink_is_retried_then_reported() -> None:
    class Broken(FakeSink):
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
