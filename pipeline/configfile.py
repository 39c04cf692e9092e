"""Reading rasd's YAML list files (feeds, rules) with errors that name file and entry.

Both ``config/feeds.yaml`` and ``config/rules.yaml`` are a mapping with one
top-level list. This module reads such a file and turns every failure (missing
file, YAML syntax, wrong shape, a pydantic validation error of one entry) into
a :class:`~pipeline.errors.ConfigError` whose message starts with the file path
and, for an entry, its index and identifying value, so an operator can find the
line to fix without a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError, PermanentError

__all__ = ["entry_error", "format_validation_error", "load_entries", "read_yaml_list"]

M = TypeVar("M", bound=BaseModel)


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


def load_entries(
    path: str | Path,
    key: str,
    model: type[M],
    *,
    label: str,
    identity: Callable[[M], str],
    duplicate: str,
) -> list[M]:
    """Validate every entry of list ``key`` as ``model``, in order.

    An entry is named in errors by its ``label`` field; two entries with the
    same ``identity`` are an error whose message is ``duplicate`` with
    ``{first}`` set to the first one's index.
    """
    entries = read_yaml_list(path, key)
    found: list[M] = []
    first_index: dict[str, int] = {}
    what = key.removesuffix("s")
    for i, entry in enumerate(entries):
        named = (
            f"{label}={entry.get(label)!r}" if isinstance(entry, dict) and label in entry else ""
        )
        if not isinstance(entry, dict):
            raise entry_error(path, key, i, named, f"each {what} must be a mapping")
        try:
            value = model.model_validate(entry)
            ident = identity(value)
        except (ValidationError, PermanentError) as exc:
            msg = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise entry_error(path, key, i, named, msg) from exc
        if ident in first_index:
            raise entry_error(path, key, i, named, duplicate.format(first=first_index[ident]))
        first_index[ident] = i
        found.append(value)
    return found
