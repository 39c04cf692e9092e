"""Where rasd may connect, and a dialer that connects only there, within the fetch's deadline.

:func:`check_address` resolves a host and refuses it unless every address is
public (no loopback, private, link-local such as 169.254.169.254, 100.64/10,
unspecified, multicast or reserved ranges, including IPv4 embedded in IPv6),
unless private networks are allowed. :class:`PinnedTransport` is the httpx
transport of :class:`connectors.http.GuardedClient`: its dialer runs the check
on the very addresses it is about to connect to, so there is no DNS-rebinding
gap between check and connect, and every connect and read is bounded by the
fetch's :data:`DEADLINE`.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Final

import httpcore
import httpx

# httpcore does not re-export its socket-option type; the backend signature needs it.
from httpcore._backends.base import SOCKET_OPTION

from pipeline.errors import PermanentError, RetriableError

__all__ = [
    "DEADLINE",
    "HttpRetriableError",
    "PinnedTransport",
    "check_address",
    "is_public_address",
]

_SHARED_ADDRESS_SPACE: Final = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_PREFIX: Final = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The deadline of the fetch running in this thread (monotonic seconds), read by
#: the dialer and the socket streams so that no single connect or read can wait
#: past it, whatever the per-phase timeouts say.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
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


def literal_ip(host: str) -> IPAddress | None:
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
    literal = literal_ip(host)
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
        ip = literal_ip(address)
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
    deadline = DEADLINE.get()
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


class PinnedTransport(httpx.HTTPTransport):
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
