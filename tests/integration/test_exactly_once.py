"""Exactly once between the stages, on the real broker: a batch redone after a worker
died before its commit, and a worker that lost its partitions (a zombie), leave no
record twice on a ``read_committed`` read of the output topic."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from connectors.kafka import Bootstrap, Producer, new_admin, new_consumer, new_producer, read_to_end
from connectors.metrics import Stats
from connectors.worker import Output, StageWorker, per_record

pytestmark = pytest.mark.integration

RECORDS = 40


def _topics(bootstrap: Bootstrap, *names: str, partitions: int = 2) -> None:
    admin = new_admin(bootstrap)
    admin.create_topics(
        {n: {"num_partitions": partitions, "replication_factor": 1} for n in names},
        wait_for_metadata=True,
    )
    admin.close()


def _fill(bootstrap: Bootstrap, topic: str, n: int = RECORDS) -> None:
    producer = new_producer(bootstrap, acks="all")
    for i in range(n):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    producer.flush()
    producer.close()


def read_keys(bootstrap: Bootstrap, topic: str, isolation: str) -> Counter[bytes]:
    """Every key on ``topic`` read with ``isolation``, with how often it is there."""
    from kafka import TopicPartition

    consumer = new_consumer(bootstrap, enable_auto_commit=False, isolation_level=isolation)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        keys: Counter[bytes] = Counter()
        read_to_end(consumer, lambda r: keys.update([r.key]), timeout=60)
        return keys
    finally:
        consumer.close()


class _Died(BaseException):
    """Stands for the process dying: nothing after it runs, nothing is cleaned up."""


def _worker(
    bootstrap: Bootstrap,
    unique: str,
    instance: str,
    handle: Callable[[Any], list[Output]],
    stats: Stats,
    stop: threading.Event,
    **options: Any,
) -> StageWorker:
    source, dlq = f"test-in-{unique}", f"test-dlq-{unique}"
    producer = Producer(bootstrap, transactional_id=f"test-{unique}.{instance}")
    return StageWorker(
        "test",
        bootstrap,
        f"test-group-{unique}",
        source,
        per_record(handle),
        producer,
        dlq,
        stats,
        stop,
        max_records=RECORDS,
        **options,
    )


def _wait(condition: Callable[[], bool], seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_batch_redone_after_a_crash_before_the_commit_is_on_the_topic_once(
    kafka_bootstrap: Bootstrap, unique: str
) -> None:
    source, out, dlq = (f"test-{n}-{unique}" for n in ("in", "out", "dlq"))
    _topics(kafka_bootstrap, source, out, dlq)
    _fill(kafka_bootstrap, source)

    def handle(record: Any) -> list[Output]:
        return [Output(out, record.key.decode(), record.value.upper())]

    # The first process produces every output, then dies before its commit.
    first_stats, first_stop = Stats(), threading.Event()
    first = _worker(kafka_bootstrap, unique, "a", handle, first_stats, first_stop)

    def die(records: list[Any]) -> bool:
        raise _Died

    first._commit_transaction = die  # type: ignore[method-assign]
    died: list[BaseException] = []

    def run_first() -> None:
        try:
            first.run()
        except _Died as exc:  # the consumer leaves the group; the producer is abandoned
            died.append(exc)

    thread = threading.Thread(target=run_first)
    thread.start()
    thread.join(timeout=120)
    assert died, "the first worker never reached its commit"
    written = read_keys(kafka_bootstrap, out, "read_uncommitted")
    assert sum(written.values()) > 0  # its outputs are in the log, uncommitted

    # Restarted under the same name: its predecessor's transaction is aborted, and
    # the batch is redone from the last committed offsets.
    stats, stop = Stats(), threading.Event()
    second = _worker(kafka_bootstrap, unique, "a", handle, stats, stop)
    thread = threading.Thread(target=second.run)
    thread.start()
    try:
        _wait(lambda: stats.get("test", "ok") >= RECORDS)
    finally:
        stop.set()
        thread.join(timeout=60)
        second.producer.close()
    committed = read_keys(kafka_bootstrap, out, "read_committed")
    assert committed == Counter({f"k{i}".encode(): 1 for i in range(RECORDS)})
    # The log itself holds the dead process's copies too: only the transaction hides them.
    raw = read_keys(kafka_bootstrap, out, "read_uncommitted")
    assert sum(raw.values()) == RECORDS + sum(written.values())


def test_a_zombie_that_lost_its_partitions_is_fenced_and_its_writes_stay_invisible(
    kafka_bootstrap: Bootstrap, unique: str
) -> None:
    source, out, dlq = (f"test-{n}-{unique}" for n in ("in", "out", "dlq"))
    _topics(kafka_bootstrap, source, out, dlq)
    _fill(kafka_bootstrap, source)
    taken_over = threading.Event()
    zombie_began = threading.Event()

    def slow(record: Any) -> list[Output]:
        # The zombie stalls on its first batch longer than its poll interval: the
        # group gives its partitions to the other worker, which does the batch.
        zombie_began.set()
        taken_over.wait(120)
        return [Output(out, record.key.decode(), b"zombie")]

    def fast(record: Any) -> list[Output]:
        return [Output(out, record.key.decode(), b"live")]

    zombie_stats, live_stats, stop = Stats(), Stats(), threading.Event()
    zombie = _worker(
        kafka_bootstrap, unique, "z", slow, zombie_stats, stop, max_poll_interval_ms=6000
    )
    live = _worker(kafka_bootstrap, unique, "l", fast, live_stats, stop)
    zombie_thread = threading.Thread(target=zombie.run)
    zombie_thread.start()
    try:
        assert zombie_began.wait(90)
        live_thread = threading.Thread(target=live.run)
        live_thread.start()
        _wait(lambda: live_stats.get("test", "ok") >= RECORDS, 120)
        taken_over.set()  # the zombie wakes up and tries to commit its batch
        _wait(lambda: zombie_stats.get("test", "commit_failed") >= 1, 60)
        assert zombie_stats.get("test", "ok") == 0  # nothing of its batch counted
    finally:
        taken_over.set()
        stop.set()
        zombie_thread.join(timeout=60)
        live_thread.join(timeout=60)
        zombie.producer.close()
        live.producer.close()
    values = Counter[bytes]()
    consumer = new_consumer(kafka_bootstrap, enable_auto_commit=False)
    try:
        from kafka import TopicPartition

        tps = [TopicPartition(out, p) for p in sorted(consumer.partitions_for_topic(out))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        read_to_end(consumer, lambda r: values.update([r.value]), timeout=60)
    finally:
        consumer.close()
    assert values == Counter({b"live": RECORDS})
    assert read_keys(kafka_bootstrap, out, "read_committed") == Counter(
        {f"k{i}".encode(): 1 for i in range(RECORDS)}
    )
    # The zombie's writes did reach the log, aborted.
    assert sum(read_keys(kafka_bootstrap, out, "read_uncommitted").values()) > RECORDS


def test_a_commit_whose_answer_is_lost_is_not_redone(
    kafka_bootstrap: Bootstrap, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker commits, but its answer does not come in time (it died, or was
    paused): the worker cannot know, so it joins the group again and goes on from
    the committed offsets. The batch is neither lost nor done twice."""
    import connectors.kafka as kafka

    source, out, dlq = (f"test-{n}-{unique}" for n in ("in", "out", "dlq"))
    _topics(kafka_bootstrap, source, out, dlq)
    _fill(kafka_bootstrap, source)

    def handle(record: Any) -> list[Output]:
        return [Output(out, record.key.decode(), record.value.upper())]

    stats, stop = Stats(), threading.Event()
    worker = _worker(kafka_bootstrap, unique, "a", handle, stats, stop)
    real_await = kafka.Producer._await
    lost: list[str] = []

    def answer_lost(self: Producer, producer: Any, result: Any, step: str) -> None:
        real_await(self, producer, result, step)  # the broker does the step
        if step == "the commit" and not lost:
            lost.append(step)
            raise kafka._StepTimedOut(step, self.transactional_id)

    monkeypatch.setattr(kafka.Producer, "_await", answer_lost)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        _wait(lambda: stats.get("test", "commit_failed") >= 1)
        _fill(kafka_bootstrap, source)  # more records: the worker is back in its group
        _wait(lambda: stats.get("test", "ok") >= RECORDS)
    finally:
        stop.set()
        thread.join(timeout=60)
        worker.producer.close()
    assert lost == ["the commit"]
    # The second fill's records carry the same keys: each key once per fill.
    assert read_keys(kafka_bootstrap, out, "read_committed") == Counter(
        {f"k{i}".encode(): 2 for i in range(RECORDS)}
    )
    # And not redone behind the transaction either: nothing aborted in the log.
    assert sum(read_keys(kafka_bootstrap, out, "read_uncommitted").values()) == 2 * RECORDS


