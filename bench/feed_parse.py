"""Cost of parsing one feed: rasd's ``parse_feed`` against feedparser with its HTML sanitizer on.

A changed feed is parsed whole at every poll, so its cost is per item listed,
not per new item: a 30-item feed that gained one article costs 30 items' work.
This times, in one process and alternating so that the machine's noise falls
on both alike, over ``--feeds`` generated Arabic RSS feeds of ``--items``
items each (title, link, guid, date, and an HTML summary with a link, an image
and a script):

* **rasd**: :func:`connectors.feedparse.parse_feed`, as the poller calls it;
* **sanitized**: the same call with feedparser's own HTML sanitizer and
  relative-URI resolver turned on, which rasd had on until the summary's markup
  turned out to be stripped again by :func:`pipeline.text.plain_text`.

It prints the median ms per feed of each, their ratio, and checks that both
give the same items. Run::

    .venv/bin/python bench/feed_parse.py [--feeds 200] [--items 30] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402

from connectors.feedparse import parse_feed  # noqa: E402
from pipeline.feeds import Feed  # noqa: E402

NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)
WORDS = [
    "قال",
    "مسؤولون",
    "إن",
    "المفاوضات",
    "بشأن",
    "الملف",
    "السوري",
    "ستستأنف",
    "الأسبوع",
    "المقبل",
    "في",
    "جنيف",
]


def feed_document(n: int, items: int) -> bytes:
    entries = []
    for i in range(items):
        title = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8))
        summary = (
            f"<![CDATA[<p>{title} <a href='/f{n}/a/{i}.html'>التفاصيل</a></p>"
            f"<img src='/img/{i}.jpg'><script>track({i})</script>]]>"
        )
        when = format_datetime(NOW - timedelta(minutes=i))
        entries.append(
            f"<item><title>{title}</title><link>/f{n}/a/{i}.html</link>"
            f"<guid>https://outlet{n}.example/a/{i}</guid><pubDate>{when}</pubDate>"
            f"<description>{summary}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>منفذ {n}</title><link>https://outlet{n}.example/</link>"
        f"<language>ar</language>{''.join(entries)}</channel></rss>"
    ).encode()


def sanitizing_parse(*args: object, **kwargs: object) -> object:
    kwargs.update(sanitize_html=True, resolve_relative_uris=True)
    return ORIGINAL(*args, **kwargs)


ORIGINAL = feedparser.parse


def parse_all(docs: list[tuple[Feed, bytes]]) -> tuple[float, list[list[tuple[str, str, str]]]]:
    began = time.perf_counter()
    out = []
    for feed, doc in docs:
        parsed = parse_feed(
            doc,
            feed,
            fetched_url=feed.url,
            content_type="application/rss+xml; charset=utf-8",
            namespace="bench",
            now=NOW,
        )
        out.append([(i.url, i.title, i.summary) for i in parsed.items])
    return (time.perf_counter() - began) * 1000 / len(docs), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    docs = [
        (
            Feed(
                url=f"https://outlet{n}.example/feed.xml",
                name=f"feed {n}",
                outlet=f"outlet {n}",
                country="sy",
            ),
            feed_document(n, args.items),
        )
        for n in range(args.feeds)
    ]
    plain_ms, sanitized_ms = [], []
    for _ in range(args.rounds):
        ms, plain = parse_all(docs)
        plain_ms.append(ms)
        with mock.patch.object(feedparser, "parse", sanitizing_parse):
            ms, sanitized = parse_all(docs)
        sanitized_ms.append(ms)
        if plain != sanitized:
            sys.exit("the two parses gave different items")
    a, b = statistics.median(plain_ms), statistics.median(sanitized_ms)
    print(
        f"{args.feeds} feeds of {args.items} items, {args.rounds} rounds, median ms per feed: "
        f"rasd {a:.2f} ({a / args.items * 1000:.0f} us per item), "
        f"with feedparser's sanitizer {b:.2f} ({b / args.items * 1000:.0f} us per item); "
        f"x{b / a:.2f}; same items: yes"
    )


if __name__ == "__main__":
    main()
