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
that transport connects. The bytes are decoded to text by
:func:`pipeline.text.decode_body`, whose first input is the HTTP ``charset``
that :class:`FetchResult` carries.
"""

from __future__ import annotations

import email.utils
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Self

import httpx

# httpcore does not re-export its socket-option type; the backend signature needs it.
from pipeline.errors import PermanentError

from .dialer import DEADLINE, HttpRetriableError, PinnedTransport, check_address, literal_ip

__all__ = [
    "DEFAULT_ACCEPT",
    "ERROR_BODY_BYTES",
    "FetchResult",
    "GuardedClient",
    "HttpRetriableError",
    "HttpStatusError",
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
_CHUNK: Final = 64 * 1024
#: How much of an error response's body is kept: enough for the title and the
#: scripts of a bot-protection page, which sit near the top.
ERROR_BODY_BYTES: Final = 64 * 1024


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
                transport=self._transport or PinnedTransport(self.allow_private_networks),
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
        token = DEADLINE.set(started + self.timeout)
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
            DEADLINE.reset(token)
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
            if literal_ip(host) is not None:
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
