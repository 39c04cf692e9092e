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
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import (
    ApiError,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    TransportError,
    helpers,
)

from connectors.alert_state import AlertStateIndex
from pipeline.arabic import (
    CLITIC_ARTICLE_NAMES,
    CLITIC_EQUIVALENTS,
    CLITIC_MIN_BASE,
    CLITIC_PROTECTED,
    es_clitic_pattern,
)
from pipeline.errors import PermanentError, RetriableError
from pipeline.models import Alert, EnrichedArticle
from pipeline.settings import ElasticAccess, Settings

log = logging.getLogger(__name__)

#: Fields of EnrichedArticle that are not stored: the analyzers derive the
#: normalized text, the index name is where the document lives, and the rule
#: matches are for the alert stage (``matched_rules`` is what Kibana filters on).
_NOT_INDEXED = {"normalized_title", "normalized_body", "index_name", "rule_matches"}


#: The rasd-fold plugin's filter, and what stands in for it on a stock Elasticsearch.
FOLD_FILTER = "rasd_arabic_fold"
STOCK_FOLD = "persian_normalization"
#: The rasd-fold plugin's proclitic filter; its word lists come from pipeline.arabic.
CLITICS_FILTER = "rasd_arabic_clitics"


def _clitics_filter(fold_filter: bool) -> dict[str, Any]:
    """The ``rasd_arabic_clitics`` definition, or its stock stand-in without the plugin."""
    if not fold_filter:
        return {
            "type": "pattern_capture",
            "preserve_original": True,
            "patterns": [es_clitic_pattern()],
        }
    return {
        "type": CLITICS_FILTER,
        "min_base_length": CLITIC_MIN_BASE,
        "protected_words": sorted(CLITIC_PROTECTED - CLITIC_ARTICLE_NAMES),
        "article_words": sorted(CLITIC_ARTICLE_NAMES),
        "equivalents": [f"{k} => {v}" for k, v in sorted(CLITIC_EQUIVALENTS.items())],
    }


def load_template(
    path: Path, pattern: str, alias: str | None, *, fold_filter: bool = True
) -> dict[str, Any]:
    """A template file with its index pattern (and alias) set for one namespace.

    With ``fold_filter=False`` (an Elasticsearch without the rasd-fold plugin)
    ``rasd_arabic_fold`` becomes ``persian_normalization``: ی and ک still fold,
    but presentation forms, ٱ and the Urdu letters no longer do, and
    ``rasd_arabic_clitics`` becomes a stock ``pattern_capture`` filter (no
    protected-word rule; ``bench/search_eval.py`` measures the difference).
    The clitic filter's word lists are always filled in from
    :mod:`pipeline.arabic`, so the index and the rules share them.
    """
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    template["index_patterns"] = [pattern]
    if alias is not None:
        template["template"]["aliases"] = {alias: {}}
    analysis = template["template"].get("settings", {}).get("analysis", {})
    if CLITICS_FILTER in analysis.get("filter", {}):
        analysis["filter"][CLITICS_FILTER] = _clitics_filter(fold_filter)
    if not fold_filter:
        for kind in ("analyzer", "normalizer"):
            for chain in analysis.get(kind, {}).values():
                chain["filter"] = [
                    STOCK_FOLD if f == FOLD_FILTER else f for f in chain.get("filter", [])
                ]
    return template


class RasdMigrationError(PermanentError):
    """A migration step failed; the aliases still point where they pointed before."""

    def __init__(self, detail: str) -> None:
        super().__init__("migration_failed", detail)


@dataclass
class WriteReport:
    """Which articles a bulk write stored, and which failed for good (and why)."""

    written: list[EnrichedArticle] = field(default_factory=list)
    failed: list[tuple[EnrichedArticle, PermanentError]] = field(default_factory=list)


