"""On the secured stack, every client of rasd is on TLS and authenticated, and the
article fetcher stays as strict as ever.

The secured stack's access comes from its state directory: nothing in the
environment names a certificate or a password, yet the pipeline's Kafka and
Elasticsearch clients log in as rasd over TLS. The article fetcher shares none
of that: it neither reaches the stack's private addresses nor trusts the local
CA nor sends a credential, and its size cap holds.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from connectors.elastic import ElasticStore
from connectors.kafka import Bootstrap, new_admin
from pipeline.errors import PermanentError, RasdError
from pipeline.settings import LocalSecureStack, Settings
from rasd.stages.base import StageContext

pytestmark = pytest.mark.secure


def test_kafka_clients_use_sasl_ssl_as_rasd(
    settings: Settings, secured: LocalSecureStack, kafka_bootstrap: Bootstrap
) -> None:
    access = settings.kafka
    assert access.security_protocol == "SASL_SSL"
    assert access.sasl_mechanism == "SCRAM-SHA-512"
    assert access.username == "rasd"
    assert access.ca_file == secured.kafka.ca_file
    admin = new_admin(kafka_bootstrap, request_timeout_ms=10000)
    try:
        assert admin.describe_cluster()["brokers"]
    finally:
        admin.close()


def test_elasticsearch_clients_use_https_as_rasd(settings: Settings, es: Any) -> None:
    assert settings.elasticsearch.url.startswith("https://")
    me = es.security.authenticate()
    assert me["username"] == "rasd"
    assert me["roles"] == ["rasd_pipeline"]
    # The pipeline's own store is built the same way.
    store = ElasticStore.from_settings(settings)
    try:
        assert store.client.security.authenticate()["username"] == "rasd"
    finally:
        store.close()


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b"x" * (11_000_000 if self.path == "/huge" else 100)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if self.path != "/huge":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stopped reading at its cap
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_fetcher_does_not_reach_the_stack(settings: Settings) -> None:
    """With the secured settings, the pipeline's fetcher still blocks private addresses."""
    http = StageContext(settings).http
    try:
        for url in (settings.elasticsearch.url + "/", f"https://{settings.kafka.bootstrap}/"):
            with pytest.raises(PermanentError) as refused:
                http.fetch(url)
            assert refused.value.reason == "blocked_address", url
    finally:
        http.close()


def test_the_fetcher_carries_no_credential_nor_the_local_ca(
    settings: Settings, page_server: str
) -> None:
    """Even where private addresses are allowed (tests, the demo), a page fetch sends no
    credential, does not trust the local CA, and keeps its size cap."""
    local = settings.model_copy(update={"allow_private_networks": True})
    http = StageContext(local).http
    try:
        _Recorder.seen.clear()
        assert http.fetch(page_server + "/page").status == 200
        headers = _Recorder.seen[-1]
        assert "authorization" not in headers and "cookie" not in headers
        secrets = settings.secret_values()
        assert secrets and not any(s in v for s in secrets for v in headers.values())
        # The stack's certificate is signed by the local CA, which only rasd's
        # Kafka and Elasticsearch clients trust: the fetcher refuses it.
        with pytest.raises(RasdError) as untrusted:
            http.fetch(settings.elasticsearch.url + "/")
        assert "certificate" in str(untrusted.value).lower(), untrusted.value
        with pytest.raises(PermanentError) as huge:
            http.fetch(page_server + "/huge")
        assert huge.value.reason == "too_large"
    finally:
        http.close()
