"""The poller against a local server that plays what real feed servers do.

Each route of :class:`FeedServer` is one behaviour a real feed server shows (304 flows and
lying validators, Retry-After, 429/500, timeouts and a slow drip, redirect
chains and loops, gzip, windows-1256 without a charset, a wrong charset, a BOM,
bozo XML, HTML instead of a feed, empty feeds, Atom relative links, a 500-item
RSS). Feed documents are built in this file; nothing is copied from elsewhere.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.feed_state import FeedStateStore
from connectors.http import GuardedClient
from connectors.metrics import Stats
from connectors.poller import FeedPoller, FeedScheduler, feed_hints
from pipeline.feeds import Feed
from pipeline.schedule import ScheduleBounds

UA = "rasd-test/0.1"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Handler = Callable[[BaseHTTPRequestHandler], None]


def rss(items: list[tuple[str, str]], *, extra: str = "", encoding: str = "utf-8") -> str:
    body = "".join(
        f"<item><title>{title}</title><link>{link}</link>"
        f"<description>ملخص {title}</description>"
        "<pubDate>Sun, 01 Mar 2026 10:00:00 GMT</pubDate></item>"
        for title, link in items
    )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
        f"<title>قناة</title><link>https://news.example/</link>{extra}{body}</channel></rss>"
    )


def arabic_items(n: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"خبر عاجل رقم {i}", f"https://news.example/a/{i}") for i in range(start, start + n)]


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        server = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server.lock:
                    server.requests.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()})
                    )
                route = server.routes.get(self.path)
                if route is None:
                    send(self, 404, b"not found", "text/plain")
                else:
                    route(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), H)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def hits(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for p, h in self.requests if p == path]


def send(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    ctype: str | None = "application/rss+xml; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    h.send_response(status)
    if ctype:
        h.send_header("Content-Type", ctype)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def static(body: bytes, ctype: str | None = "application/rss+xml; charset=utf-8", status: int = 200,
           headers: dict[str, str] | None = None) -> Handler:  # fmt: skip
    return lambda h: send(h, status, body, ctype, headers)


class FakeSink:
    transactional = False

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, topic: str, key: str, value: Any) -> None:
        self.sent.append((topic, key))

    def flush(self) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


class Rig:
    def __init__(self, server: FeedServer, tmp: Path, **bounds: Any) -> None:
        self.server = server
        self.sink = FakeSink()
        self.stats = Stats()
        self.http = GuardedClient(UA, allow_private_networks=True, timeout=2.0, read_timeout=1.0)
        self.now = NOW
        self.bounds = ScheduleBounds(min_interval=60, **bounds)
        self.store = FeedStateStore(tmp / "state.json")
        self.poller = self.make()

    def make(self, **kwargs: Any) -> FeedPoller:
        return FeedPoller(
            self.http, self.sink, "t4.items", "t4", self.stats, lambda: self.now,  # type: ignore[arg-type]
            state=self.store, bounds=self.bounds, **kwargs,
        )  # fmt: skip

    def feed(self, path: str) -> Feed:
        return Feed(url=self.server.url(path), name=path, outlet="t", country="sy")

    def poll(self, path: str) -> Any:
        return self.poller.poll(self.feed(path))


@pytest.fixture
def rig(server: FeedServer, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(server, tmp_path)
    yield r
    r.http.close()


def test_etag_304_flow_sends_validators_and_nothing_new(rig: Rig) -> None:
    body = rss(arabic_items(3)).encode()

    def etag(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            send(h, 304, b"", None, {"ETag": '"v1"'})
        else:
            send(
                h,
                200,
                body,
                headers={"ETag": '"v1"', "Last-Modified": "Sun, 01 Mar 2026 09:00:00 GMT"},
            )

    rig.server.routes["/etag"] = etag
    first = rig.poll("/etag")
    second = rig.poll("/etag")
    assert (first.ok, first.items_new, first.outcome) == (True, 3, "new")
    assert (second.ok, second.items_new, second.outcome) == (True, 0, "not_modified")
    hits = rig.server.hits("/etag")
    assert "if-none-match" not in hits[0]
    assert hits[1]["if-none-match"] == '"v1"'
    assert hits[1]["if-modified-since"] == "Sun, 01 Mar 2026 09:00:00 GMT"
    assert len(rig.sink.sent) == 3


def test_lying_validators_are_beaten_by_the_forced_unconditional_fetch(rig: Rig) -> None:
    rig.bounds = ScheduleBounds(min_interval=60, unconditional_every=3)
    rig.poller = rig.make()
    bodies = [rss(arabic_items(2)).encode()]

    def liar(h: BaseHTTPRequestHandler) -> None:
        # Same ETag whatever the content, and 304 to anyone who sends it.
        if h.headers.get("If-None-Match"):
            send(h, 304, b"", None, {"ETag": '"same"'})
        else:
            send(h, 200, bodies[0], headers={"ETag": '"same"'})

    rig.server.routes["/liar"] = liar
    assert rig.poll("/liar").items_new == 2
    bodies[0] = rss(arabic_items(3)).encode()  # a new item appears
    outcomes = [rig.poll("/liar") for _ in range(3)]
    assert [o.outcome for o in outcomes[:2]] == ["not_modified", "not_modified"]
    assert (outcomes[2].outcome, outcomes[2].items_new) == ("new", 1)
    assert "if-none-match" not in rig.server.hits("/liar")[-1]


def test_same_body_without_validators_is_not_parsed_again(rig: Rig) -> None:
    rig.server.routes["/plain"] = static(rss(arabic_items(2)).encode())
    assert rig.poll("/plain").outcome == "new"
    assert rig.poll("/plain").outcome == "same_hash"
    assert rig.stats.snapshot()["poll"]["feed_same_hash"] == 1


def test_429_retry_after_backs_off_at_least_as_asked(rig: Rig) -> None:
    rig.server.routes["/busy"] = static(b"slow down", "text/plain", 429, {"Retry-After": "7200"})
    result = rig.poll("/busy")
    state = rig.store.get(rig.server.url("/busy"))
    assert (result.ok, result.outcome, result.status) == (False, "http_429", 429)
    assert state.hint == 7200
    assert state.interval is not None and state.interval >= 7200
    assert state.failures == 0.25


def test_500_is_counted_and_never_raises(rig: Rig) -> None:
    rig.server.routes["/broken"] = static(b"oops", "text/plain", 500)
    result = rig.poll("/broken")
    assert (result.ok, result.outcome) == (False, "http_500")
    assert rig.stats.snapshot()["poll"]["feed_failed:http_500"] == 1
    assert rig.store.get(rig.server.url("/broken")).failures == 0.5


def test_timeout_and_slow_drip_are_timeouts(rig: Rig) -> None:
    def hang(h: BaseHTTPRequestHandler) -> None:
        time.sleep(2.5)

    def drip(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        try:
            for _ in range(40):  # one byte every 0.1 s: each read is quick, the whole is not
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    rig.server.routes["/hang"] = hang
    rig.server.routes["/drip"] = drip
    assert rig.poll("/hang").outcome == "timeout"
    assert rig.poll("/drip").outcome == "timeout"


def test_redirect_chain_is_followed_and_loop_is_named(rig: Rig) -> None:
    rig.server.routes["/r1"] = static(b"", None, 301, {"Location": "/r2"})
    rig.server.routes["/r2"] = static(b"", None, 302, {"Location": "/r3"})
    rig.server.routes["/r3"] = static(rss(arabic_items(1)).encode())
    rig.server.routes["/loop-a"] = static(b"", None, 302, {"Location": "/loop-b"})
    rig.server.routes["/loop-b"] = static(b"", None, 302, {"Location": "/loop-a"})
    assert (rig.poll("/r1").ok, rig.poll("/loop-a").outcome) == (True, "too_many_redirects")


def test_gzip_body(rig: Rig) -> None:
    rig.server.routes["/gz"] = static(
        gzip.compress(rss(arabic_items(4)).encode()), headers={"Content-Encoding": "gzip"}
    )
    assert rig.poll("/gz").items_new == 4


CP1256_RSS = rss(arabic_items(3), encoding="windows-1256").encode("cp1256")
CP1256_NO_DECL = rss(arabic_items(3)).replace(' encoding="utf-8"', "").encode("cp1256")
ISO_RSS = rss(arabic_items(3), encoding="iso-8859-6").encode("iso-8859-6")


@pytest.mark.parametrize(
    ("name", "body", "ctype"),
    [
        ("cp1256-no-charset", CP1256_RSS, "text/xml"),
        ("cp1256-no-decl", CP1256_NO_DECL, "text/xml"),
        ("wrong-header", CP1256_RSS, "application/rss+xml; charset=utf-8"),
        ("iso-8859-6", ISO_RSS, "text/xml"),
        ("bom", b"\xef\xbb\xbf" + rss(arabic_items(3)).encode(), "text/xml"),
    ],
)
def test_encodings_round_trip_arabic(rig: Rig, name: str, body: bytes, ctype: str) -> None:
    captured: list[Any] = []
    rig.sink.send = lambda topic, key, value: captured.append(value.decode())  # type: ignore[method-assign]
    rig.server.routes[f"/{name}"] = static(body, ctype)
    result = rig.poll(f"/{name}")
    assert result.ok and result.items_new == 3, result
    text = " ".join(str(v) for v in captured)
    assert "\ufffd" not in text
    assert "خبر عاجل رقم 2" in text and "ملخص" in text


def test_bozo_feed_with_entries_is_ingested_and_counted(rig: Rig) -> None:
    broken = rss(arabic_items(2)).replace("</channel></rss>", "<oops></channel>")
    rig.server.routes["/bozo"] = static(broken.encode())
    result = rig.poll("/bozo")
    assert (result.ok, result.bozo, result.items_new) == (True, True, 2)
    assert rig.stats.snapshot()["poll"]["feed_bozo"] == 1


@pytest.mark.parametrize(
    ("body", "ctype", "reason"),
    [
        (b"<!DOCTYPE html><html><body><p>Welcome</p></body></html>", "text/html", "html_not_feed"),
        (b"", "application/rss+xml", "empty_feed"),
        (rss([]).encode(), "application/rss+xml", "empty_feed"),
        (b"\x00\x01 garbage", "application/xml", "malformed_feed"),
    ],
)
def test_not_a_feed_is_a_classified_failure(rig: Rig, body: bytes, ctype: str, reason: str) -> None:
    rig.server.routes["/bad"] = static(body, ctype)
    result = rig.poll("/bad")
    assert (result.ok, result.outcome) == (False, reason)


def test_atom_relative_links_are_resolved(rig: Rig) -> None:
    atom = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>أطلس</title><id>urn:x</id><updated>2026-03-01T10:00:00Z</updated>"
        '<entry><title>خبر</title><id>urn:1</id><link href="/news/1"/>'
        "<updated>2026-03-01T10:00:00+03:00</updated></entry>"
        '<entry><title>خبر آخر</title><id>urn:2</id><link href="news/2"/>'
        "<updated>2099-01-01T00:00:00Z</updated></entry></feed>"
    )
    captured: list[Any] = []
    rig.sink.send = lambda topic, key, value: captured.append(value.decode())  # type: ignore[method-assign]
    rig.server.routes["/feeds/atom"] = static(atom.encode(), "application/atom+xml")
    assert rig.poll("/feeds/atom").items_new == 2
    text = " ".join(str(v) for v in captured)
    assert rig.server.url("/news/1") in text and rig.server.url("/feeds/news/2") in text
    # 10:00+03:00 is 07:00 UTC; the 2099 date is clamped to the poll time.
    assert "2026-03-01T07:00:00" in text and "2099" not in text


def test_500_items_then_only_the_new_one(rig: Rig) -> None:
    rig.server.routes["/big"] = static(rss(arabic_items(500)).encode())
    assert rig.poll("/big").items_new == 500
    rig.server.routes["/big"] = static(rss(arabic_items(1, 500) + arabic_items(499)).encode())
    result = rig.poll("/big")
    assert (result.items_total, result.items_new) == (500, 1)
    assert len(rig.sink.sent) == 501


def test_seen_set_is_bounded_in_size_and_time(rig: Rig) -> None:
    rig.poller = rig.make(seen_max=50, seen_ttl=3600)
    rig.server.routes["/s"] = static(rss(arabic_items(80)).encode())
    rig.poll("/s")
    assert len(rig.store.get(rig.server.url("/s")).seen) == 50
    rig.server.routes["/s"] = static(rss(arabic_items(5, 1000)).encode())
    rig.now = NOW + timedelta(hours=2)
    rig.poll("/s")
    assert set(rig.store.get(rig.server.url("/s")).seen) == {
        i for _, i in rig.sink.sent[-5:]
    }  # the old ones expired, the listed ones stay


def test_repeated_hard_failures_make_a_feed_dead_until_it_answers(rig: Rig) -> None:
    rig.bounds = ScheduleBounds(min_interval=60, dead_after=3, dead_retry=86400)
    rig.poller = rig.make()
    for _ in range(3):
        result = rig.poll("/gone")
    state = rig.store.get(rig.server.url("/gone"))
    assert result.outcome == "http_404" and state.dead and state.interval == 86400
    rig.server.routes["/gone"] = static(rss(arabic_items(1)).encode())
    rig.poll("/gone")
    state = rig.store.get(rig.server.url("/gone"))
    assert not state.dead and state.failures == 2.0 and state.interval is not None
    assert state.interval < 86400


def test_state_survives_a_restart(rig: Rig, tmp_path: Path) -> None:
    rig.server.routes["/etag"] = lambda h: (
        send(h, 304, b"", None)
        if h.headers.get("If-None-Match") == '"v9"'
        else send(h, 200, rss(arabic_items(3)).encode(), headers={"ETag": '"v9"'})
    )
    rig.poll("/etag")
    rig.store.save()
    restarted = FeedStateStore(tmp_path / "state.json")
    rig.store = restarted
    poller = rig.make()
    result = poller.poll(rig.feed("/etag"))
    assert result.outcome == "not_modified"
    assert len(restarted.get(rig.server.url("/etag")).seen) == 3


def test_corrupt_state_file_starts_cold(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert FeedStateStore(path).all() == {}


def test_feed_hints_read_ttl_and_sy_update() -> None:
    assert feed_hints(b"<rss><channel><ttl>30</ttl>") == 1800
    body = b"<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>"
    assert feed_hints(body) == 1800
    assert feed_hints(b"<rss/>") is None


def test_scheduler_polls_each_feed_and_rearms(rig: Rig) -> None:
    rig.now = datetime.now(UTC)
    rig.server.routes["/a"] = static(rss(arabic_items(1)).encode())
    rig.server.routes["/b"] = static(b"nope", "text/plain", 500)
    scheduler = FeedScheduler(rig.poller, [rig.feed("/a"), rig.feed("/b")], 600)
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            rig.store.get(rig.server.url("/a")).next_due is None
            or rig.store.get(rig.server.url("/b")).next_due is None
        ):
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert len(rig.server.hits("/a")) == 1 and len(rig.server.hits("/b")) == 1
    assert rig.store.get(rig.server.url("/b")).last_error is not None


class TransactionalSink(FakeSink):
    """A transactional producer's calls, counted."""

    transactional = True

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0

    def commit_sends(self) -> None:
        self.commits += 1

    def abort(self) -> None:
        raise AssertionError("nothing here aborts")


