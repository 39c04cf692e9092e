"""`rasd index migrate` on the real server: a template change moves every month to
new indices, the aliases swap atomically, and no document is lost."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.elastic import ElasticStore
from pipeline.enrichment import enrich
from pipeline.models import Article, monthly_index
from pipeline.settings import Settings
from pipeline.urls import article_id

pytestmark = pytest.mark.integration


def _articles(namespace: str, months: list[datetime], per_month: int) -> list[Any]:
    out = []
    for when in months:
        for n in range(per_month):
            url = f"https://example.org/{when:%Y%m}/{n}"
            out.append(
                enrich(
                    Article(
                        id=article_id(url),
                        url=url,
                        canonical_url=url,
                        feed_url="https://example.org/rss",
                        outlet="example",
                        feed_name="example",
                        country="sy",
                        language="ar",
                        title=f"خبر رقم {n}",
                        first_seen=when,
                        index_name=monthly_index(namespace, when),
                        body=f"نص الخبر رقم {n} عن قيصر والمعتقلين.",
                        fetched_at=when,
                        http_status=200,
                    )
                )
            )
    return out


def _bump_template(config: Path, tmp: Path) -> Path:
    copy = tmp / "config"
    shutil.copytree(config, copy)
    path = copy / "elasticsearch" / "articles-template.json"
    template = json.loads(path.read_text())
    template["_meta"]["template_version"] += 1
    path.write_text(json.dumps(template, ensure_ascii=False))
    return copy


def test_migrate_moves_every_month_and_loses_nothing(
    es: Any, settings: Settings, unique: str, tmp_path: Path
) -> None:
    namespace = f"test-mig-{unique}"
    october, november = datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)
    old = ElasticStore(settings.elasticsearch, namespace, settings.config_dir)
    new = ElasticStore(
        settings.elasticsearch, namespace, _bump_template(settings.config_dir, tmp_path)
    )
    try:
        old.ensure(november)
        # A month in the layout before aliases: a physical index with the month's name.
        legacy = monthly_index(namespace, datetime(2026, 9, 1, tzinfo=UTC))
        es.indices.create(index=legacy, aliases={old.alias: {}})
        es.index(index=legacy, id="legacy-1", document={"id": "legacy-1", "title": "قديم"})
        articles = _articles(namespace, [october, november], 600)
        report = old.write(articles)
        assert len(report.written) == 1200 and not report.failed
        es.indices.refresh(index=old.alias)
        before = int(es.count(index=old.alias)["count"])
        assert before == 1201

        seen: dict[str, int] = {}
        new.ensure(november)
        moved = new.migrate(lambda month, done, total: seen.__setitem__(month, done))

        v_old, v_new = old.template_version, new.template_version
        assert {(m, s, t) for m, s, t, _ in moved} == {
            (legacy, legacy, f"{legacy}-v{v_new}"),
            (
                monthly_index(namespace, october),
                f"{monthly_index(namespace, october)}-v{v_old}",
                f"{monthly_index(namespace, october)}-v{v_new}",
            ),
            (
                monthly_index(namespace, november),
                f"{monthly_index(namespace, november)}-v{v_old}",
                f"{monthly_index(namespace, november)}-v{v_new}",
            ),
        }
        assert seen[monthly_index(namespace, october)] == 600
        es.indices.refresh(index=new.alias)
        assert int(es.count(index=new.alias)["count"]) == before
        ids = {
            h["_id"]
            for h in es.search(index=new.alias, size=2000, source=False, query={"match_all": {}})[
                "hits"
            ]["hits"]
        }
        assert ids == {a.id for a in articles} | {"legacy-1"}
        # Only new indices remain, each behind its month alias and the search alias.
        physical = set(es.indices.get(index=f"{new.alias}-*"))
        assert physical == {t for _, _, t, _ in moved}
        assert new.months() == {m: t for m, _, t, _ in moved}
        # Writes after the move land in the new index of their month.
        again = new.write(_articles(namespace, [november], 1))
        assert not again.failed
        assert set(es.indices.get(index=f"{new.alias}-*")) == physical
        # A second migrate has nothing to do.
        assert new.migrate(lambda *_: None) == []
    finally:
        es.indices.delete(index=f"{namespace}-*", ignore_unavailable=True, allow_no_indices=True)
        for name in (old.alias, old.alerts_index):
            if es.indices.exists_index_template(name=name):
                es.indices.delete_index_template(name=name)
        old.close()
        new.close()


def _template_before_clitics(config: Path, tmp: Path) -> Path:
    """The articles template as version 2 had it: no .clitics fields, no default field."""
    copy = tmp / "config-v2"
    shutil.copytree(config, copy)
    path = copy / "elasticsearch" / "articles-template.json"
    template = json.loads(path.read_text())
    template["_meta"]["template_version"] = template["template"]["mappings"]["_meta"][
        "template_version"
    ] = 2
    settings = template["template"]["settings"]
    del settings["index.query.default_field"]
    del settings["analysis"]["filter"]["rasd_arabic_clitics"]
    del settings["analysis"]["analyzer"]["rasd_arabic_clitics"]
    for spec in template["template"]["mappings"]["properties"].values():
        spec.get("fields", {}).pop("clitics", None)
    path.write_text(json.dumps(template, ensure_ascii=False))
    return copy


def test_migrate_onto_the_clitic_fields_loses_nothing(
    es: Any, settings: Settings, unique: str, tmp_path: Path
) -> None:
    namespace = f"test-mig3-{unique}"
    november = datetime(2026, 11, 5, tzinfo=UTC)
    old = ElasticStore(
        settings.elasticsearch,
        namespace,
        _template_before_clitics(settings.config_dir, tmp_path),
    )
    new = ElasticStore(settings.elasticsearch, namespace, settings.config_dir)
    try:
        old.ensure(november)
        articles = _articles(namespace, [november], 300)
        assert not old.write(articles).failed
        es.indices.refresh(index=old.alias)
        new.ensure(november)
        moved = new.migrate(lambda *_: None)
        assert [(s, t) for _, s, t, _ in moved] == [
            (
                f"{monthly_index(namespace, november)}-v2",
                f"{monthly_index(namespace, november)}-v{new.template_version}",
            )
        ]
        es.indices.refresh(index=new.alias)
        assert int(es.count(index=new.alias)["count"]) == 300
        # The copied documents are analyzed by the new fields: والمعتقلين is found by المعتقلين
        # through the default field, the way Kibana's free text searches.
        found = es.count(index=new.alias, query={"query_string": {"query": "معتقلين"}})
        assert int(found["count"]) == 300
    finally:
        es.indices.delete(index=f"{namespace}-*", ignore_unavailable=True, allow_no_indices=True)
        for name in (old.alias, old.alerts_index):
            if es.indices.exists_index_template(name=name):
                es.indices.delete_index_template(name=name)
        old.close()
        new.close()


def _template_before_places(config: Path, tmp: Path) -> Path:
    """The articles template as version 3 had it: places and entities as keyword arrays."""
    copy = tmp / "config-v3"
    shutil.copytree(config, copy)
    path = copy / "elasticsearch" / "articles-template.json"
    template = json.loads(path.read_text())
    template["_meta"]["template_version"] = template["template"]["mappings"]["_meta"][
        "template_version"
    ] = 3
    props = template["template"]["mappings"]["properties"]
    for key in ("countries", "primary_place"):
        del props[key]
    props["places"] = props["entities"] = {"type": "keyword", "normalizer": "rasd_keyword"}
    path.write_text(json.dumps(template, ensure_ascii=False))
    return copy


def test_migrate_onto_the_place_objects_loses_nothing(
    es: Any, settings: Settings, unique: str, tmp_path: Path
) -> None:
    namespace = f"test-mig4-{unique}"
    november = datetime(2026, 11, 5, tzinfo=UTC)
    old = ElasticStore(
        settings.elasticsearch_url,
        namespace,
        _template_before_places(settings.config_dir, tmp_path),
    )
    new = ElasticStore(settings.elasticsearch_url, namespace, settings.config_dir)
    try:
        old.ensure(november)
        articles = _articles(namespace, [november], 50)
        docs = {}
        for i, article in enumerate(articles):
            doc = old.document(article, november)
            for key in ("places", "entities", "countries", "primary_place"):
                doc.pop(key, None)
            # What a v3 index could hold: keyword strings (a user's own tagging).
            doc["places"] = ["حلب", "دمشق"] if i % 2 else "درعا"
            doc["entities"] = ["الأمم المتحدة"] if i % 3 == 0 else []
            docs[article.id] = doc
            es.index(index=article.index_name, id=article.id, document=doc)
        es.indices.refresh(index=old.alias)
        new.ensure(november)
        moved = new.migrate(lambda *_: None)
        assert [t for _, _, t, _ in moved] == [f"{monthly_index(namespace, november)}-v4"]
        es.indices.refresh(index=new.alias)
        assert int(es.count(index=new.alias)["count"]) == 50
        hits = es.search(index=new.alias, size=100, query={"match_all": {}})["hits"]["hits"]
        for hit in hits:
            before, after = docs[hit["_id"]], hit["_source"]
            # Every field but the two reshaped ones is carried over as it was.
            assert {k: v for k, v in after.items() if k not in ("places", "entities")} == {
                k: v for k, v in before.items() if k not in ("places", "entities")
            }
            names = before["places"] if isinstance(before["places"], list) else [before["places"]]
            assert after["places"] == [{"name": n} for n in names]
            assert after["entities"] == [{"name": n} for n in before["entities"]]
        # The carried names are searchable in their new field.
        found = es.count(index=new.alias, query={"term": {"places.name": "حلب"}})
        assert int(found["count"]) == 25
        # New articles from the enrich stage are written with their objects.
        written = new.write(_articles(namespace, [november], 1))
        assert not written.failed
    finally:
        es.indices.delete(index=f"{namespace}-*", ignore_unavailable=True, allow_no_indices=True)
        for name in (old.alias, old.alerts_index):
            if es.indices.exists_index_template(name=name):
                es.indices.delete_index_template(name=name)
        old.close()
        new.close()
