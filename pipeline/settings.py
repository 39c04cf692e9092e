"""The one typed configuration object of rasd.

Values come, in increasing priority, from the defaults below and from
``RASD_*`` environment variables (pydantic-settings). The CLI shows the
environment variable behind each option in ``--help``. Secrets are
``SecretStr`` and never printed; each may instead come from a file named by
``RASD_<NAME>_FILE`` (Docker secrets).

:meth:`Settings.kafka` and :meth:`Settings.elasticsearch` are the one place
that turns the connection settings (addresses, TLS, SASL, credentials) into
client options; every Kafka and Elasticsearch client rasd makes is built from
them. When nothing is set and ``rasd stack up --secure`` runs the local stack,
they take its certificates and users from the state directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import ConfigError

#: The repository's ``config/`` directory (feeds, rules, index template).
PROJECT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rasd"


def _default_state_dir() -> Path:
    # Elasticsearch refuses to run as root, so as root it runs as a system user
    # that cannot enter /root (mode 700). Its data must then live outside the
    # home directory, in the conventional place for service state.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/rasd")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rasd"


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

#: Where ``rasd stack up --secure`` records how to reach the secured local stack.
SECURE_STATE_FILE = "secure-stack.json"


@dataclass(frozen=True)
class KafkaAccess:
    """How to reach Kafka: addresses, TLS and SASL. ``str()`` is the addresses only."""

    bootstrap: str
    security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Seconds a client tries to reach the cluster before it gives up.
    connect_timeout: float = 30.0

    def __str__(self) -> str:
        return self.bootstrap

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def options(self) -> dict[str, Any]:
        """The kafka-python keyword arguments shared by producers, consumers and admins."""
        opts: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
            "bootstrap_timeout_ms": int(self.connect_timeout * 1000),
        }
        if self.tls:
            # Without a CA file the system's trust store decides; the host name is
            # always checked against the broker's certificate.
            opts["ssl_check_hostname"] = True
            if self.ca_file is not None:
                opts["ssl_cafile"] = str(self.ca_file)
            if self.cert_file is not None:
                opts["ssl_certfile"] = str(self.cert_file)
            if self.key_file is not None:
                opts["ssl_keyfile"] = str(self.key_file)
        if self.sasl:
            opts["sasl_mechanism"] = self.sasl_mechanism
            # kafka-python names the SCRAM credentials "plain" too.
            opts["sasl_plain_username"] = self.username
            opts["sasl_plain_password"] = (
                self.password.get_secret_value() if self.password else None
            )
        return opts


@dataclass(frozen=True)
class ElasticAccess:
    """How to reach Elasticsearch: URL, TLS and credentials. ``str()`` is the URL only."""

    url: str
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    client_cert: Path | None = None
    client_key: Path | None = None

    def __str__(self) -> str:
        return self.url

    def options(self) -> dict[str, Any]:
        """The elasticsearch-py keyword arguments (``hosts`` included)."""
        opts: dict[str, Any] = {"hosts": self.url}
        if self.api_key is not None:
            opts["api_key"] = self.api_key.get_secret_value()
        elif self.username and self.password is not None:
            opts["basic_auth"] = (self.username, self.password.get_secret_value())
        if self.url.startswith("https:"):
            opts["verify_certs"] = self.verify_certs
            if self.ca_certs is not None:
                opts["ca_certs"] = str(self.ca_certs)
            if self.client_cert is not None:
                opts["client_cert"] = str(self.client_cert)
            if self.client_key is not None:
                opts["client_key"] = str(self.client_key)
        return opts

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for plain HTTP clients (the stack's health checks)."""
        import base64

        if self.api_key is not None:
            return {"Authorization": f"ApiKey {self.api_key.get_secret_value()}"}
        if self.username and self.password is not None:
            pair = f"{self.username}:{self.password.get_secret_value()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}


