"""Matching speed: 1,000 rules against a 1,000-word Arabic article (the bar: 5 ms).

Builds 1,000 rules from generated Arabic names and phrases (clitics, stem,
prefix and exact modes, Latin aliases, phrases of two and three words), an
article of 1,000 words in which a few dozen of them occur, and prints the time
to build the automaton, its pattern count, and the median / p95 milliseconds of
``RuleMatcher.match`` over many runs, with the number of rules that fired.

    .venv/bin/python bench/match_speed.py [--rules 1000] [--words 1000] [--runs 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime

from pipeline.matching import RuleMatcher
from pipeline.models import Article
from pipeline.rules import Rule

LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
FILLER = [
    "قال",
    "المتحدث",
    "باسم",
    "الوزارة",
    "إن",
    "الاجتماع",
    "الذي",
    "عقد",
    "في",
    "العاصمة",
    "أمس",
    "ناقش",
    "الأوضاع",
    "الإنسانية",
    "في",
    "المحافظات",
    "الشمالية",
    "وسبل",
    "إيصال",
    "المساعدات",
    "إلى",
    "المتضررين",
    "من",
    "الزلزال",
    "وأكد",
    "أن",
    "الحكومة",
    "ستعمل",
    "مع",
    "المنظمات",
    "الدولية",
    "على",
    "إعادة",
    "تأهيل",
    "المدارس",
    "والمستشفيات",
]


def word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 7)))


def make_rules(n: int, rng: random.Random) -> list[Rule]:
    rules = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            spec: dict[str, object] = {"any": [word(rng), word(rng)]}
        elif kind == 1:
            spec = {"any": [{"term": f"{word(rng)} {word(rng)}", "aliases": [f"name{i} x"]}]}
        elif kind == 2:
            spec = {"any": [{"term": word(rng), "mode": "stem"}], "all": [word(rng)]}
        elif kind == 3:
            spec = {"any": [{"term": word(rng), "mode": "prefix"}], "none": [word(rng)]}
        else:
            spec = {
                "any": [
                    f"{word(rng)} {word(rng)} {word(rng)}",
                    {"term": word(rng), "mode": "exact"},
                ]
            }
        rules.append(Rule.model_validate({"id": f"r{i}", "name": f"rule {i}", **spec}))
    return rules


def make_article(rules: list[Rule], words: int, rng: random.Random) -> Article:
    tokens = [rng.choice(FILLER) for _ in range(words)]
    # Plant the first term of every 25th rule (with a clitic) so some rules fire.
    for rule in rules[::25]:
        term = rule.any[0].term if rule.any else rule.all[0].term
        pos = rng.randrange(words)
        tokens[pos] = "و" + term
    now = datetime.now(UTC)
    return Article(
        id="bench",
        url="https://example.org/bench",
        canonical_url="https://example.org/bench",
        feed_url="https://example.org/feed",
        outlet="bench",
        feed_name="bench",
        country="sy",
        language="ar",
        title="عنوان الخبر",
        first_seen=now,
        index_name="bench-articles-2026.11",
        body=" ".join(tokens[:words]),
        fetched_at=now,
        http_status=200,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    rules = make_rules(args.rules, rng)
    begin = time.perf_counter()
    matcher = RuleMatcher(rules)
    build = time.perf_counter() - begin
    article = make_article(rules, args.words, rng)
    for _ in range(5):
        matcher.match(article)  # warm-up
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        hits = matcher.match(article)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    fired = len({h.rule_id for h in hits})
    print(
        f"rules={len(rules)} words={len(article.body.split())} patterns={len(matcher._automaton)}"
    )
    print(f"build_s={build:.2f}")
    print(
        f"match_ms median={statistics.median(times):.2f} "
        f"p95={times[int(len(times) * 0.95) - 1]:.2f} runs={args.runs} rules_fired={fired}"
    )


if __name__ == "__main__":
    main()
