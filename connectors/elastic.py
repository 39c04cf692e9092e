"""Elasticsearch adapters: the articles index behind its alias, and the alerts index.

Templates are the JSON files under ``config/elasticsearch/``, renamed for the
configured namespace. Articles are written in bulk with ``_id`` = article id
into the monthly index fixed at first sight, so a retry or a replay overwrites
the same document and never adds one. Each bulk item is checked: 429 and 5xx
make the whole batch retriable (the worker retries it and commits nothing
before it succeeds), any other error is permanent for that article alone.
Alerts are created with ``op_type=create``: a 409 means "already alerted".
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, ConflictError, Elasticsearch, TransportError, helpers

from pipeline.errors import PermanentError, RetriableError
from pipeline.models import Alert, EnrichedArticle
from pipeline.settings import Settings

log = logging.getLogger(__name__)

#: Fields of EnrichedArticle that are not stored: the analyzers derive the
#: normalized text, and the index name is where the document lives.
_NOT_INDEXED = {"normalized_title", "normalized_body", "index_name"}


#: The rasd-fold plugin's filter, and what stands in for it on a stock Elasticsearch.
FOLD_FILTER = "rasd_arabic_fold"
STOCK_FOLD = "persian_normalization"


def load_template(
    path: Path, pattern: str, alias: str | None, *, fold_filter: bool = True
) -> dict[str, Any]:
    """A template file with its index pattern (and alias) set for one namespace.

    With ``fold_filter=False`` (an Elasticsearch without the rasd-fold plugin)
    ``rasd_arabic_fold`` becomes ``persian_normalization``: ی and ک still fold,
    but presentation forms, ٱ and the Urdu letters no longer do.
    """
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    template["index_patterns"] = [pattern]
    if alias is not None:
        template["template"]["aliases"] = {alias: {}}
    if not fold_filter:
        analysis = template["template"].get("settings", {}).get("analysis", {})
        for kind in ("analyzer", "normalizer"):
            for chain in analysis.get(kind, {}).values():
                chain["filter"] = [
                    STOCK_FOLD if f == FOLD_FILTER else f for f in chain.get("filter", [])
                ]
    return template


@dataclass
class WriteReport:
    """Which articles a bulk write stored, and which failed for good (and why)."""

    written: list[EnrichedArticle] = field(default_factory=list)
    failed: list[tuple[EnrichedArticle, PermanentError]] = field(default_factory=list)


class ElasticStore:
    """The articles alias ``<ns>-articles`` and the alerts index ``<ns>-alerts``."""

    def __init__(
        self,
        url: str,
        namespace: str,
        config_dir: Path,
        username: str | None = None,
        password: str | None = None,
        *,
        fold_filter: bool = True,
    ) -> None:
        self.url = url
        self.fold_filter = fold_filter
        self.namespace = namespace
        self.config_dir = config_dir
        self._auth = (username, password) if username and password else None
        self._client: Elasticsearch | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, namespace: str | None = None) -> ElasticStore:
        password = settings.es_password.get_secret_value() if settings.es_password else None
        return cls(
            settings.elasticsearch_url,
            namespace or settings.namespace,
            settings.config_dir,
            settings.es_username,
            password,
            fold_filter=settings.es_fold_filter,
        )

    @property
    def alias(self) -> str:
        return f"{self.namespace}-articles"

    @property
    def alerts_index(self) -> str:
        return f"{self.namespace}-alerts"

    @property
    def client(self) -> Elasticsearch:
        """The raw elasticsearch-py client (created on first use, once, under a lock)."""
        with self._lock:
            return self._make_client()

    def _make_client(self) -> Elasticsearch:
        if self._client is None:
            self._client = Elasticsearch(
                self.url,
                basic_auth=self._auth,
                request_timeout=30,
                retry_on_timeout=True,
                max_retries=3,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def delete_all(self) -> list[str]:
        """Delete the namespace's indices and templates; return the index names."""
        es = self.client
        names = sorted(
            es.indices.get(
                index=f"{self.alias}-*,{self.alerts_index}",
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        )
        for name in names:
            es.indices.delete(index=name)
        for template in (self.alias, self.alerts_index):
            if es.indices.exists_index_template(name=template):
                es.indices.delete_index_template(name=template)
        return names

    def monthly_index(self, when: datetime) -> str:
        return f"{self.alias}-{when.astimezone(UTC):%Y.%m}"

    def ensure(self, now: datetime | None = None) -> list[str]:
        """Put both templates and create the current month's index (idempotent).

        Returns what was created. The current index is created up front so that
        the alias exists, and searches answer, before the first article.
        """
        es = self.client
        created: list[str] = []
        es.indices.put_index_template(
            name=self.alias,
            **load_template(
                self.config_dir / "elasticsearch" / "articles-template.json",
                f"{self.alias}-*",
                self.alias,
                fold_filter=self.fold_filter,
            ),
        )
        es.indices.put_index_template(
            name=self.alerts_index,
            **load_template(
                self.config_dir / "elasticsearch" / "alerts-template.json", self.alerts_index, None
            ),
        )
        for index in (self.monthly_index(now or datetime.now(UTC)), self.alerts_index):
            if not es.indices.exists(index=index):
                try:
                    es.indices.create(index=index)
                    created.append(index)
                except ApiError as exc:
                    if exc.status_code != 400 or "already_exists" not in str(exc):
                        raise
        return created

    def document(self, article: EnrichedArticle, now: datetime) -> dict[str, Any]:
        doc = article.model_dump(mode="json", exclude=_NOT_INDEXED)
        doc["title"] = article.extracted_title or article.title
        doc["indexed_at"] = now.isoformat()
        return doc

    def write(self, articles: list[EnrichedArticle], now: datetime | None = None) -> WriteReport:
        """Bulk-index ``articles``; RetriableError if the batch must be tried again."""
        stamp = now or datetime.now(UTC)
        by_id = {a.id: a for a in articles}
        actions = [
            {
                "_op_type": "index",
                "_index": a.index_name,
                "_id": a.id,
                "_source": self.document(a, stamp),
            }
            for a in by_id.values()
        ]
        report = WriteReport()
        retriable: list[str] = []
        try:
            for ok, item in helpers.streaming_bulk(
                self.client,
                actions,
                raise_on_error=False,
                raise_on_exception=False,
                max_retries=4,
                initial_backoff=1,
                max_backoff=30,
            ):
                info = next(iter(item.values()))
                article = by_id[info["_id"]]
                status = int(info.get("status", 0))
                if not ok and "exception" in info:
                    # The whole request failed (bad credentials, a proxy, a 413): the
                    # helper reports it on every item; no article is at fault.
                    retriable.append(f"{info['_id']}: request failed: {info['exception']!r}")
                    continue
                if ok:
                    report.written.append(article)
                elif status == 429 or status >= 500 or status == 0:
                    retriable.append(f"{info['_id']}: {status} {info.get('error')}")
                else:
                    error = info.get("error") or {}
                    reason = (
                        error.get("type", f"http_{status}")
                        if isinstance(error, dict)
                        else f"http_{status}"
                    )
                    report.failed.append(
                        (
                            article,
                            PermanentError(
                                f"index_{reason}", json.dumps(error, ensure_ascii=False)[:1000]
                            ),
                        )
                    )
        except TransportError as exc:
            raise RetriableError(f"Elasticsearch unreachable: {exc}") from exc
        if retriable:
            raise RetriableError(f"{len(retriable)} bulk item(s) failed: {retriable[0]}")
        return report

    def search(
        self, query: dict[str, Any], size: int = 10, filters: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Hits of ``query`` on the articles alias, best first (then newest), highlighted."""
        body_query = {"bool": {"must": [query], "filter": filters or []}}
        response = self.client.search(
            index=self.alias,
            query=body_query,
            size=size,
            sort=[{"_score": "desc"}, {"published_at": {"order": "desc", "missing": "_last"}}],
            highlight={
                "fields": {
                    f: {"fragment_size": 160, "number_of_fragments": 1}
                    for f in ("body.exact", "body", "title.exact", "title")
                },
                "pre_tags": ["<em>"],
                "post_tags": ["</em>"],
            },
            source_excludes=["body"],
        )
        hits: list[dict[str, Any]] = response["hits"]["hits"]
        return hits

    def alert_exists(self, alert_id: str) -> bool:
        try:
            return bool(self.client.exists(index=self.alerts_index, id=alert_id))
        except (TransportError, ApiError) as exc:
            # Down, overloaded or refusing our credentials: nothing to decide yet.
            raise RetriableError(f"alerts index {self.alerts_index}: {exc}") from exc

    def record_alert(self, alert: Alert) -> bool:
        """Store ``alert``; False if this (rule, cluster) had alerted already."""
        document = alert.model_dump(
            mode="json", exclude={"matches": {"__all__": {"schema_version"}}}
        )
        try:
            # No refresh: `exists` is a real-time GET, so the ledger needs none.
            # No client-side retry: a retried create that had succeeded would come
            # back as 409 and the alert would be taken for one raised before.
            self.client.options(max_retries=0, retry_on_timeout=False).create(
                index=self.alerts_index, id=alert.id, document=document
            )
        except ConflictError:
            return False
        except TransportError as exc:
            raise RetriableError(f"Elasticsearch unreachable: {exc}") from exc
        except ApiError as exc:
            if exc.status_code == 429 or exc.status_code >= 500:
                raise RetriableError(f"alerts index: {exc}") from exc
            raise PermanentError(f"alert_index_http_{exc.status_code}", str(exc)) from exc
        return True
