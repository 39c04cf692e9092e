"""Alert latency on the local stack: an article on ``<ns>.enriched`` → its alert on ``<ns>.alerts``.

Starts the alert stage (the same ``Runtime.worker("alert")`` that ``rasd worker
alert`` runs) in its own namespace with ``config/rules.yaml``, waits until it has
joined its group, then sends ``--count`` articles one at a time (each its own
story cluster, each mentioning قيصر) every ``--interval`` seconds, reads the
alerts topic, and prints the median and p95 of the time from sending an article
to receiving its alert. The namespace is deleted afterwards.

    .venv/bin/python bench/alert_latency.py [--count 100] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from connectors.kafka import new_consumer, new_producer
from pipeline.matching import RuleMatcher
from pipeline.models import Alert, EnrichedArticle
from pipeline.settings import Settings
from rasd.app import Runtime, reset_namespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.unit.helpers import enriched


def article(i: int, ns: str, matcher: RuleMatcher) -> EnrichedArticle:
    body = f"قال المتحدث في الإحاطة رقم {i} إن شهادة «قيصر» وثقت آلاف الحالات."
    now = datetime.now(UTC)
    return enriched(
        f"lat-{i}", f"lat-{i}", body, title=f"إحاطة {i}", when=now, namespace=ns, matcher=matcher
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    logging.getLogger("rasd.alerts").setLevel(
        logging.ERROR
    )  # one ALERT line per article is noise here
    settings = Settings(namespace=f"t7-bench-{uuid.uuid4().hex[:8]}")
    pipeline = Runtime(settings)
    received: dict[str, float] = {}
    try:
        pipeline.prepare()
        threads = pipeline.start_workers(("alert",))
        consumer = new_consumer(
            settings.kafka,
            pipeline.topics.alerts,
            auto_offset_reset="earliest",
            group_id=f"{settings.namespace}.bench",
            fetch_max_wait_ms=10,
        )
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=100).values():
                    for r in records:
                        received.setdefault(Alert.from_json(r.value).article_id, time.monotonic())

        reader = threading.Thread(target=read, daemon=True)
        while not consumer.assignment():
            consumer.poll(timeout_ms=100)
        reader.start()
        for worker in pipeline.workers:
            worker.ready.wait(60)
        producer = new_producer(settings.kafka, acks="all", linger_ms=0)
        sent: dict[str, float] = {}
        for i in range(args.count):
            a = article(i, settings.namespace, pipeline.context.matcher)
            sent[a.id] = time.monotonic()
            producer.send(pipeline.topics.enriched, key=a.id.encode(), value=a.to_json()).get(30)
            time.sleep(args.interval)
        deadline = time.monotonic() + 60
        while len(received) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        reader.join(5)
        consumer.close()
        producer.close()
        pipeline.shutdown(threads)
        latencies = sorted((received[k] - sent[k]) * 1000 for k in sent if k in received)
        if not latencies:
            raise SystemExit("no alert arrived")
        p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
        print(f"articles={len(sent)} alerts={len(latencies)} interval_s={args.interval}")
        print(
            f"enriched->alerts latency_ms median={statistics.median(latencies):.0f} "
            f"p95={p95:.0f} max={latencies[-1]:.0f}"
        )
    finally:
        reset_namespace(settings)


if __name__ == "__main__":
    main()
