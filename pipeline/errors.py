"""The two named kinds of failure that every rasd stage and adapter raises.

A :class:`RetriableError` means "try again later" (a timeout, a 429/5xx, a broker
that is down); the caller backs off and retries. A :class:`PermanentError`
means the input itself cannot be processed; the message goes to the dead-letter
topic with :attr:`PermanentError.reason`. Anything else is a bug and is counted
as such.
"""

from __future__ import annotations


class RasdError(Exception):
    """Base class of every error rasd raises on purpose."""


class RetriableError(RasdError):
    """A transient failure: the same input may succeed later."""


class PermanentError(RasdError):
    """The input cannot be processed; it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ConfigError(RasdError):
    """A configuration file or setting is invalid; the message names file and entry."""
