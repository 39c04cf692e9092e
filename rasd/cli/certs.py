"""``rasd certs``: a deployment's CA and server certificates (the compose ``certs`` service)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connectors.stack.certs import make_tree

from .common import console

app = typer.Typer(help="TLS certificates of a deployment.", no_args_is_help=True)


@app.command("make")
def certs_make(
    directory: Annotated[
        Path, typer.Argument(help="Where to write ca/ and one directory per service.")
    ],
    service: Annotated[
        list[str],
        typer.Option("--service", "-s", help="A host name to certify (repeat for each)."),
    ],
) -> None:
    """Make the CA and a certificate per service, keeping what exists (idempotent)."""
    written = make_tree(directory, tuple(service))
    console.print(
        f"wrote {len(written)} file(s) under {directory}" if written else "certificates exist"
    )
