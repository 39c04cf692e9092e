"""The one guarded HTTP client through which rasd fetches feeds and article pages.

Every URL rasd fetches comes from someone else's feed, so
:class:`GuardedClient` is the pipeline's attack surface and treats each URL as
hostile: only http and https; the host is resolved and every address must be
public (no loopback, private, link-local such as 169.254.169.254, 100.64/10,
unspecified, multicast or reserved ranges, including IPv4 embedded in IPv6)
unless ``allow_private_networks`` is set; redirects are followed by hand, at
most ``max_redirects``, each hop checked again and never from https down to
http; the body is streamed and decompressed here, with a bounded output size,
so a gzip bomb is aborted after ``max_bytes`` with bounded memory; and a total
deadline bounds the whole fetch, however slowly the server drips. Failures are
the two named kinds of :mod:`pipeline.errors`: :class:`HttpRetriableError`
(timeouts, connection and DNS errors, 408, 429, 5xx, with ``Retry-After``) and
``PermanentError(reason)`` (``bad_scheme``, ``bad_url``, ``blocked_address``,
``too_many_redirects``, ``redirect_downgrade``, ``too_large``,
``bad_encoding``, and :class:`HttpStatusError` for other 4xx,
``http_<status>``). An error response keeps the first ``error_body_bytes`` of
its body (``body``), so that a caller can tell a bot-protection page from a
plain 403. Every fetch's outcome (``ok``, ``not_modified`` or the error's
reason) is counted (:meth:`GuardedClient.outcomes`) and reported to an optional
``on_outcome`` hook, which the pipeline points at its counters, so a refused
address or an aborted bomb is a number in ``rasd run``'s summary. With the
default transport the address check runs inside the connection dialer, on the
addresses it is about to connect to, so there is no DNS-rebinding gap between
check and connect (Miniflux's design). A caller that injects its own
``transport`` (tests, a mock) gets the same check done once before each hop;
that path has the usual resolve-then-connect gap, since we do not control how
that transport connects. :func:`decode_body` holds the charset rules shared by
feeds and pages (BOM, HTTP charset, in-document declaration, UTF-8, an explicit
windows-1256/ISO-8859-6 path, detection), here because the HTTP ``charset`` is
its first input.
"""

from __future__ import annotations

import codecs
import contextvars
import email.utils
import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Self

import httpcore
import httpx

# httpcore does not re-export its socket-option type; the backend signature needs it.
from httpcore._backends.base import SOCKET_OPTION

from pipeline.errors import PermanentError, RetriableError

__all__ = [
    "DEFAULT_ACCEPT",
    "ERROR_BODY_BYTES",
    "FetchResult",
    "GuardedClient",
    "HttpRetriableError",
    "HttpStatusError",
    "check_address",
    "decode_body",
    "is_public_address",
]

DEFAULT_ACCEPT: Final = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    "text/html;q=0.8, application/xhtml+xml;q=0.8, */*;q=0.5"
)
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_RETRIABLE_4XX: Final = frozenset({408, 429})
# Only codings we decode ourselves (with a bounded output) are offered; brotli
# and zstd would need decoders whose output we cannot cap as cheaply.
_ACCEPT_ENCODING: Final = "gzip, deflate"
# Headers the caller may not set: the coding must be one we can decode, and the
# Host must match the URL we checked.
_RESERVED_HEADERS: Final = frozenset({"accept-encoding", "host", "user-agent"})
_SHARED_ADDRESS_SPACE: Final = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_PREFIX: Final = ipaddress.IPv6Network("64:ff9b::/96")
_CHUNK: Final = 64 * 1024
#: How much of an error response's body is kept: enough for the title and the
#: scripts of a bot-protection page, which sit near the top.
ERROR_BODY_BYTES: Final = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The deadline of the fetch running in this thread (monotonic seconds), read by
# the dialer and the socket streams so that no single connect or read can wait
# past it, whatever the per-phase timeouts say.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "rasd_http_deadline", default=None
)


class HttpRetriableError(RetriableError):
    """A transient HTTP failure; ``retry_after`` is the server's hint in seconds.

    ``body`` is the start of the response's body when there was a response (a
    429 or 5xx), else empty.
    """

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        retry_after: float | None = None,
        status: int | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        self.status = status
        self.body = body


