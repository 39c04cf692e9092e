"""The production deployment files, checked without a Docker engine.

``docker-compose.yml``, ``Dockerfile``, ``.dockerignore``, ``.env.example``,
the setup scripts in ``docker/`` and ``docs/deploy.md`` cannot be run here, so
these tests check what can be checked statically: the files parse, every
``rasd ...`` command they run is a real command of the CLI (a renamed command
fails here), every ``${VAR}`` is documented, the image versions agree with each
other, with the Python client and with ``rasd stack``, no secret is written
in them, and ``docs/deploy.md`` names every service where it lists them.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from connectors.stack.versions import ES_VERSION, KAFKA_VERSION
from pipeline.settings import Settings
from rasd.cli import app
from rasd.stages import names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

ES_IMAGE = "docker.elastic.co/elasticsearch/elasticsearch"
KIBANA_IMAGE = "docker.elastic.co/kibana/kibana"
#: Environment keys whose values are secrets.
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|ENCRYPTIONKEY|API_?KEY", re.IGNORECASE)
#: ``$$`` (an escaped dollar), ``${NAME...}`` or ``$NAME``, as compose reads them.
INTERPOLATION = re.compile(
    r"\$(?:\$|\{(?P<braced>[A-Za-z_]\w*)(?P<rest>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))"
)


# --- helpers ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    svc = compose()["services"]
    assert isinstance(svc, dict) and svc
    return svc


def strings(node: Any) -> Iterator[str]:
    """Every string (keys included) in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def variables(text: str) -> Iterator[tuple[str, str]]:
    """(name, modifier) of each interpolated variable; ``$$`` escapes are skipped."""
    for m in INTERPOLATION.finditer(text):
        name = m.group("braced") or m.group("bare")
        if name:
            yield name, m.group("rest") or ""


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=value: {line!r}"
        assert key not in values, f".env.example lists {key} twice"
        values[key] = value
    return values


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def dockerfile_entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile has no exec-form ENTRYPOINT"
    return list(yaml.safe_load(match.group(1)))


def rasd_services() -> dict[str, dict[str, Any]]:
    """The services that run the image built from ./Dockerfile (not the Elasticsearch
    image, which is built from docker/elasticsearch/Dockerfile)."""
    found = {
        name: s
        for name, s in services().items()
        if s.get("build") is not None
        and (
            isinstance(s["build"], str)
            or "dockerfile" not in s["build"]
            or s["build"]["dockerfile"] == "Dockerfile"
        )
    }
    assert found, "no service is built from the Dockerfile"
    return found


def as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def rasd_invocations(service: dict[str, Any]) -> list[list[str]]:
    """The rasd argument lists a rasd-image service runs (one per ``rasd`` call)."""
    entrypoint = as_argv(service["entrypoint"]) if "entrypoint" in service else None
    command = as_argv(service.get("command"))
    if entrypoint is None:
        assert dockerfile_entrypoint() == ["rasd"]
        return [command]
    if entrypoint == ["rasd"]:
        return [command]
    argv = entrypoint + command
    assert argv[:2] in (["/bin/sh", "-c"], ["sh", "-c"]), f"unexpected entrypoint {argv}"
    return shell_rasd_calls(" ".join(argv[2:]))


def shell_rasd_calls(script: str) -> list[list[str]]:
    """``rasd ...`` calls in a simple shell line (``&&``, ``||`` and ``;`` lists)."""
    calls = []
    for part in re.split(r"&&|\|\||;|\n", script):
        words = shlex.split(part)
        if words and words[0] == "rasd":
            calls.append(words[1:])
    return calls


def subcommands(cmd: Any) -> dict[str, Any] | None:
    """The sub-commands of a command group, or None for a leaf command."""
    found = getattr(cmd, "commands", None)
    return found if isinstance(found, dict) else None


def resolve(args: list[str]) -> tuple[list[str], Any, list[str]]:
    """Walk the command groups: (command path, the leaf command, its own arguments)."""
    cmd = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while (subs := subcommands(cmd)) is not None and rest and not rest[0].startswith("-"):
        assert rest[0] in subs, f"`rasd {' '.join(args)}`: no command {rest[0]!r}"
        cmd = subs[rest[0]]
        path.append(rest.pop(0))
    return path, cmd, rest


