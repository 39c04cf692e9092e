"""The names of rasd's stage workers, light enough for the command line to import.

``rasd --help`` and ``rasd --version`` must not load Kafka, Elasticsearch and
trafilatura just to list the stages, so the names live here, apart from the
composition in :mod:`rasd.app`. As ``Literal`` types they are also the choices
that ``rasd worker`` offers in its help and shell completion.
"""

from __future__ import annotations

from typing import Literal, get_args

#: The Kafka stage workers, in pipeline order. ``dedupe`` computes the text keys
#: on any number of workers; ``cluster`` decides on one partition, a single
#: writer (docs/dedupe.md).
KafkaStage = Literal["extract", "dedupe", "cluster", "enrich", "index", "alert"]
#: What ``rasd worker`` runs: a poller instance, a Kafka stage, or alert delivery.
WorkerStage = Literal["poll", KafkaStage, "deliver"]

STAGES: tuple[str, ...] = get_args(KafkaStage)
WORKER_STAGES: tuple[str, ...] = ("poll", *STAGES, "deliver")
