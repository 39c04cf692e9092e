"""The chaos harness, short: two minutes of faults on the local stack (worker kills
of every kind, the broker and Elasticsearch killed and restarted, Elasticsearch
paused and refusing writes, the webhook down), then not one article or alert lost
or duplicated. ``bench/chaos.py`` is the long version, with its table."""

from __future__ import annotations

import os

import pytest

from bench.chaos import run

pytestmark = pytest.mark.integration


def test_two_minutes_of_faults_lose_and_repeat_nothing() -> None:
    seed = int(os.environ.get("RASD_CHAOS_SEED", "16"))
    report = run(seed, seconds=120, feeds=50, articles=300, drain_timeout=300)
    print(report.table())
    assert report.drained, report.table()
    assert not report.lost, report.table()
    assert not report.duplicated, report.table()
    assert not report.unexpected_dlq, report.table()
    assert all(ok for *_, ok in report.balance), report.table()
    assert report.expected_alerts > 0
    assert report.ledger == report.expected_alerts and not report.ledger_duplicates
    assert not report.undelivered, report.table()
    assert all(alert in report.explained for alert in report.repeats), report.table()
    assert not any(report.topic_duplicates.values()), report.table()
    assert report.ok
