"""Whoever does not belong is refused, by Kafka and by Elasticsearch, with one clear line.

Each case changes one thing against the working access of the secured stack:
no credentials, a wrong password, a CA that did not sign the server's
certificate, a plaintext connection, or a namespace rasd's user holds no rights
on. Each must be refused by the server (or by the client's certificate check),
and ``rasd`` must say why in one line that never shows a password.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import LocalSecureStack

from .conftest import one_line_error, rasd

pytestmark = pytest.mark.secure


def kafka_env(secured: LocalSecureStack, **changes: str | None) -> dict[str, str | None]:
    """The secured stack's Kafka access as explicit settings, with ``changes``."""
    k = secured.kafka
    assert k.password is not None and k.ca_file is not None
    env: dict[str, str | None] = {
        "RASD_KAFKA_BOOTSTRAP": k.bootstrap,
        "RASD_KAFKA_SECURITY_PROTOCOL": k.security_protocol,
        "RASD_KAFKA_SASL_MECHANISM": k.sasl_mechanism,
        "RASD_KAFKA_USERNAME": k.username,
        "RASD_KAFKA_PASSWORD": k.password.get_secret_value(),
        "RASD_KAFKA_CA_FILE": str(k.ca_file),
    }
    env.update(changes)
    return env


def es_env(secured: LocalSecureStack, **changes: str | None) -> dict[str, str | None]:
    e = secured.elasticsearch
    assert e.password is not None and e.ca_certs is not None
    env: dict[str, str | None] = {
        "RASD_ES_URL": e.url,
        "RASD_ES_USERNAME": e.username,
        "RASD_ES_PASSWORD": e.password.get_secret_value(),
        "RASD_ES_CA_CERTS": str(e.ca_certs),
    }
    env.update(changes)
    return env


def test_the_working_access_is_accepted(secured: LocalSecureStack, unique: str) -> None:
    """The baseline every refusal below departs from: with it, both commands succeed."""
    ns = f"secure-{unique}"
    done = rasd({**kafka_env(secured), "RASD_NAMESPACE": ns}, "topics", "create")
    assert done.returncode == 0, done.stderr
    done = rasd({**es_env(secured), "RASD_NAMESPACE": ns}, "index", "create")
    assert done.returncode == 0, done.stderr
    rasd({**kafka_env(secured), **es_env(secured), "RASD_NAMESPACE": ns}, "reset", "--yes")


KAFKA_REFUSALS: dict[str, tuple[dict[str, str | None], str | tuple[str, ...]]] = {
    # TLS, but no SASL: the broker closes the connection.
    "no credentials": (
        {"RASD_KAFKA_SECURITY_PROTOCOL": "SSL", "RASD_KAFKA_USERNAME": None},
        "closed every connection",
    ),
    # The right login, but without TLS: the password must never cross the wire in clear.
    # The broker either closes the connection or first answers with a TLS alert,
    # which of the two wins the race varies from run to run; each has its diagnosis.
    "plaintext": (
        {"RASD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
        (
            "and that its listener speaks SASL_PLAINTEXT (RASD_KAFKA_SECURITY_PROTOCOL)",
            "answered in TLS: its listener does not speak SASL_PLAINTEXT; "
            "set RASD_KAFKA_SECURITY_PROTOCOL to SASL_SSL (or SSL)",
        ),
    ),
    "wrong password": (
        {"RASD_KAFKA_PASSWORD": "not-the-password-of-rasd"},
        "login as 'rasd' (SCRAM-SHA-512): check RASD_KAFKA_USERNAME and RASD_KAFKA_PASSWORD",
    ),
    "untrusted CA": ({"RASD_KAFKA_CA_FILE": "FOREIGN"}, "certificate is not trusted"),
    "no rights": ({"RASD_NAMESPACE": "outsider"}, "may not do this"),
}


@pytest.mark.parametrize("case", sorted(KAFKA_REFUSALS))
def test_kafka_refuses(secured: LocalSecureStack, foreign_ca: Path, case: str) -> None:
    changes, expected = KAFKA_REFUSALS[case]
    changes = {k: str(foreign_ca) if v == "FOREIGN" else v for k, v in changes.items()}
    if changes.get("RASD_KAFKA_USERNAME", "") is None:
        changes["RASD_KAFKA_PASSWORD"] = None
    env = kafka_env(secured, **changes)
    env.setdefault("RASD_NAMESPACE", "secure-refused-" + case.replace(" ", "-").lower())
    line = one_line_error(rasd(env, "topics", "create"))
    diagnoses = (expected,) if isinstance(expected, str) else expected
    assert any(diagnosis in line for diagnosis in diagnoses), line
    assert secured.kafka.password is not None
    assert secured.kafka.password.get_secret_value() not in line


ES_REFUSALS = {
    "no credentials": (
        {"RASD_ES_USERNAME": None, "RASD_ES_PASSWORD": None},
        "asks for credentials",
    ),
    "wrong password": ({"RASD_ES_PASSWORD": "not-the-password-of-rasd"}, "refused user 'rasd'"),
    "untrusted CA": ({"RASD_ES_CA_CERTS": "FOREIGN"}, "certificate is not trusted"),
    "plain http": ({"RASD_ES_URL": "HTTP"}, "closed the connection"),
    "no rights": ({"RASD_NAMESPACE": "outsider"}, "may not do this (403)"),
}


@pytest.mark.parametrize("case", sorted(ES_REFUSALS))
def test_elasticsearch_refuses(secured: LocalSecureStack, foreign_ca: Path, case: str) -> None:
    changes, expected = ES_REFUSALS[case]
    plain_url = secured.elasticsearch.url.replace("https://", "http://")
    changes = {
        k: str(foreign_ca) if v == "FOREIGN" else plain_url if v == "HTTP" else v
        for k, v in changes.items()
    }
    env = es_env(secured, **changes)
    env.setdefault("RASD_NAMESPACE", "secure-refused-" + case.replace(" ", "-").lower())
    line = one_line_error(rasd(env, "index", "create"))
    assert expected in line, line
    assert secured.elasticsearch.password is not None
    assert secured.elasticsearch.password.get_secret_value() not in line


def test_rasd_cannot_change_kafka_acls(secured: LocalSecureStack) -> None:
    """rasd's user holds no ALTER on the cluster: it cannot grant itself more."""
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    from connectors.kafka import new_admin
    from connectors.stack.secure import SecureFiles

    admin = new_admin(secured.kafka, request_timeout_ms=10000)
    everything = ResourcePattern(ResourceType.TOPIC, "*", ACLResourcePatternType.LITERAL)
    acl = ACL("User:rasd", "*", ACLOperation.ALL, ACLPermissionType.ALLOW, everything)
    try:
        result = admin.create_acls([acl])
    finally:
        admin.close()
    if result["succeeded"]:  # the guard is gone: take the grant back before failing
        stack = SecureFiles(secured.directory.parent).kafka_admin(secured.kafka.bootstrap)
        stack_admin = new_admin(stack, request_timeout_ms=10000)
        try:
            stack_admin.delete_acls(
                [ACLFilter(acl.principal, acl.host, acl.operation, acl.permission_type, everything)]
            )
        finally:
            stack_admin.close()
    assert not result["succeeded"]
    assert result["failed"], result
    assert "ClusterAuthorizationFailed" in repr(result["failed"])
