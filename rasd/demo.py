"""A local news site for ``rasd demo`` and the end-to-end tests.

The bundled fixtures under ``tests/fixtures/site/`` are three fictional Arabic
outlets (an RSS 2.0 feed, an Atom feed with relative links, a wire agency's RSS
feed), their article pages, a page that is linked but missing, and a malformed
feed. :class:`FixtureSite` serves such a directory over HTTP on 127.0.0.1, so
that a newcomer without internet can watch articles flow through the whole
pipeline, and so that the e2e tests and benchmarks have real HTTP to poll.

The files hold the literal placeholder ``{BASE}`` wherever an absolute URL is
needed; the server replaces it with its own base URL (``http://127.0.0.1:PORT``)
when it serves ``.xml``, ``.html``, ``.yaml`` and ``.txt`` files.
:func:`write_feeds_file` renders the site's ``feeds.yaml`` catalogue the same
way, for ``rasd run --feeds``.

The server uses the standard library only. It answers ``GET`` and ``HEAD``,
sends ``ETag`` and ``Last-Modified`` and honours ``If-None-Match`` and
``If-Modified-Since`` with ``304``, answers ``404`` for anything missing, and
records every request (path with query string, ``time.monotonic()``) in
:attr:`FixtureSite.requests`, which the latency benchmark reads. Tests can
replace any path's response at run time with :meth:`FixtureSite.override`, for
example to publish a new feed item or to make a page answer ``503``.

Run it by hand with ``python -m rasd.demo [--port 8080]``.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self, cast
from urllib.parse import unquote, urlsplit

__all__ = [
    "BASE_PLACEHOLDER",
    "FixtureSite",
    "ServedRequest",
    "default_site_root",
    "substitute_base",
    "write_feeds_file",
]

log = logging.getLogger(__name__)

#: The placeholder that fixture files use for the server's base URL.
BASE_PLACEHOLDER = "{BASE}"

#: Suffixes whose content gets ``{BASE}`` substituted.
_TEMPLATED_SUFFIXES = frozenset({".xml", ".html", ".htm", ".yaml", ".yml", ".txt"})

_CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".yaml": "application/yaml; charset=utf-8",
    ".yml": "application/yaml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}

_RSS_TYPE = "application/rss+xml; charset=utf-8"
_ATOM_TYPE = "application/atom+xml; charset=utf-8"


def default_site_root() -> Path:
    """The bundled demo site: ``RASD_DEMO_SITE`` if set (the container image sets it),
    else ``tests/fixtures/site`` of the source checkout."""
    explicit = os.environ.get("RASD_DEMO_SITE")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "site"


def substitute_base(text: str, base_url: str) -> str:
    """Replace every ``{BASE}`` in *text* with *base_url* (without a trailing slash)."""
    return text.replace(BASE_PLACEHOLDER, base_url.rstrip("/"))


def write_feeds_file(site_root: Path, base_url: str, dest: Path) -> Path:
    """Render ``site_root/feeds.yaml`` with ``{BASE}`` replaced by *base_url*.

    *dest* is the file to write; its parent directories are created. Returns
    *dest*, ready to pass to ``rasd run --feeds``.
    """
    text = (Path(site_root) / "feeds.yaml").read_text(encoding="utf-8")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(substitute_base(text, base_url), encoding="utf-8")
    return dest


def _content_type(path: Path, body: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        head = body[:2048]
        if b"<feed" in head and b"http://www.w3.org/2005/Atom" in head:
            return _ATOM_TYPE
        return _RSS_TYPE
    return _CONTENT_TYPES.get(suffix, "application/octet-stream")


class ServedRequest(NamedTuple):
    """One request the site answered: raw path (with query) and ``time.monotonic()``."""

    path: str
    time: float


@dataclass(frozen=True)
class _Override:
    status: int
    body: bytes
    content_type: str
    templated: bool
    headers: Mapping[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], site: FixtureSite) -> None:
        self.site = site
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up early (a size cap, a timeout, a shutdown) is
        # normal here; the default handler would print a traceback for it.
        log.debug("request from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rasd-demo/1.0"
    sys_version = ""

    # Headers and body go out in separate writes; with Nagle's algorithm on, the
    # body then waits for the client's delayed ACK (40 ms on Linux) on every request.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ------------------------------------------------------------------
    def _respond(self, *, send_body: bool) -> None:
        site = cast(_Server, self.server).site
        site._record(self.path)
        path = unquote(urlsplit(self.path).path)

        override = site._override_for(path)
        if override is not None:
            body = override.body
            if override.templated:
                body = substitute_base(body.decode("utf-8"), site.base_url).encode("utf-8")
            self._send(
                override.status,
                body,
                override.content_type,
                dict(override.headers),
                send_body=send_body,
            )
            return

        file = site._resolve(path)
        if file is None:
            self._send_not_found(send_body=send_body)
            return
        try:
            raw = file.read_bytes()
            mtime = file.stat().st_mtime
        except OSError:
            self._send_not_found(send_body=send_body)
            return
        body = site._render(file, raw)
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        last_modified = email.utils.formatdate(int(mtime), usegmt=True)
        headers = {"ETag": etag, "Last-Modified": last_modified}

        if self._not_modified(etag, int(mtime)):
            self._send(HTTPStatus.NOT_MODIFIED, b"", None, headers, send_body=False)
            return
        self._send(HTTPStatus.OK, body, _content_type(file, body), headers, send_body=send_body)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
            return etag in tags or "*" in tags
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since:
            try:
                since = email.utils.parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                return False
            return mtime <= int(since.timestamp())
        return False

    def _send_not_found(self, *, send_body: bool) -> None:
        body = (
            '<!DOCTYPE html><html lang="ar" dir="rtl"><head><meta charset="utf-8">'
            "<title>404 - الصفحة غير موجودة</title></head><body>"
            "<h1>الصفحة غير موجودة</h1><p>ربما حُذفت هذه الصفحة أو تغيّر رابطها.</p>"
            "</body></html>"
        ).encode()
        self._send(HTTPStatus.NOT_FOUND, body, _CONTENT_TYPES[".html"], {}, send_body=send_body)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Mapping[str, str],
        *,
        send_body: bool,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and body and status != HTTPStatus.NOT_MODIFIED:
            self.wfile.write(body)


class FixtureSite:
    """Serve a fixture site directory over HTTP on a local port.

    >>> with FixtureSite(default_site_root()) as site:   # doctest: +SKIP
    ...     httpx.get(site.url("/sham/feed.xml"))

    ``port=0`` picks a free port; :attr:`base_url` tells which. The server runs
    in a daemon thread between :meth:`start` and :meth:`stop` (or the ``with``
    block).
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"fixture site root is not a directory: {self.root}")
        self.host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._overrides: dict[str, _Override] = {}
        #: Every request answered, in order: ``(path with query, time.monotonic())``.
        self.requests: list[ServedRequest] = []

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> Self:
        """Bind and start serving in a background thread. Returns ``self``."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"rasd-demo-site:{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        log.info("demo site serving %s at %s", self.root, self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call more than once."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FixtureSite is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without a trailing slash."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL of a site path such as ``/sham/feed.xml``."""
        return self.base_url + "/" + path.lstrip("/")

    # -- request log -------------------------------------------------------------
    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def requests_for(self, path: str) -> list[float]:
        """Monotonic times at which *path* was requested (query string ignored)."""
        with self._lock:
            return [r.time for r in self.requests if urlsplit(r.path).path == path]

    # -- run-time changes ----------------------------------------------------------
    def override(
        self,
        path: str,
        body: bytes | str = b"",
        *,
        status: int = 200,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer *path* with the given response instead of the file on disk.

        A ``str`` body is sent as UTF-8 with ``{BASE}`` substituted at serve time. Without
        *content_type* the type follows the path's suffix, as for files.
        """
        templated = isinstance(body, str)
        data = body.encode("utf-8") if isinstance(body, str) else body
        ctype = content_type or _content_type(Path(path), data)
        override = _Override(status, data, ctype, templated, dict(headers or {}))
        with self._lock:
            self._overrides[path] = override

    def clear_override(self, path: str | None = None) -> None:
        """Remove the override for *path*, or every override."""
        with self._lock:
            if path is None:
                self._overrides.clear()
            else:
                self._overrides.pop(path, None)

    # -- used by the handler ---------------------------------------------------------
    def _record(self, raw_path: str) -> None:
        with self._lock:
            self.requests.append(ServedRequest(raw_path, time.monotonic()))

    def _override_for(self, path: str) -> _Override | None:
        with self._lock:
            return self._overrides.get(path)

    def _resolve(self, path: str) -> Path | None:
        parts = [p for p in path.split("/") if p]
        if any(p.startswith(".") for p in parts):
            return None
        candidate = self.root.joinpath(*parts)
        if candidate.is_dir():
            candidate = candidate / "index.html"
        try:
            candidate = candidate.resolve()
            candidate.relative_to(self.root)
        except (OSError, ValueError):
            return None
        return candidate if candidate.is_file() else None

    def _render(self, file: Path, raw: bytes) -> bytes:
        if file.suffix.lower() not in _TEMPLATED_SUFFIXES or BASE_PLACEHOLDER.encode() not in raw:
            return raw
        return substitute_base(raw.decode("utf-8"), self.base_url).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """Serve the demo site until interrupted: ``python -m rasd.demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m rasd.demo", description="Serve the bundled demo news site locally."
    )
    parser.add_argument("--root", type=Path, default=default_site_root(), help="site directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--feeds-out", type=Path, default=None, help="also write the rendered feeds.yaml here"
    )
    args = parser.parse_args(argv)
    with FixtureSite(args.root, args.host, args.port) as site:
        print(f"serving {site.root} at {site.base_url}/")
        for line in (site.root / "feeds.yaml").read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("- url:"):
                print(
                    "  feed:",
                    substitute_base(line.split(":", 1)[1].strip().strip('"'), site.base_url),
                )
        if args.feeds_out is not None:
            print("feeds file:", write_feeds_file(site.root, site.base_url, args.feeds_out))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
