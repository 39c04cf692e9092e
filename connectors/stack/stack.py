"""``rasd stack``: provision, start, inspect and stop the local Kafka and Elasticsearch.

``up`` provisions into the cache (Maven downloads, the plugin build) only what
is missing, then starts each service that is not already running and waits
until a Kafka metadata call succeeds and ``/_cluster/health`` is yellow or green.
It is idempotent. ``down`` stops both and checks that no process is left.

For fault injection, one service at a time: ``kill`` (SIGKILL of its process
group: a crash), ``stop`` (a clean shutdown), ``up`` with ``only`` (a restart on
the same data), ``pause`` and ``resume`` (SIGSTOP and SIGCONT: a hang).

``up --secure`` runs both with TLS and authentication (:mod:`.secure`); the
state directory remembers it, so later ``up``, ``status`` and ``down``, and
every client with default settings, use the secured stack too.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from pipeline.settings import Settings

from . import process, provision
from .errors import StackError
from .jdk import find_jdks, pick
from .provision import Progress
from .secure import SecureFiles
from .services import ElasticsearchService, Health, KafkaService
from .versions import KAFKA_MIN_JAVA


@dataclass
class UpReport:
    """What ``up`` did, with timings, for the caller to print."""

    started: list[str]
    already_running: list[str]
    seconds: float


class LocalStack:
    """The local stack as a whole: one Kafka, one Elasticsearch."""

    def __init__(
        self, settings: Settings, plugin_compiler: str = "auto", secure: bool = False
    ) -> None:
        self.settings = settings
        files = SecureFiles(settings.state_dir)
        #: Secured: asked for now, or remembered from an earlier ``up --secure``.
        self.secure = files if secure or files.exists() else None
        self._secure_asked = secure
        self.kafka = KafkaService(settings, self.secure)
        self.elasticsearch = ElasticsearchService(settings, self.secure)
        self.plugin_compiler = plugin_compiler

    @property
    def services(self) -> list[KafkaService | ElasticsearchService]:
        return [self.kafka, self.elasticsearch]

    def service(self, name: str) -> KafkaService | ElasticsearchService:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise StackError(f"unknown service {name!r}; choose kafka or elasticsearch")

    def provision(self, progress: Progress) -> tuple[Path, Path]:
        """Make sure the Kafka jars and the Elasticsearch home (with plugin) are cached."""
        cache = self.settings.cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        libs = provision.kafka_libs(cache, progress)
        es_home = provision.elasticsearch_home(cache, progress)
        provision.install_plugin(
            es_home, cache, self.settings.java_home, progress, self.plugin_compiler
        )
        return libs, es_home

    def _check_ports(self, svc: KafkaService | ElasticsearchService) -> None:
        for port in svc.ports:
            owner = process.port_owner(port)
            if owner is not None:
                raise StackError(
                    f"cannot start {svc.name}: port {port} on 127.0.0.1 is already in use "
                    f"by {owner}"
                )

    def up(self, progress: Progress, only: str | None = None) -> UpReport:
        """Start each service that is not running (``only``: that one) and wait until
        it is ready."""
        begin = time.monotonic()
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        if self.secure is not None:
            if not self.secure.exists() and (self.kafka.data / "meta.properties").exists():
                raise StackError(
                    f"{self.settings.state_dir} holds a stack made without --secure; "
                    "use another RASD_STATE_DIR for the secured one"
                )
            progress("secured stack: CA, certificates and passwords")
            self.secure.ensure(self.settings.kafka_port, self.settings.es_port)
        libs, es_home = self.provision(progress)
        es_jdk = provision.java_for_elasticsearch(self.settings.cache_dir, self.settings.java_home)
        kafka_jdk = pick(find_jdks(self.settings.java_home), KAFKA_MIN_JAVA) or es_jdk

        started: list[str] = []
        running: list[str] = []
        launched: list[tuple[KafkaService | ElasticsearchService, Popen[bytes] | None]] = []
        # Start both before waiting on either: the two JVMs boot in parallel.
        to_start = []
        chosen = [self.service(only)] if only else self.services
        for svc in chosen:
            if svc.pid() is not None:
                running.append(svc.name)
                launched.append((svc, None))
            else:
                to_start.append(svc)
        # Check every port before starting anything, so a clash leaves nothing half-up.
        for svc in to_start:
            self._check_ports(svc)
        for svc in to_start:
            progress(f"starting {svc.name}")
            if isinstance(svc, KafkaService):
                child = svc.start(kafka_jdk, libs)
            else:
                child = svc.start(es_jdk, es_home)
            started.append(svc.name)
            launched.append((svc, child))
        for svc, proc in launched:
            progress(f"waiting for {svc.name} on port {svc.port}")
            process.wait_until(
                svc.ready, proc, self.settings.startup_timeout, svc.name, svc.log_files
            )
        for svc in chosen:
            if self.secure is not None:
                progress(f"{svc.name}: rasd's user and its rights")
            svc.grant()
        return UpReport(started, running, time.monotonic() - begin)

    def down(self) -> list[str]:
        """Stop both services; return the names of those that were running."""
        stopped = []
        for svc in reversed(self.services):
            pid = svc.pid()
            if pid is not None:
                process.stop(pid)
                stopped.append(svc.name)
            svc.files.pidfile.unlink(missing_ok=True)
            process.sweep(str(svc.dir))
        return stopped

    # --- one service at a time, for fault injection ---------------------------------

    def _running(self, name: str) -> tuple[KafkaService | ElasticsearchService, int]:
        svc = self.service(name)
        pid = svc.pid()
        if pid is None:
            raise StackError(f"{name} is not running")
        return svc, pid

    def kill(self, name: str) -> int:
        """``kill -9`` the service (its whole process group): a crash, no shutdown.
        Returns the pid it had; ``up`` or ``start`` brings it back on the same data."""
        svc, pid = self._running(name)
        process.kill(pid)
        svc.files.pidfile.unlink(missing_ok=True)
        process.sweep(str(svc.dir))
        return pid

    def stop(self, name: str) -> int:
        """Stop the service cleanly (SIGTERM, then SIGKILL after 60 s)."""
        svc, pid = self._running(name)
        process.stop(pid)
        svc.files.pidfile.unlink(missing_ok=True)
        process.sweep(str(svc.dir))
        return pid

    def pause(self, name: str) -> int:
        """SIGSTOP the service: its connections stay open and nothing answers (a hang)."""
        _, pid = self._running(name)
        process.signal_group(pid, signal.SIGSTOP)
        return pid

    def resume(self, name: str) -> int:
        """SIGCONT a paused service."""
        _, pid = self._running(name)
        process.signal_group(pid, signal.SIGCONT)
        return pid

    def status(self) -> list[Health]:
        return [svc.health() for svc in self.services]