def assert_real_command(args: list[str], where: str) -> None:
    path, cmd, rest = resolve(args)
    assert subcommands(cmd) is None, f"{where}: `rasd {' '.join(args)}` is a group"
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"{where}: `rasd {' '.join(args)} --help`:\n{result.output}"
    if path == ["worker"]:
        assert rest and rest[0] in (*names(), "poll", "deliver"), (
            f"{where}: unknown stage in {args}"
        )


#: ``name:tag`` with an optional digest slot, ``${X_IMAGE_DIGEST:+@}${X_IMAGE_DIGEST:-}``.
PINNED_IMAGE = re.compile(
    r"^(?P<name>[\w./-]+):(?P<tag>[\w.-]+)"
    r"(?P<slot>\$\{(?P<var>\w+_IMAGE_DIGEST):\+@\}\$\{(?P=var):-\})?$"
)


def image_tag(image: str) -> tuple[str, str]:
    m = PINNED_IMAGE.match(image)
    assert m, f"image {image!r} needs a fixed tag (and at most a digest slot)"
    return m.group("name"), m.group("tag")


# --- docker-compose.yml ------------------------------------------------------------------


def test_compose_parses_with_the_expected_services() -> None:
    names = set(services())
    expected = {
        "kafka",
        "elasticsearch",
        "kibana",
        "setup",
        "poller",
        "extract",
        "sign",
        "enrich",
        "index",
        "alert",
        "deliver",
    }
    assert expected <= names, f"missing services: {sorted(expected - names)}"
    assert set(compose().get("volumes") or {}) >= {"kafka-data", "es-data"}


@pytest.mark.parametrize("name", sorted(services()))
def test_every_service_has_an_image_or_a_build(name: str) -> None:
    service = services()[name]
    assert service.get("image") or service.get("build"), f"{name}: neither image nor build"


def test_rasd_services_build_from_the_dockerfile() -> None:
    for name, service in rasd_services().items():
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert (ROOT / context / dockerfile).resolve() == DOCKERFILE, name


@pytest.mark.parametrize("name", sorted(rasd_services()))
def test_every_rasd_command_in_compose_is_a_real_cli_command(name: str) -> None:
    calls = rasd_invocations(rasd_services()[name])
    assert calls and all(calls), f"{name}: runs no rasd command"
    for args in calls:
        assert_real_command(args, f"service {name}")


def test_every_stage_runs_in_its_own_service() -> None:
    ran = {tuple(args) for s in rasd_services().values() for args in rasd_invocations(s)}
    for stage in (*names(), "poll"):
        assert ("worker", stage) in ran, f"no service runs `rasd worker {stage}`"


def test_setup_creates_topics_and_index_and_workers_wait_for_it() -> None:
    svc = services()
    calls = rasd_invocations(svc["setup"])
    assert ["topics", "create"] in calls and ["index", "create"] in calls
    for dep in ("kafka", "elasticsearch"):
        assert svc["setup"]["depends_on"][dep]["condition"] == "service_healthy"
        assert svc[dep].get("healthcheck", {}).get("test"), f"{dep} has no healthcheck"
    assert svc["setup"].get("restart", "no") == "no"
    for name, service in rasd_services().items():
        if resolve(rasd_invocations(service)[0])[0] == ["worker"]:
            assert service["depends_on"]["setup"]["condition"] == (
                "service_completed_successfully"
            ), name
            assert service.get("restart") == "unless-stopped", name


def test_the_pipeline_settings_are_given_to_every_rasd_service() -> None:
    required = {
        "RASD_KAFKA_BOOTSTRAP",
        "RASD_ES_URL",
        "RASD_ES_USERNAME",
        "RASD_ES_PASSWORD",
        "RASD_NAMESPACE",
        "RASD_CONTACT_URL",
    }
    fields = set(Settings.model_fields)
    for name, service in rasd_services().items():
        env = environment(service)
        assert required <= set(env), f"{name}: missing {sorted(required - set(env))}"
        for key in env:
            if key.startswith("RASD_"):
                # A misspelt variable would be silently ignored by pydantic-settings.
                assert key.removeprefix("RASD_").lower() in fields, f"{name}: unknown {key}"


def test_extract_and_the_poller_scale() -> None:
    svc = services()
    for name in ("extract", "poller"):
        replicas = svc[name].get("deploy", {}).get("replicas")
        assert replicas is not None, f"{name} sets no deploy.replicas"
    # Poller instances share the feeds through a consumer group (docs/polling.md).
    assert rasd_invocations(svc["poller"]) == [["worker", "poll"]]
    for service in svc.values():
        assert "container_name" not in service, "container_name prevents scaling"


