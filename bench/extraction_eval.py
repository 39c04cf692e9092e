"""Extraction quality and speed on real Arabic news pages.

Scores every page that has a hand gold in ``../shared/corpus/articles`` (read in
place, never copied) and, separately, the held-back pages we wrote ourselves in
``tests/fixtures/extract/articles`` (never used for tuning). The scoring is the
corpus README's convention: the gold lines and the extracted text are joined,
normalized with :func:`pipeline.arabic.normalize`, split on whitespace,
stripped of punctuation, and compared as bags of tokens; precision, recall and
F1 per page, then the macro average (mean of page F1) and the micro average
(overlaps and counts summed). In the same run it compares rasd's extractor
(:func:`connectors.extract.extract_text`) with trafilatura's defaults, its
``favor_precision`` and ``favor_recall`` modes, and readability-lxml, and times
each one: single-threaded CPU time per page, over ``--repeat`` passes, as the
median and p99 ms per page and pages per second per core (1000 / median, and
pages / total CPU seconds). Run::

    .venv/bin/python bench/extraction_eval.py [--repeat 5] [--pages] [--json]

It prints the acceptance check for rasd (macro F1 >= 0.98, no page below 0.93,
at least the best baseline, >= 30 pages/s/core median) on both page sets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lxml.html  # type: ignore[import-untyped]  # noqa: E402  (lxml ships no types)
import trafilatura  # noqa: E402

from connectors.extract import (  # noqa: E402  (the repo root is put on sys.path first)
    MIN_WORDS,
    _dense_block,
    _run,
    extract_text,
)
from pipeline.arabic import normalize  # noqa: E402
from pipeline.errors import PermanentError  # noqa: E402
from pipeline.text import decode_body  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "articles"
HELD_BACK = ROOT / "tests" / "fixtures" / "extract" / "articles"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
TARGET_MACRO, TARGET_FLOOR, TARGET_SPEED = 0.98, 0.93, 30.0


@dataclass(frozen=True)
class Page:
    id: str
    html: str
    gold: str


def load_pages(folder: Path) -> list[Page]:
    """Pages of ``folder`` that have a ``<id>.gold.txt`` next to ``<id>.html``."""
    pages = []
    for gold in sorted(folder.glob("*.gold.txt")):
        page_id = gold.name.removesuffix(".gold.txt")
        html_path = folder / f"{page_id}.html"
        if html_path.exists():
            html, _ = decode_body(html_path.read_bytes())
            pages.append(Page(page_id, html, gold.read_text(encoding="utf-8")))
    return pages


def tokens(text: str) -> Counter[str]:
    """The corpus convention: normalize, split on whitespace, strip punctuation."""
    out: Counter[str] = Counter()
    for raw in normalize(text).split():
        token = "".join(c for c in raw if not unicodedata.category(c).startswith("P"))
        if token:
            out[token] += 1
    return out


def score(gold: str, found: str) -> tuple[int, int, int]:
    """(overlap, |out|, |gold|) as bags of tokens."""
    g, o = tokens(gold), tokens(found)
    return sum((g & o).values()), sum(o.values()), sum(g.values())


def prf(overlap: int, out: int, gold: int) -> tuple[float, float, float]:
    p = overlap / out if out else 0.0
    r = overlap / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


# --------------------------------------------------------------------------- extractors


def _rasd(html: str, url: str) -> str:
    try:
        return extract_text(html, url, NOW).body
    except PermanentError:
        return ""


def _trafilatura(precision: bool = False, recall: bool = False) -> Callable[[str, str], str]:
    def run(html: str, url: str) -> str:
        return (
            trafilatura.extract(html, url=url, favor_precision=precision, favor_recall=recall) or ""
        )

    return run


_BLOCK_TAGS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr")


def _readability(html: str, url: str) -> str:
    from readability import Document  # type: ignore[import-untyped]  # the test extra

    summary = Document(html, url=url).summary(html_partial=True)
    root = lxml.html.fromstring(summary)
    for element in root.iter(*_BLOCK_TAGS):  # block boundaries are word boundaries
        element.tail = "\n" + (element.tail or "")
    return str(root.text_content())


EXTRACTORS: dict[str, Callable[[str, str], str]] = {
    "rasd": _rasd,
    "trafilatura-default": _trafilatura(),
    "trafilatura-precision": _trafilatura(precision=True),
    "trafilatura-recall": _trafilatura(recall=True),
    "readability-lxml": _readability,
}


def _recall_fast(html: str, url: str) -> str:
    return trafilatura.extract(html, url=url, favor_recall=True, fast=True) or ""


def _dense(html: str, url: str) -> str:
    return _dense_block(html)


#: Candidates for rasd's fallback, scored on the pages where rasd's precise
#: pass finds fewer than MIN_WORDS words (where a fallback runs at all), and,
#: for the general ones, alone on every page: the fallback is chosen by these.
FALLBACKS: dict[str, Callable[[str, str], str]] = {
    "trafilatura-recall-fast": _recall_fast,
    "dense-br-block": _dense,
    "readability-lxml": _readability,
}


def needs_fallback(page: Page) -> bool:
    found = _run(page.html, "https://news.example/", NOW, precise=True)
    return found is None or len(found.body.split()) < MIN_WORDS


@dataclass
class Result:
    per_page: dict[str, tuple[float, float, float]]
    micro: tuple[float, float, float]
    macro_f1: float
    lowest: tuple[str, float]
    median_ms: float
    p99_ms: float
    pages_per_s_median: float
    pages_per_s_total: float


def evaluate(pages: list[Page], run: Callable[[str, str], str], repeat: int) -> Result:
    per_page: dict[str, tuple[float, float, float]] = {}
    sums = [0, 0, 0]
    times: list[float] = []
    # A worker runs warm: one untimed pass loads lazy imports and caches
    # (htmldate's first extensive search alone costs about a second).
    for page in pages:
        run(page.html, f"https://news.example/{page.id}")
    for page in pages:
        url = f"https://news.example/{page.id}"
        text = ""
        for _ in range(repeat):
            started = time.process_time()
            text = run(page.html, url)
            times.append(time.process_time() - started)
        counts = score(page.gold, text)
        per_page[page.id] = prf(*counts)
        sums = [a + b for a, b in zip(sums, counts, strict=True)]
    f1s = {k: v[2] for k, v in per_page.items()}
    lowest = min(f1s.items(), key=lambda kv: kv[1])
    ordered = sorted(times)
    median = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return Result(
        per_page=per_page,
        micro=prf(sums[0], sums[1], sums[2]),
        macro_f1=statistics.fmean(f1s.values()),
        lowest=lowest,
        median_ms=median * 1000,
        p99_ms=p99 * 1000,
        pages_per_s_median=1 / median if median else float("inf"),
        pages_per_s_total=len(times) / sum(times) if sum(times) else float("inf"),
    )


def verdict(results: dict[str, Result]) -> list[str]:
    """What fails the acceptance for rasd; empty if everything holds."""
    rasd = results["rasd"]
    failures = []
    best_name, best = max(
        ((n, r.macro_f1) for n, r in results.items() if n != "rasd"), key=lambda kv: kv[1]
    )
    if rasd.macro_f1 < TARGET_MACRO:
        failures.append(f"macro F1 {rasd.macro_f1:.3f} < {TARGET_MACRO}")
    if rasd.lowest[1] < TARGET_FLOOR:
        failures.append(f"page {rasd.lowest[0]} F1 {rasd.lowest[1]:.3f} < {TARGET_FLOOR}")
    if rasd.macro_f1 + 1e-9 < best:
        failures.append(f"macro F1 {rasd.macro_f1:.3f} below {best_name} {best:.3f}")
    if rasd.pages_per_s_median < TARGET_SPEED:
        failures.append(f"{rasd.pages_per_s_median:.1f} pages/s/core < {TARGET_SPEED}")
    return failures


def report(title: str, pages: list[Page], results: dict[str, Result], show_pages: bool) -> None:
    print(f"\n== {title}: {len(pages)} pages with gold")
    print(
        f"{'extractor':<22} {'macroF1':>7} {'microP':>7} {'microR':>7} {'microF1':>7}"
        f" {'lowest page':>30} {'med ms':>7} {'p99 ms':>7} {'pg/s/core':>9}"
    )
    for name, r in results.items():
        low = f"{r.lowest[0][:22]} {r.lowest[1]:.3f}"
        print(
            f"{name:<22} {r.macro_f1:7.3f} {r.micro[0]:7.3f} {r.micro[1]:7.3f} {r.micro[2]:7.3f}"
            f" {low:>30} {r.median_ms:7.1f} {r.p99_ms:7.1f} {r.pages_per_s_median:9.1f}"
        )
    if show_pages:
        names = list(results)
        print("\nper page F1: " + " | ".join(names))
        for page in pages:
            row = " ".join(f"{results[n].per_page[page.id][2]:.3f}" for n in names)
            print(f"  {page.id:<32} {row}")
    failures = verdict(results)
    print("rasd acceptance: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per page")
    parser.add_argument("--pages", action="store_true", help="print F1 per page")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    sets = {"corpus (hand gold)": load_pages(CORPUS), "held-back (ours)": load_pages(HELD_BACK)}
    if not sets["corpus (hand gold)"]:
        print(f"no gold pages under {CORPUS}", file=sys.stderr)
        return 2
    everything: dict[str, dict[str, Result]] = {}
    ok = True
    for title, pages in sets.items():
        if not pages:
            continue
        results = {name: evaluate(pages, run, args.repeat) for name, run in EXTRACTORS.items()}
        everything[title] = results
        ok = ok and not verdict(results)
        hard = [page for page in pages if needs_fallback(page)]
        fallbacks = {
            f"{scope}:{name}": evaluate(subset, run, 1)
            for scope, subset in (("fallback-pages", hard), ("all-pages", pages))
            for name, run in FALLBACKS.items()
            if subset
        }
        everything[f"{title} fallbacks"] = fallbacks
        if not args.json:
            report(title, pages, results, args.pages)
            print(f"fallback candidates ({len(hard)} pages need a fallback):")
            for name, r in fallbacks.items():
                print(
                    f"  {name:<40} macro F1 {r.macro_f1:.3f}  lowest {r.lowest[1]:.3f}"
                    f"  median {r.median_ms:.1f} ms"
                )
    if args.json:
        print(
            json.dumps(
                {t: {n: r.__dict__ for n, r in rs.items()} for t, rs in everything.items()},
                indent=2,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
