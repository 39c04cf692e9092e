"""The one typed configuration object of rasd.

Values come, in increasing priority, from the defaults below and from
``RASD_*`` environment variables (pydantic-settings). The CLI shows the
environment variable behind each option in ``--help``. Secrets are
``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    es_username: str | None = None
    es_password: SecretStr | None = None

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
    dedupe_window_days: float = Field(
        7.0, gt=0, description="Days an article stays a candidate for near-duplicate matching."
    )
    dedupe_threshold: float = Field(
        0.15,
        gt=0,
        le=1,
        description="Estimated Jaccard (word 3-shingles) at which two texts are one story.",
    )

    @property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def elasticsearch_url(self) -> str:
        return self.es_url or f"http://127.0.0.1:{self.es_port}"

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
