"""How rasd is installed: every third-party import of the package is a declared
runtime dependency, and the image installs from the runtime lock."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN = {"pipeline", "connectors", "rasd"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_norm(re.split(r"[ <>=!~;\[]", d, maxsplit=1)[0]) for d in project["dependencies"]}


def _imports() -> dict[str, str]:
    """Top-level module -> the first file importing it, for absolute imports."""
    found: dict[str, str] = {}
    for package in sorted(OWN):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_runtime_dependency() -> None:
    dists = packages_distributions()
    declared = _declared()
    missing = []
    for module, where in sorted(_imports().items()):
        if module in OWN or module in sys.stdlib_module_names:
            continue
        names = {_norm(d) for d in dists.get(module, [])}
        if not names:
            missing.append(f"{module} (imported in {where}) is installed by no distribution")
        elif not names & declared:
            missing.append(f"{module} (imported in {where}) comes from {sorted(names)}")
    assert not missing, "not in [project] dependencies: " + "; ".join(missing)


def test_the_check_sees_imports_and_declarations() -> None:
    # Guards the test above against passing vacuously.
    imports = _imports()
    assert {"trafilatura", "numpy", "httpcore"} <= imports.keys()
    assert {"trafilatura", "lxml-html-clean", "numpy"} <= _declared()


def _dockerfile_runs() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


def test_the_image_installs_the_runtime_lock_with_hashes_and_nothing_else() -> None:
    installs = [c for run in _dockerfile_runs() for c in run.split("&&") if "pip install" in c]
    assert installs, "the Dockerfile installs nothing"
    lock = [c for c in installs if "-r requirements/runtime.txt" in c]
    assert lock and all("--require-hashes" in c and "--no-deps" in c for c in lock), installs
    # Every other install is rasd itself, without resolving dependencies.
    for command in installs:
        assert "--no-deps" in command, f"resolves dependencies outside the lock: {command}"
    assert installs.index(lock[0]) == 0, "the lock must be installed before rasd"
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements/runtime.txt" in text
    assert "test" not in " ".join(installs), "the image must not install the test extra"


def test_the_locks_pin_every_package_with_a_hash() -> None:
    for name in ("runtime.txt", "test.txt"):
        text = (ROOT / "requirements" / name).read_text().replace("\\\n", " ")
        pins = [ln for ln in text.splitlines() if ln and not ln.lstrip().startswith("#")]
        assert pins, name
        for pin in pins:
            assert re.match(r"^[A-Za-z0-9._-]+==\S+", pin) and "--hash=sha256:" in pin, pin
    runtime = (ROOT / "requirements" / "runtime.txt").read_text()
    assert re.search(r"^lxml-html-clean==", runtime, re.M)
