"""Logging for people and for machines (``RASD_LOG_FORMAT``).

``console`` (the default) is rich's format with a full date and time, on
stderr. ``json`` is one JSON object per line on stderr, for a log shipper:
``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``stage``
and ``article_id`` where there is one (:mod:`connectors.logcontext`), and
``exc_info`` with the traceback of an error.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter
from rich.console import Console
from rich.logging import RichHandler

from connectors.logcontext import ContextFilter
from pipeline.redact import RedactingFilter
from pipeline.settings import Settings

__all__ = ["configure_logging", "json_handler"]

#: rasd's own loggers; the libraries' stay at WARNING.
OWN_LOGGERS = ("rasd", "connectors", "pipeline")


def json_handler(stream: object = None) -> logging.Handler:
    """A handler writing one JSON object per record to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}{stage}{article_id}",
            style="{",
            timestamp=True,
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
    )
    return handler


def configure_logging(settings: Settings, console: Console) -> None:
    """Route every log record to one handler of the configured format."""
    if settings.log_format == "json":
        handler = json_handler()
    else:
        handler = RichHandler(
            console=console,
            show_path=False,
            markup=False,
            log_time_format="%Y-%m-%d %H:%M:%S",
        )
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(ContextFilter())
    # Whatever a library logs (kafka-python's connection errors, a request URL with
    # credentials), the process's secrets never reach the log.
    handler.addFilter(RedactingFilter(settings.secret_values()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(settings.log_level.upper())