class HttpStatusError(PermanentError):
    """A final 4xx response (``http_<status>``); ``body`` is the start of its body."""

    def __init__(self, status: int, detail: str = "", *, body: bytes = b"") -> None:
        super().__init__(f"http_{status}", detail)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class FetchResult:
    """One fetched response: the body is decompressed; headers are lowercased."""

    url: str
    final_url: str
    status: int
    headers: dict[str, str] = field(repr=False)
    content: bytes = field(repr=False)
    content_type: str | None
    charset: str | None
    elapsed: float


# --------------------------------------------------------------------------- addresses


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True if ``ip`` is a globally routable unicast address (IPv4 inside IPv6 checked too)."""
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:a.b.c.d is dialled as a.b.c.d: its verdict is the IPv4 one.
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        # Other IPv4-carrying forms (6to4, Teredo, NAT64) may reach the
        # embedded address through a relay, so both must be public.
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(embedded):
            return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE:
        return False
    # is_global alone lets some multicast through, hence the explicit flags.
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
    )


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_address(host: str, port: int, *, allow_private: bool = False) -> list[str]:
    """Resolve ``host`` and return its addresses, all of which must be public.

    Raises ``PermanentError("blocked_address")`` if any address is not public
    (a host that resolves to both kinds is refused outright: legitimate sites
    do not), and :class:`HttpRetriableError` (``dns_failure``) if resolution
    fails. A non-existent host is classified retriable on purpose: resolvers
    report outages and NXDOMAIN through the same error codes often enough that
    a permanent verdict would drop articles during a DNS hiccup; the poller's
    failure backoff and dead-feed detection deal with hosts that stay gone.
    """
    literal = _literal_ip(host)
    if literal is not None:
        if not allow_private and not is_public_address(literal):
            raise PermanentError("blocked_address", f"{host} is not a public address")
        return [str(literal)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HttpRetriableError("dns_failure", f"{host}: {exc}") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        ip = _literal_ip(address)
        if ip is None:  # pragma: no cover - getaddrinfo returns numeric addresses
            continue
        if not allow_private and not is_public_address(ip):
            raise PermanentError("blocked_address", f"{host} resolves to {address}")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HttpRetriableError("dns_failure", f"{host}: no address")
    return addresses


# --------------------------------------------------------------------------- dialer


def _clamp(timeout: float | None) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise httpcore.ReadTimeout("total deadline exceeded")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _PublicOnlyBackend(httpcore.NetworkBackend):
    """Dials only addresses that passed :func:`check_address`, and exactly those.

    Resolving and checking here, on the very addresses the socket connects to,
    is what closes the DNS-rebinding gap: there is no second lookup.
    """

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        last: httpcore.ConnectError | None = None
        for address in check_address(host, port, allow_private=self._allow_private):
            try:
                stream = self._inner.connect_tcp(
                    address, port, _clamp(timeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # try the host's next address
                last = exc
                continue
            return _DeadlineStream(stream)
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise PermanentError("bad_scheme", "unix sockets are never dialled")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # httpx has no option for the network backend, so replace the pool it
        # built with the same one dialling through our guarded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_PublicOnlyBackend(allow_private),
        )


# --------------------------------------------------------------------------- bodies


def _decoded(raw: Iterator[bytes], coding: str, limit: int) -> Iterator[bytes]:
    """Decompress ``raw`` chunk by chunk, never producing more than ``limit`` + 1 bytes."""
    if coding in ("", "identity"):
        yield from raw
        return
    if coding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        decoder = zlib.decompressobj()
    else:
        raise PermanentError("bad_encoding", f"unsupported content-encoding {coding!r}")
    produced = 0
    first = True
    for chunk in raw:
        data = chunk
        while data and not decoder.eof:
            try:
                out = decoder.decompress(data, limit - produced + 1)
            except zlib.error as exc:
                # Some servers send raw deflate without the zlib header.
                if first and coding == "deflate":
                    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                    first = False
                    continue
                raise PermanentError("bad_encoding", f"{coding}: {exc}") from exc
            first = False
            produced += len(out)
            yield out
            if produced > limit:
                return
            data = decoder.unconsumed_tail
    yield decoder.flush()


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    mime, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip("\"'"):
            charset = val.strip().strip("\"'").lower()
    return (mime.strip().lower() or None), charset


# --------------------------------------------------------------------------- client


class GuardedClient:
    """Fetches one URL at a time under rasd's rules; see the module docstring.

    The underlying :class:`httpx.Client` is created on first use (``.client`` is
    the escape hatch to it) and released by :meth:`close` or ``with``.
    """

    def __init__(
        self,
        user_agent: str,
        allow_private_networks: bool = False,
        max_bytes: int = 10_000_000,
        timeout: float = 20.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_redirects: int = 5,
        transport: httpx.BaseTransport | None = None,
        on_outcome: Callable[[str], None] | None = None,
        error_body_bytes: int = ERROR_BODY_BYTES,
    ) -> None:
        if not user_agent.strip():
            raise ValueError("a User-Agent is required: servers must know who is fetching")
        self.user_agent = user_agent
        self.allow_private_networks = allow_private_networks
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_redirects = max_redirects
        self.error_body_bytes = error_body_bytes
        self._transport = transport
        # Every fetch ends in one outcome, "ok" or the error's reason
        # ("blocked_address", "too_large", "timeout"…): counted here, and
        # reported to ``on_outcome`` (the pipeline's Stats), so that a refused
        # SSRF target or a bomb is a visible number, not just a log line.
        self._on_outcome = on_outcome
        self._outcomes: Counter[str] = Counter()
        self._client: httpx.Client | None = None
        # The poller fetches from a thread pool through one client; creating it
        # twice would leak a connection pool.
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """The raw httpx client, created lazily; redirects and env proxies are off."""
        with self._lock:
            return self._ensure_client()

    def _ensure_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                transport=self._transport or _PinnedTransport(self.allow_private_networks),
                follow_redirects=False,
                trust_env=False,  # an env proxy would be dialled instead of the checked host
                timeout=httpx.Timeout(
                    self.timeout, connect=self.connect_timeout, read=self.read_timeout
                ),
                headers={"User-Agent": self.user_agent, "Accept-Encoding": _ACCEPT_ENCODING},
            )
        return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        accept: str = DEFAULT_ACCEPT,
    ) -> FetchResult:
        """GET ``url`` and return the final response; raise a named error otherwise.

        ``headers`` may carry ``If-None-Match``/``If-Modified-Since``; a 304
        comes back as a result with empty ``content``.
        """
        started = time.monotonic()
        token = _DEADLINE.set(started + self.timeout)
        try:
            try:
                result = self._fetch(url, headers or {}, accept, started)
            except httpx.TimeoutException as exc:
                raise HttpRetriableError("timeout", f"{url}: {exc}") from exc
            except httpx.TransportError as exc:  # connect, read, protocol errors
                raise HttpRetriableError("connection_error", f"{url}: {exc!r}") from exc
        except (PermanentError, HttpRetriableError) as exc:
            self._count(exc.reason)
            raise
        finally:
            _DEADLINE.reset(token)
        self._count("ok" if result.status != 304 else "not_modified")
        return result

    def outcomes(self) -> dict[str, int]:
        """How many fetches ended in each outcome (``ok``, ``not_modified`` or a reason)."""
        with self._lock:
            return dict(self._outcomes)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._outcomes[outcome] += 1
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    # ----------------------------------------------------------------- internals

    def _check_url(self, url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise PermanentError("bad_url", f"{url!r}: {exc}") from exc
        if parsed.scheme not in ("http", "https"):
            raise PermanentError("bad_scheme", f"{url!r}: only http and https are fetched")
        if not parsed.host:
            raise PermanentError("bad_url", f"{url!r}: no host")
        host = parsed.raw_host.decode("ascii")
        if self._transport is None:
            # Literal addresses are refused here already; names are resolved and
            # checked by the dialer, on the addresses it connects to.
            if _literal_ip(host) is not None:
                check_address(host, parsed.port or 0, allow_private=self.allow_private_networks)
        elif not self.allow_private_networks:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            check_address(host, port)
        return parsed

    def _remaining(self, started: float) -> float:
        remaining = started + self.timeout - time.monotonic()
        if remaining <= 0:
            raise HttpRetriableError("timeout", f"total deadline of {self.timeout}s exceeded")
        return remaining

    def _fetch(self, url: str, extra: dict[str, str], accept: str, started: float) -> FetchResult:
        request_headers = {k: v for k, v in extra.items() if k.lower() not in _RESERVED_HEADERS}
        request_headers["Accept"] = accept
        current = self._check_url(url)
        seen = {str(current)}
        for _hop in range(self.max_redirects + 1):
            remaining = self._remaining(started)
            timeout = httpx.Timeout(
                min(self.timeout, remaining),
                connect=min(self.connect_timeout, remaining),
                read=min(self.read_timeout, remaining),
            )
            request = self.client.build_request(
                "GET", current, headers=request_headers, timeout=timeout
            )
            response = self.client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    target = self._redirect_target(current, location, seen)
                    seen.add(str(target))
                    current = target
                    continue
                return self._finish(url, current, response, started)
            finally:
                response.close()
        raise PermanentError("too_many_redirects", f"{url}: more than {self.max_redirects}")

    def _redirect_target(self, current: httpx.URL, location: str, seen: set[str]) -> httpx.URL:
        try:
            target = current.join(location.strip())
        except (httpx.InvalidURL, ValueError) as exc:
            raise PermanentError("bad_url", f"redirect to {location!r}: {exc}") from exc
        target = target.copy_with(fragment=None)
        if current.scheme == "https" and target.scheme == "http":
            raise PermanentError("redirect_downgrade", f"{current} -> {target}")
        if str(target) in seen:
            # A loop would only burn the redirect budget; say so at once.
            raise PermanentError("too_many_redirects", f"redirect loop at {target}")
        return self._check_url(str(target))

    def _finish(
        self, url: str, final: httpx.URL, response: httpx.Response, started: float
    ) -> FetchResult:
        status = response.status_code
        if status in _RETRIABLE_4XX or status >= 500:
            raise HttpRetriableError(
                f"http_{status}",
                str(final),
                retry_after=_parse_retry_after(response.headers.get("retry-after")),
                status=status,
                body=self._error_body(response, started),
            )
        if status != 304 and not 200 <= status < 300:
            raise HttpStatusError(status, str(final), body=self._error_body(response, started))
        headers = {k.lower(): v for k, v in response.headers.items()}
        content_type, charset = _content_type(headers.get("content-type"))
        content = b"" if status == 304 else self._read_body(response, started)
        return FetchResult(
            url=url,
            final_url=str(final),
            status=status,
            headers=headers,
            content=content,
            content_type=content_type,
            charset=charset,
            elapsed=time.monotonic() - started,
        )

    def _error_body(self, response: httpx.Response, started: float) -> bytes:
        """The start of an error response's body, or what arrived of it; never raises.

        The status already decides the error, so a body that is cut short,
        badly encoded or late is kept as far as it came, and never replaces
        the status with another failure.
        """
        limit = self.error_body_bytes
        body = bytearray()
        if limit <= 0:
            return b""
        coding = response.headers.get("content-encoding", "").strip().lower()
        try:
            for chunk in _decoded(response.iter_raw(_CHUNK), coding, limit):
                body += chunk
                if len(body) >= limit:
                    break
                self._remaining(started)
        except (httpx.HTTPError, PermanentError, HttpRetriableError):
            pass
        return bytes(body[:limit])

    def _read_body(self, response: httpx.Response, started: float) -> bytes:
        coding = response.headers.get("content-encoding", "").strip().lower()
        length = response.headers.get("content-length", "")
        if coding in ("", "identity") and length.isdigit() and int(length) > self.max_bytes:
            raise PermanentError("too_large", f"content-length {length} > {self.max_bytes}")
        body = bytearray()
        raw = response.iter_raw(_CHUNK)
        for chunk in _decoded(raw, coding, self.max_bytes):
            body += chunk
            if len(body) > self.max_bytes:
                raise PermanentError("too_large", f"body exceeds {self.max_bytes} bytes")
            # The dialer's streams also honour the deadline; this check covers
            # injected transports and servers that drip bytes just fast enough.
            self._remaining(started)
        return bytes(body)


# --------------------------------------------------------------------------- charsets

_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_LABELS: Final = {
    "cp1256": "windows-1256",
    "iso8859-6": "iso-8859-6",
    "cp1252": "windows-1252",
    "iso8859-1": "iso-8859-1",
    "ascii": "us-ascii",
}
# Labels that servers and templates put on pages by default; Arabic text
# behind them is really windows-1256 (see _arabic_override).
_LATIN_CODECS: Final = frozenset({"cp1252", "iso8859-1", "latin-1"})
_DOC_CHARSET: Final = re.compile(
    rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})"""
    rb"""|<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})""",
    re.IGNORECASE,
)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None


