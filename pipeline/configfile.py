"""Reading rasd's YAML list files (feeds, rules) with errors that name file and entry.

Both ``config/feeds.yaml`` and ``config/rules.yaml`` are a mapping with one
top-level list. This module reads such a file and turns every failure (missing
file, YAML syntax, wrong shape, a pydantic validation error of one entry) into
a :class:`~pipeline.errors.ConfigError` whose message starts with the file path
and, for an entry, its index and identifying value, so an operator can find the
line to fix without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.errors import ConfigError

__all__ = ["entry_error", "format_validation_error", "read_yaml_list"]


def read_yaml_list(path: str | Path, key: str) -> list[Any]:
    """Return the list under the top-level ``key`` of the YAML file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict) or key not in data:
        raise ConfigError(f"{p}: expected a mapping with a top-level '{key}:' list")
    items = data[key]
    if not isinstance(items, list):
        raise ConfigError(f"{p}: '{key}' must be a list, got {type(items).__name__}")
    return items


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field: message``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "entry"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def entry_error(path: str | Path, key: str, index: int, label: str, message: str) -> ConfigError:
    """A :class:`ConfigError` for entry ``index`` of list ``key`` in file ``path``."""
    where = f"{key}[{index}]" + (f" ({label})" if label else "")
    return ConfigError(f"{path}: {where}: {message}")
