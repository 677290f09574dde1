"""`wagate secrets`: the key that seals stored secrets (see wagate.secret_box and SECURITY.md),
and `prepare_database`, which every command that opens the database runs first."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from wagate import secret_box
from wagate.config import Settings
from wagate.secret_box import SecretBox, SecretKeyError
from wagate.store import secret_rows
from wagate.store.db import make_sync_engine, migrate

secrets_app = typer.Typer(
    help="The key that encrypts channel tokens, app secrets and callback secrets at rest.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def owner_only_folder(path: Path) -> None:
    """The data folder readable by its owner only (0700), made so if it does not exist."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif path.stat().st_mode & 0o077:
        path.chmod(0o700)


def prepare_database(settings: Settings) -> str:
    """Before anything opens the database: the data folder owner-only, the secret key loaded
    (or made), the schema migrated (sealing secrets left in clear) and the key checked against
    what the database was sealed with. Exits with a clear message when the key is wrong."""
    try:
        owner_only_folder(settings.data_dir)
        box = secret_box.configure(settings)
        url = settings.resolved_database_url
        migrate(url, secret_box=box)
        engine = make_sync_engine(url, synchronous=settings.sqlite_synchronous)
        try:
            secret_rows.check_key(engine, box)
        finally:
            engine.dispose()
    except SecretKeyError as exc:
        _fail(str(exc))
    return url


@secrets_app.command("new-key")
def new_key() -> None:
    """Print a fresh key (for WAGATE_SECRET_KEY); nothing is changed."""
    sys.stdout.write(secret_box.new_key() + "\n")


@secrets_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Where the key comes from and how many stored secrets are sealed, in clear or unreadable."""
    settings = Settings()
    url = prepare_database(settings)
    box = secret_box.load(settings, create=False)
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            counts = secret_rows.count(conn, box)
    finally:
        engine.dispose()
    data = {
        "key_source": box.source,
        "key_id": box.primary_fingerprint,
        "keys": len(box.keys),
        "sealed": counts.sealed,
        "plaintext": counts.plaintext,
        "unreadable": counts.unreadable,
    }
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    for name, value in data.items():
        console.print(f"{name}: {value}")


@secrets_app.command("rotate-key")
def rotate_key() -> None:
    """Seal every stored secret with a new key.

    With the data folder's key file: makes a new key, keeps the old one in the file (so nothing
    is ever unreadable, even if this stops half way), reseals everything in one transaction,
    then drops the old key. With WAGATE_SECRET_KEY: set it to NEW,OLD first (`wagate secrets
    new-key` makes NEW); this reseals everything with NEW; then set it to NEW alone. Restart
    the servers afterwards: they hold the key they started with."""
    settings = Settings()
    url = prepare_database(settings)
    from_env = bool(os.environ.get(secret_box.ENV, "").strip())
    try:
        current = secret_box.load(settings, create=False)
        if from_env:
            box = current
            if len(box.keys) < 2:
                err.print(
                    f"[yellow]note:[/yellow] {secret_box.ENV} holds one key; every secret is "
                    "resealed with it (to change keys, set it to NEW,OLD first)"
                )
        else:
            path = secret_box.key_file(settings.data_dir)
            fresh = secret_box.new_key()
            secret_box.write_key_file(path, [fresh, *current.keys])
            box = SecretBox([fresh, *current.keys], source=str(path))
        engine = make_sync_engine(url)
        try:
            with engine.begin() as conn:
                written = secret_rows.reseal_all(conn, box)
        finally:
            engine.dispose()
        if not from_env:
            secret_box.write_key_file(path, [fresh])
    except SecretKeyError as exc:
        _fail(str(exc))
        return
    secret_box.install(SecretBox(box.keys[:1], source=box.source))
    console.print(
        f"resealed {written} secrets with key {box.primary_fingerprint}"
        + (
            f"; now set {secret_box.ENV} to the first key alone"
            if from_env and len(box.keys) > 1
            else ""
        )
        + "; restart running wagate processes so they load it"
    )
