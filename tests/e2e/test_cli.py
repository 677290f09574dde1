"""The CLI as a script would use it: subprocesses, JSON out, the same database as `serve`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess, cli, cli_json, free_port, wagate_env

pytestmark = pytest.mark.slow


def test_accounts_channels_tokens(database_url: str, tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data", database_url, WAGATE_SANDBOX="off")
    acme = cli_json(env, "accounts", "create", "--name", "acme")
    assert acme["name"] == "acme" and acme["id"].startswith("acc_")
    duplicate = cli(env, "accounts", "create", "--name", "acme", "--json", check=False)
    assert duplicate.returncode != 0
    assert "exists" in duplicate.stderr
    cli_json(env, "accounts", "create", "--name", "globex")

    channel = cli_json(
        env, "channels", "add", "--account", "acme", "--phone-number-id", "106540352242922",
        "--waba-id", "102290129340398", "--access-token", "EAAG-secret-token",
        "--app-secret", "app-secret-value", "--verify-token", "verify-me", "--mps", "250",
    )  # fmt: skip
    assert channel["phone_number_id"] == "106540352242922"
    assert channel["mps"] == 250
    assert channel["is_default"] is True
    assert channel["webhook_url"].endswith(f"/webhooks/whatsapp/{channel['id']}")
    listed = cli(env, "channels", "list", "--json").stdout
    assert "EAAG-secret-token" not in listed and "app-secret-value" not in listed
    unknown = cli(
        env, "channels", "add", "--account", "nobody", "--phone-number-id", "1",
        "--waba-id", "2", "--access-token", "t", "--app-secret", "s", "--verify-token", "v",
        check=False,
    )  # fmt: skip
    assert unknown.returncode != 0 and "no account named 'nobody'" in unknown.stderr

    made = cli_json(env, "tokens", "create", "--account", "acme", "--name", "ci")
    assert made["token"].startswith("wg_")
    tokens = cli_json(env, "tokens", "list", "--account", "acme")
    assert [t["name"] for t in tokens] == ["ci"]
    assert made["token"] not in cli(env, "tokens", "list", "--json").stdout
    assert "token_hash" not in tokens[0]

    port = free_port()
    server = ServerProcess(env, port)
    server.start()
    try:
        headers = {"Authorization": f"Bearer {made['token']}"}
        # The token works at once (the window is closed, so the answer is a 409, not a 401).
        first = httpx.post(
            f"{server.url}/v1/messages",
            json={"phone": "+14155552671", "message": "hi"},
            headers=headers,
        )
        assert first.status_code == 409, first.text
        revoked = cli_json(env, "tokens", "revoke", made["id"])
        assert revoked["revoked"] is True
        after = httpx.post(
            f"{server.url}/v1/messages",
            json={"phone": "+14155552671", "message": "hi"},
            headers=headers,
        )
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "invalid_token"
    finally:
        server.stop()


def test_serve_first_start_prints_a_sandbox_token_that_works(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data")
    port = free_port()
    server = ServerProcess(env, port)
    server.start()
    try:
        output = ""
        for _ in range(50):
            output = server.output()
            if "token" in output and "wg_" in output:
                break
            import time

            time.sleep(0.1)
        token = next(w for w in output.split() if w.startswith("wg_"))
        info = cli_json(env, "sandbox", "info", "--server", server.url)
        assert info["account"] == "sandbox"
        assert info["graph_url"] == f"{server.url}/sandbox/graph"
        sandbox_channel = next(
            c for c in cli_json(env, "channels", "list") if c["is_sandbox"] is True
        )
        assert info["webhook_url"] == f"{server.url}/webhooks/whatsapp/{sandbox_channel['id']}"
        reply = cli_json(
            env, "sandbox", "reply", "--phone", "+14155552671", "--text", "hello",
            "--server", server.url,
        )  # fmt: skip
        assert reply["delivered"] is True
        sent = httpx.post(
            f"{server.url}/v1/messages",
            json={"phone": "+14155552671", "message": "Hi from wagate"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert sent.status_code == 202, sent.text
        message_id = sent.json()["id"]
        status = ""
        for _ in range(100):
            status = httpx.get(
                f"{server.url}/v1/messages/{message_id}",
                headers={"Authorization": f"Bearer {token}"},
            ).json()["status"]
            if status == "read":
                break
            import time

            time.sleep(0.1)
        assert status == "read"
    finally:
        server.stop()
    # A second start does not print a new token.
    server = ServerProcess(env, port)
    server.log_path = tmp_path / "second.log"
    server.start()
    try:
        import time

        time.sleep(1)
        assert "wg_" not in server.output()
        assert "wagate tokens create --account sandbox" in server.output()
    finally:
        server.stop()
