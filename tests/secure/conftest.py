"""The secured tier: the stack of ``rasd stack up --secure`` (TLS and authentication on both).

Every test here needs that stack, found through the settings' state directory
(``RASD_STATE_DIR``); without it the tests fail, never skip. ``scripts/test``
runs this tier, with ``tests/e2e``, against a second, secured stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.stack import certs
from pipeline.settings import LocalSecureStack, Settings


@pytest.fixture(scope="session")
def secured(settings: Settings) -> LocalSecureStack:
    stack = settings.secure_stack()
    if stack is None:
        pytest.fail(
            f"{settings.state_dir} holds no secured stack: run `rasd stack up --secure` "
            "with this RASD_STATE_DIR first"
        )
    return stack


@pytest.fixture(scope="session")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed neither server's certificate."""
    path = tmp_path_factory.mktemp("foreign-ca") / "ca.pem"
    path.write_bytes(certs.new_authority("not the rasd local CA").pem)
    return path


def rasd(env: dict[str, str | None], *args: str) -> subprocess.CompletedProcess[str]:
    """``rasd ARGS`` with the environment changed by ``env`` (None: removed)."""
    full = {**os.environ, "COLUMNS": "80", "RASD_KAFKA_CONNECT_TIMEOUT": "5"}
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run(
        [sys.executable, "-m", "rasd", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one line on stderr, ``error: ...``; that line."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
