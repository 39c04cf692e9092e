"""Per-host politeness (concurrency, spacing, throttle pause) and robots.txt."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from connectors.http import GuardedClient, HttpRetriableError
from connectors.politeness import HostPoliteness, RobotsPolicy

from .test_poll import UA, FeedServer, Rig, arabic_items, rss, send, static


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_429_pauses_the_whole_host_for_feeds_and_articles(
    server: FeedServer, tmp_path: Path
) -> None:
    rig = Rig(server, tmp_path)
    polite = HostPoliteness(max_per_host=2, min_spacing=0.0, pause_after_throttle=600)
    rig.poller = rig.make(politeness=polite)
    server.routes["/busy"] = static(b"", "text/plain", 429, {"Retry-After": "5"})
    server.routes["/ok"] = static(rss(arabic_items(1)).encode())
    assert rig.poll("/busy").outcome == "http_429"
    second = rig.poll("/ok")  # same host: not even asked
    assert (second.ok, second.outcome) == (False, "host_paused")
    assert server.hits("/ok") == []
    with pytest.raises(HttpRetriableError) as err:
        polite.fetch(rig.http, server.url("/article"))
    assert err.value.reason == "host_paused" and err.value.retry_after is not None
    assert err.value.retry_after > 500  # the longer pause wins over Retry-After: 5
    rig.http.close()


def test_concurrency_per_host_is_capped(server: FeedServer) -> None:
    active = [0, 0]  # current, peak
    lock = threading.Lock()

    def slow(h: BaseHTTPRequestHandler) -> None:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        send(h, 200, b"ok", "text/plain")

    server.routes["/slow"] = slow
    polite = HostPoliteness(max_per_host=2, min_spacing=0.0)
    with GuardedClient(UA, allow_private_networks=True) as http:
        threads = [
            threading.Thread(target=polite.fetch, args=(http, server.url("/slow")))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert active[1] == 2


def test_min_spacing_waits_between_starts() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    polite = HostPoliteness(min_spacing=2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        with polite.slot("https://a.example/x"):
            pass
    with polite.slot("https://b.example/x"):  # another host does not wait
        pass
    assert slept == [2.0, 2.0]


def test_robots_txt_is_obeyed_for_articles(server: FeedServer) -> None:
    server.routes["/robots.txt"] = static(b"User-agent: *\nDisallow: /private/\n", "text/plain")
    with GuardedClient(UA, allow_private_networks=True) as http:
        robots = RobotsPolicy(http, "rasd")
        assert robots.allowed(server.url("/news/1"))
        assert not robots.allowed(server.url("/private/1"))
        assert len(server.hits("/robots.txt")) == 1  # cached
        assert RobotsPolicy(http, "rasd", enabled=False).allowed(server.url("/private/1"))


def test_robots_wildcards_and_the_longest_rule(server: FeedServer) -> None:
    # The standard library's parser reads "/*?print=" literally and lets every
    # print page through, and it takes the first matching line, not the longest.
    server.routes["/robots.txt"] = static(
        b"User-agent: *\nDisallow: /*?print=\nDisallow: /news/\nAllow: /news/2026/\n"
        b"Disallow: /*.pdf$\n",
        "text/plain",
    )
    with GuardedClient(UA, allow_private_networks=True) as http:
        robots = RobotsPolicy(http, "rasd")
        assert not robots.allowed(server.url("/sy/article-1?print=1"))
        assert robots.allowed(server.url("/sy/article-1?page=2"))
        assert not robots.allowed(server.url("/news/old"))
        assert robots.allowed(server.url("/news/2026/caesar"))  # the longer Allow wins
        assert not robots.allowed(server.url("/files/report.pdf"))
        assert robots.allowed(server.url("/files/report.pdf.html"))


def test_missing_robots_txt_allows_everything(server: FeedServer) -> None:
    with GuardedClient(UA, allow_private_networks=True) as http:
        assert RobotsPolicy(http, "rasd").allowed(server.url("/private/1"))