def _bulk_failure(ok: bool, info: dict[str, Any]) -> PermanentError | str | None:
    """How one bulk item failed: None (it did not), a PermanentError for its article
    alone, or a line saying why the whole batch must be tried again."""
    if ok:
        return None
    status = int(info.get("status", 0))
    if "exception" in info:
        # The whole request failed (bad credentials, a proxy, a 413): the
        # helper reports it on every item; no article is at fault.
        return f"{info['_id']}: request failed: {info['exception']!r}"
    if (
        status == 429
        or status >= 500
        or status == 0
        # A write block is temporary: `rasd index migrate` is moving the month.
        or "cluster_block_exception" in json.dumps(info.get("error"))
    ):
        return f"{info['_id']}: {status} {info.get('error')}"
    error = info.get("error") or {}
    reason = error.get("type", f"http_{status}") if isinstance(error, dict) else f"http_{status}"
    return PermanentError(f"index_{reason}", json.dumps(error, ensure_ascii=False)[:1000])


def _blocked(exc: ApiError) -> bool:
    """Refused because of an index or cluster write block."""
    return "cluster_block_exception" in str(exc)


def explain(exc: BaseException, target: ElasticAccess | str) -> str:
    """One line on why an Elasticsearch call failed: missing or refused credentials,
    an untrusted certificate, missing rights, or a server that is not there."""
    from elastic_transport import TlsError
    from elasticsearch import AuthenticationException, AuthorizationException

    access = target if isinstance(target, ElasticAccess) else ElasticAccess(target)
    where = f"Elasticsearch at {access.url}"
    if isinstance(exc, AuthenticationException):
        if access.api_key is None and not access.username:
            return (
                f"{where} asks for credentials: set RASD_ES_USERNAME and RASD_ES_PASSWORD, "
                "or RASD_ES_API_KEY"
            )
        who = "the API key" if access.api_key is not None else f"user {access.username!r}"
        return f"{where} refused {who}: check the password or key"
    if isinstance(exc, AuthorizationException):
        who = "the API key" if access.api_key is not None else f"user {access.username!r}"
        return f"{where}: {who} may not do this (403): its role covers the namespace's indices"
    text = str(exc)
    if isinstance(exc, TlsError) or "CERTIFICATE_VERIFY_FAILED" in text:
        reason = text.split("certificate verify failed:")[-1].split("(_ssl")[0].strip(" )")
        return (
            f"{where}: the server's certificate is not trusted ({reason}): set "
            "RASD_ES_CA_CERTS to the CA that signed it"
        )
    if access.url.startswith("http:") and "RemoteDisconnected" in text:
        return f"{where} closed the connection: does it want https:// in RASD_ES_URL?"
    return f"{where}: {exc} (is it running?)"


def new_elasticsearch(target: ElasticAccess | str, **options: Any) -> Elasticsearch:
    """The one constructor of elasticsearch-py clients: URL, TLS and credentials of
    ``target`` (a bare URL: no credentials), plus the caller's ``options``."""
    access = target if isinstance(target, ElasticAccess) else ElasticAccess(target)
    return Elasticsearch(**access.options(), **options)


def upgrade_source(source: dict[str, Any]) -> dict[str, Any]:
    """A document of an older template in the current template's shape.

    Template 4 made ``places`` and ``entities`` objects where version 3 had
    keyword arrays: a string is carried over as ``{"name": ...}``, so nothing
    a v3 document held is lost.
    """
    out = source
    for key in ("places", "entities"):
        values = source.get(key)
        if isinstance(values, str):
            values = [values]
        if isinstance(values, list) and any(isinstance(v, str) for v in values):
            if out is source:
                out = dict(source)
            out[key] = [{"name": v} if isinstance(v, str) else v for v in values]
    return out


