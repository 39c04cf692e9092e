"""`rasd rules backtest` over what is indexed, and `rasd rules test --url` on a local page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.elastic import ElasticStore
from pipeline.matching import RuleMatcher
from pipeline.rules import load_rules
from pipeline.settings import Settings
from rasd.app import reset_namespace
from tests.unit.helpers import enriched

RULES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts" / "rules.yaml"

PAGE = """<!doctype html><html lang="ar" dir="rtl"><head><meta charset="utf-8">
<title>شهادة جديدة أمام المحكمة</title></head><body><article>
<h1>شهادة جديدة أمام المحكمة</h1>
<p>قدم محامو الضحايا أمام المحكمة الألمانية ملفاً جديداً يستند إلى الصور التي سربها المصور
العسكري المعروف باسم «قيصر»، وقالوا إن الصور توثق مقتل آلاف المعتقلين في الفروع الأمنية.</p>
<p>وأضاف المحامون أن العقوبات المفروضة بموجب قانون قيصر لم تمنع استمرار الانتهاكات، وطالبوا
بفتح تحقيق دولي مستقل في مصير المفقودين، وبالكشف عن أماكن دفن الضحايا.</p>
<p>وفي سياق منفصل، أجريت عملية قيصرية لسيدة في مستشفى المدينة، ووصلت بعثة من مدينة قيصري
التركية لبحث التعاون الطبي مع إدارة المستشفى.</p>
</article></body></html>"""


@pytest.fixture
def page() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/article/1"
    server.shutdown()
    server.server_close()


def rasd(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rasd", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_rules_test_url_fetches_extracts_and_matches(page: str) -> None:
    done = rasd(
        "rules", "test", "--rules", str(RULES), "--url", page, RASD_ALLOW_PRIVATE_NETWORKS="true"
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    # The page also mentions a caesarean section (عملية قيصرية), a `none` term of the
    # caesar rule: that rule stays silent, the phrase rule fires.
    assert [(x["rule"], x["term"], x["surface"]) for x in lines] == [
        ("caesar-act", "قانون قيصر", "قانون قيصر")
    ]
    assert all(x["field"] == "body" for x in lines)


def test_backtest_runs_the_rules_over_indexed_articles(es: Any, unique: str) -> None:
    settings = Settings(namespace=f"t7-{unique}")
    store = ElasticStore.from_settings(settings)
    now = datetime.now(UTC)
    ns = settings.namespace
    stories = (
        ("a1", "a1", "قال المحامي إن شهادة لقيصر وثقت الانتهاكات."),
        ("a2", "a1", "قال المحامي إن شهادة لقيصر وثقت الانتهاكات في صيدنايا."),
        ("b1", "b1", "أجريت عملية قيصرية في مستشفى قيصري."),
    )
    matcher = RuleMatcher(load_rules(RULES))
    articles = [
        enriched(
            article, cluster, body, title="خبر", when=now, namespace=ns, matcher=matcher
        ).model_copy(update={"published_at": now})
        for article, cluster, body in stories
    ]
    try:
        store.ensure(now)
        report = store.write(articles, now)
        assert len(report.written) == 3
        es.indices.refresh(index=f"{settings.namespace}-articles")
        done = rasd(
            "rules",
            "backtest",
            "--since",
            "7d",
            "--rules",
            str(RULES),
            RASD_NAMESPACE=settings.namespace,
        )
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert sorted((x["rule"], x["article_id"], x["cluster_id"]) for x in lines) == [
            ("caesar", "a1", "a1"),
            ("caesar", "a2", "a1"),
            ("sednaya", "a2", "a1"),
        ]
        summary = json.loads(done.stderr.strip().splitlines()[-1])
        assert summary["caesar"] == {"articles": 2, "clusters": 1}
        assert es.count(index=f"{settings.namespace}-alerts")["count"] == 0  # nothing raised
    finally:
        store.close()
        reset_namespace(settings)
