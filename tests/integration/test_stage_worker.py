"""The stage worker on the real broker: poison records and rejected outputs reach the
DLQ with their reason, the good record goes through, and every offset is committed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from connectors.dead_letters import read_dead_letters
from connectors.kafka import Bootstrap, Producer, SendFailed, new_admin, new_producer
from connectors.metrics import Stats
from connectors.worker import Output, StageWorker, per_record

pytestmark = pytest.mark.integration


def _topics(bootstrap: str, *names: str, max_bytes: int | None = None) -> None:
    admin = new_admin(bootstrap)
    configs = {"max.message.bytes": str(max_bytes)} if max_bytes else {}
    admin.create_topics(
        {n: {"num_partitions": 1, "replication_factor": 1, "configs": configs} for n in names},
        wait_for_metadata=True,
    )
    admin.close()


def test_a_record_the_broker_rejects_is_reported_not_lost(
    kafka_bootstrap: Bootstrap, unique: str
) -> None:
    topic = f"test-small-{unique}"
    _topics(kafka_bootstrap, topic, max_bytes=100_000)
    sink = Producer(kafka_bootstrap)
    try:
        sink.send(topic, "ok", b"x" * 100)
        sink.send(topic, "big", b"x" * 500_000)
        with pytest.raises(SendFailed) as err:
            sink.flush()
        assert [i for i, _ in err.value.failures] == [1]
        sink.send(topic, "ok-again", b"x" * 100)
        sink.flush()  # the failure was reported once, and the sink goes on
    finally:
        sink.close()


@pytest.mark.parametrize("transactional", [False, True], ids=["plain", "transactional"])
def test_poison_and_oversized_outputs_go_to_the_dlq(
    kafka_bootstrap: Bootstrap, unique: str, transactional: bool
) -> None:
    """A topic that takes less than rasd's own (100 kB): the broker refuses the
    output, also inside a transaction (which is then aborted and the batch redone
    without it), and the record that made it is dead-lettered, the others go on."""
    source, out, dlq = (f"test-{n}-{unique}" for n in ("in", "out", "dlq"))
    _topics(kafka_bootstrap, source, dlq)
    _topics(kafka_bootstrap, out, max_bytes=100_000)
    producer = new_producer(kafka_bootstrap, acks="all")
    for key in (b"good", b"poison", b"huge"):
        producer.send(source, key=key, value=key)
    producer.flush()
    producer.close()

    def handle(record: Any) -> list[Output]:
        if record.key == b"poison":
            raise ValueError("a bug in a stage")
        size = 500_000 if record.key == b"huge" else 10
        return [Output(out, record.key.decode(), b"y" * size)]

    stop = threading.Event()
    stats = Stats()
    sink = Producer(kafka_bootstrap, transactional_id=f"test-{unique}" if transactional else None)
    worker = StageWorker(
        "test",
        kafka_bootstrap,
        f"test-group-{unique}",
        source,
        per_record(handle),
        sink,
        dlq,
        stats,
        stop,
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        for _ in range(300):
            if stats.get("test", "dlq") + stats.get("test", "ok") >= 3:
                break
            stop.wait(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
        sink.close()
    letters = [(d.key, d.reason) for d in read_dead_letters(kafka_bootstrap, dlq)]
    expected = [(b"huge", "output_too_large"), (b"poison", "unexpected")]
    if transactional:  # the aborted try's dead letter is not read
        assert sorted(letters) == expected
    else:  # at least once: the redone batch dead-letters the poison record again
        assert sorted(set(letters)) == expected
    assert stats.get("test", "unexpected") == 1
    outputs = [d.key for d in read_dead_letters(kafka_bootstrap, out)]
    assert outputs == [b"good"] if transactional else set(outputs) == {b"good"}
