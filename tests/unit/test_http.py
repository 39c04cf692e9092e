"""The guarded HTTP client against a real local server, and its SSRF refusals.

Happy paths use a threaded ``http.server`` on 127.0.0.1 with
``allow_private_networks=True``. The refusals prove that no connection is made:
the recording server counts accepted connections, and ``socket.create_connection``
(how httpcore dials) is replaced by a tripwire.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from connectors.dialer import is_public_address
from connectors.http import (
    ERROR_BODY_BYTES,
    FetchResult,
    GuardedClient,
    HttpRetriableError,
    HttpStatusError,
)
from pipeline.errors import PermanentError

UA = "rasd-test/0.1 (+https://example.org/rasd)"
ARABIC = "قال المنشق المعروف باسم قيصر إن آلاف الصور توثق مقتل معتقلين".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, Callable[[Handler], None]]] = {}

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        route = self.routes.get(self.path.split("?")[0])
        try:
            if route is None:
                self.reply(404, b"not found")
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, as intended
            self.close_connection = True

    def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: int = socket.AF_INET) -> None:
        self.address_family = family
        self.connections: list[object] = []
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up on a kept-alive connection is not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections.append(client_address)
        return True


def _serve(server: RecordingServer) -> Iterator[RecordingServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    yield from _serve(RecordingServer(("127.0.0.1", 0)))


@pytest.fixture
def base(server: RecordingServer) -> str:
    server.connections.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


def route(path: str) -> Callable[[Callable[[Handler], None]], Callable[[Handler], None]]:
    def register(fn: Callable[[Handler], None]) -> Callable[[Handler], None]:
        Handler.routes[path] = fn
        return fn

    return register


@route("/ok")
def _ok(h: Handler) -> None:
    h.reply(200, ARABIC, Content_Type="text/html; charset=UTF-8", ETag='"v1"')


@route("/gzip")
def _gzip(h: Handler) -> None:
    h.reply(200, gzip.compress(ARABIC * 100), Content_Encoding="gzip")


@route("/deflate")
def _deflate(h: Handler) -> None:
    h.reply(200, zlib.compress(ARABIC), Content_Encoding="deflate")


@route("/raw-deflate")
def _raw_deflate(h: Handler) -> None:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    h.reply(200, c.compress(ARABIC) + c.flush(), Content_Encoding="deflate")


for _i in range(1, 6):
    Handler.routes[f"/hop{_i}"] = lambda h, i=_i: h.reply(302, Location=f"/hop{i + 1}")
Handler.routes["/hop6"] = _ok
Handler.routes["/loop-a"] = lambda h: h.reply(301, Location="/loop-b")
Handler.routes["/loop-b"] = lambda h: h.reply(301, Location="/loop-a")
Handler.routes["/to-file"] = lambda h: h.reply(302, Location="file:///etc/passwd")
Handler.routes["/to-private"] = lambda h: h.reply(302, Location="http://10.0.0.1/")
Handler.routes["/missing"] = lambda h: h.reply(404, b"gone")
Handler.routes["/busy"] = lambda h: h.reply(503, b"busy", Retry_After="7")
Handler.routes["/throttled"] = lambda h: h.reply(429, b"slow down")
Handler.routes["/big"] = lambda h: h.reply(200, b"x" * 2_000_000)
Handler.routes["/forbidden-page"] = lambda h: h.reply(403, b"<title>no</title>" + b"x" * 200_000)
Handler.routes["/forbidden-gzip"] = lambda h: h.reply(
    403, gzip.compress(ARABIC * 100), Content_Encoding="gzip"
)
Handler.routes["/forbidden-bad-gzip"] = lambda h: h.reply(
    403, b"not gzip at all", Content_Encoding="gzip"
)


@route("/cond")
def _cond(h: Handler) -> None:
    if h.headers.get("If-None-Match") == '"v1"':
        h.reply(304, ETag='"v1"')
    else:
        h.reply(200, ARABIC, ETag='"v1"')


@route("/bomb")
def _bomb(h: Handler) -> None:
    # Streams a gzip body that would expand to 10 GB; generated lazily, so the
    # server only does the work the client actually reads.
    h.send_response(200)
    h.send_header("Content-Encoding", "gzip")
    h.send_header("Connection", "close")
    h.end_headers()
    h.close_connection = True
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    for _ in range(10_240):
        h.wfile.write(compressor.compress(block))
    h.wfile.write(compressor.flush())


# Set when a slow route has served all it meant to: a client that honours its
# total deadline has given up (and returned) before then.
DRIP_DONE = threading.Event()
STALL_DONE = threading.Event()


@route("/drip")
def _drip(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    for _ in range(100):  # 1 byte every 50 ms: never idle long enough for a read timeout
        h.wfile.write(b"x")
        h.wfile.flush()
        time.sleep(0.05)
    DRIP_DONE.set()


@route("/stall")
def _stall(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.write(b"x")
    h.wfile.flush()
    time.sleep(5)  # then stay silent: only a read timeout (10 s) would end the wait
    STALL_DONE.set()


def client(**kwargs: Any) -> GuardedClient:
    kwargs.setdefault("allow_private_networks", True)
    return GuardedClient(UA, **kwargs)


# --------------------------------------------------------------------------- happy paths


def test_plain_fetch_reports_headers_and_charset(base: str) -> None:
    with client() as c:
        result = c.fetch(f"{base}/ok")
    assert isinstance(result, FetchResult)
    assert result.status == 200
    assert result.content == ARABIC
    assert result.content_type == "text/html"
    assert result.charset == "utf-8"
    assert result.headers["etag"] == '"v1"'
    assert result.url == result.final_url == f"{base}/ok"


def test_client_is_lazy_and_closable() -> None:
    c = client()
    assert c._client is None
    raw = c.client
    assert isinstance(raw, httpx.Client)
    c.close()
    assert raw.is_closed and c._client is None


def test_one_client_serves_many_threads(base: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with client() as c, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: c.fetch(f"{base}/gzip").content, range(32)))
    assert results == [ARABIC * 100] * 32


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/raw-deflate"])
def test_compressed_bodies_are_decoded(base: str, path: str) -> None:
    with client() as c:
        result = c.fetch(f"{base}{path}")
    assert result.content == (ARABIC * 100 if path == "/gzip" else ARABIC)


def test_redirect_chain_within_the_limit(base: str) -> None:
    with client(max_redirects=5) as c:
        result = c.fetch(f"{base}/hop1")
    assert result.final_url == f"{base}/hop6"
    assert result.url == f"{base}/hop1"
    assert result.content == ARABIC


def test_redirect_chain_over_the_limit(base: str) -> None:
    with client(max_redirects=4) as c, pytest.raises(PermanentError) as err:
        c.fetch(f"{base}/hop1")
    assert err.value.reason == "too_many_redirects"


def test_redirect_loop(base: str) -> None:
    with client() as c, pytest.raises(PermanentError) as err:
        c.fetch(f"{base}/loop-a")
    assert err.value.reason == "too_many_redirects"
    assert "loop" in err.value.detail


def test_redirect_to_another_scheme(base: str) -> None:
    with client() as c, pytest.raises(PermanentError) as err:
        c.fetch(f"{base}/to-file")
    assert err.value.reason == "bad_scheme"


def test_conditional_get_304_has_empty_content(base: str) -> None:
    with client() as c:
        assert c.fetch(f"{base}/cond").content == ARABIC
        result = c.fetch(f"{base}/cond", headers={"If-None-Match": '"v1"'})
    assert result.status == 304
    assert result.content == b""


# --------------------------------------------------------------------------- failures


def test_404_is_permanent(base: str) -> None:
    with client() as c, pytest.raises(PermanentError) as err:
        c.fetch(f"{base}/missing")
    assert err.value.reason == "http_404"


def test_503_is_retriable_with_retry_after(base: str) -> None:
    with client() as c, pytest.raises(HttpRetriableError) as err:
        c.fetch(f"{base}/busy")
    assert err.value.status == 503
    assert err.value.retry_after == 7.0


def test_an_error_keeps_the_start_of_its_body(base: str) -> None:
    with client(error_body_bytes=1000) as c:
        with pytest.raises(HttpStatusError) as err:
            c.fetch(f"{base}/forbidden-page")
        assert (err.value.reason, err.value.status) == ("http_403", 403)
        assert err.value.body == (b"<title>no</title>" + b"x" * 200_000)[:1000]
        with pytest.raises(HttpStatusError) as err:
            c.fetch(f"{base}/forbidden-gzip")
        assert err.value.body == (ARABIC * 100)[:1000]
        # A body that cannot be decoded leaves the status as the error.
        with pytest.raises(HttpStatusError) as err:
            c.fetch(f"{base}/forbidden-bad-gzip")
        assert (err.value.reason, err.value.body) == ("http_403", b"")
        with pytest.raises(HttpRetriableError) as retriable:
            c.fetch(f"{base}/busy")
        assert retriable.value.body == b"busy"
    with client() as c, pytest.raises(HttpStatusError) as err:
        c.fetch(f"{base}/forbidden-page")
    assert len(err.value.body) == ERROR_BODY_BYTES


def test_429_is_retriable(base: str) -> None:
    with client() as c, pytest.raises(HttpRetriableError) as err:
        c.fetch(f"{base}/throttled")
    assert err.value.reason == "http_429"
    assert err.value.retry_after is None


def test_content_length_over_the_cap(base: str) -> None:
    with client(max_bytes=1_000_000) as c, pytest.raises(PermanentError) as err:
        c.fetch(f"{base}/big")
    assert err.value.reason == "too_large"


def test_gzip_bomb_is_aborted_after_the_cap(base: str) -> None:
    with client(max_bytes=10_000_000) as c, pytest.raises(PermanentError) as err:
        c.fetch(f"{base}/bomb")
    assert err.value.reason == "too_large"


def test_slow_drip_hits_the_total_deadline(base: str) -> None:
    DRIP_DONE.clear()
    with client(timeout=1.0, read_timeout=10.0) as c, pytest.raises(HttpRetriableError) as err:
        c.fetch(f"{base}/drip")
    assert err.value.reason == "timeout"
    # The drip lasts 5 s and never idles long enough for a read timeout: the
    # fetch ended while the server was still dripping.
    assert not DRIP_DONE.is_set()


def test_stalled_read_ends_at_the_total_deadline_not_the_read_timeout(base: str) -> None:
    STALL_DONE.clear()
    with client(timeout=1.0, read_timeout=10.0) as c, pytest.raises(HttpRetriableError) as err:
        c.fetch(f"{base}/stall")
    assert err.value.reason == "timeout"
    assert not STALL_DONE.is_set()


def test_connection_refused_is_retriable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with client() as c, pytest.raises(HttpRetriableError) as err:
        c.fetch(f"http://127.0.0.1:{port}/")
    assert err.value.reason == "connection_error"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://x/"])
def test_only_http_and_https(url: str) -> None:
    with client() as c, pytest.raises(PermanentError) as err:
        c.fetch(url)
    assert err.value.reason == "bad_scheme"


# --------------------------------------------------------------------------- SSRF


@pytest.fixture
def no_dialling(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Replace httpcore's way of dialling with a recorder that never connects."""
    attempts: list[object] = []

    def tripwire(address: object, *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket, "create_connection", tripwire)
    return attempts


