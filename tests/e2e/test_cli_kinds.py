"""The CLI's commands for the SPEC §8 kinds (`send-list`, `send-cta`, `send-location`,
`request-location`, `send-contacts`, `react`, `mark-read`) and the sandbox customer's
(`wagate sandbox reply --list-reply/--location/--reaction/--contacts/--order/--system/
--unsupported`), as a user runs them against a running `wagate serve`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ServerProcess, cli, cli_json, free_port, wagate_env
from wagate import Client

pytestmark = pytest.mark.slow

PHONE = "+14155552671"
CLOSED = "+14155552699"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data = tmp_path_factory.mktemp("kinds") / "data"
    env = wagate_env(data)
    process = ServerProcess(env, free_port())
    process.start()
    try:
        token = cli_json(env, "tokens", "create", "--account", "sandbox", "--name", "cli")["token"]
        cli(env, "sandbox", "reply", "--phone", PHONE, "--text", "hi", "--server", process.url)
        yield process, token
    finally:
        process.stop()


def _run(server: tuple[ServerProcess, str], *args: str) -> tuple[int, str, str]:
    process, token = server
    env = process.env | {"WAGATE_URL": process.url, "WAGATE_TOKEN": token}
    result = cli(env, *args, check=False)
    return result.returncode, result.stdout, result.stderr


def _sent(server: tuple[ServerProcess, str], *args: str) -> dict[str, Any]:
    code, out, err = _run(server, *args, "--json")
    assert code == 0, out + err
    data: dict[str, Any] = json.loads(out)
    return data


def _wait(server: tuple[ServerProcess, str], message_id: str, status: str = "read") -> None:
    with Client(server[0].url, server[1]) as wa:
        for _ in range(150):
            if wa.get_message(message_id)["status"] == status:
                return
            time.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {status}")


def _conversation(server: tuple[ServerProcess, str]) -> list[dict[str, Any]]:
    with Client(server[0].url, server[1]) as wa:
        messages: list[dict[str, Any]] = wa.conversation(PHONE)["messages"]
    return messages


def test_each_send_command(server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    cards = tmp_path / "cards.json"
    cards.write_text(json.dumps([{"name": {"formatted_name": "Asha Rao"}}]))
    sent = [
        _sent(server, "send-list", "--phone", PHONE, "--message", "Pick a size",
              "--button", "Sizes", "--row", "s=Small", "--row", "m=Medium|Serves two"),
        _sent(server, "send-cta", "--phone", PHONE, "--message", "Track it", "--button", "Track",
              "--link", "https://example.com/t/4521"),
        _sent(server, "send-location", "--phone", PHONE, "--latitude", "12.9716",
              "--longitude", "77.5946", "--name", "Shop"),
        _sent(server, "request-location", "--phone", PHONE, "--message", "Where to?"),
        _sent(server, "send-contacts", "--phone", PHONE, "--contacts", str(cards)),
    ]  # fmt: skip
    assert [s["type"] for s in sent] == ["list", "cta", "location", "location_request", "contacts"]
    for message in sent:
        _wait(server, message["id"])
    reaction = _sent(
        server, "react", "--phone", PHONE, "--message-id", sent[0]["id"], "--emoji", "👍"
    )
    _wait(server, reaction["id"])
    receipt = _sent(server, "mark-read", "--phone", PHONE, "--typing")
    assert receipt["type"] == "read"
    _wait(server, receipt["id"], "accepted")

    code, out, _ = _run(server, "send-cta", "--phone", PHONE, "--message", "x", "--button", "b",
                        "--link", "http://plain.example", "--json")  # fmt: skip
    assert code == 1 and json.loads(out)["error"]["code"] == "invalid_url"
    code, _, err = _run(server, "send-location", "--phone", CLOSED, "--latitude", "1",
                        "--longitude", "2")  # fmt: skip
    assert code == 1 and "outside_service_window" in err
    code, _, err = _run(server, "send-list", "--phone", PHONE, "--message", "x", "--button", "b")
    assert code == 1 and "--row" in err


def test_the_sandbox_customer_sends_each_kind(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    process, _ = server
    env = process.env
    listed = _sent(server, "send-list", "--phone", PHONE, "--message", "Pick", "--button", "Open",
                   "--row", "a=Apples", "--row", "b=Bananas")  # fmt: skip
    _wait(server, listed["id"])
    cards = tmp_path / "card.json"
    cards.write_text(json.dumps({"name": {"formatted_name": "Ravi K"}}))
    replies = [
        ["--list-reply", "b"],
        ["--location", "12.5,77.25", "--place", "Home"],
        ["--reaction", "❤️"],
        ["--contacts", str(cards)],
        ["--order", ""],
        ["--system", "Number changed"],
        ["--unsupported"],
    ]
    for reply in replies:
        cli(env, "sandbox", "reply", "--phone", PHONE, *reply, "--server", process.url)
    kinds = [m["kind"] for m in _conversation(server) if m["direction"] == "inbound"]
    for kind in ("list_reply", "location", "reaction", "contacts", "order", "system",
                 "unsupported"):  # fmt: skip
        assert kind in kinds, kinds
    bubbles = {m.get("id"): m for m in _conversation(server)}
    assert bubbles[listed["id"]]["reactions"]["customer"] == "❤️"

    result = cli(env, "sandbox", "reply", "--phone", PHONE, "--location", "north",
                 "--server", process.url, check=False)  # fmt: skip
    assert result.returncode != 0 and "LAT,LON" in result.stderr
    result = cli(env, "sandbox", "reply", "--phone", PHONE, "--text", "a", "--unsupported",
                 "--server", process.url, check=False)  # fmt: skip
    assert result.returncode != 0 and "exactly one" in result.stderr
