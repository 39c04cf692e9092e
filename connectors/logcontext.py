"""What a log line is about: the stage and the article, carried by context variables.

A stage worker sets ``stage`` for its whole loop; code that handles one article
sets ``article_id`` around it. :class:`ContextFilter` copies both onto every
log record, where the JSON format (``RASD_LOG_FORMAT=json``) prints them. Each
thread starts with an empty context, so two workers in one process never mix.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["ContextFilter", "log_context"]

_stage: ContextVar[str | None] = ContextVar("rasd_stage", default=None)
_article: ContextVar[str | None] = ContextVar("rasd_article_id", default=None)


@contextlib.contextmanager
def log_context(*, stage: str | None = None, article_id: str | None = None) -> Iterator[None]:
    """Within the block, log records name ``stage`` and ``article_id`` (when given)."""
    tokens = []
    if stage is not None:
        tokens.append((_stage, _stage.set(stage)))
    if article_id is not None:
        tokens.append((_article, _article.set(article_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``stage`` and ``article_id`` (None when unknown) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "stage", None) is None:
            record.stage = _stage.get()
        if getattr(record, "article_id", None) is None:
            record.article_id = _article.get()
        return True
