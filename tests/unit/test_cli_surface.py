"""The command line: defaults in help, --version, and choices that help and completion list."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rasd.cli import app
from rasd.cli.run import WORKER_STAGES

WIDE = {"COLUMNS": "200"}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=WIDE)


def all_commands() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        found.append((prefix, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{prefix} {name}".strip(), sub)

    walk("", typer.main.get_command(app))
    return found


def test_stack_up_help_shows_the_default_ports() -> None:
    result = invoke("stack", "up", "--help")
    assert result.exit_code == 0
    assert "9092" in result.output and "9200" in result.output
    assert "auto|javac|ecj" in result.output


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=lambda x: str(x))
def test_no_help_text_is_lost_to_markup(name: str, command: Any) -> None:
    """Rich reads ``[...]`` as markup and drops it: defaults go in show_default instead."""
    for param in command.params:
        text = getattr(param, "help", None) or ""
        assert "[" not in text, (name, param.name, text)


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=lambda x: str(x))
def test_every_default_and_env_var_appears_in_help(name: str, command: Any) -> None:
    result = invoke(*name.split(), "--help")
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.replace("│", " ").split())
    for param in command.params:
        if isinstance(param.show_default, str):
            assert param.show_default in shown, (name, param.name)
        if param.envvar and getattr(param, "show_envvar", False):
            assert param.envvar in shown, (name, param.name)


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"rasd {version('rasd')}"


def test_worker_stage_is_a_choice_listed_in_help() -> None:
    result = invoke("worker", "--help")
    assert "|".join(WORKER_STAGES) in result.output.replace("\n", "").replace(" ", "")
    wrong = invoke("worker", "extrakt")
    assert wrong.exit_code == 2
    assert "extrakt" in wrong.output and "cluster" in wrong.output


def test_worker_stages_are_the_registry() -> None:
    from rasd import stages

    assert ("poll", *stages.names(), "deliver") == WORKER_STAGES


def test_a_former_stage_name_is_still_a_choice() -> None:
    from rasd.cli.run import FORMER_NAMES

    assert FORMER_NAMES == {"dedupe": "sign"}
    assert "dedupe" not in WORKER_STAGES
    result = invoke("worker", "--help")
    assert "dedupe: the former name of sign" in " ".join(result.output.replace("│", " ").split())


def test_destination_only_with_deliver() -> None:
    result = invoke("worker", "extract", "--destination", "hook")
    assert result.exit_code == 2
    assert "only the deliver stage takes --destination" in result.output


def test_plugin_compiler_is_a_choice() -> None:
    result = invoke("stack", "up", "--plugin-compiler", "gcc")
    assert result.exit_code == 2
    assert "gcc" in result.output and "javac" in result.output
