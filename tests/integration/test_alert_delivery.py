"""Alert destinations against real local servers: a webhook, a Slack-style hook, SMTP, and ES.

The HTTP and SMTP servers are started by the tests on 127.0.0.1; the delivery
outcomes and throttle claims go to the real Elasticsearch of ``rasd stack up``.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.alert_state import AlertStateIndex
from connectors.destinations import EmailDestination, SlackDestination, WebhookDestination, deliver
from pipeline.alerting import EmailSpec, SlackSpec, WebhookSpec
from pipeline.models import Alert, alert_id
from tests.unit.helpers import alert

ALERT = alert("cluster-1", "article-1", "شهادة جديدة لقيصر أمام المحكمة")


class WebhookServer:
    """Records every POST; answers ``fail_first`` requests with 503 before answering 200."""

    def __init__(self, fail_first: int = 0, status: int = 200) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.status = status
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.requests.append((dict(self.headers.items()), body))
                    failing = len(outer.requests) <= outer.fail_first
                self.send_response(503 if failing else outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """The smallest SMTP server that accepts mail: enough for smtplib, nothing more."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 rasd-test ESMTP\r\n")
                data: list[bytes] | None = None
                while line := self.rfile.readline():
                    if data is not None:
                        if line == b".\r\n":
                            outer.messages.append(b"".join(data))
                            data = None
                            self.wfile.write(b"250 queued\r\n")
                        else:
                            data.append(line[1:] if line.startswith(b"..") else line)
                        continue
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        self.wfile.write(b"250-rasd-test\r\n250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        data = []
                        self.wfile.write(b"354 go ahead\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    server = WebhookServer(fail_first=2)
    yield server
    server.close()


def no_wait(seconds: float) -> bool:
    return False


def test_webhook_retries_then_delivers_signed_utf8_json(
    hook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T7_SECRET", "s3cret")
    sink = WebhookDestination(
        "hook", WebhookSpec(type="webhook", url=hook.url, secret_env="T7_SECRET")
    )
    try:
        assert deliver(sink, ALERT, no_wait) == (True, "", 3)
    finally:
        sink.close()
    assert len(hook.requests) == 3  # two 503s, then 200
    headers, body = hook.requests[-1]
    assert headers["X-Rasd-Alert-Id"] == ALERT.id
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Rasd-Signature"] == f"sha256={expected}"
    assert json.loads(body.decode("utf-8"))["title"] == ALERT.title


def test_webhook_4xx_is_permanent() -> None:
    server = WebhookServer(status=400)
    sink = WebhookDestination("hook", WebhookSpec(type="webhook", url=server.url))
    try:
        delivered, error, attempts = deliver(sink, ALERT, no_wait)
    finally:
        sink.close()
        server.close()
    assert (delivered, attempts) == (False, 1) and error.startswith("permanent: HTTP 400")


def test_unreachable_webhook_is_retried_then_reported() -> None:
    server = WebhookServer()
    url = server.url
    server.close()  # nothing listens on that port any more
    sink = WebhookDestination("hook", WebhookSpec(type="webhook", url=url, retries=3, timeout=2))
    try:
        delivered, error, attempts = deliver(sink, ALERT, no_wait)
    finally:
        sink.close()
    assert (delivered, attempts) == (False, 3) and "ConnectError" in error


def test_slack_compatible_webhook(hook: WebhookServer) -> None:
    hook.fail_first = 0
    sink = SlackDestination("slack", SlackSpec(type="slack", url=hook.url))
    try:
        assert deliver(sink, ALERT, no_wait)[0]
    finally:
        sink.close()
    payload = json.loads(hook.requests[0][1])
    assert ALERT.title in payload["text"] and ALERT.url in payload["text"]


def test_email_over_smtp_is_utf8() -> None:
    smtp = SmtpSink()
    spec = EmailSpec(
        type="email", port=smtp.port, sender="rasd@example.org", to=["desk@example.org"]
    )
    try:
        assert deliver(EmailDestination("mail", spec), ALERT, no_wait) == (True, "", 1)
    finally:
        smtp.close()
    [raw] = smtp.messages
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert "شهادة جديدة لقيصر" in str(msg["Subject"])
    assert msg["X-Rasd-Alert-Id"] == ALERT.id
    assert "لقيصر" in msg.get_body().get_content()  # type: ignore[union-attr]


def test_smtp_down_is_retriable() -> None:
    smtp = SmtpSink()
    port = smtp.port
    smtp.close()
    spec = EmailSpec(
        type="email", port=port, sender="rasd@example.org", to=["d@example.org"], retries=2
    )
    delivered, error, attempts = deliver(EmailDestination("mail", spec), ALERT, no_wait)
    assert (delivered, attempts) == (False, 2) and "SMTP" in error


def test_throttle_claims_and_undelivered_listing(es: Any, unique: str) -> None:
    namespace = f"t7-{unique}"
    state = AlertStateIndex(es, namespace)  # type: ignore[arg-type]
    try:
        assert state.claim_window("caesar", 100, "alert-a")
        assert state.claim_window("caesar", 100, "alert-a")  # a redelivery keeps its claim
        assert not state.claim_window("caesar", 100, "alert-b")  # the window is taken
        assert state.claim_window("caesar", 101, "alert-b")  # the next window is free
        assert state.delivery_state(ALERT.id, "hook") is None
        state.record_delivery(ALERT, "hook", False, "ConnectError: refused", 5)
        state.record_delivery(ALERT, "mail", True, "", 1)
        assert state.delivery_state(ALERT.id, "hook") == "undelivered"
        assert state.delivery_state(ALERT.id, "mail") == "delivered"
        listed = subprocess.run(
            [sys.executable, "-m", "rasd", "alerts", "undelivered", "--json"],
            env={**os.environ, "RASD_NAMESPACE": namespace},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [(r["alert_id"], r["destination"], r["attempts"]) for r in rows] == [
            (ALERT.id, "hook", 5)
        ]
        assert Alert.from_json(rows[0]["alert"]) == ALERT  # the alert itself is kept
    finally:
        es.indices.delete(index=f"{namespace}-alerts*", ignore_unavailable=True)


def test_the_undelivered_listing_pages_through_everything_of_one_destination(
    es: Any, unique: str
) -> None:
    namespace = f"t7p-{unique}"
    state = AlertStateIndex(es, namespace)  # type: ignore[arg-type]
    alerts = [
        ALERT.model_copy(update={"id": alert_id("caesar", f"cluster-{n}"), "cluster_id": f"c{n}"})
        for n in range(7)
    ]
    try:
        for alert in alerts:
            state.record_delivery(alert, "hook", False, "HTTP 503", 5)
        for alert in alerts[:3]:
            state.record_delivery(alert, "mail", False, "SMTP 451", 3)
        state.record_delivery(alerts[0], "slack", True, "", 1)
        # Pages of 2: every record once, newest first, only the one destination.
        hook = list(state.undelivered("hook", page=2))
        assert sorted(r["alert_id"] for r in hook) == sorted(a.id for a in alerts)
        assert {r["destination"] for r in hook} == {"hook"}
        assert [r["at"] for r in hook] == sorted((r["at"] for r in hook), reverse=True)
        assert len(list(state.undelivered(page=3))) == 10
        assert len(list(state.undelivered("hook", limit=5, page=2))) == 5
        assert (state.count_undelivered(), state.count_undelivered("mail")) == (10, 3)
    finally:
        es.indices.delete(index=f"{namespace}-alerts*", ignore_unavailable=True)


def test_resend_delivers_what_failed_and_keeps_what_still_fails(
    es: Any, unique: str, hook: WebhookServer, tmp_path: Any
) -> None:
    namespace = f"t7r-{unique}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}/gone"  # nothing listens there
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"""\
rules:
  - {{id: caesar, name: قيصر, any: [قيصر], destinations: [hook, dead]}}
destinations:
  hook: {{type: webhook, url: "{hook.url}", backoff: 0.05}}
  dead: {{type: webhook, url: "{dead_url}", retries: 2, backoff: 0.05, timeout: 2}}
""",
        encoding="utf-8",
    )
    state = AlertStateIndex(es, namespace)  # type: ignore[arg-type]
    try:
        # Both failed in the pipeline (the hook was down then).
        state.record_delivery(ALERT, "hook", False, "ConnectError: refused", 5)
        state.record_delivery(ALERT, "dead", False, "ConnectError: refused", 5)
        # Its undelivered record was overwritten by a later success: not sent again.
        other = ALERT.model_copy(update={"id": alert_id("caesar", "cluster-2")})
        state.record_delivery(other, "hook", False, "ConnectError: refused", 5)
        state.record_delivery(other, "hook", True, "", 1)
        resent = subprocess.run(
            [sys.executable, "-m", "rasd", "alerts", "resend", "--rules", str(rules)],
            env={**os.environ, "RASD_NAMESPACE": namespace},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert resent.returncode == 1, resent.stdout + resent.stderr  # one still fails
        assert "1 delivered, 1 still undelivered" in resent.stdout
        # The hook answers 503 twice first: the resend retries like the pipeline does.
        assert len(hook.requests) == 3
        assert {json.loads(body)["id"] for _, body in hook.requests} == {ALERT.id}
        assert state.delivery_state(ALERT.id, "hook") == "delivered"
        assert state.delivery_state(ALERT.id, "dead") == "undelivered"
        left = [(r["destination"], r["attempts"]) for r in state.undelivered()]
        assert left == [("dead", 2)]  # the record now shows the resend's attempts
    finally:
        es.indices.delete(index=f"{namespace}-alerts*", ignore_unavailable=True)
