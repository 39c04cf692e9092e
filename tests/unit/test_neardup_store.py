"""The near-duplicate index on local disk (SQLite): the in-process index's answers,
a file that follows the window, and a flush that is all or nothing."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from connectors.neardup_store import DiskNearDuplicateIndex
from pipeline.neardup import NearDupConfig, NearDuplicateIndex, signature, words_of

from .helpers import SEEN
from .test_dedupe import _bodies


class Small(DiskNearDuplicateIndex):
    BUFFER = 16


def test_the_disk_index_answers_as_the_compact_index_does(tmp_path: Path) -> None:
    config = NearDupConfig(window=timedelta(hours=30))
    disk, memory = Small(tmp_path / "near.db", config), NearDuplicateIndex(config)
    answers = excluded = 0
    for i, body in enumerate(_bodies(400, seed=3)):
        sig = signature(words_of(body), config)
        assert sig is not None
        # Event time moves an hour per article (so days leave the window), with
        # some late arrivals.
        when = SEEN + timedelta(hours=i - (5 if i % 7 == 0 else 0))
        got, want = disk.query(sig), memory.query(sig)
        assert got == want, i
        answers += want is not None
        if want is not None:
            # The article itself left out, as the stage asks for a redelivered one.
            assert disk.query(sig, exclude=want.article_id) == memory.query(
                sig, exclude=want.article_id
            ), i
            excluded += 1
        cluster = want.cluster_id if want is not None else f"c{i}"
        disk.add(f"a{i}", cluster, sig, when)
        memory.add(f"a{i}", cluster, sig, when)
        assert len(disk) == len(memory), i
    assert answers > 50 and excluded == answers


def test_the_file_follows_the_window(tmp_path: Path) -> None:
    config = NearDupConfig(window=timedelta(days=2))
    rng = np.random.default_rng(1)
    with Small(tmp_path / "near.db", config) as index:
        for hour in range(24 * 20):
            index.add(
                f"a{hour}",
                f"a{hour}",
                rng.integers(0, 2**32, 128, dtype=np.uint32),
                SEEN + timedelta(hours=hour),
            )
        index.flush()
        assert len(index) == 49
    tables = sqlite3.connect(tmp_path / "near.db").execute(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name LIKE 'articles_%'"
    )
    # The two days of the window and the one it straddles, not twenty.
    assert tables.fetchone()[0] <= 3


def test_only_what_was_flushed_is_there_after_a_reopen(tmp_path: Path) -> None:
    config = NearDupConfig()
    sigs = [signature(words_of(b), config) for b in _bodies(40, seed=7)]
    with DiskNearDuplicateIndex(tmp_path / "near.db", config) as index:
        for i, sig in enumerate(sigs[:30]):
            assert sig is not None
            index.add(f"a{i}", f"a{i}", sig, SEEN + timedelta(minutes=i))
        index.flush({"offset": "30"})
        for i, sig in enumerate(sigs[30:], start=30):
            assert sig is not None
            index.add(f"a{i}", f"a{i}", sig, SEEN + timedelta(minutes=i))
        assert len(index) == 40
        # Closed without a flush, as a crash would leave it.
    with DiskNearDuplicateIndex(tmp_path / "near.db", config) as again:
        assert again.meta("offset") == "30"
        assert len(again) == 30
        first = sigs[0]
        assert first is not None
        match = again.query(first)
        assert match is not None and match.article_id == "a0" and match.similarity == 1.0


def test_a_file_of_other_parameters_is_refused(tmp_path: Path) -> None:
    DiskNearDuplicateIndex(tmp_path / "near.db", NearDupConfig()).close()
    with pytest.raises(ValueError, match="layout"):
        DiskNearDuplicateIndex(tmp_path / "near.db", NearDupConfig(window=timedelta(days=1)))


def test_ties_go_to_the_earliest_then_the_smallest_id(tmp_path: Path) -> None:
    config = NearDupConfig()
    sig = signature(words_of(_bodies(1, seed=9)[0]), config)
    assert sig is not None
    with Small(tmp_path / "near.db", config) as disk:
        memory = NearDuplicateIndex(config)
        for index in (disk, memory):
            index.add("z-early", "c1", sig, SEEN)
            index.add("b-late", "c2", sig, SEEN + timedelta(minutes=1))
            index.add("a-late", "c3", sig, SEEN + timedelta(minutes=1))
        disk.flush()
        for exclude, want in ((None, "z-early"), ("z-early", "a-late")):
            match = disk.query(sig, exclude=exclude)
            assert match is not None and match.article_id == want
            assert match == memory.query(sig, exclude=exclude)