class CountingStore(FeedStateStore):
    """A state store written in the poll's transaction (as the Kafka one is), or alone."""

    def __init__(self) -> None:
        super().__init__(None)
        self.alone = 0
        self.in_transaction = 0

    def put(self, state: Any) -> None:
        self.alone += 1
        super().put(state)

    def put_with(self, state: Any, producer: Any) -> bool:
        self.in_transaction += 1
        return True


def test_a_poll_with_nothing_new_writes_its_state_without_a_transaction(rig: Rig) -> None:
    sink, store = TransactionalSink(), CountingStore()
    rig.sink, rig.store = sink, store
    rig.poller = rig.make()
    items = arabic_items(3)
    rig.server.routes["/f"] = static(rss(items).encode())
    assert rig.poll("/f").items_new == 3
    assert (sink.commits, store.in_transaction, store.alone) == (1, 1, 0)
    # The same items in another body (so it is parsed again): nothing new.
    rig.server.routes["/f"] = static(rss(items, extra="<ttl>5</ttl>").encode())
    rig.now += timedelta(minutes=10)
    second = rig.poll("/f")
    assert (second.items_new, second.outcome) == (0, "no_new")
    assert (sink.commits, store.in_transaction, store.alone) == (1, 1, 1)
    assert len(sink.sent) == 3
    assert store.get(rig.feed("/f").url) is not None
