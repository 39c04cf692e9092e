"""Per-feed poller state in memory, optionally saved to a JSON file.

The state of every feed (validators, body hash, seen items, health counters,
interval and next due time; :class:`pipeline.schedule.FeedState`) lives in
memory. The pipeline keeps it in Kafka instead, so that poller instances can
hand feeds to each other (:class:`connectors.feed_shards.KafkaFeedStateStore`,
a subclass). Given a path, this store writes it to that file: at most every
``save_every`` seconds while polling, and on :meth:`FeedStateStore.save`. The
write goes to a temporary file that is then renamed over the old one, so a
crash leaves either the old or the new state, never half of one. A file that
cannot be read (corrupt, or from an incompatible version) is logged and
ignored: the poller starts cold rather than not at all.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.schedule import FeedState

if TYPE_CHECKING:
    from .kafka import Producer

__all__ = ["FeedStateStore", "state_from_json"]

log = logging.getLogger(__name__)

_VERSION = 1
_FIELDS = {f.name for f in fields(FeedState)}


def state_from_json(raw: dict[str, Any]) -> FeedState:
    """A :class:`FeedState` from its JSON form; unknown keys are ignored."""
    data = {k: v for k, v in raw.items() if k in _FIELDS}
    data["new_item_times"] = tuple(data.get("new_item_times") or ())
    return FeedState(**data)


class FeedStateStore:
    """Thread-safe map of feed URL to :class:`FeedState`, backed by a JSON file."""

    def __init__(self, path: Path | None, save_every: float = 10.0) -> None:
        self.path = path
        self.save_every = save_every
        self._lock = threading.Lock()
        self._states: dict[str, FeedState] = {}
        self._dirty = False
        self._saved_at = time.monotonic()
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("version") != _VERSION:
                raise ValueError(f"version {raw.get('version')!r}")
            self._states = {url: state_from_json(s) for url, s in raw["feeds"].items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable poller state %s: %s", path, exc)

    def get(self, url: str) -> FeedState:
        with self._lock:
            return self._states.get(url) or FeedState(url=url)

    def put(self, state: FeedState) -> None:
        with self._lock:
            self._states[state.url] = state
            self._dirty = True
        if self._due():
            self.save()

    def put_with(self, state: FeedState, producer: Producer) -> bool:
        """Send ``state`` on ``producer`` (in its open transaction, beside the items
        the poll published) and return True; memory is left to :meth:`remember`,
        once the transaction is committed. Here (a file) there is nothing to send."""
        return False

    def remember(self, state: FeedState) -> None:
        """Keep ``state`` in memory only: it was written with :meth:`put_with`."""
        with self._lock:
            self._states[state.url] = state
            self._dirty = True

    def _due(self) -> bool:
        return time.monotonic() - self._saved_at >= self.save_every

    def _mark_saved(self) -> None:
        self._saved_at = time.monotonic()

    def all(self) -> dict[str, FeedState]:
        with self._lock:
            return dict(self._states)

    def save(self) -> None:
        """Write the state now if anything changed (atomic rename)."""
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            payload = {
                "version": _VERSION,
                "feeds": {url: asdict(s) for url, s in self._states.items()},
            }
            self._dirty = False
            self._saved_at = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)
