"""rasd's Kibana saved objects: their generator and the client that imports them.

``saved_objects`` builds, from the example rules, the objects committed in
``config/kibana/rasd.ndjson`` (data views, saved searches, visualizations, a
dashboard); a unit test keeps the file equal to the generator's output so the
two cannot drift. ``KibanaClient.import_ndjson`` puts them through Kibana's
saved-objects API (``_import?overwrite=true``), waiting until Kibana is up.

Every rule has two saved searches, the same choice as ``rasd search``: the
precise one is a plain query, such as ``قيصر or سيزر`` or ``"قانون قيصر"``,
written as an analyst would type it. Without a field name it searches the
index's ``index.query.default_field``, the ``.clitics`` fields, whose analyzer
finds وقيصر, بقيصر and القيصر but never قيصرية; a rule limited to the title
names ``title.clitics``. The stemmed one queries the stemmed fields, for recall.
"""

from __future__ import annotations

import itertools
import json
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from pipeline.errors import RasdError
from pipeline.matching import stem_forms
from pipeline.rules import Rule, Term, term_words

DEFAULT_NAMESPACE = "rasd"
NDJSON_NAME = "rasd.ndjson"
ARTICLES_VIEW = "rasd-articles"
ALERTS_VIEW = "rasd-alerts"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
LIST_COLUMNS = ("title", "outlet", "url", "matched_rules")


class KibanaError(RasdError):
    """Kibana refused the import, or did not come up in time."""


# --- the saved objects ------------------------------------------------------


def _search_source(query: str, language: str = "kuery") -> str:
    # Kibana stores the search source as a JSON string, with the data view given
    # by reference (``indexRefName``), so an import can remap it.
    return json.dumps(
        {"query": {"query": query, "language": language}, "filter": [], "indexRefName": INDEX_REF},
        ensure_ascii=False,
        sort_keys=True,
    )


def _kql_value(text: str) -> str:
    # Quoted, so that Arabic, Latin and multi-word values all parse alike: one
    # word becomes a match, several a match_phrase, as in ``rasd search``.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: The fields that free text searches (the template's ``index.query.default_field``).
DEFAULT_FIELDS = ("title", "body")
_KQL_WORDS = {"and", "or", "not"}


def _plain(words: tuple[str, ...]) -> str:
    # One word bare (قيصر), a phrase quoted ("قانون قيصر"), as an analyst types them.
    text = " ".join(words)
    return text if len(words) == 1 and text.lower() not in _KQL_WORDS else _kql_value(text)


def term_kql(term: Term, fields: Iterable[str], precise: bool) -> str:
    """KQL finding ``term`` in any of ``fields``.

    Precise: plain free text on the default (``.clitics``) fields, or on the
    ``.exact`` fields for a term in ``exact`` mode; ``prefix`` mode ends a
    one-word term with ``*``, ``stem`` mode spells out its endings. Not
    precise: the stemmed fields.
    """
    spellings = sorted({term_words(s) for s in term.spellings if term_words(s)})
    if precise and term.mode == "stem":
        # The precise fields strip no suffix, so the stem mode's endings are spelled out.
        spellings = sorted(
            {
                tuple(combo)
                for words in spellings
                for combo in itertools.product(*(sorted(stem_forms(w)) for w in words))
            }
        )
    fields = tuple(fields)
    if precise and term.mode != "exact":
        star = "*" if term.mode == "prefix" else ""
        values = [(_plain(w) + star) if not star or len(w) == 1 else _plain(w) for w in spellings]
        joined = " or ".join(values)
        if set(fields) == set(DEFAULT_FIELDS):
            return joined if len(values) == 1 else f"({joined})"
        parts = [f"{f}.clitics:({joined})" for f in fields]
    else:
        joined = " or ".join(_kql_value(" ".join(w)) for w in spellings)
        suffix = ".exact" if precise else ""
        parts = [f"{f}{suffix}:({joined})" for f in fields]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def rule_kql(rule: Rule, precise: bool) -> str:
    """KQL with the rule's semantics: any of ``any``, all of ``all``, none of ``none``."""
    clauses: list[str] = []
    if rule.any:
        anys = [term_kql(t, rule.fields, precise) for t in rule.any]
        clauses.append(anys[0] if len(anys) == 1 else "(" + " or ".join(anys) + ")")
    clauses += [term_kql(t, rule.fields, precise) for t in rule.all]
    clauses += [f"not {term_kql(t, rule.fields, precise)}" for t in rule.none]
    if rule.sources:
        clauses.append("outlet:(" + " or ".join(_kql_value(s) for s in rule.sources) + ")")
    if rule.languages:
        clauses.append("language:(" + " or ".join(_kql_value(s) for s in rule.languages) + ")")
    return " and ".join(clauses)