def _label(codec: str) -> str:
    return _LABELS.get(codec, codec)


def _arabic_share(text: str) -> float:
    """Share of Arabic-script characters among the non-ASCII ones."""
    high = [c for c in text if ord(c) > 0x7F]
    if not high:
        return 0.0
    arabic = sum(1 for c in high if "\u0600" <= c <= "\u06ff" or "\ufb50" <= c <= "\ufeff")
    return arabic / len(high)


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _arabic_single_byte(data: bytes) -> tuple[str, str] | None:
    """The better of windows-1256 and ISO-8859-6, if either reads as Arabic text.

    Generic detectors confuse the two (and both with Latin code pages). The two
    are told apart by decoding strictly and counting Arabic letters: ISO-8859-6
    leaves 0xDB-0xDF undefined, where windows-1256 has ف ق ك, and windows-1256
    turns ISO-8859-6's ق ه و ى ي into Latin letters.
    """
    best: tuple[float, str, str] | None = None
    for codec in ("cp1256", "iso8859-6"):  # windows-1256 first: it wins ties
        text = _strict(data, codec)
        if text is None:
            continue
        share = _arabic_share(text)
        if best is None or share > best[0]:
            best = (share, text, codec)
    if best is None or best[0] < 0.5:
        return None
    return best[1], best[2]