def test_depends_on_references_exist() -> None:
    svc = services()
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in svc.items():
        deps = service.get("depends_on") or {}
        entries = {d: {} for d in deps} if isinstance(deps, list) else deps
        for dep, spec in entries.items():
            assert dep in svc, f"{name} depends on unknown service {dep!r}"
            assert dep != name
            condition = (spec or {}).get("condition", "service_started")
            assert condition in conditions, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert svc[dep].get("healthcheck"), f"{dep} has no healthcheck"
            if condition == "service_completed_successfully":
                assert svc[dep].get("restart", "no") == "no", f"{dep} is not one-shot"


def test_every_variable_is_listed_in_env_example() -> None:
    listed = env_example()
    used = {name for s in strings(compose()) for name, _ in variables(s)}
    assert used, "compose reads no variable at all"
    assert not used - set(listed), f"not in .env.example: {sorted(used - set(listed))}"
    assert not set(listed) - used, f"unused in compose: {sorted(set(listed) - used)}"


def test_every_dollar_is_a_valid_interpolation() -> None:
    # A lone `$` (e.g. a regex anchor in a healthcheck) makes compose refuse the
    # file; write `$$` for the container's shell.
    for text in strings(compose()):
        stray = INTERPOLATION.sub("", text)
        assert "$" not in stray, f"invalid interpolation (write $$ for a literal $): {text!r}"


def test_no_plaintext_secret_in_compose() -> None:
    listed = env_example()
    for name, service in services().items():
        for key, value in environment(service).items():
            if not SECRET_KEY.search(key):
                continue
            refs = list(variables(value))
            assert refs and value == f"${{{refs[0][0]}{refs[0][1]}}}", (
                f"{name}: {key} must be exactly one ${{VAR}} from .env, got {value!r}"
            )
            assert not refs[0][1].startswith((":-", "-")), (
                f"{name}: {key} has a default, i.e. a password in the file"
            )
    text = COMPOSE_FILE.read_text(encoding="utf-8").lower()
    for word in ("changeme", "change-me"):
        assert word not in text
    for key, value in listed.items():
        if SECRET_KEY.search(key) and len(value) >= 6:
            assert value.lower() not in text, f"the placeholder of {key} is in compose"


def test_env_example_leaves_every_secret_empty() -> None:
    """No value to copy and deploy with: each secret is empty, so compose refuses it."""
    listed = env_example()
    secrets = {k: v for k, v in listed.items() if SECRET_KEY.search(k)}
    assert {"ELASTIC_PASSWORD", "KIBANA_PASSWORD", "RASD_ES_PASSWORD"} <= set(secrets)
    assert {"KAFKA_ADMIN_PASSWORD", "RASD_KAFKA_PASSWORD"} <= set(secrets)
    secrets["KIBANA_ENCRYPTION_KEY"] = listed["KIBANA_ENCRYPTION_KEY"]
    for key, value in secrets.items():
        assert value == "", f".env.example: {key} must be empty, not {value!r}"


def test_image_versions_agree() -> None:
    svc = services()
    elastic = [
        image_tag(s["image"])
        for s in svc.values()
        if str(s.get("image", "")).startswith((ES_IMAGE + ":", KIBANA_IMAGE + ":"))
    ]
    es_tags = {tag for name, tag in elastic if name == ES_IMAGE}
    kibana_tags = {tag for name, tag in elastic if name == KIBANA_IMAGE}
    # The server itself is built on the official image, with rasd-fold added.
    name, tag = image_tag(svc["elasticsearch"]["image"])
    assert name == "rasd/elasticsearch" and {tag} == es_tags
    assert svc["elasticsearch"]["build"]["args"]["ES_VERSION"] == tag
    dockerfile = (ROOT / svc["elasticsearch"]["build"]["dockerfile"]).read_text()
    assert f"ARG ES_VERSION={tag}" in dockerfile
    assert f"FROM {ES_IMAGE}:${{ES_VERSION}}" in dockerfile
    assert image_tag(svc["kibana"]["image"])[0] == KIBANA_IMAGE
    assert es_tags == kibana_tags and len(es_tags) == 1, f"{es_tags} vs {kibana_tags}"
    (version,) = es_tags
    client = importlib.metadata.version("elasticsearch")
    assert version.split(".")[0] == client.split(".")[0], (
        f"Elasticsearch {version} vs elasticsearch-py {client}: the client refuses another major"
    )
    # Production runs the server that the tests run against (`rasd stack`).
    assert version == ES_VERSION
    name, tag = image_tag(svc["kafka"]["image"])
    assert name == "apache/kafka" and tag == KAFKA_VERSION


