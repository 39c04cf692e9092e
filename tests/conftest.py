"""Shared test configuration: the tiers, and access to the real local stack.

Integration and e2e tests need the Kafka and Elasticsearch that ``rasd stack
up`` starts. When they are not reachable the tests *fail* with a clear message;
they never skip, because a skipped server test proves nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from pipeline.settings import KafkaAccess, Settings

# Every `rasd` the suite starts serves no metrics port unless its test asks for
# one: two processes at once would both want the default port.
os.environ["RASD_METRICS_PORT"] = "0"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def es(settings: Settings) -> Iterator[object]:
    from connectors.elastic import new_elasticsearch

    client = new_elasticsearch(settings.elasticsearch, request_timeout=30)
    try:
        health = client.cluster.health(wait_for_status="yellow", timeout="30s")
    except Exception as exc:  # any failure here means: no usable server
        pytest.fail(
            f"Elasticsearch is not reachable at {settings.elasticsearch_url} "
            f"({exc}); start it with `rasd stack up`"
        )
    assert health["status"] in ("yellow", "green")
    yield client
    client.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> KafkaAccess:
    """How the tests reach Kafka: the configured access (TLS and SASL included)."""
    from kafka.errors import KafkaError

    from connectors.kafka import new_admin

    try:
        admin = new_admin(settings.kafka, request_timeout_ms=10000)
        admin.describe_cluster()
        admin.close()
    except (KafkaError, OSError) as exc:
        pytest.fail(
            f"Kafka is not reachable at {settings.kafka_servers} ({exc}); "
            "start it with `rasd stack up`"
        )
    return settings.kafka


@pytest.fixture
def unique() -> str:
    """A short random suffix, so tests sharing one cluster never collide."""
    return uuid.uuid4().hex[:10]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ``scripts/test`` (RASD_FORBID_SKIPS=1) a skipped test fails the run."""
    import os

    if os.environ.get("RASD_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        names = ", ".join(getattr(r, "nodeid", "?") for r in skipped)
        reporter.write_line(
            f"error: {len(skipped)} test(s) skipped, which this run forbids: {names}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