def _arabic_override(data: bytes, codec: str, text: str) -> tuple[str, str]:
    # A page labelled Latin-1/windows-1252 whose bytes read as Arabic in
    # windows-1256 was mislabelled; real Latin text keeps its accented letters
    # at the same code points in windows-1256 and so is not taken for Arabic.
    if codec in _LATIN_CODECS and _arabic_share(text) < 0.5:
        arabic = _strict(data, "cp1256")
        if arabic is not None and _arabic_share(arabic) >= 0.8:
            return arabic, "cp1256"
    return text, codec


def decode_body(content: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode an HTML or XML body; return the text and the charset label used.

    The order: a byte-order mark (it cannot be there by accident, so it wins,
    as in the WHATWG encoding rules), the HTTP ``charset``, the document's own
    ``<meta charset>``/``http-equiv``/XML ``encoding``, strict UTF-8, the
    explicit windows-1256/ISO-8859-6 path, then ``charset_normalizer``. A
    declared charset is used only if the bytes decode under it without error,
    so a wrong label falls through to the next source instead of producing
    U+FFFD; a Latin label on Arabic bytes is read as windows-1256.
    """
    for bom, codec in _BOMS:
        if content.startswith(bom):
            text = _strict(content[len(bom) :], codec)
            if text is not None:
                return text, _label(codec)
    candidates: list[str | None] = [_codec(declared)]
    match = _DOC_CHARSET.search(content[:4096])
    if match:
        in_doc = _codec((match.group(1) or match.group(2)).decode("ascii"))
        # A declaration readable as ASCII cannot be in UTF-16/32 (WHATWG: utf-8).
        if in_doc is not None and in_doc.startswith(("utf-16", "utf-32")):
            in_doc = "utf-8"
        candidates.append(in_doc)
    for candidate in candidates:
        decoded = _strict(content, candidate) if candidate else None
        if candidate and decoded is not None:
            decoded, used = _arabic_override(content, candidate, decoded)
            return decoded, _label(used)
    decoded = _strict(content, "utf-8")
    if decoded is not None:
        return decoded, "utf-8"
    arabic = _arabic_single_byte(content)
    if arabic is not None:
        return arabic[0], _label(arabic[1])
    from charset_normalizer import from_bytes  # only needed for the rare leftovers

    guess = from_bytes(content).best()
    if guess is not None and guess.encoding:
        return str(guess), _label(_codec(guess.encoding) or guess.encoding)
    return content.decode("utf-8", errors="replace"), "utf-8"