#: Fields the articles' data view declares itself, so that Maps and the
#: coordinate visualizations find the points before Kibana reads the mapping.
GEO_FIELDS = ("places.location", "primary_place.location")


def _geo_field(name: str) -> dict[str, Any]:
    return {
        "aggregatable": True,
        "esTypes": ["geo_point"],
        "name": name,
        "searchable": True,
        "type": "geo_point",
    }


def _data_view(
    view_id: str, name: str, time_field: str, geo: tuple[str, ...] = ()
) -> dict[str, Any]:
    attributes: dict[str, Any] = {"name": name, "timeFieldName": time_field, "title": view_id + "*"}
    if geo:
        attributes["fields"] = json.dumps([_geo_field(f) for f in geo], sort_keys=True)
    return {
        "attributes": attributes,
        "id": view_id,
        "references": [],
        "type": "index-pattern",
    }


def _saved_search(
    search_id: str, title: str, description: str, query: str, view: str = ARTICLES_VIEW
) -> dict[str, Any]:
    return {
        "attributes": {
            "columns": list(LIST_COLUMNS),
            "description": description,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)},
            "sort": [["published_at", "desc"]],
            "title": title,
        },
        "id": search_id,
        "references": [{"id": view, "name": INDEX_REF, "type": "index-pattern"}],
        "type": "search",
    }


def _visualization(
    vis_id: str, title: str, vis_type: str, aggs: list[dict[str, Any]], view: str
) -> dict[str, Any]:
    params: dict[str, Any]
    if vis_type == "table":
        params = {"perPage": 10, "showPartialRows": False, "showTotal": False}
    else:
        # The axes are spelled out: a vislib chart without them does not render.
        params = {
            "addLegend": True,
            "addTimeMarker": False,
            "addTooltip": True,
            "categoryAxes": [
                {
                    "id": "CategoryAxis-1",
                    "labels": {"show": True, "truncate": 100},
                    "position": "bottom",
                    "scale": {"type": "linear"},
                    "show": True,
                    "style": {},
                    "title": {},
                    "type": "category",
                }
            ],
            "grid": {"categoryLines": False},
            "legendPosition": "right",
            "seriesParams": [
                {
                    "data": {"id": "1", "label": "Count"},
                    "mode": "stacked",
                    "show": True,
                    "type": "histogram",
                    "valueAxis": "ValueAxis-1",
                }
            ],
            "times": [],
            "type": "histogram",
            "valueAxes": [
                {
                    "id": "ValueAxis-1",
                    "labels": {"filter": False, "rotate": 0, "show": True, "truncate": 100},
                    "name": "LeftAxis-1",
                    "position": "left",
                    "scale": {"mode": "normal", "type": "linear"},
                    "show": True,
                    "style": {},
                    "title": {"text": "Count"},
                    "type": "value",
                }
            ],
        }
    vis_state = {"aggs": aggs, "params": params, "title": title, "type": vis_type}
    return {
        "attributes": {
            "description": "",
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source("")},
            "title": title,
            "uiStateJSON": "{}",
            "version": 1,
            "visState": json.dumps(vis_state, ensure_ascii=False, sort_keys=True),
        },
        "id": vis_id,
        "references": [{"id": view, "name": INDEX_REF, "type": "index-pattern"}],
        "type": "visualization",
    }


_COUNT = {"id": "1", "params": {}, "schema": "metric", "type": "count"}


def _over_time(field: str) -> dict[str, Any]:
    return {
        "id": "2",
        "params": {"extended_bounds": {}, "field": field, "interval": "auto", "min_doc_count": 1},
        "schema": "segment",
        "type": "date_histogram",
    }


def _terms(agg_id: str, field: str, size: int, schema: str) -> dict[str, Any]:
    return {
        "id": agg_id,
        "params": {"field": field, "order": "desc", "orderBy": "1", "size": size},
        "schema": schema,
        "type": "terms",
    }


def _split(agg_id: str, field: str, size: int) -> dict[str, Any]:
    # One chart per bucket (a story per row), as Kibana's "split chart" does.
    agg = _terms(agg_id, field, size, "split")
    agg["params"]["row"] = True
    return agg


# Centred on the Levant, where most of the users' stories happen.
_MAP_STATE = {
    "center": {"lat": 34.5, "lon": 38.5},
    "filters": [],
    "query": {"language": "kuery", "query": ""},
    "zoom": 5,
}


