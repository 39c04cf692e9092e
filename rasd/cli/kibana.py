"""``rasd kibana``: Kibana's saved objects (data views, searches, dashboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connectors.kibana import KibanaClient, for_namespace, ndjson_path
from pipeline.errors import RasdError

from .common import Namespace, console, fail, settings_from

app = typer.Typer(help="Kibana saved objects (data views, searches, dashboard).")


@app.command("setup")
def kibana_setup(
    url: Annotated[
        str,
        typer.Option(envvar="RASD_KIBANA_URL", show_envvar=True, help="Kibana's base URL."),
    ] = "http://127.0.0.1:5601",
    username: Annotated[
        str | None,
        typer.Option(envvar="RASD_KIBANA_USERNAME", show_envvar=True, help="Kibana user."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="RASD_KIBANA_PASSWORD",
            show_envvar=True,
            help="Its password.",
            show_default=False,
        ),
    ] = None,
    ca_certs: Annotated[
        Path | None,
        typer.Option(
            envvar="RASD_KIBANA_CA_CERTS",
            show_envvar=True,
            help="CA bundle (PEM) that signed Kibana's certificate (https).",
        ),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to keep retrying while Kibana starts.")
    ] = 300.0,
    namespace: Namespace = None,
) -> None:
    """Import config/kibana/rasd.ndjson into Kibana (overwriting), waiting until it is up."""
    settings = settings_from(namespace=namespace)
    path = ndjson_path(settings.config_dir)
    ndjson = for_namespace(path.read_text(encoding="utf-8"), settings.namespace)
    try:
        with KibanaClient(url, username, password, ca_certs=ca_certs) as kibana:
            answer = kibana.import_ndjson(ndjson, wait=wait, progress=console.print)
    except RasdError as exc:
        fail(exc)
    console.print(
        f"kibana: imported {answer.get('successCount', 0)} objects from {path} "
        f"for namespace {settings.namespace}"
    )