def _read_secret_file(variable: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from exc
    # A secret file written by `echo` or an editor ends with a newline that is not
    # part of the secret.
    return text.rstrip("\r\n")


class _SecretFilesSource(PydanticBaseSettingsSource):
    """``RASD_<NAME>_FILE``: each secret setting read from the file it names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_FIELDS:
            variable = f"RASD_{name.upper()}"
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if os.environ.get(variable):
                raise ConfigError(f"set {variable} or {variable}_FILE, not both")
            values[name] = _read_secret_file(f"{variable}_FILE", path)
        return values


#: The settings that are secrets: never printed or logged, and readable from files.
SECRET_FIELDS = ("es_password", "es_api_key", "kafka_password")


class Settings(BaseSettings):
    """Everything rasd can be told, with the environment variable for each field."""

    model_config = SettingsConfigDict(env_prefix="RASD_", extra="ignore")

    # --- naming -----------------------------------------------------------
    namespace: str = Field(
        "rasd",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Prefix of every topic, consumer group and index name.",
    )

    # --- services the pipeline talks to -------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers; default: the local stack's port."
    )
    es_url: str | None = Field(None, description="Elasticsearch URL; default: the local stack.")
    es_fold_filter: bool = Field(
        True,
        description="The cluster has the rasd-fold plugin (rasd_arabic_fold); false: stock ES.",
    )
    es_username: str | None = Field(None, description="Elasticsearch user (basic auth).")
    es_password: SecretStr | None = Field(
        None, description="Password of RASD_ES_USERNAME (or RASD_ES_PASSWORD_FILE)."
    )
    es_api_key: SecretStr | None = Field(
        None, description="Elasticsearch API key, base64 id:key (or RASD_ES_API_KEY_FILE)."
    )
    es_ca_certs: Path | None = Field(
        None, description="CA bundle (PEM) that signed Elasticsearch's certificate."
    )
    es_verify_certs: bool = Field(
        True, description="Verify Elasticsearch's certificate and host name (https)."
    )
    es_client_cert: Path | None = Field(None, description="Client certificate (PEM) for ES.")
    es_client_key: Path | None = Field(None, description="Key (PEM) of RASD_ES_CLIENT_CERT.")
    kafka_security_protocol: KafkaSecurityProtocol | None = Field(
        None,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; default PLAINTEXT (or the "
        "secured local stack's).",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN."
    )
    kafka_username: str | None = Field(None, description="Kafka SASL user.")
    kafka_password: SecretStr | None = Field(
        None, description="Password of RASD_KAFKA_USERNAME (or RASD_KAFKA_PASSWORD_FILE)."
    )
    kafka_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates."
    )
    kafka_cert_file: Path | None = Field(None, description="Client certificate (PEM) for Kafka.")
    kafka_key_file: Path | None = Field(None, description="Key (PEM) of RASD_KAFKA_CERT_FILE.")
    kafka_connect_timeout: float = Field(
        30.0, gt=0, description="Seconds a Kafka client tries to reach the cluster."
    )

    # --- local stack (``rasd stack``) -----------------------------------------
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Downloads and builds for the local stack (kept between runs).",
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Data, logs and pid files of the local stack.",
    )
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    es_port: int = Field(9200, ge=1, le=65535)
    es_transport_port: int = Field(9300, ge=1, le=65535)
    kafka_heap: str = Field("512m", pattern=r"^\d+[mg]$")
    es_heap: str = Field("512m", pattern=r"^\d+[mg]$")
    java_home: Path | None = Field(
        None, description="JDK (>= 21) for Elasticsearch and the plugin build; default: found."
    )
    es_user: str = Field("rasd-es", description="System user that runs Elasticsearch as root.")
    startup_timeout: float = Field(180.0, gt=0, description="Seconds to wait for readiness.")

    # --- pipeline -------------------------------------------------------------
    config_dir: Path = Field(PROJECT_CONFIG_DIR, description="Directory of rasd's config files.")
    feeds_file: Path | None = Field(None, description="Feed catalogue; default config/feeds.yaml.")
    rules_file: Path | None = Field(None, description="Watch rules; default config/rules.yaml.")
    places_file: Path | None = Field(None, description="Your places, added to the gazetteer.")
    entities_file: Path | None = Field(None, description="Your people and organisations.")
    allow_private_networks: bool = Field(
        False, description="Let fetches reach loopback and private addresses (tests, demo)."
    )
    partitions: int = Field(6, ge=1, le=1000, description="Partitions of each pipeline topic.")
    transactions: bool = Field(
        True,
        description="Each stage worker commits its outputs, dead letters and input offsets "
        "in one Kafka transaction (exactly once between the stages); false: at least once.",
    )
    instance_id: str | None = Field(
        None,
        description="This worker process's name within its stage, in its transactional id "
        "(a restart under the same name aborts what the previous process left open); "
        "default: the host name and process id.",
    )
    poll_interval: int = Field(
        300, ge=10, description="Seconds between polls of a new feed, until its rate is known."
    )
    host_max_concurrency: int = Field(
        2, ge=1, le=64, description="Requests in flight per host (feeds and articles together)."
    )
    host_min_spacing: float = Field(
        0.5, ge=0, description="Seconds between the starts of two requests to one host."
    )
    respect_robots: bool = Field(True, description="Article fetches obey the host's robots.txt.")
    contact_url: str = Field(
        "", description="Where outlets can reach the operator; sent in the User-Agent."
    )
    drain_timeout: float = Field(
        600.0, gt=0, description="`rasd run --once`: seconds to wait for the pipeline to drain."
    )
    log_level: str = Field("INFO", description="Logging level of rasd's own loggers.")
    log_format: Literal["console", "json"] = Field(
        "console", description="console: for people; json: one JSON object per line."
    )
    metrics_port: int = Field(
        9810,
        ge=0,
        le=65535,
        description="Port of /metrics, /healthz and /readyz of `rasd run` and `rasd worker`; "
        "0: none.",
    )
    metrics_address: str = Field(
        "127.0.0.1", description="Address the metrics port binds to (0.0.0.0: every interface)."
    )
    health_stall_seconds: float = Field(
        600.0,
        gt=0,
        # Kafka's max.poll.interval of the stage workers: a loop that has not polled
        # for that long has already been dropped from its group.
        description="/healthz fails when a loop has not turned for this long.",
    )
    dedupe_window_days: float = Field(
        7.0, gt=0, description="Days an article stays a candidate for near-duplicate matching."
    )
    dedupe_store: Literal["memory", "disk"] = Field(
        "memory",
        description=(
            "Where the cluster worker keeps its dedupe window: memory (about 1.1 KB an "
            "article, with snapshots) or disk (a SQLite file; memory stays flat)."
        ),
    )
    dedupe_snapshot_dir: Path | None = Field(
        None,
        description="The cluster worker's dedupe snapshots or store; default <state dir>/dedupe.",
    )
    dedupe_snapshot_seconds: float = Field(
        300.0,
        ge=0,
        description="Seconds between dedupe snapshots (also written on a clean stop; 0: never).",
    )
    dedupe_threshold: float = Field(
        0.15,
        gt=0,
        le=1,
        description="Estimated Jaccard (word 3-shingles) at which two texts are one story.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(env_settings, EnvSettingsSource)
        return (init_settings, env_settings, _SecretFilesSource(settings_cls), dotenv_settings)

    @model_validator(mode="after")
    def _credentials_complete(self) -> Settings:
        protocol = self.kafka_security_protocol or "PLAINTEXT"
        if protocol.startswith("SASL_") and not (self.kafka_username and self.kafka_password):
            raise ValueError(
                f"RASD_KAFKA_SECURITY_PROTOCOL={protocol} needs RASD_KAFKA_USERNAME and "
                "RASD_KAFKA_PASSWORD (or RASD_KAFKA_PASSWORD_FILE)"
            )
        if bool(self.kafka_cert_file) != bool(self.kafka_key_file):
            raise ValueError("RASD_KAFKA_CERT_FILE and RASD_KAFKA_KEY_FILE go together")
        if bool(self.es_client_cert) != bool(self.es_client_key):
            raise ValueError("RASD_ES_CLIENT_CERT and RASD_ES_CLIENT_KEY go together")
        if bool(self.es_username) != bool(self.es_password):
            raise ValueError("RASD_ES_USERNAME and RASD_ES_PASSWORD go together")
        return self

    def secret_values(self) -> list[str]:
        """Every secret this process knows, for redaction from logs and errors."""
        secrets = [getattr(self, name) for name in SECRET_FIELDS]
        local = self.secure_stack()
        if local is not None:
            secrets += [local.kafka.password, local.elasticsearch.password]
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]

    def secure_stack(self) -> LocalSecureStack | None:
        """The secured local stack's access, when ``rasd stack up --secure`` made one."""
        return LocalSecureStack.load(self.state_dir)

    @property
    def kafka(self) -> KafkaAccess:
        """How every Kafka client of rasd connects."""
        local = None
        if self.kafka_bootstrap is None and self.kafka_security_protocol is None:
            local = self.secure_stack()
        if local is not None:
            return replace(local.kafka, connect_timeout=self.kafka_connect_timeout)
        return KafkaAccess(
            self.kafka_servers,
            self.kafka_security_protocol or "PLAINTEXT",
            self.kafka_sasl_mechanism,
            self.kafka_username,
            self.kafka_password,
            self.kafka_ca_file,
            self.kafka_cert_file,
            self.kafka_key_file,
            self.kafka_connect_timeout,
        )

    @property
    def elasticsearch(self) -> ElasticAccess:
        """How every Elasticsearch client of rasd connects."""
        if self.es_url is None and not (self.es_username or self.es_api_key):
            local = self.secure_stack()
            if local is not None:
                return local.elasticsearch
        return ElasticAccess(
            self.elasticsearch_url,
            self.es_username,
            self.es_password,
            self.es_api_key,
            self.es_ca_certs,
            self.es_verify_certs,
            self.es_client_cert,
            self.es_client_key,
        )

    @property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def elasticsearch_url(self) -> str:
        if self.es_url:
            return self.es_url
        scheme = "https" if self.secure_stack() is not None else "http"
        return f"{scheme}://127.0.0.1:{self.es_port}"

    @property
    def index_template_file(self) -> Path:
        return self.config_dir / "elasticsearch" / "articles-template.json"

    @property
    def user_agent(self) -> str:
        contact = f"; +{self.contact_url}" if self.contact_url else ""
        return f"rasd/0.1 (Arabic news monitoring{contact})"

    @property
    def feeds_path(self) -> Path:
        return self.feeds_file or self.config_dir / "feeds.yaml"

    @property
    def rules_path(self) -> Path:
        return self.rules_file or self.config_dir / "rules.yaml"


@dataclass(frozen=True)
class LocalSecureStack:
    """The secured local stack's certificates and rasd's users (``rasd stack up --secure``)."""

    directory: Path
    kafka: KafkaAccess
    elasticsearch: ElasticAccess

    @classmethod
    def load(cls, state_dir: Path) -> LocalSecureStack | None:
        path = state_dir / SECURE_STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc}); run `rasd stack up --secure`") from exc
        k, e = data["kafka"], data["elasticsearch"]
        kafka = KafkaAccess(
            k["bootstrap"],
            k["security_protocol"],
            k["sasl_mechanism"],
            k["username"],
            SecretStr(_read_secret_file(str(path), k["password_file"])),
            Path(k["ca_file"]),
        )
        elasticsearch = ElasticAccess(
            e["url"],
            e["username"],
            SecretStr(_read_secret_file(str(path), e["password_file"])),
            ca_certs=Path(e["ca_certs"]),
        )
        return cls(Path(data["directory"]), kafka, elasticsearch)
