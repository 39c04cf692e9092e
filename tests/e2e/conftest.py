"""The e2e tier: the bundled demo site served locally, the real stack, the `rasd` command.

Each test gets its own namespace (topics, groups, indices), deleted afterwards,
and runs ``rasd`` as a subprocess exactly as a user would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.settings import Settings
from rasd.app import reset_namespace
from rasd.demo import FixtureSite, default_site_root, write_feeds_file

SITE = default_site_root()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Run:
    """A namespace of its own and the files to run the pipeline over the demo site."""

    namespace: str
    feeds: Path
    rules: Path
    site: FixtureSite
    settings: Settings

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "RASD_NAMESPACE": self.namespace,
            "RASD_ALLOW_PRIVATE_NETWORKS": "true",
            "RASD_FEEDS_FILE": str(self.feeds),
            "RASD_RULES_FILE": str(self.rules),
            "RASD_DRAIN_TIMEOUT": "180",
            "COLUMNS": "200",
            **(extra or {}),
        }

    def rasd(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rasd", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def once(self) -> dict[str, Any]:
        """`rasd run --once --json`, which must exit 0; its summary."""
        done = self.rasd("run", "--once", "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        summary: dict[str, Any] = json.loads(done.stdout)
        return summary

    def start(self, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """`rasd run --json` (continuous) in the background; ``extra``: more environment."""
        return subprocess.Popen(
            [sys.executable, "-m", "rasd", "run", "--json"],
            env=self.env(extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(scope="session")
def expectations() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SITE / "expectations.yaml").read_text())
    return data


@pytest.fixture
def run(es: Any, kafka_bootstrap: str, unique: str, tmp_path: Path) -> Iterator[Run]:
    site = FixtureSite(SITE, port=free_port()).start()
    settings = Settings(namespace=f"e2e-{unique}")
    feeds = write_feeds_file(SITE, site.base_url, tmp_path / "feeds.yaml")
    # The fixtures' own rules: one rule, so "exactly one alert" is meaningful.
    rules = SITE / "rules.yaml"
    try:
        yield Run(settings.namespace, feeds, rules, site, settings)
    finally:
        site.stop()
        reset_namespace(settings)
