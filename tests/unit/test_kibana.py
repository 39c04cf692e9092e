"""Kibana saved objects: the committed NDJSON, its generator, and the import client.

There is no Kibana here: the client is tested against a small local HTTP server
that checks each request the way Kibana's saved-objects API would and answers
503 first (Kibana starting), then 200 with a realistic import answer.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.kibana import (
    KibanaClient,
    KibanaError,
    for_namespace,
    rule_kql,
    saved_objects,
    to_ndjson,
)
from pipeline.rules import Rule, load_rule_set

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "config" / "kibana" / "rasd.ndjson"


def objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in NDJSON.read_text(encoding="utf-8").splitlines()]


def test_committed_ndjson_is_the_generated_one() -> None:
    rules = load_rule_set(ROOT / "config" / "rules.yaml").rules
    expected = to_ndjson(saved_objects(rules))
    # Regenerate with: python -c "from connectors.kibana import ..." (see docs/deploy.md).
    assert NDJSON.read_text(encoding="utf-8") == expected


def test_every_rule_has_a_precise_and_a_stemmed_search() -> None:
    ids = {o["id"] for o in objects() if o["type"] == "search"}
    for rule in load_rule_set(ROOT / "config" / "rules.yaml").rules:
        assert {f"rasd-rule-{rule.id}", f"rasd-rule-{rule.id}-stem"} <= ids
    assert "rasd-latest-articles" in ids


def test_references_point_at_objects_in_the_file() -> None:
    by_key = {(o["type"], o["id"]) for o in objects()}
    for obj in objects():
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_key, (obj["id"], ref)
        if obj["type"] == "dashboard":
            panels = json.loads(obj["attributes"]["panelsJSON"])
            names = {r["name"] for r in obj["references"]}
            assert {p["panelRefName"] for p in panels} == names
            assert len(panels) == 7


def test_the_articles_view_maps_the_places_as_points() -> None:
    view = next(o for o in objects() if o["id"] == "rasd-articles")
    fields = {f["name"]: f["type"] for f in json.loads(view["attributes"]["fields"])}
    assert fields == {"places.location": "geo_point", "primary_place.location": "geo_point"}
    template = json.loads(
        (ROOT / "config" / "elasticsearch" / "articles-template.json").read_text(encoding="utf-8")
    )["template"]["mappings"]["properties"]
    for name in fields:
        parent, child = name.split(".")
        assert template[parent]["properties"][child]["type"] == "geo_point"
    # The map's layer reads the same field, through the same data view.
    geo_map = next(o for o in objects() if o["type"] == "map")
    layer = json.loads(geo_map["attributes"]["layerListJSON"])[0]
    assert layer["sourceDescriptor"]["geoField"] == "places.location"
    assert geo_map["references"] == [
        {"id": "rasd-articles", "name": "layer_0_source_index_pattern", "type": "index-pattern"}
    ]


def test_the_overview_has_places_entities_and_the_story_timeline() -> None:
    dashboard = next(o for o in objects() if o["type"] == "dashboard")
    ids = {r["id"] for r in dashboard["references"]}
    assert {"rasd-top-places", "rasd-top-entities", "rasd-story-timeline"} <= ids
    assert "rasd-articles-map" in ids
    timeline = next(o for o in objects() if o["id"] == "rasd-story-timeline")
    aggs = json.loads(timeline["attributes"]["visState"])["aggs"]
    assert {(a["type"], a["params"].get("field")) for a in aggs} >= {
        ("date_histogram", "first_seen"),
        ("terms", "outlet"),
        ("terms", "cluster_id"),
    }


def test_precise_query_is_plain_free_text() -> None:
    rule = Rule.model_validate({"id": "c", "name": "c", "any": ["قيصر"], "none": ["عملية قيصرية"]})
    # No field name: Kibana searches index.query.default_field, the .clitics fields.
    assert rule_kql(rule, precise=True) == 'قيصر and not "عمليه قيصريه"'
    stemmed = rule_kql(rule, precise=False)
    assert ".exact" not in stemmed and 'title:("قيصر")' in stemmed


def test_precise_query_names_the_clitic_fields_of_a_title_rule() -> None:
    rule = Rule.model_validate(
        {"id": "t", "name": "t", "fields": ["title"], "any": ["قانون قيصر", "سيزر"]}
    )
    assert rule_kql(rule, precise=True) == '(title.clitics:("قانون قيصر") or title.clitics:(سيزر))'
    exact = Rule.model_validate(
        {"id": "e", "name": "e", "any": [{"term": "قيصر", "mode": "exact"}]}
    )
    assert rule_kql(exact, precise=True) == '(title.exact:("قيصر") or body.exact:("قيصر"))'


def _template_fields(name: str) -> set[str]:
    template = json.loads((ROOT / "config" / "elasticsearch" / name).read_text(encoding="utf-8"))
    found: set[str] = set()

    def walk(props: dict[str, Any], prefix: str) -> None:
        for key, spec in props.items():
            path = prefix + key
            found.add(path)
            walk(spec.get("properties", {}), path + ".")
            walk(spec.get("fields", {}), path + ".")

    walk(template["template"]["mappings"]["properties"], "")
    return found


# A field name before ``:`` in KQL (title.exact:(...), outlet:(...)).
_KQL_FIELD = r"([A-Za-z_][\w.]*):"


def referenced_fields(obj: dict[str, Any]) -> set[str]:
    """Every field an object uses: time field, columns, sort, query, aggregations."""
    attrs = obj["attributes"]
    fields: set[str] = set()
    if obj["type"] == "index-pattern":
        fields.add(attrs["timeFieldName"])
    if obj["type"] == "search":
        fields.update(attrs["columns"])
        fields.update(field for field, _ in attrs["sort"])
    if obj["type"] == "visualization":
        for agg in json.loads(attrs["visState"])["aggs"]:
            if "field" in agg["params"]:
                fields.add(agg["params"]["field"])
    source = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
    if source:
        query = json.loads(source)["query"]["query"]
        # Strip quoted values first, so that a colon inside a value is not a field.
        fields.update(re.findall(_KQL_FIELD, re.sub(r'"(?:\\.|[^"\\])*"', '""', query)))
    return fields


def test_every_referenced_field_is_in_its_template() -> None:
    templates = {
        "rasd-articles": _template_fields("articles-template.json"),
        "rasd-alerts": _template_fields("alerts-template.json"),
    }
    checked = 0
    for obj in objects():
        if obj["type"] == "index-pattern":
            view = obj["id"]
        elif obj["type"] in ("search", "visualization"):
            view = obj["references"][0]["id"]
        else:
            continue
        for field in referenced_fields(obj):
            assert field in templates[view], f"{obj['id']}: {field} is not in {view}'s template"
            checked += 1
    assert checked > 30


def test_field_check_can_fail() -> None:
    bogus = {
        "type": "search",
        "attributes": {
            "columns": ["headline"],
            "sort": [["published_at", "desc"]],
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps({"query": {"query": 'teaser.exact:("x")'}})
            },
        },
    }
    fields = referenced_fields(bogus)
    assert fields == {"headline", "published_at", "teaser.exact"}
    assert not fields <= _template_fields("articles-template.json")


def test_for_namespace_rewrites_only_the_patterns() -> None:
    text = NDJSON.read_text(encoding="utf-8")
    assert for_namespace(text, "rasd") == text
    moved = [json.loads(line) for line in for_namespace(text, "t8-x").splitlines()]
    titles = sorted(o["attributes"]["title"] for o in moved if o["type"] == "index-pattern")
    assert titles == ["t8-x-alerts*", "t8-x-articles*"]
    assert [o["id"] for o in moved] == [o["id"] for o in objects()]


# --- the client, against a fake Kibana ---------------------------------------


class FakeKibana(BaseHTTPRequestHandler):
    """Kibana's ``_import``: 503 for the first ``starting`` requests, then 200."""

    starting = 1
    calls: list[dict[str, Any]]
    answer_status = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        server: Any = self.server
        server.calls.append(
            {
                "method": "POST",
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
            }
        )
        if len(server.calls) <= server.starting:
            self._reply(503, {"statusCode": 503, "error": "Service Unavailable"})
            return
        expected = "Basic " + base64.b64encode(b"elastic:s3cret").decode()
        if self.headers.get("Authorization") != expected:
            self._reply(401, {"statusCode": 401, "error": "Unauthorized"})
            return
        if self.headers.get("kbn-xsrf") is None:
            self._reply(
                400, {"statusCode": 400, "message": "Request must contain a kbn-xsrf header."}
            )
            return
        lines = [json.loads(x) for x in _ndjson_part(self.headers["Content-Type"], body)]
        self._reply(
            200,
            {
                "success": True,
                "successCount": len(lines),
                "successResults": [
                    {"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"]["title"]}}
                    for o in lines
                ],
                "warnings": [],
            },
        )

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep pytest's output clean
        pass


