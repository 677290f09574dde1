"""`wagate templates sync` and `list` as a script runs them: subprocesses on the server's
database, talking to a Graph API (a standalone sandbox on loopback) with or without a server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.processes import (
    ServerProcess,
    cli,
    cli_json,
    free_port,
    serve_in_thread,
    wagate_env,
)
from wagate.sandbox import SandboxConfig, create_sandbox_app

pytestmark = pytest.mark.slow

NAMES = [
    ("appointment_reminder", "en_US"),
    ("appointment_reminder", "pt_BR"),
    ("hello_world", "en_US"),
    ("order_confirmation", "en_US"),
    ("summer_sale", "en_US"),
    ("winter_promo", "en_US"),
]


def add_channel(env: dict[str, str], account: str, pnid: str, graph: str, token: str) -> None:
    cli_json(env, "accounts", "create", "--name", account)
    cli_json(
        env, "channels", "add", "--account", account, "--phone-number-id", pnid,
        "--waba-id", "200000000000001", "--access-token", token, "--app-secret", "s",
        "--verify-token", "v", "--graph-url", graph,
    )  # fmt: skip


def test_sync_and_list_without_a_server(database_url: str, tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data", database_url, WAGATE_SANDBOX="off")
    config = SandboxConfig(
        phone_number_id="100000000000001",
        waba_id="200000000000001",
        display_phone_number="15550000001",
        access_token="graph-token",
        app_secret="s",
        webhook_url="http://127.0.0.1:9/webhooks/whatsapp",
    )
    with serve_in_thread(create_sandbox_app(config), free_port()) as graph:
        add_channel(env, "acme", "100000000000001", f"{graph}/graph", "graph-token")
        assert cli_json(env, "templates", "list") == []
        synced = cli_json(env, "templates", "sync")
        assert synced["templates"] == 6
        [channel] = synced["channels"]
        assert channel["templates"] == 6 and channel["error"] is None

        add_channel(env, "globex", "100000000000002", f"{graph}/graph", "expired-token")
        failed = cli(env, "templates", "sync", "--json", check=False)
        assert failed.returncode == 1
        assert "Meta error 190" in failed.stderr and "expired-token" not in failed.stderr
        assert "left as they were" in failed.stderr
        only_acme = cli_json(env, "templates", "sync", "--account", "acme")
        assert [c["templates"] for c in only_acme["channels"]] == [6]

    listed = cli_json(env, "templates", "list", "--account", "acme")
    assert [(t["name"], t["language"]) for t in listed] == NAMES
    assert {t["account"] for t in listed} == {"acme"}
    assert listed[3]["example_params"]["body"] == {"first_name": "Asha", "order_number": "4521"}
    assert cli_json(env, "templates", "list", "--account", "globex") == []
    table = cli(env, "templates", "list").stdout
    assert "order_confirmation" in table and "REJECTED" in table
    unknown = cli(env, "templates", "list", "--account", "nobody", check=False)
    assert unknown.returncode != 0 and "no account named 'nobody'" in unknown.stderr


def test_the_built_in_sandbox_syncs_with_or_without_the_server(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data")
    server = ServerProcess(env, free_port())
    server.start()
    try:
        token = cli_json(env, "tokens", "create", "--account", "sandbox")["token"]
        headers = {"Authorization": f"Bearer {token}"}
        over_http = httpx.post(f"{server.url}/v1/templates/sync", headers=headers, timeout=15)
        assert over_http.status_code == 200, over_http.text
        assert cli_json(env, "templates", "sync")["templates"] == 6
        sent = httpx.post(
            f"{server.url}/v1/messages/template",
            json={"phone": "+14155552671", "template": "hello_world"},
            headers=headers,
        )
        assert sent.status_code == 202, sent.text
    finally:
        server.stop()
    # The server is gone: the sandbox's templates come from an in-process sandbox.
    assert cli_json(env, "templates", "sync")["templates"] == 6
    listed = cli_json(env, "templates", "list")
    assert [(t["name"], t["language"]) for t in listed] == NAMES
