"""The cluster worker's window on local disk: exact keys and near-duplicate index in one
SQLite file, written only when flushed, forgotten when not, one process at a time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.dedupe_store import DiskDedupeStore, StoreBusyError, store_path
from pipeline.dedupe import DedupeEntry, Deduper, InMemoryDedupeState, sign
from pipeline.neardup import NearDupConfig, NearDuplicateIndex

from .helpers import article
from .test_dedupe import _bodies

CONFIG = NearDupConfig(window=timedelta(days=2))


def _entry(i: int) -> DedupeEntry:
    return DedupeEntry(f"a{i}", f"c{i}", "near", f"a{i - 1}", "2026-12-01T10:00:00+00:00", "x", "s")


def test_entries_are_kept_once_and_only_once_flushed(tmp_path: Path) -> None:
    path = store_path(tmp_path, "ns.dedupe-state")
    store = DiskDedupeStore(path, CONFIG)
    assert store.offsets() is None
    first = store.keys.put("url", "k1", _entry(1))
    assert first == _entry(1)
    # Put-if-absent, from the buffer and then from the file.
    assert store.keys.put("url", "k1", _entry(2)) == _entry(1)
    store.flush({0: 7})
    assert store.pending() == 0
    assert store.keys.put("url", "k1", _entry(3)) == _entry(1)
    assert store.keys.get("body", "k1") is None
    store.keys.put("body", "k2", _entry(4))
    store.close()  # k2 never flushed: forgotten

    again = DiskDedupeStore(path, CONFIG)
    assert again.offsets() == {0: 7}
    assert again.keys.get("url", "k1") == _entry(1)
    assert again.keys.get("body", "k2") is None
    assert len(again.keys) == 1
    again.close()


def test_a_second_process_on_the_file_is_refused(tmp_path: Path) -> None:
    path = store_path(tmp_path, "ns.dedupe-state")
    with pytest.raises(StoreBusyError, match="RASD_DEDUPE_SNAPSHOT_DIR"):
        store = DiskDedupeStore(path, CONFIG)
        try:
            DiskDedupeStore(path, CONFIG)
        finally:
            store.close()
    DiskDedupeStore(path, CONFIG).close()  # free again once closed


def test_exact_keys_leave_with_their_day(tmp_path: Path) -> None:
    store = DiskDedupeStore(store_path(tmp_path, "t"), CONFIG)
    now = time.time()
    store.keys.put("url", "old", _entry(1), at=now - 4 * 86_400)
    store.keys.put("url", "new", _entry(2), at=now)
    store.flush({0: 2})
    assert store.keys.get("url", "old") is None
    assert store.keys.get("url", "new") == _entry(2)
    tables = {
        name
        for (name,) in store.near.connection.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'keys_%'"
        )
    }
    assert tables == {f"keys_{int(now // 86_400)}"}  # the old day's table is dropped
    store.close()


def test_the_deduper_decides_from_the_file_as_from_memory(tmp_path: Path) -> None:
    """The verdicts of 300 articles with the window on disk, flushed every 25 and
    reopened halfway, equal those of the in-process state and index."""
    now = datetime.now(UTC)
    signed = []
    for i, body in enumerate(_bodies(300, seed=5)):
        a = article(f"https://example.org/s/{i % 280}", body=body)  # 20 re-deliveries
        a = a.model_copy(update={"first_seen": now - timedelta(minutes=300 - i)})
        signed.append(sign(a, NearDupConfig()))
    memory = Deduper(InMemoryDedupeState(), NearDuplicateIndex(NearDupConfig()))
    path = store_path(tmp_path, "t")
    store = DiskDedupeStore(path, NearDupConfig())
    disk = Deduper(store.keys, store.near)
    kinds = []
    for i, s in enumerate(signed):
        if i == 150:
            store.close()
            store = DiskDedupeStore(path, NearDupConfig())
            disk = Deduper(store.keys, store.near)
        want = memory.check(s, memory.keys_of(s))
        got = disk.check(s, disk.keys_of(s))
        assert (got.duplicate_kind, got.cluster_id, got.duplicate_of) == (
            want.duplicate_kind,
            want.cluster_id,
            want.duplicate_of,
        ), i
        kinds.append(want.duplicate_kind)
        if i % 25 == 24:
            store.flush({0: i})
    store.close()
    assert kinds.count("near") > 20 and kinds.count(None) > 50


def test_the_store_is_used_by_the_thread_that_runs_the_stage(tmp_path: Path) -> None:
    """Made where the stage is built (``rasd run``: the main thread), used by the
    worker's thread."""
    import threading

    store = DiskDedupeStore(store_path(tmp_path, "t"), CONFIG)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            store.keys.put("url", "k", _entry(1))
            store.flush({0: 1})
            assert store.keys.get("url", "k") == _entry(1)
        except BaseException as exc:  # reported to the test's thread
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert errors == []
    assert store.offsets() == {0: 1}
    store.close()
