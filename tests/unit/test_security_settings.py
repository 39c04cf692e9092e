"""The connection settings: TLS and SASL options for every client, secrets from files,
and secrets that never show in ``--help``, in errors or in the logs."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from connectors.elastic import new_elasticsearch
from connectors.kafka import client_options
from pipeline.errors import ConfigError
from pipeline.redact import RedactingFilter, redact
from pipeline.settings import ElasticAccess, KafkaAccess, Settings
from rasd.cli import app
from rasd.cli.common import setup_logging

SECRET = "s3cret-value-that-must-never-show"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No connection setting of the caller's shell, and no secured local stack."""
    import os

    for key in list(os.environ):
        if key.startswith(("RASD_KAFKA", "RASD_ES")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RASD_STATE_DIR", str(tmp_path / "state"))


def test_plaintext_by_default() -> None:
    options = Settings().kafka.options()
    assert options["security_protocol"] == "PLAINTEXT"
    assert "sasl_mechanism" not in options and "ssl_cafile" not in options


def test_sasl_ssl_options_reach_the_kafka_clients(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RASD_KAFKA_BOOTSTRAP", "kafka:9093")
    monkeypatch.setenv("RASD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RASD_KAFKA_USERNAME", "rasd")
    monkeypatch.setenv("RASD_KAFKA_PASSWORD", SECRET)
    monkeypatch.setenv("RASD_KAFKA_CA_FILE", str(tmp_path / "ca.pem"))
    options = client_options(Settings().kafka)
    assert options == {
        "bootstrap_servers": "kafka:9093",
        "security_protocol": "SASL_SSL",
        "bootstrap_timeout_ms": 30000,
        "ssl_check_hostname": True,
        "ssl_cafile": str(tmp_path / "ca.pem"),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "rasd",
        "sasl_plain_password": SECRET,
    }
    # A bare address string is PLAINTEXT, with no credential.
    assert client_options("kafka:9092")["security_protocol"] == "PLAINTEXT"


def test_sasl_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RASD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValidationError, match="needs RASD_KAFKA_USERNAME"):
        Settings()


def test_elasticsearch_verifies_certificates_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RASD_ES_URL", "https://es:9200")
    monkeypatch.setenv("RASD_ES_CA_CERTS", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("RASD_ES_API_KEY", SECRET)
    options = Settings().elasticsearch.options()
    assert options == {
        "hosts": "https://es:9200",
        "api_key": SECRET,
        "verify_certs": True,
        "ca_certs": str(tmp_path / "ca.pem"),
    }
    client = new_elasticsearch(Settings().elasticsearch)
    try:
        assert client.transport.node_pool.get().config.verify_certs is True
    finally:
        client.close()


def test_basic_auth_when_no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RASD_ES_URL", "https://es:9200")
    monkeypatch.setenv("RASD_ES_USERNAME", "rasd")
    monkeypatch.setenv("RASD_ES_PASSWORD", SECRET)
    assert Settings().elasticsearch.options()["basic_auth"] == ("rasd", SECRET)


def test_secrets_come_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KAFKA_PASSWORD", "ES_PASSWORD", "ES_API_KEY"):
        path = tmp_path / name
        path.write_text(f"{SECRET}-{name}\n")  # the newline of `echo` is not part of it
        monkeypatch.setenv(f"RASD_{name}_FILE", str(path))
    monkeypatch.setenv("RASD_ES_USERNAME", "rasd")
    settings = Settings()
    assert settings.kafka_password == SecretStr(f"{SECRET}-KAFKA_PASSWORD")
    assert settings.es_password == SecretStr(f"{SECRET}-ES_PASSWORD")
    assert settings.es_api_key == SecretStr(f"{SECRET}-ES_API_KEY")


def test_a_secret_file_that_cannot_be_read_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RASD_ES_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"RASD_ES_PASSWORD_FILE: cannot read .*missing"):
        Settings()


def test_a_secret_and_its_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pw").write_text(SECRET)
    monkeypatch.setenv("RASD_KAFKA_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("RASD_KAFKA_PASSWORD", SECRET)
    with pytest.raises(ConfigError, match="not both"):
        Settings()


def test_reprs_hide_secrets() -> None:
    kafka = KafkaAccess("k:1", "SASL_SSL", "PLAIN", "rasd", SecretStr(SECRET))
    es = ElasticAccess("https://e:1", "rasd", SecretStr(SECRET), SecretStr(SECRET))
    settings = Settings(kafka_password=SECRET, es_password=SECRET, es_username="rasd")
    for text in (repr(kafka), str(kafka), repr(es), str(es), repr(settings), str(settings)):
        assert SECRET not in text


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    click_group = typer.main.get_command(app) if not path else group
    found = [path]
    for name, sub in getattr(click_group, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_help_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RASD_ES_PASSWORD", "RASD_KAFKA_PASSWORD", "RASD_ES_API_KEY"):
        monkeypatch.setenv(name, SECRET)
    monkeypatch.setenv("RASD_KAFKA_USERNAME", "rasd")
    monkeypatch.setenv("RASD_ES_USERNAME", "rasd")
    runner = CliRunner()
    commands = _commands(app)
    assert len(commands) > 20  # every group and command, not just the top
    for command in commands:
        done = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert done.exit_code == 0, (command, done.output)
        assert SECRET not in done.output, command


def test_errors_never_show_a_secret() -> None:
    """A URL with the password in it (user:password@host) fails to connect: the one-line
    error names the URL with the password masked."""
    env = {
        "PATH": "/usr/bin:/bin",
        "RASD_ES_URL": f"http://rasd:{SECRET}@127.0.0.1:9",
        "RASD_ES_USERNAME": "rasd",
        "RASD_ES_PASSWORD": SECRET,
        "RASD_STATE_DIR": "/nonexistent/rasd-state",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rasd", "index", "create"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: Elasticsearch at http://rasd:***@127.0.0.1:9")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_logs_never_show_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(kafka_password=SECRET)
    root = logging.getLogger()
    before = list(root.handlers)
    root.handlers.clear()
    try:
        setup_logging(settings)
        # As a library might log it: the secret in the arguments, and in an exception.
        logging.getLogger("kafka.conn").error("SASL login with password %s failed", SECRET)
        try:
            raise RuntimeError(f"refused {SECRET}")
        except RuntimeError:
            logging.getLogger("connectors.kafka").exception("connect failed")
        logging.getLogger("rasd").warning("still here")
    finally:
        root.handlers[:] = before
    err = capsys.readouterr().err
    assert "still here" in err and "SASL login with password ***" in err and "refused ***" in err
    assert SECRET not in err


def test_redaction_masks_the_longest_secret_whole() -> None:
    assert redact("a abc b", ["ab", "abc"]) == "a *** b"
    record = logging.LogRecord("x", logging.INFO, "f", 1, "pw=%s", ("abc",), None)
    assert RedactingFilter(["abc"]).filter(record) and record.getMessage() == "pw=***"
