"""Why a poll fails, as the poller counts it and as ``rasd feeds check`` prints it.

The pages are the hand-written fixtures of ``tests/fixtures/poll_failures/``;
the local :class:`~tests.unit.test_poll.FeedServer` serves each with the status
its first line states, and the poller and ``check_feed`` must both name the
reason it expects: a bot-protection page is ``challenge_page`` (403, 503 or
200), a plain 403 stays ``http_403``, a site's ordinary HTML is
``html_not_feed``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.challenge import challenge_marker
from connectors.feed_check import check_feed
from rasd.cli import app

from .test_poll import NOW, FeedServer, Rig, arabic_items, rss, static

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "poll_failures"
FIRST_LINE = re.compile(r"<!-- status: (\d{3}); expect: (\w+); why: [^>]+ -->")
#: What each reason adds to the failure counter (docs/polling.md): a 403 and a
#: bot-protection page do not pass by themselves, a 503 usually does.
WEIGHT = {"challenge_page": 1.0, "http_403": 1.0, "html_not_feed": 1.0, "http_503": 0.25}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    server = FeedServer()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    r = Rig(server, tmp_path)
    yield r
    r.http.close()
    server.shutdown()
    server.server_close()


def fixture_cases() -> list[object]:
    cases = []
    for path in sorted(FIXTURES.glob("*/*.html")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        match = FIRST_LINE.fullmatch(first)
        assert match, f"{path.name}: the first line must state status and expectation"
        status, expected = int(match.group(1)), match.group(2)
        assert expected == path.parent.name, f"{path}: expects {expected}"
        cases.append(pytest.param(path, status, expected, id=f"{expected}/{path.stem}"))
    return cases


CASES = fixture_cases()


def test_every_reason_has_fixtures() -> None:
    reasons = [case.values[2] for case in CASES]  # type: ignore[attr-defined]
    assert set(reasons) == set(WEIGHT)
    # Each way a challenge is recognised, at each status it comes with.
    assert reasons.count("challenge_page") >= 6


def serve(rig: Rig, path: Path, status: int) -> str:
    rig.server.routes["/feed"] = static(path.read_bytes(), "text/html; charset=utf-8", status)
    return rig.server.url("/feed")


@pytest.mark.parametrize(("path", "status", "expected"), CASES)
def test_the_poller_counts_the_reason_and_weights_it(
    rig: Rig, path: Path, status: int, expected: str
) -> None:
    url = serve(rig, path, status)
    result = rig.poll("/feed")
    assert (result.ok, result.outcome, result.status) == (False, expected, status)
    assert result.error is not None and result.error.startswith(f"{expected}: ")
    counters = rig.stats.snapshot()["poll"]
    assert counters[f"feed_failed:{expected}"] == 1
    severity = "hard" if WEIGHT[expected] == 1.0 else "temporary"
    assert counters[f"feed_failed_{severity}"] == 1
    state = rig.store.get(url)
    assert state.counts[f"failed:{expected}"] == 1
    assert state.last_error is not None and state.last_error.startswith(f"{expected}: ")
    assert state.failures == WEIGHT[expected]
    assert rig.sink.sent == []


@pytest.mark.parametrize(("path", "status", "expected"), CASES)
def test_feeds_check_names_the_same_reason(
    rig: Rig, path: Path, status: int, expected: str
) -> None:
    check = check_feed(rig.http, serve(rig, path, status), NOW)
    assert (check.reason, check.status) == (expected, status)
    assert check.error is not None and check.error.startswith(f"{expected}: ")
    assert check.items == []


def test_a_challenge_says_what_gave_it_away(rig: Rig) -> None:
    url = serve(rig, FIXTURES / "challenge_page" / "js-challenge-403.html", 403)
    check = check_feed(rig.http, url, NOW)
    assert check.detail == (
        f"HTTP 403, a bot-protection page (title 'Just a moment...'), not the feed: {url}"
    )


def test_repeated_challenges_make_the_feed_dead(rig: Rig) -> None:
    from pipeline.schedule import ScheduleBounds

    rig.bounds = ScheduleBounds(min_interval=60, dead_after=3, dead_retry=86400)
    rig.poller = rig.make()
    url = serve(rig, FIXTURES / "challenge_page" / "block-page-403.html", 403)
    intervals = []
    for _ in range(3):
        assert rig.poll("/feed").outcome == "challenge_page"
        intervals.append(rig.store.get(url).interval)
    # Each one doubles the wait, the third one is the feed's death (a daily retry).
    assert intervals == [1800.0, 3600.0, 86400]
    assert rig.store.get(url).dead


def test_the_feed_itself_is_never_a_challenge(rig: Rig) -> None:
    # An item may well be titled like a challenge page; only failures are looked at.
    body = rss([("Just a moment... captcha", "https://news.example/a/1"), *arabic_items(1)])
    rig.server.routes["/ok"] = static(body.encode())
    result = rig.poll("/ok")
    assert (result.ok, result.items_new) == (True, 2)


@pytest.mark.parametrize(
    ("body", "marker"),
    [
        (b"<title>\n  Just a&nbsp;moment&hellip;\n</title>", "title 'Just a moment\u2026'"),
        (b"<html><head><title>x</title></head><body><div class='cf-turnstile'></div>", "a captcha"),
        (b"<script src='/cdn-cgi/challenge-platform/scripts/jsd/main.js'></script>", None),
        (b"<p>" + b"<a href='/x'>x</a>" * 10 + b"<div class='h-captcha'></div>", None),
        (b"<title>" + "خبر عن التحقق من الهوية".encode() + b"</title>", None),
        (b"", None),
    ],
)
def test_challenge_markers(body: bytes, marker: str | None) -> None:
    found = challenge_marker(body)
    if marker is None:
        assert found is None
    else:
        assert found is not None and found.startswith(marker)


def test_the_feeds_check_command_prints_the_reason(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RASD_ALLOW_PRIVATE_NETWORKS", "true")
    runner = CliRunner()
    url = serve(rig, FIXTURES / "challenge_page" / "browser-check-503.html", 503)
    result = runner.invoke(app, ["feeds", "check", url])
    assert result.exit_code == 1, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "status: 503" in lines
    assert "failed: challenge_page" in lines
    assert any(
        line.startswith("detail: HTTP 503, a bot-protection page (Cloudflare browser check)")
        for line in lines
    ), result.output

    rig.server.routes["/forbidden"] = static(b"no", "text/plain", 403)
    result = runner.invoke(app, ["feeds", "check", rig.server.url("/forbidden")])
    assert result.exit_code == 1
    assert "failed: http_403" in [" ".join(line.split()) for line in result.output.splitlines()]

    rig.server.routes["/ok"] = static(rss(arabic_items(2)).encode())
    result = runner.invoke(app, ["feeds", "check", rig.server.url("/ok")])
    assert result.exit_code == 0, result.output
    assert "failed:" not in result.output and "خبر عاجل رقم 1" in result.output
