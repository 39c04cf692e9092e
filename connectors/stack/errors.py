"""Errors of the local stack, each a one-line message fit to print as is."""

from __future__ import annotations

from pipeline.errors import RasdError


class StackError(RasdError):
    """Something about the local Kafka/Elasticsearch stack went wrong.

    ``log_tail`` carries the last lines of the relevant log, printed under the
    one-line message so that a crash explains itself.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail
