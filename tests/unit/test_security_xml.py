"""XML hardening of feed parsing: entity bombs and external entities.

Each hostile feed is written here. The proofs are not timings: a bomb must be
refused before anything is expanded (the parse allocates far less memory than
one expansion would need), and an external entity or DTD must cause no file
read (a marker file's text never shows up) and no network access (a local
listening socket accepts no connection).
"""

from __future__ import annotations

import contextlib
import pyexpat
import socket
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.feedparse import FeedParse, parse_feed
from pipeline.errors import PermanentError
from pipeline.feeds import Feed

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FEED = Feed(url="https://feeds.example/rss", name="اختبار", outlet="Test", country="sy")
ITEM = "<item><title>{title}</title><link>https://x.example/1</link></item>"


def parse(content: str) -> FeedParse:
    return parse_feed(
        content.encode("utf-8"),
        FEED,
        fetched_url=FEED.url,
        content_type="application/rss+xml",
        namespace="rasd",
        now=NOW,
    )


def rss(doctype: str, title: str) -> str:
    return (
        f'<?xml version="1.0"?>{doctype}<rss version="2.0"><channel><title>t</title>'
        f"{ITEM.format(title=title)}</channel></rss>"
    )


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, int]]:
    """A listening socket on 127.0.0.1 that records whether anyone connected."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock, sock.getsockname()[1]
    sock.close()


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def peak_bytes(content: str) -> tuple[int, PermanentError | FeedParse]:
    tracemalloc.start()
    try:
        try:
            outcome: PermanentError | FeedParse = parse(content)
        except PermanentError as exc:
            outcome = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, outcome


def test_expat_has_amplification_limits() -> None:
    # expat 2.4 added billion-laughs amplification limits; 2.6 added the
    # large-token and reparse-deferral fixes that Python's docs ask for. This
    # interpreter ships 2.5.0, so we require 2.4 and rely on our own DOCTYPE
    # filter (connectors.feedparse._entity_bomb, tested below) for the rest:
    # it refuses nested, parameter and oversized entities before expat sees them.
    assert pyexpat.version_info >= (2, 4, 0), pyexpat.EXPAT_VERSION


def test_billion_laughs_is_refused_without_expansion() -> None:
    entities = '<!ENTITY a "hahahahaha">' + "".join(
        f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    # Fully expanded: 10^9 copies of "hahahahaha", 10 GB.
    peak, outcome = peak_bytes(rss(f"<!DOCTYPE rss [{entities}]>", "&i;"))
    assert isinstance(outcome, PermanentError)
    assert outcome.reason == "malformed_feed"
    assert peak < 5_000_000, peak


def test_quadratic_blowup_is_refused_without_expansion() -> None:
    # One 100 KB entity referenced 10,000 times: 1 GB once expanded.
    doctype = f'<!DOCTYPE rss [<!ENTITY a "{"x" * 100_000}">]>'
    peak, outcome = peak_bytes(rss(doctype, "&a;" * 10_000))
    assert isinstance(outcome, PermanentError)
    assert outcome.reason == "malformed_feed"
    assert peak < 20_000_000, peak  # the document itself is ~130 KB; 1 GB would be expansion


def test_parameter_entities_are_refused() -> None:
    doctype = "<!DOCTYPE rss [<!ENTITY % p \"<!ENTITY x 'boom'>\"> %p;]>"
    with pytest.raises(PermanentError) as err:
        parse(rss(doctype, "&x;"))
    assert err.value.reason == "malformed_feed"


def test_external_file_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER", encoding="utf-8")
    doctype = f'<!DOCTYPE rss [<!ENTITY f SYSTEM "{secret.as_uri()}">]>'
    result = parse(rss(doctype, "قبل&f;بعد"))
    titles = " ".join(item.title for item in result.items)
    assert "TOP-SECRET-MARKER" not in titles
    assert all("TOP-SECRET-MARKER" not in item.summary for item in result.items)


def test_external_http_entity_and_remote_dtd_make_no_connection(
    listener: tuple[socket.socket, int],
) -> None:
    sock, port = listener
    for doctype, title in (
        (f'<!DOCTYPE rss [<!ENTITY h SYSTEM "http://127.0.0.1:{port}/x">]>', "a&h;b"),
        (f'<!DOCTYPE rss SYSTEM "http://127.0.0.1:{port}/evil.dtd">', "عنوان"),
        (f'<!DOCTYPE rss PUBLIC "-//X//EN" "http://127.0.0.1:{port}/p.dtd">', "عنوان"),
    ):
        # Refusing the document is as good as ignoring the entity.
        with contextlib.suppress(PermanentError):
            parse(rss(doctype, title))
    assert connections(sock) == 0