def _map(map_id: str, title: str, geo_field: str, view: str) -> dict[str, Any]:
    """A Kibana Maps object: one layer of the articles' points, clustered on a grid."""
    layer = {
        "alpha": 0.75,
        "id": "articles-by-place",
        "label": "Articles by place",
        "sourceDescriptor": {
            "geoField": geo_field,
            "id": "articles-by-place-source",
            "indexPatternRefName": "layer_0_source_index_pattern",
            "metrics": [{"type": "count"}],
            "requestType": "point",
            "resolution": "COARSE",
            "type": "ES_GEO_GRID",
        },
        "style": {"type": "VECTOR"},
        "type": "GEOJSON_VECTOR",
        "visible": True,
    }
    return {
        "attributes": {
            "description": "Where the articles are: every place an article names.",
            "layerListJSON": json.dumps([layer], sort_keys=True),
            "mapStateJSON": json.dumps(_MAP_STATE, sort_keys=True),
            "title": title,
            "uiStateJSON": json.dumps({"isLayerTOCOpen": True}),
        },
        "id": map_id,
        "references": [
            {"id": view, "name": "layer_0_source_index_pattern", "type": "index-pattern"}
        ],
        "type": "map",
    }


def _dashboard(panels_of: list[tuple[str, str]]) -> dict[str, Any]:
    # Two panels a row, each half of Kibana's 48-column grid.
    panels = [
        {
            "embeddableConfig": {},
            "gridData": {"h": 15, "i": str(n), "w": 24, "x": 24 * (n % 2), "y": 15 * (n // 2)},
            "panelIndex": str(n),
            "panelRefName": f"panel_{n}",
        }
        for n in range(len(panels_of))
    ]
    return {
        "attributes": {
            "description": "Articles per outlet, the top stories (clusters), the alerts, "
            "where (a map, the top places) and who (the top entities), and the timeline of "
            "the top stories across outlets.",
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps(
                    {"filter": [], "query": {"language": "kuery", "query": ""}}, sort_keys=True
                )
            },
            "optionsJSON": json.dumps({"hidePanelTitles": False, "useMargins": True}),
            "panelsJSON": json.dumps(panels, sort_keys=True),
            "timeRestore": True,
            "timeFrom": "now-7d",
            "timeTo": "now",
            "title": "rasd overview",
        },
        "id": "rasd-overview",
        "references": [
            {"id": obj_id, "name": f"panel_{n}", "type": obj_type}
            for n, (obj_type, obj_id) in enumerate(panels_of)
        ],
        "type": "dashboard",
    }


def saved_objects(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """Every saved object of ``config/kibana/rasd.ndjson``, for namespace ``rasd``."""
    objects = [
        _data_view(ARTICLES_VIEW, "rasd articles", "published_at", GEO_FIELDS),
        _data_view(ALERTS_VIEW, "rasd alerts", "created_at"),
        _saved_search(
            "rasd-latest-articles", "rasd: latest articles", "Every article, newest first.", ""
        ),
    ]
    for rule in rules:
        objects.append(
            _saved_search(
                f"rasd-rule-{rule.id}",
                f"rasd rule {rule.id}: {rule.name} (precise)",
                "As precise as the alert: a plain query on the clitic-aware default fields "
                "but no suffixes.",
                rule_kql(rule, precise=True),
            )
        )
        objects.append(
            _saved_search(
                f"rasd-rule-{rule.id}-stem",
                f"rasd rule {rule.id}: {rule.name} (stemmed)",
                "Wider: the stemmed fields (like rasd search --stem); may find unrelated "
                "words that share a stem.",
                rule_kql(rule, precise=False),
            )
        )
    visualizations = [
        _visualization(
            "rasd-articles-per-outlet",
            "rasd: articles per outlet over time",
            "histogram",
            [_COUNT, _over_time("published_at"), _terms("3", "outlet", 10, "group")],
            ARTICLES_VIEW,
        ),
        _visualization(
            "rasd-top-clusters",
            "rasd: top stories (clusters)",
            "table",
            [_COUNT, _terms("2", "cluster_id", 20, "bucket")],
            ARTICLES_VIEW,
        ),
        _visualization(
            "rasd-alerts-over-time",
            "rasd: alerts over time",
            "histogram",
            [_COUNT, _over_time("created_at"), _terms("3", "rule_id", 10, "group")],
            ALERTS_VIEW,
        ),
    ]
    places = [_terms("2", "places.name", 20, "bucket"), _terms("3", "places.country", 1, "bucket")]
    who = [_terms("2", "entities.name", 20, "bucket"), _terms("3", "entities.type", 1, "bucket")]
    timeline = [_over_time("first_seen"), _terms("3", "outlet", 10, "group")]
    visualizations += [
        _visualization("rasd-top-places", "rasd: top places", "table", [_COUNT, *places],
                       ARTICLES_VIEW),
        _visualization("rasd-top-entities", "rasd: top people and organisations", "table",
                       [_COUNT, *who], ARTICLES_VIEW),
        _visualization("rasd-story-timeline",
                       "rasd: story timeline (copies per story over time, by outlet)",
                       "histogram", [_COUNT, *timeline, _split("4", "cluster_id", 5)],
                       ARTICLES_VIEW),
    ]  # fmt: skip
    maps = [_map("rasd-articles-map", "rasd: articles by place", "places.location", ARTICLES_VIEW)]
    objects += visualizations + maps
    objects.append(
        _dashboard(
            [("visualization", v["id"]) for v in visualizations] + [("map", m["id"]) for m in maps]
        )
    )
    return objects


def to_ndjson(objects: Iterable[dict[str, Any]]) -> str:
    """One object per line, keys sorted, Arabic kept readable."""
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n" for o in objects)


def for_namespace(ndjson: str, namespace: str) -> str:
    """``ndjson`` with the data views' index patterns pointed at ``namespace``.

    Only the patterns change (``rasd-articles*`` → ``<ns>-articles*``); the ids
    stay, so a Kibana serves one rasd namespace at a time.
    """
    if namespace == DEFAULT_NAMESPACE:
        return ndjson
    lines = []
    for line in ndjson.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if obj.get("type") == "index-pattern":
            title = obj["attributes"]["title"]
            prefix = DEFAULT_NAMESPACE + "-"
            if title.startswith(prefix):
                obj["attributes"]["title"] = namespace + "-" + title[len(prefix) :]
                obj["attributes"]["name"] += f" ({namespace})"
        lines.append(json.dumps(obj, ensure_ascii=False, sort_keys=True))
    return "".join(line + "\n" for line in lines)


def ndjson_path(config_dir: Path) -> Path:
    return config_dir / "kibana" / NDJSON_NAME


# --- the client -------------------------------------------------------------


class KibanaClient:
    """Kibana's saved-objects API, as one user (basic auth) or anonymously."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 30.0,
        ca_certs: Path | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        auth = (username, password) if username and password else None
        # Certificates are always verified: against ca_certs, else the system's CAs.
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_certs)) if ca_certs else True
        )
        # kbn-xsrf: Kibana refuses a write API call without it (CSRF protection).
        self._http = httpx.Client(
            auth=auth,
            timeout=timeout,
            headers={"kbn-xsrf": "rasd"},
            follow_redirects=False,
            verify=verify,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KibanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def import_ndjson(
        self,
        ndjson: str,
        *,
        wait: float = 300.0,
        interval: float = 5.0,
        progress: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[str, Any]:
        """Import ``ndjson`` (overwriting), retrying for up to ``wait`` s while Kibana starts.

        Kibana answers 503 (or nothing) while it starts: those are retried. A
        401/403 or a refused object is final: it raises KibanaError at once.
        """
        deadline = clock() + wait
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.post(
                    f"{self.url}/api/saved_objects/_import",
                    params={"overwrite": "true"},
                    files={"file": (NDJSON_NAME, ndjson.encode(), "application/ndjson")},
                )
            except httpx.TransportError as exc:
                reason = f"not reachable ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    return _checked(response.json())
                if response.status_code in (401, 403):
                    raise KibanaError(
                        f"Kibana at {self.url} refused the credentials "
                        f"({response.status_code}): set RASD_KIBANA_USERNAME/PASSWORD"
                    )
                if response.status_code not in (429, 502, 503, 504):
                    raise KibanaError(
                        f"Kibana at {self.url} refused the import "
                        f"({response.status_code}): {response.text[:500]}"
                    )
                reason = f"answers {response.status_code}"
            left = deadline - clock()
            if left <= 0:
                raise KibanaError(
                    f"Kibana at {self.url} is not up after {wait:.0f}s "
                    f"({attempt} attempts; last: {reason})"
                )
            progress(f"Kibana {reason}; attempt {attempt}, retrying ({left:.0f}s left)")
            sleep(min(interval, left))


def _checked(answer: dict[str, Any]) -> dict[str, Any]:
    """The import answer, or KibanaError naming the objects Kibana did not take."""
    if answer.get("success") is True:
        return answer
    errors = answer.get("errors") or []
    detail = "; ".join(
        f"{e.get('type')}/{e.get('id')}: {json.dumps(e.get('error'), ensure_ascii=False)}"
        for e in errors[:5]
    )
    raise KibanaError(f"Kibana imported only part of the objects: {detail or answer}")
