"""rasd's pure core: models, stages, Arabic normalization and settings.

Nothing in this package talks to Kafka, Elasticsearch, HTTP or the scheduler;
those live in :mod:`connectors`, and :mod:`rasd.cli` wires the two together.
"""