def _ndjson_part(content_type: str, body: bytes) -> list[str]:
    """The lines of the multipart ``file`` field; AssertionError if it is not there."""
    assert content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=", 1)[1].encode()
    for part in body.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head and b'filename="rasd.ndjson"' in head:
            return [x for x in content.rstrip(b"\r\n").decode().splitlines() if x]
    raise AssertionError("no file part named file with filename rasd.ndjson")


@pytest.fixture
def kibana() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), FakeKibana)
    server.calls = []
    server.starting = 1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_import_retries_until_kibana_is_up(kibana: Any) -> None:
    progress: list[str] = []
    sleeps: list[float] = []
    with KibanaClient(url_of(kibana), "elastic", "s3cret") as client:
        answer = client.import_ndjson(
            NDJSON.read_text(encoding="utf-8"), progress=progress.append, sleep=sleeps.append
        )
    assert answer["successCount"] == len(objects())
    assert len(kibana.calls) == 2 and sleeps == [5.0]
    assert "503" in progress[0]
    call = kibana.calls[-1]
    assert call["path"] == "/api/saved_objects/_import?overwrite=true"
    assert call["headers"]["kbn-xsrf"]


def test_import_gives_up_after_the_wait(kibana: Any) -> None:
    kibana.starting = 10**6
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with (
        KibanaClient(url_of(kibana), "elastic", "s3cret") as client,
        pytest.raises(KibanaError, match="not up after 12s"),
    ):
        client.import_ndjson("{}\n", wait=12, sleep=sleep, clock=lambda: now[0])
    assert len(kibana.calls) == 4  # at 0, 5, 10 and 12 s


def test_bad_credentials_fail_at_once(kibana: Any) -> None:
    kibana.starting = 0
    with (
        KibanaClient(url_of(kibana), "elastic", "wrong") as client,
        pytest.raises(KibanaError, match="refused the credentials"),
    ):
        client.import_ndjson("{}\n", sleep=lambda _: None)
    assert len(kibana.calls) == 1


def test_partial_import_is_an_error() -> None:
    from connectors.kibana import _checked

    answer = {
        "success": False,
        "successCount": 1,
        "errors": [{"type": "search", "id": "x", "error": {"type": "missing_references"}}],
    }
    with pytest.raises(KibanaError, match=r"search/x.*missing_references"):
        _checked(answer)


def test_cli_setup_imports_for_the_namespace(kibana: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from rasd.cli import app

    monkeypatch.setenv("RASD_NAMESPACE", "t8-kibana")
    monkeypatch.setenv("RASD_KIBANA_USERNAME", "elastic")
    monkeypatch.setenv("RASD_KIBANA_PASSWORD", "s3cret")
    kibana.starting = 0
    result = CliRunner().invoke(app, ["kibana", "setup", "--url", url_of(kibana)])
    assert result.exit_code == 0, result.output
    sent = _ndjson_part(kibana.calls[0]["headers"]["Content-Type"], kibana.calls[0]["body"])
    titles = {json.loads(x)["attributes"]["title"] for x in sent}
    assert "t8-kibana-articles*" in titles and "rasd-articles*" not in titles
