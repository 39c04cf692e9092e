"""A transaction step the broker never answers gives up after a bounded wait.

kafka-python's ``commit_transaction`` and ``abort_transaction`` wait without a
limit; :class:`connectors.kafka.Producer` waits at most
``TRANSACTION_STEP_SECONDS`` and says whether the outcome is known. The
kafka-python producer is faked here: what is tested is rasd's handling of a step
that does not finish (the real broker's side is in
``tests/integration/test_exactly_once.py``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kafka.errors import ProducerFencedError

import connectors.kafka as kafka
from connectors.kafka import Producer, TransactionFailed


class _Result:
    def __init__(self, done: bool, error: Exception | None = None) -> None:
        self._latch = threading.Event()
        self._error = error
        if done:
            self._latch.set()

    def wait(self, timeout_ms: int | None = None) -> bool:
        done = self._latch.wait(None if timeout_ms is None else timeout_ms / 1000)
        if self._error is not None:
            raise self._error
        return done


class _Manager:
    def __init__(self, answered: set[str], refused: Exception | None = None) -> None:
        self.answered = answered
        self.refused = refused  # the commit's answer, when it is an error
        self.asked: list[str] = []

    def _step(self, name: str) -> _Result:
        self.asked.append(name)
        if name == "commit" and self.refused is not None:
            return _Result(True, self.refused)
        return _Result(name in self.answered)

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any) -> _Result:
        return self._step("offsets")

    def begin_commit(self) -> _Result:
        return self._step("commit")

    def begin_abort(self) -> _Result:
        return self._step("abort")


class _Sender:
    def wakeup(self) -> None:
        pass


class _KafkaProducer:
    def __init__(self, answered: set[str], refused: Exception | None = None) -> None:
        self._transaction_manager = _Manager(answered, refused)
        self._sender = _Sender()
        self.closed = False

    def begin_transaction(self) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def _producer(
    answered: set[str], refused: Exception | None = None
) -> tuple[Producer, _KafkaProducer]:
    producer = Producer(("127.0.0.1", 1), transactional_id="test.0")  # type: ignore[arg-type]
    raw = _KafkaProducer(answered, refused)
    producer._producer = raw  # type: ignore[assignment]
    producer._in_transaction = True
    producer._began = time.monotonic()
    return producer, raw


@pytest.fixture(autouse=True)
def _short_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "TRANSACTION_STEP_SECONDS", 0.2)


def test_a_commit_never_answered_is_uncertain_and_the_producer_is_replaced() -> None:
    producer, raw = _producer({"offsets", "abort"})
    began = time.monotonic()
    with pytest.raises(TransactionFailed) as failed:
        producer.commit({}, None)
    assert time.monotonic() - began < 5
    assert failed.value.uncertain and not failed.value.fenced
    assert "the commit" in str(failed.value)
    # Not aborted (it may be committed): the producer is closed, the next one
    # made with the same transactional id finishes what it left.
    assert raw._transaction_manager.asked == ["offsets", "commit"]
    assert raw.closed and producer._producer is None


def test_offsets_never_answered_abort_the_transaction_whose_outcome_is_known() -> None:
    producer, raw = _producer({"abort"})
    with pytest.raises(TransactionFailed) as failed:
        producer.commit({}, None)
    assert not failed.value.uncertain
    assert raw._transaction_manager.asked == ["offsets", "abort"]
    assert not raw.closed  # the abort was answered: the producer goes on


def test_an_abort_never_answered_replaces_the_producer() -> None:
    producer, raw = _producer(set())
    began = time.monotonic()
    producer.abort()
    assert time.monotonic() - began < 5
    assert raw._transaction_manager.asked == ["abort"]
    assert raw.closed and producer._producer is None and not producer._in_transaction


def test_a_commit_answered_in_time_succeeds() -> None:
    producer, raw = _producer({"offsets", "commit"})
    producer.commit({}, None)
    assert raw._transaction_manager.asked == ["offsets", "commit"]
    assert not producer._in_transaction and not raw.closed


def test_a_fence_is_a_fence_while_the_transaction_is_young() -> None:
    # Another live producer took the transactional id: this one must stop.
    producer, _raw = _producer({"offsets", "abort"}, ProducerFencedError())
    with pytest.raises(TransactionFailed) as failed:
        producer.commit({}, None)
    assert failed.value.fenced


def test_a_fence_after_the_transaction_timeout_is_an_abort_and_a_new_producer() -> None:
    # The broker aborted a transaction open too long and bumped the epoch, which
    # kafka-python reports as a fence: the batch is redone, the worker goes on.
    producer, raw = _producer({"offsets", "abort"}, ProducerFencedError())
    producer._began = time.monotonic() - kafka.TRANSACTION_TIMEOUT_SECONDS
    with pytest.raises(TransactionFailed) as failed:
        producer.commit({}, None)
    assert not failed.value.fenced and not failed.value.uncertain
    assert "transaction timeout" in str(failed.value)
    assert raw.closed and producer._producer is None
