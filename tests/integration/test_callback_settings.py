"""Setting an account's callback URL and secret: through the API (`/v1/callback`) and with
`wagate accounts set-callback` as a script would run it; bad input is refused in the documented
shape and changes nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.callback_receiver import Receiver, receiving
from tests.support.harness import Harness
from tests.support.processes import ServerProcess, cli, cli_json, free_port, wagate_env
from wagate.bootstrap import SandboxIdentity

URL = "https://example.com/wagate/events"


async def put(gateway: Harness, **body: Any) -> httpx.Response:
    return await gateway.client.put("/v1/callback", json=body, headers=gateway.auth)


async def current(gateway: Harness) -> dict[str, Any]:
    response = await gateway.client.get("/v1/callback", headers=gateway.auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_set_rotate_and_clear_through_the_api(gateway: Harness) -> None:
    assert await current(gateway) == {
        "callback_url": None,
        "callback_secret": None,
        "signature_header": "X-Wagate-Signature",
    }
    first = (await put(gateway, url=URL)).json()
    assert first["callback_url"] == URL and first["callback_secret"].startswith("whsec_")
    assert await current(gateway) == first
    # A new URL keeps the secret; rotating replaces it and keeps the URL.
    moved = (await put(gateway, url=URL + "/v2")).json()
    assert moved["callback_secret"] == first["callback_secret"]
    rotated = (await put(gateway, rotate_secret=True)).json()
    assert rotated["callback_url"] == URL + "/v2"
    assert rotated["callback_secret"] not in (None, first["callback_secret"])
    # null clears the URL (the secret stays for when one is set again); so does a form's "".
    assert (await put(gateway, url=None)).json()["callback_url"] is None
    form = await gateway.client.put(
        "/v1/callback", data={"url": URL, "rotate_secret": "false"}, headers=gateway.auth
    )
    assert form.status_code == 200, form.text
    assert form.json() == {**rotated, "callback_url": URL}
    assert (await gateway.client.delete("/v1/callback", headers=gateway.auth)).json()[
        "callback_url"
    ] is None


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"url": "ftp://example.com/x"}, 422, "url_not_allowed", "url"),
        ({"url": "example.com/hook"}, 422, "invalid_callback_url", "url"),
        ({"url": 42}, 422, "invalid_callback_url", "url"),
        ({"url": URL + "#frag"}, 422, "invalid_callback_url", "url"),
        ({}, 422, "missing_field", "url"),
        ({"url": URL, "rotate_secret": "yes"}, 422, "invalid_field", "rotate_secret"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    gateway: Harness, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    before = (await put(gateway, url=URL)).json()
    response = await put(gateway, **body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    assert await current(gateway) == before


async def test_the_api_refuses_other_shapes_and_strangers(gateway: Harness) -> None:
    raw = await gateway.client.put(
        "/v1/callback", content=b"[1]", headers=gateway.auth | {"Content-Type": "application/json"}
    )
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_body"
    text = await gateway.client.put(
        "/v1/callback", content=URL, headers=gateway.auth | {"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    for method, path in (
        ("GET", "/v1/callback"),
        ("PUT", "/v1/callback"),
        ("GET", "/v1/callbacks"),
    ):
        anonymous = await gateway.client.request(method, path, json={"url": URL})
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "missing_token"
    for params in ({"status": "lost"}, {"cursor": "abc"}, {"limit": 0}, {"limit": 201}):
        bad = await gateway.client.get("/v1/callbacks", params=params, headers=gateway.auth)
        assert bad.status_code == 422, (params, bad.text)
        assert bad.json()["success"] is False
    missing = await gateway.client.get("/v1/callbacks/evt_nope", headers=gateway.auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # Every answer above is described in the OpenAPI document.
    paths = (await gateway.client.get("/openapi.json")).json()["paths"]
    assert set(paths["/v1/callback"]) == {"get", "put", "delete"}
    assert {"400", "401", "415", "422"} <= set(paths["/v1/callback"]["put"]["responses"])
    assert {"401", "404", "409"} <= set(
        paths["/v1/callbacks/{delivery_id}/replay"]["post"]["responses"]
    )
    assert "422" in paths["/v1/callbacks"]["get"]["responses"]


@pytest.mark.slow
def test_set_callback_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data", database_url, WAGATE_SANDBOX="off")
    cli_json(env, "accounts", "create", "--name", "acme")
    made = cli_json(env, "accounts", "set-callback", "--account", "acme", "--url", URL)
    assert made["account"] == "acme" and made["callback_url"] == URL
    secret = made["callback_secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    # The secret is shown by set-callback only, never by listings.
    assert secret not in cli(env, "accounts", "list", "--json").stdout

    rotated = cli_json(env, "accounts", "set-callback", "--account", "acme", "--rotate-secret")
    assert rotated["callback_url"] == URL and rotated["callback_secret"] != secret
    for args, message in (
        (("--url", "not a url"), "--url"),
        (("--url", URL, "--clear"), "not both"),
        ((), "give --url"),
    ):
        refused = cli(env, "accounts", "set-callback", "--account", "acme", *args, check=False)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    unknown = cli(env, "accounts", "set-callback", "--account", "nobody", "--url", URL, check=False)
    assert unknown.returncode != 0 and "no account named 'nobody'" in unknown.stderr

    # A server on the same database sees what the command set, for that account's token.
    token = cli_json(env, "tokens", "create", "--account", "acme")["token"]
    server = ServerProcess(env, free_port(), "api")
    server.start()
    try:
        seen = httpx.get(
            f"{server.url}/v1/callback", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert seen["callback_url"] == URL
        assert seen["callback_secret"] == rotated["callback_secret"]
    finally:
        server.stop()
    cleared = cli_json(env, "accounts", "set-callback", "--account", "acme", "--clear")
    assert cleared["callback_url"] is None
    assert cleared["callback_secret"] == rotated["callback_secret"]


@pytest.mark.slow
def test_worker_processes_deliver_callbacks(database_url: str, tmp_path: Path) -> None:
    # `wagate api` takes the customer's message (from its sandbox); a separate `wagate worker`
    # POSTs the event to the business.
    port = free_port()
    env = wagate_env(tmp_path / "data", database_url, WAGATE_PORT=str(port))
    api = ServerProcess(env, port, "api")
    worker = ServerProcess(env, port, "worker")
    receiver = Receiver()
    api.start()
    try:
        with receiving(receiver, free_port()) as url:
            made = cli_json(env, "accounts", "set-callback", "--account", "sandbox", "--url", url)
            receiver.secret = made["callback_secret"]
            worker.start()
            token = SandboxIdentity.load_or_create(tmp_path / "data").access_token
            reply = httpx.post(
                f"{api.url}/sandbox/customer/reply",
                json={"phone": "+14155552671", "text": "hi"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert reply.status_code == 200 and reply.json()["delivered"], reply.text
            deadline = time.monotonic() + 20
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [e["data"]["text"] for e in receiver.events("message.inbound")] == ["hi"]
            assert receiver.rejected == []
    finally:
        worker.stop()
        api.stop()