def test_kafka_is_a_single_kraft_node_with_a_volume() -> None:
    kafka = services()["kafka"]
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "SASL_SSL://kafka:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert any(v.startswith("kafka-data:") for v in kafka["volumes"])
    for service in rasd_services().values():
        assert environment(service)["RASD_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_elasticsearch_is_secured_and_has_no_rasd_plugin() -> None:
    es = services()["elasticsearch"]
    env = environment(es)
    assert env["xpack.security.enabled"] == "true"
    assert env["discovery.type"] == "single-node"
    assert "-Xmx" in env["ES_JAVA_OPTS"]
    assert any(v.startswith("es-data:") for v in es["volumes"])
    # The full distribution has analysis-common; rasd-analysis would clash with it.
    # Only rasd-fold is installed, by the image's Dockerfile, from its own package.
    for text in strings(compose()):
        assert "rasd-analysis" not in text
    dockerfile = (ROOT / es["build"]["dockerfile"]).read_text()
    assert "org/rasd/fold" in dockerfile and "org/rasd/analysis" not in dockerfile
    assert "elasticsearch-plugin install --batch file:///tmp/rasd-fold.zip" in dockerfile


def test_kibana_uses_kibana_system_set_by_es_setup() -> None:
    svc = services()
    env = environment(svc["kibana"])
    assert env["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert any(str(p).endswith(":5601") for p in svc["kibana"]["ports"])
    setup = svc["kibana"]["depends_on"]["es-setup"]["condition"]
    assert setup == "service_completed_successfully"


def test_mounted_setup_scripts_exist_and_parse() -> None:
    bash = shutil.which("bash")
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                path = ROOT / source
                assert path.exists(), f"{name} mounts missing {source}"
                if path.suffix == ".sh" and bash:
                    subprocess.run([bash, "-n", str(path)], check=True)


# --- Dockerfile and .dockerignore ----------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, args = line.partition(" ")
            out.append((op.upper(), args.strip()))
    return out


def test_dockerfile_builds_a_non_root_rasd_image() -> None:
    steps = dockerfile_instructions()
    froms = [args for op, args in steps if op == "FROM"]
    assert froms and froms[-1].split()[0].startswith("python:3.12.")
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as root"
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs), "does not `pip install .`"
    assert "[test]" not in runs and "[dev]" not in runs, "installs dev dependencies"
    assert dockerfile_entrypoint() == ["rasd"]


def test_dockerfile_points_rasd_at_its_config() -> None:
    steps = dockerfile_instructions()
    env = " ".join(args for op, args in steps if op == "ENV")
    match = re.search(r"RASD_CONFIG_DIR=(\S+)", env)
    assert match, "an installed rasd cannot find config/ next to its package"
    workdir = Path("/")
    copied = {}
    for op, args in steps:
        if op == "WORKDIR":
            workdir = workdir / args
        elif op == "COPY" and not args.startswith("--"):
            *sources, dest = args.split()
            if len(sources) == 1:
                copied[str(workdir / dest)] = sources[0].rstrip("/")
    assert copied.get(match.group(1)) == "config", "RASD_CONFIG_DIR is not the copied config/"


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        # A pattern that matches a directory excludes everything below it.
        rules.append((negate, re.compile(f"{regex}(?:/.*)?")))
    return rules


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path decides."""
    verdict = False
    for negate, regex in ignore_rules():
        if regex.fullmatch(path):
            verdict = not negate
    return verdict


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "rasd/cli/__init__.py",
        "pipeline/settings.py",
        "connectors/stack/java/org/rasd/analysis/RasdAnalysisPlugin.java",
        "config/feeds.yaml",
        "config/rules.yaml",
        "config/elasticsearch/articles-template.json",
        "tests/fixtures/site/feeds.yaml",
        "tests/fixtures/site/sham/feed.xml",
    ],
)
def test_dockerignore_keeps(path: str) -> None:
    assert not ignored(path)


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "rasd/__pycache__/cli.cpython-312.pyc",
        "tests/unit/test_compose.py",
        "tests/e2e/conftest.py",
        ".pytest_cache/v/x",
    ],
)
def test_dockerignore_drops(path: str) -> None:
    assert ignored(path)


def test_dockerfile_copies_exist_and_are_not_ignored() -> None:
    for op, args in dockerfile_instructions():
        if op != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing"
            assert not ignored(source.rstrip("/")), f"COPY {source}: in .dockerignore"


# --- docs/deploy.md -----------------------------------------------------------------------


def test_rasd_commands_in_the_deploy_doc_are_real() -> None:
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL)
    calls = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            words = shlex.split(line) if line and not line.startswith("#") else []
            if "rasd" in words:
                calls.append(words[words.index("rasd") + 1 :])
    assert calls, "docs/deploy.md shows no rasd command"
    for args in calls:
        assert_real_command(args, "docs/deploy.md")


def deploy_doc_section(title: str) -> str:
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert match, f"docs/deploy.md has no section {title!r}"
    return match.group(1)


def test_the_deploy_doc_lists_every_service() -> None:
    rows = [line for line in deploy_doc_section("What runs").splitlines() if line.startswith("|")]
    listed = {name for row in rows[2:] for name in re.findall(r"`([\w-]+)`", row.split("|")[1])}
    assert listed == set(services()), f"What runs: {sorted(listed ^ set(services()))}"


def test_the_config_mount_example_covers_every_rasd_service() -> None:
    section = deploy_doc_section("Feeds, rules and the index template")
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    example = yaml.safe_load(block)
    rasd_image = services()["setup"]["image"]
    # All but `certs`, which makes certificates and reads no configuration.
    expected = {
        name for name, s in services().items() if s.get("image") == rasd_image and name != "certs"
    }
    assert "kibana-setup" in expected and "deliver" in expected
    assert set(example["services"]) == expected
    for service in example["services"].values():
        assert service["volumes"] == ["./config:/app/config:ro"]


def test_the_deploy_doc_does_not_limit_the_poller_to_one() -> None:
    text = " ".join(DEPLOY_DOC.read_text(encoding="utf-8").split())
    assert "RASD_POLLER_REPLICAS" in text
    assert not re.search(r"exactly one `?poller", text, re.IGNORECASE)


# --- watching it ---------------------------------------------------------------------------

PROMETHEUS = ROOT / "docker" / "prometheus"


def long_running_rasd_services() -> dict[str, dict[str, Any]]:
    """The rasd services that keep running (the one-shot setups exit)."""
    return {
        name: s
        for name, s in services().items()
        if str(s.get("image", "")).startswith("${RASD_IMAGE") and s.get("restart") != "no"
    }


def test_every_long_running_rasd_service_has_a_healthcheck_on_its_metrics_port() -> None:
    workers = long_running_rasd_services()
    assert set(workers) >= {"poller", "extract", "sign", "cluster", "enrich", "index", "alert"}
    for name, service in workers.items():
        check = " ".join(service["healthcheck"]["test"])
        assert "http://127.0.0.1:9810/healthz" in check, name
        env = service["environment"]
        assert str(env["RASD_METRICS_PORT"]) == "9810", name
        assert env["RASD_METRICS_ADDRESS"] == "0.0.0.0", name  # reachable by prometheus


def test_prometheus_scrapes_every_worker_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "rasd")
    names = {n for sd in job["dns_sd_configs"] for n in sd["names"]}
    assert names == set(long_running_rasd_services())
    assert {sd["port"] for sd in job["dns_sd_configs"]} == {9810}
    assert config["rule_files"] == ["rules.yml"]
    service = services()["prometheus"]
    assert any(str(v).startswith("./docker/prometheus:") for v in service["volumes"])
    assert service["ports"] == ["${PROMETHEUS_BIND:-127.0.0.1}:${PROMETHEUS_PORT:-9090}:9090"]


def test_the_rules_name_only_metrics_rasd_serves() -> None:
    served = served_metrics()
    text = (PROMETHEUS / "rules.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\b(rasd_[a-z_]+?)(?:_total|_bucket|_count|_sum)?\b", text))
    assert used, "no rasd metric in the rules"
    assert used <= served, used - served


def served_metrics() -> set[str]:
    """Every metric family a rasd process can serve, from the real collectors."""
    import threading
    import time

    from connectors.kafka import PartitionLag
    from connectors.metrics import Stats
    from connectors.telemetry import FeedHealthCollector, LagCollector, Telemetry
    from pipeline.schedule import FeedState

    stats = Stats()
    stats.window_size(0)
    lag = LagCollector("127.0.0.1:1", dict)
    lag._rows, lag._read_at = [PartitionLag("g", "t", 0, 1, 0)], time.monotonic()
    stats.register(lag)
    stats.register(FeedHealthCollector(lambda: [FeedState("u", new_item_times=(1.0,))]))

    class Loop:
        stage, heartbeat, ready = "x", time.monotonic(), threading.Event()

    telemetry = Telemetry(stats, lambda: [Loop()])
    telemetry.start("127.0.0.1", 0)
    telemetry.stop()
    return {m.name for m in stats.registry.collect()}


def test_the_operations_doc_names_only_metrics_rasd_serves() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(rasd_[a-z_]+?)(?:_total|_bucket|_count|_sum)?[`{]", text))
    assert len(named) >= 10, named
    assert named <= served_metrics(), named - served_metrics()


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules.test.yml"),
    ],
    ids=" ".join,
)
def test_promtool_accepts_the_checked_in_files(args: tuple[str, ...]) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: ./scripts/test installs Debian's prometheus package"
    done = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- security ------------------------------------------------------------------------------

#: The Kafka, Elasticsearch and Kibana images' own user, which reads the keys.
SERVER_UID = "1000"


def compose_config_tool() -> str:
    """The compose-spec loader of `docker compose config` (scripts/compose-config)."""
    found = shutil.which("compose-config") or shutil.which(
        "compose-config", path=str(Path(sys.executable).parent)
    )
    assert found, (
        "compose-config is not built: scripts/test builds it (go build -o "
        ".venv-test/bin/compose-config ./scripts/compose-config)"
    )
    return found


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [compose_config_tool(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def required_secrets() -> dict[str, str]:
    """Every variable of .env.example that is empty there, with a value to fill it."""
    import secrets

    values = {}
    for key, value in env_example().items():
        # Empty digests are optional: the version tag alone then.
        if value == "" and not key.endswith("_IMAGE_DIGEST"):
            values[key] = secrets.token_hex(24)
    values["KAFKA_CLUSTER_ID"] = "4L6g3nShT-eMCtK--X86sw"
    values["RASD_CONTACT_URL"] = "https://news.example.net/contact"
    return values


def write_env(path: Path, **changes: str) -> Path:
    lines = []
    for key, value in {**env_example(), **changes}.items():
        lines.append(f"{key}={value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_compose_config_refuses_the_shipped_env_example() -> None:
    done = compose_config(ENV_EXAMPLE)
    assert done.returncode != 0
    for name in required_secrets():
        assert f"required variable {name} is missing a value: set {name} in .env" in done.stderr


def test_compose_config_passes_once_every_placeholder_is_filled(tmp_path: Path) -> None:
    filled = required_secrets()
    done = compose_config(write_env(tmp_path / ".env", **filled))
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    # One placeholder left is enough to stop it, and the message names it.
    for name in filled:
        done = compose_config(write_env(tmp_path / f"{name}.env", **{**filled, name: ""}))
        assert done.returncode != 0, name
        assert f"required variable {name} is missing a value" in done.stderr


def run_secret_checks(value: str) -> subprocess.CompletedProcess[str]:
    script = f"source {ROOT / 'docker' / 'secret-checks.sh'}; check_secret SOME_PASSWORD"
    return subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin", "SOME_PASSWORD": value},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "is empty"),
        ("change-me-elastic", "placeholder"),
        ("change-me-to-a-random-string-of-32-characters-or-more", "placeholder"),
        ("Changeme123456789", "placeholder"),
        ("a1b2c3d4e5f6a7b", "has 15 characters; at least 16"),
    ],
)
def test_setup_scripts_refuse_placeholders_and_short_passwords(value: str, why: str) -> None:
    done = run_secret_checks(value)
    assert done.returncode == 1 and why in done.stderr, done.stderr
    assert value == "" or value not in done.stderr  # the message never echoes it


def test_setup_scripts_accept_a_random_password() -> None:
    assert run_secret_checks("3f9a1c0e7b2d4a6f8e0c1b3d").returncode == 0


@pytest.mark.parametrize("script", ["es-setup.sh", "kafka-setup.sh"])
def test_setup_scripts_check_before_they_connect(script: str) -> None:
    """With one placeholder password, es-setup and kafka-setup stop before any request."""
    env = {
        "PATH": "/usr/bin:/bin",
        "ELASTIC_PASSWORD": "3f9a1c0e7b2d4a6f8e0c1b3d",
        "KIBANA_PASSWORD": "change-me-kibana",
        "RASD_ES_USERNAME": "rasd",
        "RASD_ES_PASSWORD": "3f9a1c0e7b2d4a6f8e0c1b3e",
        "KAFKA_ADMIN_PASSWORD": "change-me-admin-password",
        "RASD_KAFKA_USERNAME": "rasd",
        "RASD_KAFKA_PASSWORD": "3f9a1c0e7b2d4a6f8e0c1b3f",
        # Nothing listens there: reaching it would hang or fail differently.
        "ES_URL": "https://127.0.0.1:9",
        "KAFKA_BOOTSTRAP": "127.0.0.1:9",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "docker" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "is a placeholder" in done.stderr, done.stderr
    assert "waiting for" not in done.stdout and "SCRAM" not in done.stdout


def test_kafka_listens_on_sasl_ssl_with_scram_and_acls() -> None:
    svc = services()
    env = environment(svc["kafka"])
    assert env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] == (
        "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    )
    assert env["KAFKA_LISTENERS"] == "SASL_SSL://:9092,CONTROLLER://localhost:9093"
    assert "SCRAM-SHA-512" in env["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    assert env["KAFKA_SSL_KEYSTORE_TYPE"] == "PEM"
    assert env["KAFKA_SSL_KEYSTORE_LOCATION"] == "/certs/kafka/kafka.pem"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    assert not any(p for p in svc["kafka"].get("ports") or []), "Kafka is published"
    for name, service in rasd_services().items():
        env = environment(service)
        assert env["RASD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["RASD_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["RASD_KAFKA_CA_FILE"] == "/certs/ca/ca.crt", name
        assert env["RASD_KAFKA_USERNAME"] != "admin"
    setup = svc["kafka-setup"]
    assert setup["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert svc["setup"]["depends_on"]["kafka-setup"]["condition"] == (
        "service_completed_successfully"
    )
    script = (ROOT / "docker" / "kafka-setup.sh").read_text(encoding="utf-8")
    assert "--add-config-file" in script and "--resource-pattern-type prefixed" in script


def test_elasticsearch_has_tls_on_http_and_transport() -> None:
    svc = services()
    env = environment(svc["elasticsearch"])
    for layer in ("http", "transport"):
        assert env[f"xpack.security.{layer}.ssl.enabled"] == "true"
        assert env[f"xpack.security.{layer}.ssl.key"].startswith("certs/")
        assert env[f"xpack.security.{layer}.ssl.certificate"].startswith("certs/")
    for name, service in rasd_services().items():
        env = environment(service)
        assert env["RASD_ES_URL"].startswith("https://"), name
        assert env["RASD_ES_CA_CERTS"] == "/certs/ca/ca.crt", name
    assert environment(svc["es-setup"])["ES_URL"].startswith("https://")
    assert "--cacert" in (ROOT / "docker" / "es-setup.sh").read_text(encoding="utf-8")


def test_certificates_come_from_a_one_shot_certs_service() -> None:
    svc = services()
    certs = svc["certs"]
    assert rasd_invocations(certs)[0][:2] == ["certs", "make"]
    assert certs.get("restart") == "no"
    assert certs["user"].split(":")[0] == SERVER_UID
    assert "certs:/certs" in certs["volumes"]
    made = set(rasd_invocations(certs)[0][4::2])
    assert made == {"kafka", "elasticsearch", "kibana"}
    for name in ("kafka", "elasticsearch", "kibana"):
        mounts = [str(v) for v in svc[name]["volumes"]]
        assert any(v.startswith("certs:") and v.endswith(":ro") for v in mounts), name
    for name in ("kafka", "elasticsearch"):
        assert svc[name]["depends_on"]["certs"]["condition"] == "service_completed_successfully"
    for name, service in rasd_services().items():
        assert "certs:/certs:ro" in service["volumes"], name
    # The volume starts as the image's /certs, owned by the servers' user.
    assert f"install -d -o {SERVER_UID} -g 0 -m 0755 /certs" in DOCKERFILE.read_text()


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell line: words, split at ; && || | ( ) and newlines."""
    lexer = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|()"):
            out.append([])
        elif token and set(token) <= set("<>"):
            continue
        else:
            out[-1].append(token)
    return [words for words in out if words]


def secret_refs(text: str) -> list[str]:
    return [m for m in re.findall(r"\$\$?\{?(\w+)", text) if SECRET_KEY.search(m)]


def test_no_password_on_any_command_line() -> None:
    """A secret reaches a program through the environment or a file, never as an
    argument (which `ps` shows): in compose only printf, a shell builtin, may take one."""
    for name, service in services().items():
        scripts = [*as_argv(service.get("entrypoint")), *as_argv(service.get("command"))]
        test = (service.get("healthcheck") or {}).get("test") or []
        scripts += [str(t) for t in test[1:]] if test and test[0] == "CMD-SHELL" else test
        for script in scripts:
            for words in shell_commands(str(script)):
                if secret_refs(" ".join(words)):
                    assert words[0] == "printf", f"{name}: a secret on {words[0]}'s command line"
    for script in ("es-setup.sh", "kafka-setup.sh"):
        text = (ROOT / "docker" / script).read_text(encoding="utf-8")
        for line in text.splitlines():
            code = line.split("#", 1)[0]
            if secret_refs(code) and not re.search(
                r"\b(printf|check_secret|quote)\b|^\s*:|\$\{#", code
            ):
                assert re.match(r"\s*(for |\S+=|\[\[|es (PUT|POST)|\S+\\$)", code), (
                    f"{script}: {line.strip()}"
                )
        assert '-u "elastic:' not in text and '--data-binary "' not in text


def test_every_rasd_service_is_hardened() -> None:
    rasd_image = services()["setup"]["image"]
    hardened = {n: s for n, s in services().items() if s.get("image") == rasd_image}
    assert {"certs", "kibana-setup", "setup", "poller", "deliver"} <= set(hardened)
    for name, service in hardened.items():
        assert str(service["user"]).split(":")[0] not in ("0", "root"), name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service.get("mem_limit") and service.get("cpus"), name
        assert "/tmp" in service.get("tmpfs", []), name


def test_the_servers_drop_capabilities_and_have_limits() -> None:
    for name in ("kafka", "elasticsearch", "kibana", "es-setup", "kafka-setup"):
        service = services()[name]
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service.get("mem_limit") and service.get("cpus"), name


def test_images_are_pinned_by_version_with_a_digest_slot() -> None:
    for name, service in services().items():
        image = str(service["image"])
        if image == services()["setup"]["image"]:
            assert re.fullmatch(r"\$\{RASD_IMAGE:-rasd:\d+\.\d+\.\d+\}", image), image
            continue
        m = PINNED_IMAGE.match(image)
        assert m, f"{name}: {image}"
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", m.group("tag")), f"{name}: {image}"
        if service.get("build") is None:
            assert m.group("slot"), f"{name}: {image} has no digest slot"
    froms = [
        line.split()[1]
        for path in (DOCKERFILE, ROOT / "docker" / "elasticsearch" / "Dockerfile")
        for line in path.read_text(encoding="utf-8").splitlines()
        if (line.startswith("FROM ") and " AS elasticsearch" not in line) or "AS build" in line
    ]
    assert froms
    for image in froms:
        if image == "elasticsearch":
            continue
        assert re.search(r":\d+\.\d+\.\d+[\w.-]*\$\{\w+_IMAGE_DIGEST:\+@\}", image), image
    deploy = DEPLOY_DOC.read_text(encoding="utf-8")
    assert "docker buildx imagetools inspect" in deploy


def test_kibana_serves_https_on_loopback_by_default() -> None:
    kibana = services()["kibana"]
    env = environment(kibana)
    assert env["SERVER_SSL_ENABLED"] == "true"
    assert env["SERVER_SSL_CERTIFICATE"].endswith("/kibana/kibana.crt")
    assert env["ELASTICSEARCH_HOSTS"] == '["https://elasticsearch:9200"]'
    assert env["ELASTICSEARCH_SSL_CERTIFICATEAUTHORITIES"].endswith("/ca/ca.crt")
    (port,) = kibana["ports"]
    assert str(port).startswith("${KIBANA_BIND:-127.0.0.1}:")
    assert env_example()["KIBANA_BIND"] == "127.0.0.1"
    assert env_example()["KIBANA_PUBLIC_URL"].startswith("https://")
    assert environment(services()["kibana-setup"])["RASD_KIBANA_URL"].startswith("https://")
