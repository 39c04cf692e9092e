"""Recall@10 and precision@10 of rasd's search against the stock ``arabic`` analyzer.

Reads the search-quality set of ``tests/fixtures/search/`` (short articles
written for it, each planting one trap, and queries with the articles a reader
expects them to find), indexes it into a fresh namespace on the local stack
through ``ElasticStore`` and the real template, and runs every query three ways
in the same run:

* ``rasd``: ``rasd search``'s default, precise query (the ``.clitics`` fields,
  whose analyzer puts each word's proclitic-free base at its position);
* ``query_string``: the query sent as it is, the way Kibana's query bar sends
  free text (``query_string`` with no field: ``index.query.default_field``);
* ``rasd --stem``: the same query on the stemmed fields;
* ``fallback`` and ``fallback qs``: the two above on an index made as a
  plugin-less Elasticsearch gets it (``RASD_ES_FOLD_FILTER=false``: stock
  ``persian_normalization`` and ``pattern_capture`` instead of the rasd-fold
  filters);
* ``stock arabic``: a throw-away index whose title and body use Elasticsearch's
  ``arabic`` analyzer, queried with a plain ``multi_match`` (operator ``and``,
  the query without its quotes).

Precision@10 is the share of relevant articles among those returned (at most
10); a query that returns nothing has precision 0. It deletes its namespace
and the throw-away index at the end, whatever happens. Run::

    .venv/bin/python bench/search_eval.py [--json] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.elastic import ElasticStore  # noqa: E402  (the root is put on sys.path first)
from pipeline.enrichment import enrich  # noqa: E402
from pipeline.models import Article, EnrichedArticle, monthly_index  # noqa: E402
from pipeline.search import build_query  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "search"
K = 10
WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)


@dataclass
class Score:
    recall: list[float] = field(default_factory=list)
    precision: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)

    def add(self, query: str, found: list[str], relevant: set[str]) -> None:
        top = found[:K]
        hits = relevant.intersection(top)
        self.recall.append(len(hits) / min(len(relevant), K))
        self.precision.append(len(hits) / len(top) if top else 0.0)
        self.misses += [f"{query}: {m}" for m in sorted(relevant - set(top))]
        self.extras += [f"{query}: {x}" for x in top if x not in relevant]

    def mean(self, values: list[float]) -> float:
        return sum(values) / len(values)


def load() -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    articles = yaml.safe_load((FIXTURES / "articles.yaml").read_text(encoding="utf-8"))
    queries = yaml.safe_load((FIXTURES / "queries.yaml").read_text(encoding="utf-8"))
    known = {a["id"] for a in articles["articles"]}
    for q in queries["queries"]:
        unknown = set(q["relevant"]) - known
        if unknown:
            raise SystemExit(f"queries.yaml: {q['query']}: unknown articles {sorted(unknown)}")
    return articles["articles"], queries["queries"]


def enriched(namespace: str, raw: dict[str, str]) -> EnrichedArticle:
    # The fixture id is the document id, so hits map straight back to the labels.
    url = f"https://search-fixture.example/{raw['id']}"
    article = Article(
        id=raw["id"],
        url=url,
        canonical_url=url,
        feed_url="https://search-fixture.example/feed",
        outlet="fixture",
        feed_name="fixture",
        country="sy",
        language="ar",
        title=raw["title"],
        published_at=WHEN,
        first_seen=WHEN,
        index_name=monthly_index(namespace, WHEN),
        body=raw["body"],
        fetched_at=WHEN,
        http_status=200,
    )
    return enrich(article)


def stock_index(store: ElasticStore, name: str, articles: list[dict[str, str]]) -> None:
    es = store.client
    es.indices.create(
        index=name,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={
            "properties": {
                "title": {"type": "text", "analyzer": "arabic"},
                "body": {"type": "text", "analyzer": "arabic"},
            }
        },
    )
    for a in articles:
        es.index(index=name, id=a["id"], document={"title": a["title"], "body": a["body"]})
    es.indices.refresh(index=name)


def filled(store: ElasticStore, namespace: str, articles: list[dict[str, str]]) -> None:
    store.ensure(WHEN)
    report = store.write([enriched(namespace, a) for a in articles])
    if report.failed:
        raise SystemExit(f"indexing failed: {report.failed[0][1]}")
    store.client.indices.refresh(index=store.alias)


def run(verbose: bool) -> dict[str, Score]:
    articles, queries = load()
    namespace = f"bench-search-eval-{uuid.uuid4().hex[:8]}"
    store = ElasticStore.from_settings(Settings(), namespace)
    fallback = ElasticStore.from_settings(Settings(es_fold_filter=False), f"{namespace}-fallback")
    stock = f"{namespace}-stock-arabic"
    names = ("rasd", "query_string", "rasd --stem", "fallback", "fallback qs", "stock arabic")
    scores = {name: Score() for name in names}
    try:
        filled(store, namespace, articles)
        filled(fallback, f"{namespace}-fallback", articles)
        stock_index(store, stock, articles)

        def rasd(on: ElasticStore, stem: bool) -> Callable[[str], list[str]]:
            return lambda q: [h["_id"] for h in on.search(build_query(q, stem=stem), size=K)]

        def kibana(on: ElasticStore) -> Callable[[str], list[str]]:
            # Kibana's Lucene query bar: query_string with the text as typed, no field.
            def search(q: str) -> list[str]:
                query = {"query_string": {"query": q, "analyze_wildcard": True}}
                return [h["_id"] for h in on.search(query, size=K)]

            return search

        def stock_search(q: str) -> list[str]:
            response = store.client.search(
                index=stock,
                size=K,
                query={
                    "multi_match": {
                        "query": q.replace('"', ""),
                        "fields": ["title", "body"],
                        "operator": "and",
                    }
                },
            )
            return [h["_id"] for h in response["hits"]["hits"]]

        runners = {
            "rasd": rasd(store, False),
            "query_string": kibana(store),
            "rasd --stem": rasd(store, True),
            "fallback": rasd(fallback, False),
            "fallback qs": kibana(fallback),
            "stock arabic": stock_search,
        }
        for q in queries:
            relevant = set(q["relevant"])
            for name, search in runners.items():
                found = search(q["query"])
                scores[name].add(q["query"], found, relevant)
                if verbose:
                    print(f"{name:13} {q['query']}: {found}")
    finally:
        store.client.indices.delete(index=stock, ignore_unavailable=True)
        store.delete_all()
        store.close()
        fallback.delete_all()
        fallback.close()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--verbose", action="store_true", help="print every query's hits")
    args = parser.parse_args()
    scores = run(args.verbose)
    figures: dict[str, dict[str, Any]] = {
        name: {
            "recall@10": round(s.mean(s.recall), 3),
            "precision@10": round(s.mean(s.precision), 3),
            "queries": len(s.recall),
            "misses": s.misses,
            "false_hits": s.extras,
        }
        for name, s in scores.items()
    }
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
        return
    print(f"{'':14}{'recall@10':>10}{'precision@10':>14}")
    for name, f in figures.items():
        print(f"{name:14}{f['recall@10']:>10.3f}{f['precision@10']:>14.3f}")
    for name, f in figures.items():
        for miss in f["misses"]:
            print(f"  {name} missed   {miss}")
        for extra in f["false_hits"]:
            print(f"  {name} also hit {extra}")


if __name__ == "__main__":
    main()