def test_recording_server_sees_allowed_connections(base: str, server: RecordingServer) -> None:
    # The control for the refusals below: the same URLs, allowed, do connect.
    port = server.server_address[1]
    with client() as c:
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]", "0.0.0.0"):
            c.fetch(f"http://{host}:{port}/ok")
    assert len(server.connections) == 3


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::7f00:1]",
        "[fe80::1]",
        "224.0.0.1",
    ],
)
def test_non_public_literals_are_refused_without_connecting(
    host: str, server: RecordingServer, base: str, no_dialling: list[object]
) -> None:
    port = server.server_address[1]
    with GuardedClient(UA) as c, pytest.raises(PermanentError) as err:
        c.fetch(f"http://{host}:{port}/ok")
    assert err.value.reason == "blocked_address"
    assert no_dialling == []
    assert server.connections == []


def test_ipv6_loopback_server_gets_no_connection() -> None:
    try:
        v6 = RecordingServer(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.fail("IPv6 loopback is unavailable on this machine; cannot run this check")
    for srv in _serve(v6):
        with GuardedClient(UA) as c, pytest.raises(PermanentError) as err:
            c.fetch(f"http://[::1]:{srv.server_address[1]}/ok")
        assert err.value.reason == "blocked_address"
        assert srv.connections == []


def _fake_dns(
    monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]], lookups: list[str]
) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            lookups.append(host)
            out = []
            for address in table[host]:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sockaddr = (address, port) if family == socket.AF_INET else (address, port, 0, 0)
                out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            return out
        if host in ("127.0.0.1", "::1") or _is_ip(host):
            return real(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _is_ip(host: Any) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def test_hostname_resolving_to_private_is_refused(
    monkeypatch: pytest.MonkeyPatch, server: RecordingServer, base: str
) -> None:
    lookups: list[str] = []
    _fake_dns(monkeypatch, {"evil.test": ["127.0.0.1"]}, lookups)
    with GuardedClient(UA) as c, pytest.raises(PermanentError) as err:
        c.fetch(f"http://evil.test:{server.server_address[1]}/ok")
    assert err.value.reason == "blocked_address"
    assert server.connections == []


def test_host_with_mixed_addresses_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, {"mixed.test": ["93.184.216.34", "10.1.2.3"]}, [])
    with GuardedClient(UA) as c, pytest.raises(PermanentError) as err:
        c.fetch("http://mixed.test/")
    assert err.value.reason == "blocked_address"


