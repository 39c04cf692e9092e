"""Per-host politeness shared by feed polls and article fetches, and robots.txt.

One :class:`HostPoliteness` sits in front of the single
:class:`~connectors.http.GuardedClient` of a process, so a feed and its
articles (usually one host) share one budget: at most ``max_per_host``
requests in flight per host, starts at least ``min_spacing`` seconds apart,
and after a 429 or 503 the host is paused for ``max(Retry-After,
pause_after_throttle)``. A fetch to a paused host fails at once with a
retriable ``host_paused`` error carrying the remaining pause as
``retry_after`` instead of blocking a worker thread; the poller then backs
that feed off and the extract worker retries the item later. The spacing wait
is a short sleep in the calling thread, which is what makes it a limit.

:class:`RobotsPolicy` answers "may rasd fetch this article URL?" from each
host's ``/robots.txt`` (parsed by ``protego``, which follows RFC 9309:
wildcards, ``$`` and the longest matching rule, which the standard library's
parser misreads, e.g. ``Disallow: /*?print=``; cached for
``ttl`` seconds). It is used for article fetches only: feeds are published to
be polled. A missing robots.txt (4xx) allows everything; one that cannot be
fetched (5xx, timeout) allows too, and is asked again after ``retry`` seconds,
because refusing every article of an outlet on one bad answer loses news.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

from pipeline.errors import PermanentError, RetriableError

from .http import DEFAULT_ACCEPT, FetchResult, GuardedClient, HttpRetriableError

__all__ = ["HostPoliteness", "RobotsPolicy"]

_THROTTLED = (429, 503)


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")


@dataclass
class _Host:
    slots: threading.Semaphore
    next_start: float = 0.0
    paused_until: float = 0.0


class HostPoliteness:
    """Concurrency, spacing and throttle pauses per host; see the module docstring."""

    def __init__(
        self,
        max_per_host: int = 2,
        min_spacing: float = 0.5,
        pause_after_throttle: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_per_host = max_per_host
        self.min_spacing = min_spacing
        self.pause_after_throttle = pause_after_throttle
        self.clock = clock
        self.sleep = sleep
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()

    def _host(self, host: str) -> _Host:
        with self._lock:
            state = self._hosts.get(host)
            if state is None:
                state = self._hosts[host] = _Host(threading.Semaphore(self.max_per_host))
            return state

    def paused_for(self, url: str) -> float:
        """Seconds the host of ``url`` stays paused (0: not paused)."""
        return max(0.0, self._host(host_of(url)).paused_until - self.clock())

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        host = self._host(host_of(url))
        remaining = host.paused_until - self.clock()
        if remaining > 0:
            raise HttpRetriableError("host_paused", url, retry_after=remaining)
        with host.slots:
            with self._lock:
                start = max(self.clock(), host.next_start)
                host.next_start = start + self.min_spacing
            wait = start - self.clock()
            if wait > 0:
                self.sleep(wait)
            yield

    def throttled(self, url: str, retry_after: float | None) -> None:
        host = self._host(host_of(url))
        pause = max(retry_after or 0.0, self.pause_after_throttle)
        with self._lock:
            host.paused_until = max(host.paused_until, self.clock() + pause)

    def fetch(
        self,
        http: GuardedClient,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        accept: str = DEFAULT_ACCEPT,
    ) -> FetchResult:
        """``http.fetch`` under this host's limits."""
        with self.slot(url):
            try:
                return http.fetch(url, headers=headers, accept=accept)
            except HttpRetriableError as exc:
                if exc.status in _THROTTLED:
                    self.throttled(url, exc.retry_after)
                raise


class RobotsPolicy:
    """Cached robots.txt verdicts per host, for article fetches."""

    def __init__(
        self,
        http: GuardedClient,
        user_agent: str,
        *,
        enabled: bool = True,
        ttl: float = 3600.0,
        retry: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.user_agent = user_agent
        self.enabled = enabled
        self.ttl = ttl
        self.retry = retry
        self.clock = clock
        self._cache: dict[str, tuple[float, Protego | None]] = {}
        self._lock = threading.Lock()

    def _rules(self, url: str) -> Protego | None:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        rules: Protego | None = None
        expires = self.clock() + self.ttl
        try:
            page = self.http.fetch(f"{key}/robots.txt", accept="text/plain, */*;q=0.1")
            rules = Protego.parse(page.content.decode("utf-8", "replace"))
        except PermanentError:
            rules = None  # no robots.txt (4xx): everything is allowed
        except RetriableError:
            expires = self.clock() + self.retry
        with self._lock:
            self._cache[key] = (expires, rules)
        return rules

    def allowed(self, url: str) -> bool:
        if not self.enabled:
            return True
        rules = self._rules(url)
        return True if rules is None else bool(rules.can_fetch(url, self.user_agent))
