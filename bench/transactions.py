"""What exactly-once costs: the stage worker with the plain producer against the
transactional one, in the same run.

Fills an input topic with ``--records`` article-sized records (``--size`` bytes),
then runs a :class:`connectors.worker.StageWorker` that copies each record to an
output topic (the consume-transform-produce loop of every stage, with a handler
that costs nothing, so that the figure is the loop's and the broker's), once per
mode and ``--runs`` times, alternating plain and transactional so that the
machine's load weighs on both alike. Each run is a fresh consumer group over the
same input and its own output topic; it ends when every record is on the output
and committed. Prints records per second per run, the medians and their ratio.

Needs ``rasd stack up``. Usage:
``python bench/transactions.py [--records 20000] [--size 2000] [--batch 200] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from typing import Any

from connectors.kafka import Producer, new_admin, new_producer
from connectors.metrics import Stats
from connectors.worker import Output, StageWorker, per_record
from pipeline.settings import Settings


def fill(settings: Settings, topic: str, records: int, size: int, partitions: int) -> None:
    admin = new_admin(settings.kafka)
    try:
        admin.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    producer = new_producer(settings.kafka, acks="all", linger_ms=20)
    body = ("خبر " * (size // 8 + 1)).encode()[:size]
    for i in range(records):
        producer.send(topic, key=f"a{i}".encode(), value=body)
    producer.flush()
    producer.close()


def one_run(
    settings: Settings, source: str, records: int, batch: int, transactional: bool
) -> float:
    """Seconds for a worker to carry every record of ``source`` to a new topic."""
    run = uuid.uuid4().hex[:8]
    out = f"bench-tx-out-{run}"
    admin = new_admin(settings.kafka)
    try:
        admin.create_topics(
            {
                name: {"num_partitions": 6, "replication_factor": 1}
                for name in (out, f"bench-tx-dlq-{run}")
            },
            wait_for_metadata=True,
        )
    finally:
        admin.close()

    def copy(record: Any) -> list[Output]:
        return [Output(out, record.key.decode(), record.value)]

    stats, stop = Stats(), threading.Event()
    producer = Producer(
        settings.kafka,
        client_id="bench-tx",
        transactional_id=f"bench-tx-{run}" if transactional else None,
    )
    worker = StageWorker(
        "bench",
        settings.kafka,
        f"bench-tx-{run}",
        source,
        per_record(copy),
        producer,
        f"bench-tx-dlq-{run}",
        stats,
        stop,
        max_records=batch,
    )
    thread = threading.Thread(target=worker.run)
    began = time.perf_counter()
    thread.start()
    try:
        while stats.get("bench", "ok") < records:
            if not thread.is_alive():
                raise SystemExit("the worker stopped before the end")
            time.sleep(0.02)
        return time.perf_counter() - began
    finally:
        stop.set()
        thread.join(timeout=60)
        producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=2_000, help="bytes per record")
    parser.add_argument("--batch", type=int, default=200, help="records per batch (stages: 200)")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode, alternating")
    args = parser.parse_args()

    settings = Settings()
    source = f"bench-tx-in-{uuid.uuid4().hex[:8]}"
    fill(settings, source, args.records, args.size, 6)
    print(
        f"{args.records} records of {args.size} bytes on 6 partitions, batches of {args.batch}, "
        f"{args.runs} runs per mode, alternating"
    )
    rates: dict[str, list[float]] = {"plain": [], "transactional": []}
    for n in range(args.runs):
        for mode in ("plain", "transactional"):
            seconds = one_run(settings, source, args.records, args.batch, mode != "plain")
            rates[mode].append(args.records / seconds)
            print(f"run {n + 1} {mode:>13}: {seconds:6.2f} s  {args.records / seconds:8.0f} rec/s")
    plain = statistics.median(rates["plain"])
    tx = statistics.median(rates["transactional"])
    print(f"median plain:         {plain:8.0f} records/s")
    print(f"median transactional: {tx:8.0f} records/s")
    print(f"transactional / plain: {tx / plain:.3f}")


if __name__ == "__main__":
    main()