def test_an_alert_refused_by_a_write_block_is_retried_not_dropped(
    settings: Any, unique: str
) -> None:
    """A write block (a flood-stage disk watermark) is temporary: the ledger's write
    is retried with the batch, never given up as if the alert were bad."""
    from datetime import UTC, datetime

    from connectors.elastic import ElasticStore
    from pipeline.errors import RetriableError
    from pipeline.models import Alert

    store = ElasticStore(settings.elasticsearch, f"test-{unique}", settings.config_dir)
    try:
        store.ensure(datetime.now(UTC))
        alert = Alert(
            id=f"alert-{unique}",
            rule_id="r",
            rule_name="r",
            article_id="a",
            cluster_id="c",
            url="https://example.org/a",
            title="t",
            outlet="o",
            matches=[],
            created_at=datetime.now(UTC),
        )
        index = store.alerts_index
        store.client.indices.put_settings(index=index, settings={"index.blocks.write": True})
        with pytest.raises(RetriableError):
            store.record_alert(alert, "topic/0/1")
        store.client.indices.put_settings(index=index, settings={"index.blocks.write": None})
        assert store.record_alert(alert, "topic/0/1")
        assert store.alert_raised_by(alert.id) == "topic/0/1"
    finally:
        store.delete_all()
        store.close()
