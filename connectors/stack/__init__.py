"""The local stack: a real Kafka broker and a real Elasticsearch on 127.0.0.1.

Provisioned from Maven Central and started without Docker, for development,
tests and CI. Production uses ``docker compose up`` instead.
"""

from .errors import StackError
from .stack import LocalStack

__all__ = ["LocalStack", "StackError"]