def test_connection_is_pinned_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, server: RecordingServer, base: str
) -> None:
    # One lookup per connection, and the socket dials the address it returned:
    # a rebinding DNS server gets no second chance to answer differently.
    lookups: list[str] = []
    _fake_dns(monkeypatch, {"news.test": ["127.0.0.1"]}, lookups)
    with client() as c:
        result = c.fetch(f"http://news.test:{server.server_address[1]}/ok")
    assert result.content == ARABIC
    assert lookups == ["news.test"]
    assert len(server.connections) == 1


def test_dns_failure_is_retriable(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, {}, [])
    with GuardedClient(UA) as c, pytest.raises(HttpRetriableError) as err:
        c.fetch("http://no-such-host.test/")
    assert err.value.reason == "dns_failure"


def test_redirect_from_public_to_private_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, {"public.test": ["93.184.216.34"]}, [])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    transport = httpx.MockTransport(handler)
    with GuardedClient(UA, transport=transport) as c, pytest.raises(PermanentError) as err:
        c.fetch("http://public.test/feed")
    assert err.value.reason == "blocked_address"
    assert seen == ["http://public.test/feed"]


def test_redirect_to_a_private_name_through_the_real_dialer(
    monkeypatch: pytest.MonkeyPatch, server: RecordingServer, base: str
) -> None:
    # A 302 from an allowed origin to a name that resolves privately: the hop
    # is checked by the dialer, so the second connection is never made.
    _fake_dns(monkeypatch, {"intranet.test": ["10.9.8.7"]}, [])
    Handler.routes["/to-intranet"] = lambda h: h.reply(302, Location="http://intranet.test/")
    c = GuardedClient(UA)
    # Let the first hop reach the local server, and only that one.
    monkeypatch.setattr(
        "connectors.dialer.is_public_address",
        lambda ip: str(ip) == "127.0.0.1" or is_public_address(ip),
    )
    with c, pytest.raises(PermanentError) as err:
        c.fetch(f"{base}/to-intranet")
    assert err.value.reason == "blocked_address"
    assert len(server.connections) == 1


