"""Alerts: how they are raised, and what they become on their way out.

:func:`build_alerts` turns the rule matches enrich found on an article into
one :class:`~pipeline.models.Alert` per rule (the alert stage and ``rasd rules
backtest`` both call it). The rest are pure helpers for the delivery stages
and :mod:`connectors.destinations`. The
``destinations:`` section of ``rules.yaml`` maps a name to one of the
:data:`DestinationSpec` models (webhook, slack, email, log), validated at
start-up with errors naming the file and the destination. A rule's ``realert``
window is cut into fixed buckets (:func:`throttle_bucket`); the first alert of a
rule in a bucket claims it and the others in that bucket are recorded as
throttled, not delivered. The payload functions render one alert as the JSON
body of a webhook (signed with HMAC-SHA256 when a secret is set), a Slack
message and an email, always as UTF-8 (elastalert's Unicode failures are the
counter-example).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from pipeline.errors import ConfigError
from pipeline.models import Alert, RuleMatch, alert_id

__all__ = [
    "AlertSubject",
    "DestinationSpec",
    "EmailSpec",
    "LogSpec",
    "SlackSpec",
    "WebhookSpec",
    "build_alerts",
    "email_message",
    "parse_destinations",
    "signature",
    "slack_payload",
    "throttle_bucket",
    "webhook_body",
]


class AlertSubject(Protocol):
    """What an alert says about its article: an enriched article, or an indexed document."""

    @property
    def id(self) -> str: ...
    @property
    def cluster_id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def outlet(self) -> str: ...


def build_alerts(
    article: AlertSubject, matches: Sequence[RuleMatch], now: Callable[[], datetime]
) -> list[Alert]:
    """One :class:`Alert` per rule that fired; ids are per (rule, cluster)."""
    by_rule: dict[str, list[RuleMatch]] = {}
    for match in matches:
        by_rule.setdefault(match.rule_id, []).append(match)
    created = now()
    return [
        Alert(
            id=alert_id(rule_id, article.cluster_id),
            rule_id=rule_id,
            rule_name=rule_matches[0].rule_name,
            article_id=article.id,
            cluster_id=article.cluster_id,
            url=article.url,
            title=article.title,
            outlet=article.outlet,
            matches=[m.match() for m in rule_matches],
            created_at=created,
            severity=rule_matches[0].severity,
        )
        for rule_id, rule_matches in by_rule.items()
    ]


class _Delivery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Attempts before the alert is recorded as undelivered.
    retries: int = Field(default=5, ge=1, le=50)
    #: First backoff in seconds; doubles per attempt (with jitter), capped at 60 s.
    backoff: float = Field(default=1.0, gt=0, le=60)
    timeout: float = Field(default=10.0, gt=0, le=120)


class WebhookSpec(_Delivery):
    """A JSON POST of the alert; ``secret_env`` names the variable holding the HMAC key."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class SlackSpec(_Delivery):
    """A Slack-compatible incoming webhook (``{"text": ...}``)."""

    type: Literal["slack"]
    url: str = Field(pattern=r"^https?://")


class EmailSpec(_Delivery):
    """Email over SMTP; credentials come from the named environment variables.

    Credentials are only ever sent after STARTTLS, with the server's certificate
    verified (against ``ca_file``, else the system's CAs): a spec with
    credentials and without ``starttls`` is refused at start-up.
    """

    type: Literal["email"]
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    #: CA bundle (PEM) that signed the SMTP server's certificate.
    ca_file: str | None = None

    @model_validator(mode="after")
    def _credentials_need_tls(self) -> EmailSpec:
        if (self.username_env or self.password_env) and not self.starttls:
            raise ValueError(
                "username_env/password_env need starttls: true (credentials are never "
                "sent over a connection without TLS)"
            )
        return self


class LogSpec(_Delivery):
    """The ``rasd.alerts`` logger (the built-in ``log`` destination)."""

    type: Literal["log"]


DestinationSpec = Annotated[
    WebhookSpec | SlackSpec | EmailSpec | LogSpec, Field(discriminator="type")
]
_SPEC: TypeAdapter[WebhookSpec | SlackSpec | EmailSpec | LogSpec] = TypeAdapter(DestinationSpec)


def parse_destinations(path: str | Path, raw: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Validate the ``destinations:`` section; a ``ConfigError`` names file and entry."""
    specs: dict[str, Any] = {"log": LogSpec(type="log")}
    for name, entry in raw.items():
        try:
            specs[name] = _SPEC.validate_python(entry)
        except ValidationError as exc:
            # loc starts with the union's tag (webhook, email...): the entry names it already.
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc'][1:]) or 'type'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"{path}: destinations.{name}: {problems}") from exc
    return specs


def throttle_bucket(created_at: datetime, window_seconds: int) -> int:
    """The realert window an alert falls in: one alert per rule per bucket."""
    return int(created_at.timestamp()) // window_seconds


def webhook_body(alert: Alert) -> bytes:
    """The webhook JSON: the alert as stored, UTF-8, Arabic unescaped."""
    document = alert.model_dump(mode="json", exclude={"matches": {"__all__": {"schema_version"}}})
    return json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """``X-Rasd-Signature`` value: ``sha256=`` + hex HMAC of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _headline(alert: Alert) -> str:
    return f"[{alert.severity}] {alert.rule_name}: {alert.title}"


def _surfaces(alert: Alert) -> str:
    return "، ".join(dict.fromkeys(m.surface for m in alert.matches))


def slack_payload(alert: Alert) -> dict[str, Any]:
    text = f"*{_headline(alert)}*\n{alert.outlet} — <{alert.url}>\n{_surfaces(alert)}"
    return {"text": text}


def email_message(alert: Alert, sender: str, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[rasd] {_headline(alert)}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["X-Rasd-Alert-Id"] = alert.id
    lines = [
        _headline(alert),
        f"{alert.outlet}: {alert.url}",
        "",
        *(f"- {m.field} [{m.start}:{m.end}] {m.surface} ({m.term})" for m in alert.matches),
        "",
        f"alert {alert.id}, cluster {alert.cluster_id}",
    ]
    msg.set_content("\n".join(lines), charset="utf-8")
    return msg
