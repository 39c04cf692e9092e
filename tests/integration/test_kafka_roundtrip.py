"""A keyed round trip through the real broker with kafka-python.

Produce with acks=all, consume with manual commits, and check that the
committed offset is what a restarted consumer resumes from.
"""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.admin import NewTopic

from connectors.kafka import Bootstrap, new_admin, new_consumer, new_producer

pytestmark = pytest.mark.integration


def test_keyed_roundtrip_with_manual_commit(kafka_bootstrap: Bootstrap, unique: str) -> None:
    topic = f"test-roundtrip-{unique}"
    group = f"test-group-{unique}"
    admin = new_admin(kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    try:
        producer = new_producer(kafka_bootstrap, acks="all")
        sent = {f"article-{i}".encode(): f"قيصر {i}".encode() for i in range(12)}
        metadata = [producer.send(topic, key=k, value=v).get(timeout=30) for k, v in sent.items()]
        producer.close()
        # The same key always lands in the same partition.
        by_key = {k: m.partition for k, m in zip(sent, metadata, strict=True)}
        assert len(set(by_key.values())) > 1, "12 keys should spread over 3 partitions"

        consumer = new_consumer(
            kafka_bootstrap,
            topic,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            consumer_timeout_ms=15000,
        )
        received = {}
        for record in consumer:
            received[record.key] = (record.value, record.partition)
            if len(received) == len(sent):
                break
        assert {k: v for k, (v, _) in received.items()} == sent
        assert {k: p for k, (_, p) in received.items()} == by_key
        consumer.commit()
        committed = {p: consumer.committed(TopicPartition(topic, p)) for p in range(3)}
        consumer.close()
        assert sum(o or 0 for o in committed.values()) == len(sent)

        # A new member of the same group starts after the committed offsets: nothing left.
        again = new_consumer(
            kafka_bootstrap,
            topic,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3000,
        )
        assert list(again) == []
        again.close()
    finally:
        admin.delete_topics([topic])
        admin.close()
