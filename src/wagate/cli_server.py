"""How the CLI's client commands find the server they talk to (`--server`, `WAGATE_URL`, the
data folder's record: see `server_address`), how they explain talking to the wrong one, and how
hints name the CLI itself so that they can be pasted as printed."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from wagate.config import Settings
from wagate.server_address import Target, find_server

err = Console(stderr=True, soft_wrap=True)

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="The wagate server to talk to. Default: WAGATE_URL, else the server running on "
        "this data folder (recorded by `wagate serve`), else http://127.0.0.1:8000.",
        show_default=False,
    ),
]
# `--url` was the send commands' name for it; kept working, out of sight.
LegacyUrlOpt = Annotated[str | None, typer.Option("--url", hidden=True)]

POINT_ELSEWHERE = "point at another server with --server URL or WAGATE_URL"


def target(server: str | None, legacy_url: str | None = None) -> Target:
    """The server this command talks to; a note on stderr when a stale record was ignored."""
    settings = Settings()
    found = find_server(
        server or legacy_url, data_dir=settings.data_dir, default_url=settings.local_url
    )
    if found.note:
        err.print(f"[yellow]note:[/yellow] {found.note}")
    return found


def unreachable(found: Target, exc: Exception | None = None) -> str:
    """What to say when nothing answers at the address."""
    why = f" ({type(exc).__name__})" if exc is not None else ""
    return (
        f"cannot reach a wagate server at {found.url}{why}; that address came from "
        f"{found.source}. Start one with `{command_name()} serve`, or {POINT_ELSEWHERE}."
    )


def unknown_token(found: Target) -> str:
    """What to say when the server does not know the token: usually the wrong server."""
    return (
        f"the server at {found.url} does not know this token (invalid_token); that address came "
        f"from {found.source}. If the token was made for another server (another data folder or "
        f"port), {POINT_ELSEWHERE}; otherwise make a token with `{command_name()} tokens create`."
    )


def not_wagate(found: Target, detail: str) -> str:
    return (
        f"{found.url} did not answer as a wagate server ({detail}); that address came from "
        f"{found.source}. Point at another server with --server URL or WAGATE_URL."
    )


def is_wagate(url: str) -> bool:
    """Whether `url` answers like a wagate server (its liveness probe and API description)."""
    try:
        health = httpx.get(url + "/healthz", timeout=3)
        described = httpx.get(url + "/openapi.json", timeout=5)
        return (
            health.status_code == 200
            and health.json() == {"status": "ok"}
            and described.status_code == 200
            and described.json().get("info", {}).get("title") == "wagate"
        )
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def command_name() -> str:
    """How the user can run this CLI again, as they would type it: `wagate` when the shell
    finds this very program under that name, else its path (e.g. `.venv/bin/wagate` right after
    the README's first command, which does not put it on the PATH), or `python -m wagate`."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "__main__.py":
        return f"{_as_typed(Path(sys.executable))} -m wagate"
    script = Path(argv0)
    on_path = shutil.which("wagate")
    if on_path is not None and (script.name != "wagate" or _same_file(Path(on_path), script)):
        return "wagate"
    if script.name != "wagate":
        return "wagate"
    return _as_typed(script)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False


def _as_typed(path: Path) -> str:
    """A path as short as it can be typed from here: relative (with a slash, so that the shell
    does not look it up on the PATH) when it is under the current folder."""
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    text = str(relative)
    return text if "/" in text else f"./{text}"