class ElasticStore:
    """The articles alias ``<ns>-articles`` and the alerts index ``<ns>-alerts``."""

    def __init__(
        self,
        url: str | ElasticAccess,
        namespace: str,
        config_dir: Path,
        *,
        fold_filter: bool = True,
    ) -> None:
        self.access = url if isinstance(url, ElasticAccess) else ElasticAccess(url)
        self.url = str(self.access)
        self.fold_filter = fold_filter
        self.namespace = namespace
        self.config_dir = config_dir
        self._client: Elasticsearch | None = None
        self._lock = threading.Lock()
        self._months: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, namespace: str | None = None) -> ElasticStore:
        return cls(
            settings.elasticsearch,
            namespace or settings.namespace,
            settings.config_dir,
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
            self._client = new_elasticsearch(
                self.access,
                request_timeout=30,
                retry_on_timeout=True,
                max_retries=3,
            )
        return self._client

    def indexed_recently(self, now: datetime) -> tuple[int, int, datetime | None]:
        """Articles indexed in the last hour and the last day, and when the newest was."""
        try:
            response = self.client.search(
                index=self.alias,
                size=0,
                query={"range": {"indexed_at": {"gte": (now - timedelta(days=1)).isoformat()}}},
                aggs={
                    "hour": {
                        "filter": {
                            "range": {"indexed_at": {"gte": (now - timedelta(hours=1)).isoformat()}}
                        }
                    },
                },
                track_total_hits=True,
            )
            newest = self.client.search(
                index=self.alias, size=0, aggs={"newest": {"max": {"field": "indexed_at"}}}
            )
        except NotFoundError:
            return 0, 0, None  # nothing indexed yet
        raw = newest["aggregations"]["newest"].get("value_as_string")
        when = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
        day = int(response["hits"]["total"]["value"])
        return int(response["aggregations"]["hour"]["doc_count"]), day, when

    def cluster_status(self, timeout: float = 5.0) -> str:
        """The cluster's health (``green``, ``yellow``, ``red``); raises if it does not answer."""
        client = self.client.options(request_timeout=timeout, max_retries=0)
        return str(client.cluster.health()["status"])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def delete_all(self) -> list[str]:
        """Delete the namespace's indices and templates; return the index names."""
        es = self.client
        names = sorted(
            es.indices.get(
                # alerts* also covers <ns>-alerts-throttle and <ns>-alerts-undelivered.
                index=f"{self.alias}-*,{self.alerts_index}*",
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
        self._months.clear()  # the template may have changed: check months again
        created += self.ensure_month(self.monthly_index(now or datetime.now(UTC)))
        if not es.indices.exists(index=self.alerts_index):
            created += self._create(self.alerts_index, {})
        else:
            # Fields added to the alerts template since the index was made
            # (severity, throttled) are added in place: new fields never conflict.
            alerts = load_template(
                self.config_dir / "elasticsearch" / "alerts-template.json", self.alerts_index, None
            )
            es.indices.put_mapping(
                index=self.alerts_index,
                properties=alerts["template"]["mappings"]["properties"],
            )
        self.alert_state().ensure()
        return created

    # --- monthly indices behind aliases ------------------------------------------------
    #
    # A message names its month as ``<ns>-articles-YYYY.MM`` (fixed at first sight).
    # That name is an alias, the month's write alias, over one physical index
    # ``<ns>-articles-YYYY.MM-v<template version>``; every physical index is also
    # in the ``<ns>-articles`` alias that searches use. `rasd index migrate` builds
    # the next version beside the current one and swaps the aliases atomically,
    # so messages keep naming the same month whatever its physical index is.

    @property
    def template_version(self) -> int:
        meta = json.loads(
            (self.config_dir / "elasticsearch" / "articles-template.json").read_text("utf-8")
        )["_meta"]
        return int(meta["template_version"])

    def physical_index(self, month_alias: str, version: int | None = None) -> str:
        return f"{month_alias}-v{version or self.template_version}"

    def _create(self, index: str, aliases: dict[str, Any]) -> list[str]:
        try:
            self.client.indices.create(index=index, aliases=aliases)
        except ApiError as exc:
            if exc.status_code != 400 or "already_exists" not in str(exc):
                raise
            return []
        return [index]

    def ensure_month(self, month_alias: str) -> list[str]:
        """Make sure ``month_alias`` can be written to; return the indices created."""
        if month_alias in self._months:
            return []
        es = self.client
        created: list[str] = []
        # A month alias, or a physical index of the layout before aliases: both work.
        if not es.indices.exists_alias(name=month_alias) and not es.indices.exists(
            index=month_alias
        ):
            created = self._create(
                self.physical_index(month_alias),
                {self.alias: {}, month_alias: {"is_write_index": True}},
            )
        self._months.add(month_alias)
        return created

    def months(self) -> dict[str, str]:
        """{month alias: its physical index} for every month of the namespace.

        A physical index of the layout before aliases stands for itself.
        """
        es = self.client
        found: dict[str, str] = {}
        pattern = re.compile(rf"^{re.escape(self.alias)}-\d{{4}}\.\d{{2}}$")
        aliases = es.indices.get_alias(
            index=f"{self.alias}-*", allow_no_indices=True, ignore_unavailable=True
        )
        for index, info in aliases.items():
            if pattern.match(index):
                found[index] = index  # a legacy physical month index
            for name in info.get("aliases", {}):
                if pattern.match(name):
                    found[name] = index
        return dict(sorted(found.items()))

    def migrate(
        self, progress: Callable[[str, int, int], None], keep_old: bool = False
    ) -> list[tuple[str, str, str, int]]:
        """Move every month to an index made from the current template.

        For each month whose physical index is older than the template: block
        writes on the old index (the indexer treats the block as retriable and
        waits), create the new index, copy every document client-side (scan +
        bulk; the local distribution has no reindex module), check the counts,
        then move the month alias and the search alias in one atomic
        ``_aliases`` call and delete the old index (``keep_old`` keeps it,
        read-only, except for a legacy index that carries the month's name).
        Returns (month, old index, new index, documents copied) per move.
        """
        es = self.client
        version = self.template_version
        moved = []
        for month, source in self.months().items():
            target = self.physical_index(month, version)
            if source == target:
                continue
            es.indices.add_block(index=source, block="write")
            es.indices.refresh(index=source)
            total = int(es.count(index=source)["count"])
            self._create(target, {})

            def report(n: int, month: str = month, total: int = total) -> None:
                progress(month, n, total)

            copied = self._copy(source, target, report)
            es.indices.refresh(index=target)
            if int(es.count(index=target)["count"]) != total:
                raise RasdMigrationError(
                    f"{target} does not hold the {total} documents of {source}"
                )
            legacy = source == month  # the old index has the name the alias needs
            actions: list[dict[str, Any]] = (
                [{"remove_index": {"index": source}}]
                if legacy
                else [
                    {"remove": {"index": source, "alias": month}},
                    {"remove": {"index": source, "alias": self.alias}},
                ]
            )
            actions += [
                {"add": {"index": target, "alias": self.alias}},
                {"add": {"index": target, "alias": month, "is_write_index": True}},
            ]
            es.indices.update_aliases(actions=actions)
            if not legacy and not keep_old:
                es.indices.delete(index=source)
            moved.append((month, source, target, copied))
        self._months.clear()
        return moved

    def _copy(self, source: str, target: str, progress: Callable[[int], None]) -> int:
        copied = 0
        docs = helpers.scan(
            self.client,
            index=source,
            query={"query": {"match_all": {}}},
            size=500,
            preserve_order=False,
        )
        actions = (
            {
                "_op_type": "index",
                "_index": target,
                "_id": d["_id"],
                "_source": upgrade_source(d["_source"]),
            }
            for d in docs
        )
        for ok, item in helpers.streaming_bulk(
            self.client, actions, chunk_size=500, raise_on_error=False, max_retries=4
        ):
            if not ok:
                raise RasdMigrationError(f"copying into {target} failed: {item}")
            copied += 1
            if copied % 500 == 0:
                progress(copied)
        progress(copied)
        return copied

    def document(self, article: EnrichedArticle, now: datetime) -> dict[str, Any]:
        doc = article.model_dump(mode="json", exclude=_NOT_INDEXED)
        doc["title"] = article.extracted_title or article.title
        doc["indexed_at"] = now.isoformat()
        return doc

    def write(self, articles: list[EnrichedArticle], now: datetime | None = None) -> WriteReport:
        """Bulk-index ``articles``; RetriableError if the batch must be tried again."""
        stamp = now or datetime.now(UTC)
        by_id = {a.id: a for a in articles}
        try:
            for month in sorted({a.index_name for a in by_id.values()}):
                self.ensure_month(month)
        except (TransportError, ApiError) as exc:
            raise RetriableError(f"Elasticsearch: cannot prepare the monthly index: {exc}") from exc
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
                failure = _bulk_failure(ok, info)
                if failure is None:
                    report.written.append(article)
                elif isinstance(failure, PermanentError):
                    report.failed.append((article, failure))
                else:
                    retriable.append(failure)
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
                    for f in (
                        "body.clitics",
                        "body.exact",
                        "body",
                        "title.clitics",
                        "title.exact",
                        "title",
                    )
                },
                "pre_tags": ["<em>"],
                "post_tags": ["</em>"],
            },
            source_excludes=["body"],
        )
        hits: list[dict[str, Any]] = response["hits"]["hits"]
        return hits

    def count(self, filters: list[dict[str, Any]]) -> int:
        """How many articles :meth:`scan` with ``filters`` would give."""
        try:
            response = self.client.count(index=self.alias, query={"bool": {"filter": filters}})
        except NotFoundError:
            return 0
        return int(response["count"])

    def scan(self, filters: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Every article document on the alias that matches ``filters``, in no order."""
        yield from helpers.scan(
            self.client,
            index=self.alias,
            query={"query": {"bool": {"filter": filters}}},
            size=500,
            preserve_order=False,
        )

    def alert_state(self) -> AlertStateIndex:
        """The throttle claims and delivery records beside the alerts index."""
        return AlertStateIndex(self.client, self.namespace)

    def alert_exists(self, alert_id: str) -> bool:
        try:
            return bool(self.client.exists(index=self.alerts_index, id=alert_id))
        except (TransportError, ApiError) as exc:
            # Down, overloaded or refusing our credentials: nothing to decide yet.
            raise RetriableError(f"alerts index {self.alerts_index}: {exc}") from exc

    def alert_raised_by(self, alert_id: str) -> str | None:
        """The input record (``topic/partition/offset``) that raised the alert, ``""``
        if its document does not say, None if the alert was never raised."""
        try:
            found = self.client.get(
                index=self.alerts_index, id=alert_id, source_includes=["raised_by"]
            )
        except NotFoundError:
            return None
        except (TransportError, ApiError) as exc:
            raise RetriableError(f"alerts index {self.alerts_index}: {exc}") from exc
        return str((found.get("_source") or {}).get("raised_by") or "")

    def record_alert(self, alert: Alert, raised_by: str | None = None) -> bool:
        """Store ``alert`` (``raised_by``: the input record that raised it); False if
        this (rule, cluster) had alerted already."""
        document = alert.model_dump(
            mode="json", exclude={"matches": {"__all__": {"schema_version"}}}
        )
        if raised_by is not None:
            document["raised_by"] = raised_by
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
            # A write block (a flood-stage disk watermark, `rasd index migrate`) is
            # temporary, like an overloaded or failing node.
            if exc.status_code == 429 or exc.status_code >= 500 or _blocked(exc):
                raise RetriableError(f"alerts index: {exc}") from exc
            raise PermanentError(f"alert_index_http_{exc.status_code}", str(exc)) from exc
        return True
