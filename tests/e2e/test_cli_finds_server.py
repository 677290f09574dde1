"""The CLI finds the server it should talk to (SPEC §7): `wagate serve` records its address in
the data folder, client commands read it, and a wrong or missing server is said so, with where
the address came from and how to point elsewhere."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.processes import (
    ServerProcess,
    cli,
    cli_json,
    free_port,
    serve_in_thread,
    wagate_env,
)

pytestmark = pytest.mark.slow

CUSTOMER = "+14155552671"
SCRIPT = Path(sys.executable).parent / "wagate"


def _wait_for(pattern: str, server: ServerProcess) -> re.Match[str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(pattern, server.output())
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in:\n{server.output()}")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """`wagate serve` on a port that is not 8000, started as the README starts it: the
    `wagate` script by its path, from the folder holding the virtualenv, with the virtualenv
    not on the PATH."""
    data = tmp_path_factory.mktemp("finds") / "data"
    env = wagate_env(data) | {"PATH": "/usr/bin:/bin"}
    server = ServerProcess(
        env, free_port(), program=(str(SCRIPT),), cwd=SCRIPT.parent.parent.parent
    )
    server.start()
    try:
        token = _wait_for(r"token \(shown once\): (wg_\S+)", server).group(1)
        yield server, token
    finally:
        server.stop()


def test_client_commands_find_the_running_server_without_flags(
    running: tuple[ServerProcess, str],
) -> None:
    server, token = running
    env = {k: v for k, v in server.env.items() if k != "WAGATE_URL"}
    record = json.loads((Path(env["WAGATE_DATA_DIR"]) / "server.json").read_text())
    assert record["url"] == server.url and record["command"] == "serve"

    info = cli_json(env, "sandbox", "info")
    assert info["graph_url"] == f"{server.url}/sandbox/graph"
    assert info["webhook_url"].startswith(f"{server.url}/webhooks/whatsapp/ch_")
    assert "server.json" in info["server_source"]

    reply = cli(env, "sandbox", "reply", "--phone", CUSTOMER, "--text", "Hi")
    assert f"the gateway at {server.url} took it" in reply.stdout
    sent = cli_json(env | {"WAGATE_TOKEN": token}, "send", "--phone", CUSTOMER, "--message", "Hi")
    assert sent["status"] == "queued"
    synced = cli_json(env, "templates", "sync", "--token", token)
    assert synced["templates"] > 0

    acme = cli_json(env, "accounts", "create", "--name", "acme")
    channel = cli_json(
        env, "channels", "add", "--account", acme["name"], "--phone-number-id", "106540352242922",
        "--waba-id", "102290129340398", "--access-token", "t", "--app-secret", "s",
        "--verify-token", "v",
    )  # fmt: skip
    assert channel["webhook_url"] == f"{server.url}/webhooks/whatsapp/{channel['id']}"


def test_hints_name_the_cli_as_it_can_be_run(running: tuple[ServerProcess, str]) -> None:
    server, _ = running
    typed = os.path.relpath(SCRIPT, SCRIPT.parent.parent.parent)
    assert f"    {typed} sandbox reply --phone +14155552671 --text hello" in server.output()
    assert "\n    wagate sandbox reply" not in server.output()


def test_a_token_unknown_to_the_server_found_says_it_may_be_the_wrong_server(
    running: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    server, _ = running
    # Another data folder, with no server of its own: the default address is this server's.
    env = wagate_env(tmp_path / "other", WAGATE_PORT=str(server.port), WAGATE_TOKEN="wg_other")
    result = cli(env, "send", "--phone", CUSTOMER, "--message", "Hi", check=False)
    assert result.returncode == 1
    said = " ".join(result.stderr.split())
    assert f"the server at {server.url} does not know this token" in said
    assert "the default address (no running server recorded in" in said
    assert "--server URL or WAGATE_URL" in said


def test_nothing_listening_says_which_address_and_where_it_came_from(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = wagate_env(tmp_path / "data", WAGATE_TOKEN="wg_x")
    for how, extra in (("--server", ["--server", nowhere]), ("WAGATE_URL", [])):
        run_env = env | ({"WAGATE_URL": nowhere} if how == "WAGATE_URL" else {})
        result = cli(run_env, "send", "--phone", CUSTOMER, "--message", "x", *extra, check=False)
        said = " ".join(result.stderr.split())
        assert result.returncode == 1
        assert f"cannot reach a wagate server at {nowhere}" in said
        assert f"that address came from {how}" in said
        reply = cli(run_env, "sandbox", "reply", "--phone", CUSTOMER, "--text", "x", *extra,
                    check=False)  # fmt: skip
        assert f"cannot reach a wagate server at {nowhere}" in " ".join(reply.stderr.split())


def test_a_server_that_is_not_wagate_is_named(tmp_path: Path) -> None:
    async def nothing(_request: object) -> PlainTextResponse:
        return PlainTextResponse("Not Found", status_code=404)

    app = Starlette(routes=[Route("/{path:path}", nothing, methods=["GET", "POST"])])
    with serve_in_thread(app, free_port()) as url:
        env = wagate_env(tmp_path / "data", WAGATE_TOKEN="wg_x")
        sent = cli(env, "send", "--phone", CUSTOMER, "--message", "x", "--server", url,
                   check=False)  # fmt: skip
        assert f"{url} did not answer as a wagate server" in " ".join(sent.stderr.split())
        reply = cli(env, "sandbox", "reply", "--phone", CUSTOMER, "--text", "x", "--server", url,
                    check=False)  # fmt: skip
        assert f"{url} did not answer as a wagate server" in " ".join(reply.stderr.split())


def test_the_record_goes_at_stop_and_a_killed_servers_record_misleads_no_one(
    tmp_path: Path,
) -> None:
    env = wagate_env(tmp_path / "data")
    record = tmp_path / "data" / "server.json"
    server = ServerProcess(env, free_port())
    server.start()
    _wait_for("API docs", server)
    assert record.exists()
    server.stop()
    assert not record.exists(), "a server that stopped cleanly removes its address"

    server = ServerProcess(env, free_port())
    server.log_path = tmp_path / "second.log"
    server.start()
    _wait_for("API docs", server)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    assert record.exists()
    default = f"http://127.0.0.1:{free_port()}"
    run = cli(env | {"WAGATE_PORT": default.rsplit(":", 1)[1]}, "sandbox", "info", "--json")
    info = json.loads(run.stdout)
    assert info["graph_url"] == f"{default}/sandbox/graph"
    assert "no longer running" in " ".join(run.stderr.split())
