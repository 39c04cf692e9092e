"""The one-line diagnosis of a refused Kafka connection (:func:`connectors.kafka.explain`),
from what kafka-python logs on each attempt."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import InvalidReceiveError, KafkaConnectionError, KafkaTimeoutError

from connectors import kafka
from pipeline.settings import KafkaAccess

#: The first four bytes of a TLS alert record (type 0x15, TLS 1.2 0x0303, length
#: 0x00..), read by kafka-python as a frame length.
TLS_ALERT = int.from_bytes(bytes([0x15, 0x03, 0x03, 0x00]), "big")
TLS_HANDSHAKE = int.from_bytes(bytes([0x16, 0x03, 0x01, 0x02]), "big")

PLAIN_LOGIN = KafkaAccess(
    "127.0.0.1:9102",
    security_protocol="SASL_PLAINTEXT",
    username="rasd",
    password="secret",
)


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka._last_failure, "error", None)
    monkeypatch.setattr(kafka._last_failure, "_telling", False)


def attempt_failed(error: BaseException) -> None:
    """What kafka-python's connection manager logs when one bootstrap attempt fails."""
    logging.getLogger("kafka.net.manager").warning(
        "Bootstrap connection to %s failed: %s (backoff %s secs)", "bootstrap-0", error, 0.05
    )


def test_frame_lengths_that_are_tls_records() -> None:
    assert kafka.answered_in_tls(f"InvalidReceiveError: Invalid frame length: {TLS_ALERT}")
    assert kafka.answered_in_tls(f"Invalid frame length: {TLS_HANDSHAKE}")
    # A real oversized Kafka frame, or an HTTP answer ("HTTP"), is not TLS.
    assert not kafka.answered_in_tls("Invalid frame length: 2147483000")
    assert not kafka.answered_in_tls(f"Invalid frame length: {int.from_bytes(b'HTTP', 'big')}")
    assert not kafka.answered_in_tls("KafkaConnectionError: socket disconnected")


def test_a_tls_answer_to_a_plaintext_client_names_the_setting() -> None:
    attempt_failed(KafkaConnectionError("socket disconnected"))
    attempt_failed(InvalidReceiveError(f"Invalid frame length: {TLS_ALERT}"))
    # The disconnects after the TLS answer do not hide it.
    attempt_failed(KafkaConnectionError("socket disconnected"))
    line = kafka.explain(KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:9102"), PLAIN_LOGIN)
    assert line == (
        "Kafka at 127.0.0.1:9102 answered in TLS: its listener does not speak SASL_PLAINTEXT; "
        "set RASD_KAFKA_SECURITY_PROTOCOL to SASL_SSL (or SSL)"
    )


def test_only_disconnects_point_at_the_login_and_the_protocol() -> None:
    attempt_failed(KafkaConnectionError("socket disconnected"))
    line = kafka.explain(KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:9102"), PLAIN_LOGIN)
    assert "closed the connection at login as 'rasd'" in line
    assert "its listener speaks SASL_PLAINTEXT (RASD_KAFKA_SECURITY_PROTOCOL)" in line


def test_a_client_with_tls_is_not_told_to_use_tls() -> None:
    attempt_failed(InvalidReceiveError(f"Invalid frame length: {TLS_ALERT}"))
    with_tls = KafkaAccess("127.0.0.1:9102", security_protocol="SSL")
    line = kafka.explain(KafkaTimeoutError("Unable to bootstrap"), with_tls)
    assert "answered in TLS" not in line
