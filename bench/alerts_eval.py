"""Precision and recall of rasd's alert matching on the labelled set, next to the stock
Elasticsearch ``arabic`` analyzer used as a phrase matcher, in the same run.

For every case of ``tests/fixtures/alerts/cases.yaml`` and every rule of the
``rules.yaml`` beside it, a decision "fires / does not fire" is compared with the
case's expectation. rasd decides with :class:`pipeline.rules.RuleMatcher`. The
baseline runs each text and each term (and alias) through ``_analyze`` with the
``arabic`` analyzer on the local stack (``rasd stack up``), and counts a term as
present when its tokens occur at consecutive positions in the text's tokens;
the rule logic (any/all/none, fields, sources, languages) is the same for both,
so only the linguistic matching differs. Prints TP/FP/FN, precision and recall
for each, and the cases the baseline gets wrong, by kind.

    .venv/bin/python bench/alerts_eval.py [--es http://127.0.0.1:9200] [--show 15]
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from elasticsearch import Elasticsearch

from connectors.elastic import new_elasticsearch
from pipeline.matching import RuleMatcher
from pipeline.rules import Rule, load_rules
from pipeline.settings import Settings

HERE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "alerts"


def scores(decisions: list[tuple[bool, bool]]) -> tuple[int, int, int, float, float]:
    tp = sum(got and want for got, want in decisions)
    fp = sum(got and not want for got, want in decisions)
    fn = sum(want and not got for got, want in decisions)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return tp, fp, fn, precision, recall


class EsPhraseMatcher:
    """The stock ``arabic`` analyzer as a phrase matcher, through ``_analyze``."""

    def __init__(self, es: Elasticsearch) -> None:
        self.es = es
        self.analyze = cache(self._analyze)

    def _analyze(self, text: str) -> tuple[tuple[str, int], ...]:
        if not text.strip():
            return ()
        tokens = self.es.indices.analyze(analyzer="arabic", text=text)["tokens"]
        return tuple((t["token"], t["position"]) for t in tokens)

    def has(self, text: str, term: str) -> bool:
        words = [t for t, _ in self.analyze(term)]
        if not words:
            return False  # the term is all stopwords: the analyzer cannot see it
        got = self.analyze(text)
        at = {(tok, pos) for tok, pos in got}
        return any(
            all((w, pos + i) in at for i, w in enumerate(words))
            for tok, pos in got
            if tok == words[0]
        )

    def fires(self, rule: Rule, case: dict[str, Any]) -> bool:
        texts = [case.get(f, "") for f in rule.fields]

        def present(term: Any) -> bool:
            return any(self.has(t, s) for t in texts for s in term.spellings)

        if any(present(t) for t in rule.none):
            return False
        if rule.any and not any(present(t) for t in rule.any):
            return False
        if not all(present(t) for t in rule.all):
            return False
        return rule.accepts_source(
            case.get("outlet", "وكالة المرصد"), "", case.get("language", "ar")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--es", help="Elasticsearch URL (default: the configured one)")
    parser.add_argument("--show", type=int, default=15, help="baseline errors to list")
    args = parser.parse_args()
    rules = load_rules(HERE / "rules.yaml")
    cases: list[dict[str, Any]] = yaml.safe_load((HERE / "cases.yaml").read_text("utf-8"))["cases"]
    matcher = RuleMatcher(rules)
    es = new_elasticsearch(args.es or Settings().elasticsearch, request_timeout=30)
    baseline = EsPhraseMatcher(es)

    ours: list[tuple[bool, bool]] = []
    stock: list[tuple[bool, bool]] = []
    errors: list[str] = []
    for case in cases:
        fired = {
            h.rule_id
            for h in matcher.match_fields(
                {"title": case.get("title", ""), "body": case.get("body", "")},
                outlet=case.get("outlet", "وكالة المرصد"),
                feed_name="",
                language=case.get("language", "ar"),
            )
        }
        for rule in rules:
            want = rule.id in case["expect"]
            ours.append((rule.id in fired, want))
            got = baseline.fires(rule, case)
            stock.append((got, want))
            if got != want:
                kind = "FN" if want else "FP"
                errors.append(f"  {kind} {rule.id:<18} {case['note']}")
    print(f"labelled set: {len(cases)} cases x {len(rules)} rules = {len(ours)} decisions")
    print(f"{'matcher':<34} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>10} {'recall':>8}")
    for name, decisions in (("rasd RuleMatcher", ours), ("ES stock `arabic` + phrase", stock)):
        tp, fp, fn, p, r = scores(decisions)
        print(f"{name:<34} {tp:>4} {fp:>4} {fn:>4} {p:>10.3f} {r:>8.3f}")
    print(f"baseline errors ({len(errors)}), first {args.show}:")
    print("\n".join(errors[: args.show]))
    es.close()


if __name__ == "__main__":
    main()
