"""The dedupe snapshot on local disk: what it restores decides as the original does.

A snapshot holds the near-duplicate index's arrays and the exact-key state; a
restart that loads it must give every later article the verdict the running
worker would have given. A damaged, foreign or missing file is never used: the
load says why and returns nothing, and the worker reads the state topic instead.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from connectors.dedupe_snapshot import SnapshotSink, _Capture, load, offsets_of, save
from pipeline.dedupe import Deduper, InMemoryDedupeState, sign
from pipeline.neardup import NearDupConfig, NearDuplicateIndex, signature, words_of
from tests.fixtures.dedupe.labelled import HERE, load_group

from .helpers import SEEN, article
from .test_dedupe import _bodies

TOPIC = "test.dedupe-state"
TEXTS, _ = load_group(HERE / "01-sednaya.yaml")


class Small(NearDuplicateIndex):
    # Small buffer and segments: a snapshot then holds several segments and a buffer.
    BUFFER = 16
    MAX_SEGMENT = 64


CONFIG = NearDupConfig(window=timedelta(hours=60))


def filled(n: int, seed: int) -> tuple[Deduper, list[str]]:
    """A deduper that has decided ``n`` overlapping articles, an hour apart, and
    the bodies of the articles still to come."""
    bodies = _bodies(n + 80, seed)
    deduper = Deduper(InMemoryDedupeState(), Small(CONFIG))
    for i, body in enumerate(bodies[:n]):
        a = article(f"https://example.org/a/{i}", body=body)
        a = a.model_copy(update={"first_seen": SEEN + timedelta(hours=i)})
        signed = sign(a, CONFIG)
        deduper.check(signed, deduper.keys_of(signed))
    return deduper, bodies[n:]


def capture(deduper: Deduper, offsets: dict[int, int]) -> _Capture:
    assert isinstance(deduper.state, InMemoryDedupeState) and deduper.near is not None
    return _Capture(deduper.near.to_arrays(), deduper.state.items(), offsets)


def verdicts(deduper: Deduper, bodies: list[str], start: int) -> list[tuple[str, object, str]]:
    """Decide ``bodies`` (and, again, some articles decided before the snapshot)."""
    out = []
    for i, body in enumerate(bodies, start=start):
        a = article(f"https://example.org/a/{i}", body=body)
        a = a.model_copy(update={"first_seen": SEEN + timedelta(hours=i)})
        signed = sign(a, CONFIG)
        v = deduper.check(signed, deduper.keys_of(signed))
        out.append((v.id, v.duplicate_kind, v.cluster_id))
    return out


def test_a_restored_snapshot_decides_as_the_worker_it_was_taken_from(tmp_path: Path) -> None:
    running, later = filled(300, seed=11)
    path = tmp_path / "state.npz"
    assert save(path, TOPIC, capture(running, {0: 1234})) > 0

    snapshot = load(path, TOPIC, CONFIG)
    assert snapshot is not None
    assert snapshot.offsets == {0: 1234}
    assert isinstance(running.near, Small) and isinstance(running.state, InMemoryDedupeState)
    assert len(snapshot.index) == len(running.near) == 61  # the 60-hour window
    assert snapshot.state.items() == running.state.items()
    assert len(running.near._segments) >= 2 and running.near._buf_ids  # all parts saved
    restored = Deduper(snapshot.state, snapshot.index)

    # Re-deliveries of articles decided before the snapshot, then new ones.
    again = [_bodies(300 + 80, 11)[i] for i in range(240, 300)]
    want = verdicts(running, again, 240) + verdicts(running, later, 300)
    got = verdicts(restored, again, 240) + verdicts(restored, later, 300)
    assert got == want
    assert sum(kind == "near" for _, kind, _ in want) > 10  # there were near-duplicates to find
    for row in map(_sig, later):
        assert snapshot.index.query(row) == running.near.query(row)


def _sig(body: str) -> np.ndarray:
    sig = signature(words_of(body), CONFIG)
    assert sig is not None
    return np.asarray(sig.hashvalues, dtype=np.uint32)


def test_ids_that_are_not_rasd_ids_survive_without_pickle(tmp_path: Path) -> None:
    index = Small(CONFIG)
    for i, body in enumerate(_bodies(40, seed=2)):
        index.add(f"article number {i}", f"cluster {i}", _sig(body), SEEN + timedelta(hours=i))
    path = tmp_path / "state.npz"
    save(path, TOPIC, _Capture(index.to_arrays(), [], {}))
    snapshot = load(path, TOPIC, CONFIG)
    assert snapshot is not None
    for i, body in enumerate(_bodies(40, seed=2)):
        assert snapshot.index.query(_sig(body)) == index.query(_sig(body)), i
    assert "article number 39" in snapshot.index


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    running, _ = filled(120, seed=4)
    path = tmp_path / "state.npz"
    save(path, TOPIC, capture(running, {0: 99}))
    return path


def _flip(path: Path, at: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("at", [0.1, 0.5, 0.9])
def test_a_flipped_bit_is_noticed_and_the_snapshot_not_used(
    saved: Path, at: float, caplog: pytest.LogCaptureFixture
) -> None:
    _flip(saved, at)
    with caplog.at_level(logging.WARNING):
        assert load(saved, TOPIC, CONFIG) is None
    assert "unusable" in caplog.text and "whole window" in caplog.text


def test_a_truncated_snapshot_is_not_used(saved: Path, caplog: pytest.LogCaptureFixture) -> None:
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        assert load(saved, TOPIC, CONFIG) is None
    assert "unusable" in caplog.text


def test_a_snapshot_of_other_parameters_or_another_topic_is_not_used(
    saved: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert load(saved, TOPIC, NearDupConfig(window=timedelta(days=7))) is None
        assert load(saved, "other.dedupe-state", CONFIG) is None
    assert "expected" in caplog.text and "not 'other.dedupe-state'" in caplog.text
    assert load(saved, TOPIC, CONFIG) is not None


def test_no_snapshot_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert load(tmp_path / "none.npz", TOPIC, CONFIG) is None
    assert "none at" in caplog.text


def test_a_save_replaces_the_file_whole_and_keeps_a_newer_one(saved: Path) -> None:
    running, _ = filled(10, seed=5)
    # An older state (a standby that read less) never replaces a newer snapshot.
    assert save(saved, TOPIC, capture(running, {0: 50})) == 0
    assert offsets_of(saved, TOPIC) == {0: 99}
    assert save(saved, TOPIC, capture(running, {0: 150})) > 0
    assert offsets_of(saved, TOPIC) == {0: 150}
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no partial file left


def test_the_sink_writes_when_due_and_on_close(tmp_path: Path) -> None:
    running, _ = filled(30, seed=6)
    assert isinstance(running.state, InMemoryDedupeState) and running.near is not None
    now = [0.0]
    offsets = {0: 10}
    path = tmp_path / "snap" / "state.npz"
    sink = SnapshotSink(
        path, TOPIC, 60.0, lambda: (running.near, running.state, offsets), lambda: now[0]
    )
    sink.write([])
    sink.flush()
    sink.tick()
    assert not path.exists()  # not due yet
    now[0] = 61.0
    sink.flush()
    assert not path.exists()  # due, but the batch is not committed yet
    sink.tick()
    assert sink._thread is not None
    sink._thread.join()
    assert offsets_of(path, TOPIC) == {0: 10}
    offsets[0] = 20
    sink.flush()
    sink.tick()  # changed, not due: written on close
    sink.close()
    assert offsets_of(path, TOPIC) == {0: 20} and sink.written == 2


def test_no_snapshot_while_the_topic_lacks_part_of_the_state(tmp_path: Path) -> None:
    running, _ = filled(10, seed=7)
    assert isinstance(running.state, InMemoryDedupeState) and running.near is not None
    settled = [False]
    path = tmp_path / "state.npz"
    sink = SnapshotSink(
        path,
        TOPIC,
        1e-6,
        lambda: (running.near, running.state, {0: 5}) if settled[0] else None,
    )
    sink.flush()
    sink.tick()  # a batch open or aborted: nothing captured
    sink.close()
    assert not path.exists() and sink.written == 0
    settled[0] = True
    sink.close()  # still changed: the stop writes it now
    assert offsets_of(path, TOPIC) == {0: 5} and sink.written == 1
