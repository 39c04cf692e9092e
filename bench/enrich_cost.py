"""Cost of the enrich stage per article: the whole stage, on a 1,000-word Arabic article.

The article is made of the hand-gold bodies of ``../shared/corpus/articles``
(read in place, never copied) and of the demo site's gold texts, cut to
``--words`` words, with a headline. The rules are ``config/rules.yaml`` (or
``--rules``). Two set-ups are timed in the same process, alternately, so that
the machine's load weighs on both alike:

* ``base``: :func:`pipeline.enrichment.enrich` with the rules only (language,
  canonical text, word count, rule matches, dates);
* ``full``: the same with the place and entity gazetteers.

For each it prints the median and p95 milliseconds per article over ``--runs``
runs (wall clock), the median CPU time of the process per article (what the
work costs when other programs share the cores), and the ratio of the medians.
The bar: ``full`` at most 5 ms median.
``--profile`` prints the top of a cProfile of the ``full`` set-up instead.

    .venv/bin/python bench/enrich_cost.py [--words 1000] [--runs 300] [--json] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.enrichment import Enricher  # noqa: E402  (the repository root is put on sys.path first)
from pipeline.gazetteer import load_gazetteers  # noqa: E402
from pipeline.matching import RuleMatcher  # noqa: E402
from pipeline.models import DedupedArticle  # noqa: E402
from pipeline.rules import load_rules  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "articles"
GOLD = ROOT / "tests" / "fixtures" / "site" / "gold"


def article_text(words: int) -> str:
    paths = sorted(GOLD.glob("*.txt")) + sorted(CORPUS.glob("ar-*.gold.txt"))
    paragraphs = [line for p in paths for line in p.read_text(encoding="utf-8").splitlines()]
    out: list[str] = []
    count = 0
    for paragraph in paragraphs:
        if not paragraph.strip():
            continue
        n = len(paragraph.split())
        if count + n > words:
            out.append(" ".join(paragraph.split()[: words - count]))
            break
        out.append(paragraph)
        count += n
    return "\n".join(out)


def make_article(words: int) -> DedupedArticle:
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    return DedupedArticle(
        id="bench",
        url="https://example.org/a",
        canonical_url="https://example.org/a",
        feed_url="https://example.org/feed",
        outlet="bench",
        feed_name="bench",
        country="SY",
        language="ar",
        title="وثائق جديدة من ملف قيصر عن معتقلين في سجن صيدنايا قرب دمشق",
        first_seen=now,
        index_name="rasd-articles-2026.11",
        body=article_text(words),
        fetched_at=now,
        http_status=200,
        body_hash="x",
        cluster_id="bench",
    )


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) milliseconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rules", type=Path, default=ROOT / "config" / "rules.yaml")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    article = make_article(args.words)
    matcher = RuleMatcher(load_rules(args.rules))
    t0 = time.perf_counter()
    gazetteers = load_gazetteers(cache_dir=Settings().cache_dir)
    load_ms = (time.perf_counter() - t0) * 1000
    base = Enricher(matcher=matcher)
    full = Enricher(matcher=matcher, gazetteers=gazetteers)
    sample = full.enrich(article)

    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.runs):
            full.enrich(article)
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
        return

    for _ in range(20):  # warm caches on both sides
        base.enrich(article)
        full.enrich(article)
    times: dict[str, list[float]] = {"base": [], "full": []}
    cpu: dict[str, list[float]] = {"base": [], "full": []}
    for _ in range(args.runs):
        for name, enricher in (("base", base), ("full", full)):
            wall, used = timed(functools.partial(enricher.enrich, article))
            times[name].append(wall)
            cpu[name].append(used)

    def p95(xs: list[float]) -> float:
        return sorted(xs)[int(len(xs) * 0.95) - 1]

    result = {
        "words": len(article.body.split()),
        "runs": args.runs,
        "gazetteer_load_ms": round(load_ms, 1),
        "places_found": len(sample.places),
        "entities_found": len(sample.entities),
        "rules_matched": len(sample.matched_rules),
        **{f"{k}_median_ms": round(statistics.median(v), 3) for k, v in times.items()},
        **{f"{k}_p95_ms": round(p95(v), 3) for k, v in times.items()},
        **{f"{k}_cpu_median_ms": round(statistics.median(v), 3) for k, v in cpu.items()},
        "full_over_base": round(
            statistics.median(times["full"]) / statistics.median(times["base"]), 2
        ),
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