def test_https_to_http_downgrade_is_refused() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(301, headers={"Location": "http://news.example/a"})

    transport = httpx.MockTransport(handler)
    with (
        GuardedClient(UA, allow_private_networks=True, transport=transport) as c,
        pytest.raises(PermanentError) as err,
    ):
        c.fetch("https://news.example/a")
    assert err.value.reason == "redirect_downgrade"
    assert seen == ["https://news.example/a"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),
        ("64:ff9b::a9fe:a9fe", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


# --------------------------------------------------------------------------- counted refusals

FORBIDDEN = [
    "127.0.0.1",
    "[::1]",
    "0.0.0.0",
    "10.0.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "[::ffff:127.0.0.1]",
]


def test_every_refusal_is_counted_and_reported(
    monkeypatch: pytest.MonkeyPatch, server: RecordingServer, base: str, no_dialling: list[object]
) -> None:
    # The list, plus a name resolving privately and a public->private
    # 302: each one is an error with a reason, counted by the client and
    # handed to the pipeline's counters, and none makes a connection.
    _fake_dns(monkeypatch, {"evil.test": ["10.0.0.7"], "public.test": ["93.184.216.34"]}, [])
    reported: list[str] = []
    port = server.server_address[1]
    with GuardedClient(UA, on_outcome=reported.append) as c:
        for host in [*FORBIDDEN, "evil.test"]:
            with pytest.raises(PermanentError) as err:
                c.fetch(f"http://{host}:{port}/ok")
            assert err.value.reason == "blocked_address", host
            assert host.strip("[]") in str(err.value) or "10.0.0.7" in str(err.value)
    redirect = httpx.MockTransport(
        lambda request: httpx.Response(302, headers={"Location": "http://10.0.0.1/admin"})
    )
    with GuardedClient(UA, transport=redirect, on_outcome=reported.append) as c2:
        with pytest.raises(PermanentError) as err:
            c2.fetch("http://public.test/feed")
        assert err.value.reason == "blocked_address"
        assert c2.outcomes() == {"blocked_address": 1}
    assert c.outcomes() == {"blocked_address": len(FORBIDDEN) + 1}
    assert reported == ["blocked_address"] * (len(FORBIDDEN) + 2)
    assert no_dialling == []
    assert server.connections == []


def test_successes_and_other_failures_are_counted(base: str) -> None:
    with client() as c:
        c.fetch(f"{base}/ok")
        with pytest.raises(PermanentError):
            c.fetch(f"{base}/missing")
        with pytest.raises(PermanentError):
            c.fetch("file:///etc/passwd")
    assert c.outcomes() == {"ok": 1, "http_404": 1, "bad_scheme": 1}


def test_gzip_bomb_memory_stays_bounded(base: str) -> None:
    # 10 GB of zeros behind ~10 MB of gzip. An unbounded decoder would allocate
    # gigabytes; ours stops at the 10 MB cap. tracemalloc sees every bytes and
    # bytearray the client makes, so the peak is the client's real footprint.
    import tracemalloc

    tracemalloc.start()
    try:
        with client(max_bytes=10_000_000) as c, pytest.raises(PermanentError) as err:
            c.fetch(f"{base}/bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.reason == "too_large"
    assert c.outcomes() == {"too_large": 1}
    # The cap plus one copy into bytes and a decoder chunk: well under 100 MB,
    # and far under the 10 GB the body expands to.
    assert peak < 64_000_000, peak


Handler.routes["/ua"] = lambda h: h.reply(200, h.headers.get("User-Agent", "").encode())


def test_user_agent_carries_the_configured_contact_url(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.settings import Settings

    monkeypatch.setenv("RASD_CONTACT_URL", "https://newsroom.example/rasd-contact")
    settings = Settings()
    with GuardedClient(settings.user_agent, allow_private_networks=True) as c:
        sent = c.fetch(f"{base}/ua", headers={"User-Agent": "spoofed"}).content.decode()
    assert sent == settings.user_agent
    assert "+https://newsroom.example/rasd-contact" in sent


def test_a_user_agent_is_required() -> None:
    with pytest.raises(ValueError):
        GuardedClient("  ")
