"""What an operator scrapes: ``/metrics``, ``/healthz`` and ``/readyz`` on one port.

:class:`Telemetry` serves a process's :class:`connectors.metrics.Stats`
registry over HTTP (``RASD_METRICS_PORT``, ``RASD_METRICS_ADDRESS``) in a
thread of its own, next to two health endpoints:

``/healthz``
    200 while every loop of the process (each stage worker, the poller) has
    turned within ``RASD_HEALTH_STALL_SECONDS``; 503 naming the stalled ones.
    For a liveness probe (compose marks the container unhealthy; Kubernetes,
    or an autoheal container, restarts it).
``/readyz``
    200 once every loop the process runs has started and is a member of its
    consumer group (a standby with no partition counts), and Kafka and
    Elasticsearch answer; 503 naming what is missing.

Prometheus sees the same: ``rasd_loop_heartbeat_timestamp_seconds{loop}`` is
when each loop last turned.

Both answer a small JSON object. The collectors here are read at scrape time:
the consumer lag of the process's groups (:class:`LagCollector`) and the
health of the feeds it polls (:class:`FeedHealthCollector`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from kafka import KafkaAdminClient
from prometheus_client import make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.errors import ConfigError
from pipeline.schedule import FeedState

from .kafka import Bootstrap, group_offsets, new_admin, quick
from .metrics import Stats

__all__ = [
    "FeedHealthCollector",
    "KafkaProbe",
    "LagCollector",
    "Loop",
    "Telemetry",
    "feed_health",
]

log = logging.getLogger(__name__)


class Loop(Protocol):
    """A loop the health endpoints watch: a stage worker, a poller instance."""

    heartbeat: float
    ready: threading.Event


# --- collectors read at scrape time --------------------------------------------------


class LagCollector(Collector):
    """``rasd_consumer_lag{group,topic,partition}``: records not yet committed.

    A thread of its own reads the lag every ``every`` seconds through one admin
    client (made again after a failure), so a scrape only reads the last answer
    and never waits on Kafka. ``rasd_consumer_lag_up`` is 0, and no lag is
    served, when the last read failed or is older than three periods.
    """

    def __init__(
        self, bootstrap: Bootstrap, groups: Callable[[], dict[str, str]], every: float = 5.0
    ) -> None:
        self.bootstrap, self.groups, self.every = bootstrap, groups, every
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        self._rows: list[Any] = []
        self._read_at: float | None = None
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to register up front

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="lag", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.every)

    def refresh(self) -> None:
        """Read the lag now (the thread does it every period)."""
        try:
            if self._admin is None:
                self._admin = new_admin(
                    quick(self.bootstrap), client_id="rasd-metrics", request_timeout_ms=5000
                )
            rows = group_offsets(self._admin, self.groups())
        except Exception as exc:
            if not self._failing:  # once per outage, not every period
                log.warning("consumer lag unavailable: %s", exc)
            self._failing = True
            self._close_admin()
            return
        self._failing = False
        with self._lock:
            self._rows, self._read_at = rows, time.monotonic()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            rows, read_at = self._rows, self._read_at
        fresh = read_at is not None and time.monotonic() - read_at < 3 * self.every
        up = GaugeMetricFamily(
            "rasd_consumer_lag_up", "1 if the consumer lag was read in the last three periods."
        )
        up.add_metric([], 1 if fresh else 0)
        yield up
        if not fresh:
            return
        lag = GaugeMetricFamily(
            "rasd_consumer_lag",
            "Records in a partition not yet committed by the stage's consumer group.",
            labels=("group", "topic", "partition"),
        )
        for row in rows:
            lag.add_metric([row.group, row.topic, str(row.partition)], row.lag)
        yield lag

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._close_admin()

    def _close_admin(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:
                log.debug("closing the admin client failed", exc_info=True)
            self._admin = None


def feed_health(state: FeedState) -> str:
    """``dead``, ``failing`` (its last poll failed) or ``ok``."""
    if state.dead:
        return "dead"
    return "failing" if state.consecutive_failures else "ok"


class FeedHealthCollector(Collector):
    """``rasd_feeds{state}`` and ``rasd_feed_last_new_item_timestamp_seconds{feed}``
    of the feeds this process polls."""

    def __init__(self, states: Callable[[], Iterable[FeedState]]) -> None:
        self.states = states

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        counts = dict.fromkeys(("ok", "failing", "dead"), 0)
        since = GaugeMetricFamily(
            "rasd_feed_last_new_item_timestamp_seconds",
            "When a feed last listed an item rasd had not seen (Unix time).",
            labels=("feed",),
        )
        for state in list(self.states()):
            counts[feed_health(state)] += 1
            if state.new_item_times:
                since.add_metric([state.url], max(state.new_item_times))
        feeds = GaugeMetricFamily(
            "rasd_feeds", "Feeds polled by this process, by health.", labels=("state",)
        )
        for name, n in counts.items():
            feeds.add_metric([name], n)
        yield feeds
        yield since


class KafkaProbe:
    """Whether the brokers answer, through one admin client kept between probes."""

    def __init__(self, bootstrap: Bootstrap) -> None:
        self.bootstrap = bootstrap
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        with self._lock:
            try:
                if self._admin is None:
                    self._admin = new_admin(
                        quick(self.bootstrap), client_id="rasd-health", request_timeout_ms=5000
                    )
                brokers = self._admin.describe_cluster().get("brokers") or []
            except Exception as exc:
                self.close()
                return f"unreachable at {self.bootstrap} ({type(exc).__name__}: {exc})"
        return None if brokers else "no broker in the cluster"

    def close(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:
                log.debug("closing the admin client failed", exc_info=True)
            self._admin = None


# --- the HTTP server ---------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


@dataclass
class Telemetry:
    """The metrics and health endpoints of one process."""

    stats: Stats
    #: The loops of the process, read at each probe (workers may be started later).
    loops: Callable[[], Iterable[Loop]] = lambda: ()
    #: Named checks for ``/readyz``: each returns None when fine, else what is wrong.
    checks: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    stall_seconds: float = 600.0
    check_ttl: float = 5.0
    #: How many loops the process will run: until they exist it is "starting".
    expected: int = 0
    _server: WSGIServer | None = None
    _checked: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    def start(self, address: str, port: int) -> int:
        """Serve on ``address:port`` (0: any free port); the port it listens on."""
        self.stats.register(_Heartbeats(self.loops))
        metrics = make_wsgi_app(self.stats.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            path = environ.get("PATH_INFO", "")
            if path == "/healthz":
                return self._answer(start_response, self.health())
            if path == "/readyz":
                return self._answer(start_response, self.readiness())
            if path == "/metrics" or path == "/":
                return metrics(environ, start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics, /healthz or /readyz\n"]

        try:
            self._server = make_server(
                address, port, app, server_class=_Server, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {address}:{port}: {exc.strerror or exc} "
                "(set RASD_METRICS_PORT to a free port, or 0 for none)"
            ) from exc
        thread = threading.Thread(target=self._server.serve_forever, name="telemetry", daemon=True)
        thread.start()
        bound = int(self._server.server_address[1])
        log.info("metrics on http://%s:%d/metrics (and /healthz, /readyz)", address, bound)
        return bound

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- health ----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        stalled = [
            f"{_name(loop)} has not turned for {now - loop.heartbeat:.0f}s"
            for loop in self.loops()
            if now - loop.heartbeat > self.stall_seconds
        ]
        return {"ok": not stalled, "problems": stalled}

    def readiness(self) -> dict[str, Any]:
        loops = list(self.loops())
        problems = []
        if len(loops) < self.expected:
            problems.append(f"starting: {len(loops)} of {self.expected} loop(s) running")
        problems += [
            f"{_name(loop)} is not a member of its group"
            for loop in loops
            if not loop.ready.is_set()
        ]
        problems += [f"{name}: {wrong}" for name, wrong in self._run_checks() if wrong]
        health = self.health()
        problems += health["problems"]
        return {"ok": not problems, "problems": problems}

    def _run_checks(self) -> Iterator[tuple[str, str | None]]:
        now = time.monotonic()
        for name, check in self.checks.items():
            cached = self._checked.get(name)
            if cached is None or now - cached[0] >= self.check_ttl:
                try:
                    wrong = check()
                except Exception as exc:
                    wrong = f"{type(exc).__name__}: {exc}"
                cached = self._checked[name] = (now, wrong)
            yield name, cached[1]

    @staticmethod
    def _answer(start_response: Callable[..., Any], verdict: dict[str, Any]) -> list[bytes]:
        status = "200 OK" if verdict["ok"] else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(verdict, ensure_ascii=False).encode() + b"\n"]


class _Heartbeats(Collector):
    """``rasd_loop_heartbeat_timestamp_seconds{loop}``: when each loop last turned."""

    def __init__(self, loops: Callable[[], Iterable[Loop]]) -> None:
        self.loops = loops

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        beats = GaugeMetricFamily(
            "rasd_loop_heartbeat_timestamp_seconds",
            "When a loop of this process (a stage worker, the poller) last turned (Unix time).",
            labels=("loop",),
        )
        wall, mono = time.time(), time.monotonic()
        for loop in list(self.loops()):
            beats.add_metric([_name(loop)], wall - (mono - loop.heartbeat))
        yield beats


def _name(loop: Loop) -> str:
    return str(getattr(loop, "stage", None) or getattr(loop, "name", "loop"))
