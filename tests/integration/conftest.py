"""Fixtures for the integration tier: a throw-away articles index from the real template."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.elastic import load_template
from pipeline.settings import Settings


@pytest.fixture
def template_name(unique: str) -> str:
    return f"test-{unique}-articles"


@pytest.fixture
def alias(unique: str) -> str:
    return f"test-{unique}-articles"


@pytest.fixture
def articles_index(
    es: Any, settings: Settings, unique: str, template_name: str, alias: str
) -> Iterator[str]:
    """The shipped template, renamed to a test namespace, and one monthly index from it."""
    # load_template fills in the clitic filter's word lists, as `rasd index create` does.
    template = load_template(settings.index_template_file, f"{alias}-*", alias)
    es.indices.put_index_template(name=template_name, **template)
    index = f"{alias}-2026.11"
    es.indices.create(index=index)
    yield index
    es.indices.delete(index=index, ignore_unavailable=True)
    es.indices.delete_index_template(name=template_name)
