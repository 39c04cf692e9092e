"""A stage's recent throughput, carried in the metadata of its offset commits.

Kafka keeps a short string with every committed offset. A stage worker writes
there, per partition, an earlier point of its own progress: the offset it had
committed about a minute before, and when. Anyone who can read the group's
offsets (``rasd status``) then has the group's messages per second over the
last minute, whichever process or machine did the work, with no other store.

The form is ``rate:<base epoch seconds>:<base offset>:<commit epoch seconds>``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

__all__ = ["WINDOW", "CommitSample", "RateWindow", "recent_rate"]

#: Seconds over which the rate is taken.
WINDOW = 60.0
_PREFIX = "rate:"


@dataclass(frozen=True)
class CommitSample:
    """What a commit's metadata says: the base point and the commit's own time."""

    base_time: float
    base_offset: int
    commit_time: float

    def encode(self) -> str:
        return f"{_PREFIX}{self.base_time:.1f}:{self.base_offset}:{self.commit_time:.1f}"

    @classmethod
    def decode(cls, metadata: str) -> CommitSample | None:
        """The sample in ``metadata``; None for an empty or foreign string."""
        if not metadata.startswith(_PREFIX):
            return None
        try:
            base_time, base_offset, commit_time = metadata[len(_PREFIX) :].split(":")
            return cls(float(base_time), int(base_offset), float(commit_time))
        except ValueError:
            return None


class RateWindow:
    """The commits of one partition over the last :data:`WINDOW` seconds."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._points: deque[tuple[float, int]] = deque()

    def commit(self, offset: int, now: float | None = None) -> str:
        """Note a commit of ``offset``; the metadata to commit it with."""
        now = time.time() if now is None else now
        if not self._points:
            self._points.append((now, offset))  # the first commit is its own base
        # Keep one point at or before the window's start as the base.
        while len(self._points) > 1 and self._points[1][0] <= now - self.window:
            self._points.popleft()
        base_time, base_offset = self._points[0]
        self._points.append((now, offset))
        return CommitSample(base_time, base_offset, now).encode()


def recent_rate(committed: int | None, metadata: str, now: float | None = None) -> float:
    """Messages per second over the last minute, from one partition's commit."""
    sample = CommitSample.decode(metadata)
    if sample is None or committed is None:
        return 0.0
    now = time.time() if now is None else now
    if sample.commit_time < now - WINDOW:
        return 0.0  # nothing committed in the last minute
    # Both times are the worker's clock: a skew with the reader's does not matter.
    span = max(sample.commit_time - sample.base_time, WINDOW)
    return max(0, committed - sample.base_offset) / span
