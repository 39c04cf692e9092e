"""The smoke test of an installed rasd: run by scripts/smoke with the Python of
a fresh virtualenv that holds only the runtime lock and rasd (as the image does),
from a directory outside the checkout, against the stack of `rasd stack up`.

It imports every module of the package, runs `rasd demo --once` (three alerts,
the missing page in the dead-letter topic) and `rasd run --once` on the real
catalogue (exit 0 whether the feeds answer or not). Exits 1 with the reason on
the first failure. Uses only the standard library and rasd itself.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import socket
import subprocess
import sys
from pathlib import Path

PACKAGES = ("pipeline", "connectors", "rasd")


def fail(message: str) -> None:
    print(f"smoke: error: {message}", file=sys.stderr)
    sys.exit(1)


def import_everything() -> int:
    count = 0
    for name in PACKAGES:
        package = importlib.import_module(name)
        where = Path(package.__file__ or "").resolve()
        # The package must come from this environment, not from a checkout on sys.path.
        if not where.is_relative_to(Path(sys.prefix).resolve()):
            fail(f"{name} was imported from {where}, outside {sys.prefix}")
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if info.name.endswith(".__main__"):
                continue  # running it is `python -m`, importing it would run the CLI
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                fail(f"the runtime environment cannot import {info.name}: {exc}")
            count += 1
    return count


def rasd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.prefix) / "bin" / "rasd"
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        # A free metrics port: another rasd on this machine may hold the default.
        env={**os.environ, "COLUMNS": "200", "RASD_METRICS_PORT": str(free_port()), **(env or {})},
        check=False,
    )


def must(result: subprocess.CompletedProcess[str], what: str) -> str:
    if result.returncode != 0:
        fail(f"{what} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_once() -> None:
    namespace = f"smoke-demo-{os.getpid()}"
    try:
        out = must(
            rasd("demo", "--once", "--port", str(free_port()), "--namespace", namespace),
            "rasd demo --once",
        )
        found = re.search(r"alerts\s*\S\s*(\d+)", out)
        if not found or int(found.group(1)) != 3:
            fail(f"rasd demo --once should raise 3 alerts:\n{out}")
        letters = must(rasd("dlq", "show", "--json", "--namespace", namespace), "rasd dlq show")
        reasons = [json.loads(line) for line in letters.splitlines() if line.strip()]
        if not any("404" in json.dumps(d) for d in reasons):
            fail(f"the demo's missing page (404) is not in the dead-letter topic:\n{letters}")
        print(f"smoke: rasd demo --once: 3 alerts, {len(reasons)} dead letter(s) incl. the 404")
    finally:
        rasd("reset", "--yes", "--namespace", namespace)


def run_once() -> None:
    namespace = f"smoke-run-{os.getpid()}"
    try:
        out = must(rasd("run", "--once", "--json", "--namespace", namespace), "rasd run --once")
        summary = json.loads(out)
        if not summary.get("drained"):
            fail(f"rasd run --once did not drain: {summary}")
        print(
            f"smoke: rasd run --once: exit 0, {summary['feeds_ok']} feeds ok, "
            f"{summary['feeds_failed']} failed"
        )
    finally:
        rasd("reset", "--yes", "--namespace", namespace)


def main() -> None:
    print(f"smoke: imported {import_everything()} modules from {sys.prefix}")
    demo_once()
    run_once()


if __name__ == "__main__":
    main()
