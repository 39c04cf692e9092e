"""Alert destinations against real local servers: a webhook, a Slack-style hook, SMTP, and ES.

The HTTP servers and the SMTP server (aiosmtpd, with STARTTLS and AUTH) are
started by the tests on 127.0.0.1; the delivery outcomes and throttle claims go
to the real Elasticsearch of ``rasd stack up``.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pydantic import ValidationError

from connectors.alert_state import AlertStateIndex
from connectors.destinations import EmailDestination, SlackDestination, WebhookDestination, deliver
from connectors.stack import certs
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, optionally with STARTTLS and AUTH.

    ``tls``: offer STARTTLS with a certificate of ``ca`` (a CA of the test's own).
    ``users``: accept AUTH with these passwords; ``auth_require_tls`` as aiosmtpd's.
    Records each message, each login attempt, and whether the session had TLS.
    """

    def __init__(
        self,
        ca: certs.Authority | None = None,
        users: dict[str, str] | None = None,
        auth_require_tls: bool = True,
        tmp: Path | None = None,
    ) -> None:
        self.messages: list[bytes] = []
        self.logins: list[tuple[str, str, bool]] = []  # (user, password, over TLS)
        self.tls_sessions: list[bool] = []
        outer = self
        tls_context = None
        if ca is not None:
            assert tmp is not None
            cert, key = certs.issue(ca, "smtp", ("localhost", "127.0.0.1"))
            (tmp / "smtp.pem").write_bytes(cert)
            (tmp / "smtp.key").write_bytes(key)
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(tmp / "smtp.pem", tmp / "smtp.key")

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.messages.append(envelope.original_content or envelope.content)
                outer.tls_sessions.append(session.ssl is not None)
                return "250 queued"

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> AuthResult:
            user = auth_data.login.decode()
            password = auth_data.password.decode()
            outer.logins.append((user, password, session.ssl is not None))
            return AuthResult(success=(users or {}).get(user) == password)

        self.port = free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls_context,
            authenticator=authenticator if users is not None else None,
            auth_require_tls=auth_require_tls,
        )
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


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
    smtp = SmtpServer()
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
    port = free_port()  # nothing listens there
    spec = EmailSpec(
        type="email", port=port, sender="rasd@example.org", to=["d@example.org"], retries=2
    )
    delivered, error, attempts = deliver(EmailDestination("mail", spec), ALERT, no_wait)
    assert (delivered, attempts) == (False, 2) and "SMTP" in error


SMTP_PASSWORD = "a-long-random-smtp-password-1234"


@pytest.fixture
def smtp_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T19_SMTP_USER", "rasd")
    monkeypatch.setenv("T19_SMTP_PASSWORD", SMTP_PASSWORD)


def login_spec(port: int, **fields: Any) -> EmailSpec:
    values: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "sender": "rasd@example.org",
        "to": ["desk@example.org"],
        "starttls": True,
        "username_env": "T19_SMTP_USER",
        "password_env": "T19_SMTP_PASSWORD",
        "retries": 1,
    }
    return EmailSpec(**{**values, **fields})


def test_email_with_starttls_and_auth(smtp_login: None, tmp_path: Path) -> None:
    ca = certs.new_authority("smtp test CA")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    smtp = SmtpServer(ca, users={"rasd": SMTP_PASSWORD}, tmp=tmp_path)
    try:
        spec = login_spec(smtp.port, ca_file=str(tmp_path / "ca.pem"))
        assert deliver(EmailDestination("mail", spec), ALERT, no_wait) == (True, "", 1)
    finally:
        smtp.close()
    assert smtp.logins == [("rasd", SMTP_PASSWORD, True)]  # logged in over TLS only
    assert smtp.tls_sessions == [True] and len(smtp.messages) == 1


def test_email_refuses_a_server_certificate_it_does_not_trust(
    smtp_login: None, tmp_path: Path
) -> None:
    smtp = SmtpServer(
        certs.new_authority("smtp test CA"), users={"rasd": SMTP_PASSWORD}, tmp=tmp_path
    )
    other = tmp_path / "other-ca.pem"
    other.write_bytes(certs.new_authority("another CA").pem)
    try:
        spec = login_spec(smtp.port, ca_file=str(other))
        delivered, error, _ = deliver(EmailDestination("mail", spec), ALERT, no_wait)
    finally:
        smtp.close()
    assert not delivered and "certificate not trusted" in error
    assert smtp.logins == [] and smtp.messages == []


def test_email_wrong_password_is_refused_by_the_server(smtp_login: None, tmp_path: Path) -> None:
    ca = certs.new_authority("smtp test CA")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    smtp = SmtpServer(ca, users={"rasd": "the-real-password-is-another"}, tmp=tmp_path)
    try:
        spec = login_spec(smtp.port, ca_file=str(tmp_path / "ca.pem"))
        delivered, error, _ = deliver(EmailDestination("mail", spec), ALERT, no_wait)
    finally:
        smtp.close()
    assert not delivered and "SMTP" in error
    assert SMTP_PASSWORD not in error and smtp.messages == []
    assert smtp.logins and all(over_tls for _, _, over_tls in smtp.logins)


def test_email_never_sends_credentials_without_tls(smtp_login: None) -> None:
    """A server that would take a login in the clear (no STARTTLS, AUTH allowed without
    TLS) gets none: rasd refuses before sending anything, whether the spec asks for no
    TLS (refused at start-up, and again at send time) or the server strips STARTTLS."""
    smtp = SmtpServer(users={"rasd": SMTP_PASSWORD}, auth_require_tls=False)
    try:
        with pytest.raises(ValidationError, match="need starttls: true"):
            login_spec(smtp.port, starttls=False)
        # Past the start-up check (a spec built without validation): refused at send.
        cleartext = login_spec(smtp.port).model_copy(update={"starttls": False})
        delivered, error, _ = deliver(EmailDestination("mail", cleartext), ALERT, no_wait)
        assert not delivered and "refusing to send SMTP credentials" in error
        # STARTTLS asked for, but the server does not offer it: nothing is sent.
        delivered, error, _ = deliver(
            EmailDestination("mail", login_spec(smtp.port)), ALERT, no_wait
        )
        assert not delivered and "does not offer STARTTLS" in error
    finally:
        smtp.close()
    assert smtp.logins == [] and smtp.messages == []


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
