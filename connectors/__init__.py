"""Adapters: the only code that talks to Kafka, Elasticsearch, HTTP, feeds and the scheduler."""
