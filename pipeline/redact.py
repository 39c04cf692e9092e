"""Keeping secrets out of logs and error messages.

:class:`RedactingFilter` goes on every log handler rasd installs: it replaces
each known secret value (passwords, API keys; :meth:`pipeline.settings.Settings.
secret_values`) with ``***`` in the formatted message and in exception text,
whichever library logged it. :func:`redact` does the same for one string.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so that a secret containing another is masked whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks ``secrets`` in every record that passes through the handler."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text, self.secrets) != text:
                # The traceback would show the secret: log the masked text instead.
                record.msg = f"{record.msg}\n{redact(text, self.secrets)}"
                record.exc_info = None
                record.exc_text = None
                del exc
        return True
