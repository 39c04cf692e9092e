"""The secured local stack's material: CA, certificates, users, passwords and ACLs.

``rasd stack up --secure`` keeps it under ``<state>/secure/`` (mode 0700):

* ``ca.pem`` / ``ca.key``: the local CA (the key stays, to issue again);
* ``kafka.pem`` (certificate and key, Kafka's PEM keystore) and ``es.pem`` /
  ``es.key``, each for ``localhost`` and ``127.0.0.1``;
* one random password file per user: Kafka's broker super user ``admin`` and
  the client ``rasd`` (SCRAM-SHA-512), Elasticsearch's ``elastic`` and ``rasd``.

``<state>/secure-stack.json`` tells the clients (:class:`pipeline.settings.
LocalSecureStack`) where the CA and rasd's passwords are, and ``rasd stack``
that this state directory is a secured one. rasd's users hold what
``docker/es-setup.sh`` gives production, limited to the namespaces
:data:`NAMESPACE_PREFIXES`: nothing else is readable or writable to them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.settings import SECURE_STATE_FILE, ElasticAccess, KafkaAccess, LocalSecureStack

from . import certs

#: Kafka's super user: the broker's own connections and the stack's setup only.
KAFKA_ADMIN = "admin"
#: The user every rasd client of the secured local stack logs in as.
RASD_USER = "rasd"
ES_SUPERUSER = "elastic"
#: The namespaces rasd's users may use on the secured local stack: the default
#: one and the tests' ``secure-<random>`` and ``e2e-<random>`` ones. Topics and
#: groups are ``<ns>.<name>``, indices ``<ns>-<name>``.
NAMESPACE_PREFIXES = ("rasd", "secure-", "e2e-")


def _kafka_prefix(prefix: str) -> str:
    return prefix if prefix.endswith("-") else prefix + "."


def _es_pattern(prefix: str) -> str:
    return (prefix if prefix.endswith("-") else prefix + "-") + "*"


#: The role of ``docker/es-setup.sh`` (cluster monitor and templates, all on the
#: namespace's indices, nothing else), over :data:`NAMESPACE_PREFIXES`.
ES_ROLE: dict[str, Any] = {
    "cluster": ["monitor", "manage_index_templates"],
    "indices": [{"names": [_es_pattern(p) for p in NAMESPACE_PREFIXES], "privileges": ["all"]}],
    "metadata": {"managed_by": "rasd stack up --secure"},
}
ES_ROLE_NAME = "rasd_pipeline"


@dataclass(frozen=True)
class SecureFiles:
    """Paths of the secured stack's material under ``<state>/secure``."""

    state_dir: Path

    @property
    def dir(self) -> Path:
        return self.state_dir / "secure"

    @property
    def state_file(self) -> Path:
        return self.state_dir / SECURE_STATE_FILE

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def kafka_keystore(self) -> Path:
        return self.dir / "kafka.pem"

    @property
    def es_cert(self) -> Path:
        return self.dir / "es.pem"

    @property
    def es_key(self) -> Path:
        return self.dir / "es.key"

    def password_file(self, service: str, user: str) -> Path:
        return self.dir / f"{service}-{user}.password"

    def password(self, service: str, user: str) -> str:
        return self.password_file(service, user).read_text(encoding="utf-8").strip()

    def exists(self) -> bool:
        return self.state_file.is_file()

    def ensure(self, kafka_port: int, es_port: int) -> None:
        """Make whatever is missing: CA, certificates, passwords; then the state file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        if self.ca_cert.is_file() and self.ca_key.is_file():
            ca = certs.load_authority(self.ca_cert, self.ca_key)
        else:
            ca = certs.new_authority()
            certs.save_authority(ca, self.ca_cert, self.ca_key)
        if not self.kafka_keystore.is_file():
            cert, key = certs.issue(ca, "kafka")
            certs.write_private(self.kafka_keystore, key + cert)
        if not (self.es_cert.is_file() and self.es_key.is_file()):
            cert, key = certs.issue(ca, "elasticsearch")
            self.es_cert.write_bytes(cert)
            certs.write_private(self.es_key, key)
        for service, user in (
            ("kafka", KAFKA_ADMIN),
            ("kafka", RASD_USER),
            ("es", ES_SUPERUSER),
            ("es", RASD_USER),
        ):
            path = self.password_file(service, user)
            if not path.is_file():
                certs.write_private(path, secrets.token_urlsafe(24).encode())
        state = {
            "directory": str(self.dir),
            "kafka": {
                "bootstrap": f"127.0.0.1:{kafka_port}",
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "username": RASD_USER,
                "password_file": str(self.password_file("kafka", RASD_USER)),
                "ca_file": str(self.ca_cert),
            },
            "elasticsearch": {
                "url": f"https://127.0.0.1:{es_port}",
                "username": RASD_USER,
                "password_file": str(self.password_file("es", RASD_USER)),
                "ca_certs": str(self.ca_cert),
            },
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    def clients(self) -> LocalSecureStack:
        stack = LocalSecureStack.load(self.state_dir)
        assert stack is not None, "ensure() first"
        return stack

    def kafka_admin(self, bootstrap: str) -> KafkaAccess:
        """The broker super user's access (the stack's own checks and setup)."""
        from pydantic import SecretStr

        return KafkaAccess(
            bootstrap,
            "SASL_SSL",
            "SCRAM-SHA-512",
            KAFKA_ADMIN,
            SecretStr(self.password("kafka", KAFKA_ADMIN)),
            self.ca_cert,
        )

    def es_superuser(self, url: str) -> ElasticAccess:
        from pydantic import SecretStr

        return ElasticAccess(
            url, ES_SUPERUSER, SecretStr(self.password("es", ES_SUPERUSER)), ca_certs=self.ca_cert
        )


def rasd_acls(principal: str = f"User:{RASD_USER}") -> list[Any]:
    """rasd's Kafka ACLs: its namespaces' topics, groups and transactional ids,
    describing the cluster.

    Not granted: ALTER on the cluster (ACLs, SCRAM users, quotas), other topics.
    """
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    allow = ACLPermissionType.ALLOW
    acls = []
    for prefix in NAMESPACE_PREFIXES:
        topics = ResourcePattern(
            ResourceType.TOPIC, _kafka_prefix(prefix), ACLResourcePatternType.PREFIXED
        )
        groups = ResourcePattern(
            ResourceType.GROUP, _kafka_prefix(prefix), ACLResourcePatternType.PREFIXED
        )
        for op in (
            ACLOperation.READ,
            ACLOperation.WRITE,
            ACLOperation.CREATE,
            ACLOperation.DELETE,
            ACLOperation.DESCRIBE,
            ACLOperation.DESCRIBE_CONFIGS,
        ):
            acls.append(ACL(principal, "*", op, allow, topics))
        for op in (ACLOperation.READ, ACLOperation.DESCRIBE, ACLOperation.DELETE):
            acls.append(ACL(principal, "*", op, allow, groups))
        # A stage worker's transactional id is ``<ns>.<stage>.<instance>``.
        transactions = ResourcePattern(
            ResourceType.TRANSACTIONAL_ID, _kafka_prefix(prefix), ACLResourcePatternType.PREFIXED
        )
        for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE):
            acls.append(ACL(principal, "*", op, allow, transactions))
    cluster = ResourcePattern(ResourceType.CLUSTER, "kafka-cluster", ACLResourcePatternType.LITERAL)
    acls.append(ACL(principal, "*", ACLOperation.DESCRIBE, allow, cluster))
    return acls
