"""`wagate send` and `wagate send-bulk` as a user runs them, against a running `wagate serve`."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ServerProcess, cli, cli_json, free_port, wagate_env
from wagate import Client

pytestmark = pytest.mark.slow

OPEN = ["+14155552671", "+14155552672", "+14155552673", "+919876543210", "+447911123456"]
CLOSED = "+14155552699"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data = tmp_path_factory.mktemp("send") / "data"
    env = wagate_env(data)
    process = ServerProcess(env, free_port())
    process.start()
    try:
        token = cli_json(env, "tokens", "create", "--account", "sandbox", "--name", "cli")["token"]
        for phone in OPEN:
            cli(env, "sandbox", "reply", "--phone", phone, "--text", "hi", "--server", process.url)
        cli(env, "templates", "sync", "--account", "sandbox")
        yield process, token
    finally:
        process.stop()


def _run(server: tuple[ServerProcess, str], *args: str) -> tuple[int, str, str]:
    process, token = server
    env = process.env | {"WAGATE_URL": process.url, "WAGATE_TOKEN": token}
    result = cli(env, *args, check=False)
    return result.returncode, result.stdout, result.stderr


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _wait_read(client: Client, message_id: str) -> None:
    for _ in range(100):
        if client.get_message(message_id)["status"] == "read":
            return
        time.sleep(0.1)
    raise AssertionError(f"{message_id} never reached read")


def test_send_prints_the_message_and_refusals_with_their_code(
    server: tuple[ServerProcess, str],
) -> None:
    code, out, _ = _run(
        server, "send", "--phone", OPEN[0], "--message", "Pick one",
        "--button", "yes=Yes please", "--button", "no=No", "--json",
    )  # fmt: skip
    assert code == 0, out
    sent = json.loads(out)
    assert sent["type"] == "interactive"
    with Client(server[0].url, server[1]) as wa:
        _wait_read(wa, sent["id"])

    code, out, _ = _run(server, "send", "--phone", CLOSED, "--message", "hello", "--json")
    assert code == 1
    assert json.loads(out)["error"]["code"] == "outside_service_window"
    code, _, stderr = _run(server, "send", "--phone", "+1 415 555 2671", "--message", "x")
    assert code == 1
    assert "invalid_phone_format" in stderr
    assert "+14155552671" in stderr  # the corrected form


def test_bulk_dry_run_checks_every_row_and_sends_nothing(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    rows = [{"phone": p, "message": f"Sale starts today, {i}"} for i, p in enumerate(OPEN * 2)]
    rows += [
        {"phone": "+1 415 555 2671", "message": "bad number"},
        {"phone": CLOSED, "message": "window closed"},
        {"phone": OPEN[0], "message": ""},
    ]
    file = _write(tmp_path / "campaign.csv", rows)
    with Client(server[0].url, server[1]) as wa:
        before = len(wa.list_messages(limit=200)["data"])
        code, out, _ = _run(server, "send-bulk", str(file), "--dry-run", "--json")
        after = len(wa.list_messages(limit=200)["data"])
    assert code == 1, out  # some rows would be refused
    report = json.loads(out)
    assert report["dry_run"] is True
    assert report["rows"] == 13
    assert report["accepted"] == 10
    assert report["recipients"] == 6  # the bad number is not a recipient
    assert report["refused_by_code"] == {
        "invalid_phone_format": 1,
        "outside_service_window": 1,
        "empty_message": 1,
    }
    assert report["estimated_seconds"] > 0
    assert after == before

    code, out, _ = _run(server, "send-bulk", str(file), "--dry-run")
    assert "Dry run: nothing was sent" in out
    assert "time at the channel's pace" in out


def test_bulk_send_stopped_and_started_again_sends_no_row_twice(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    rows = [{"phone": p, "message": f"Your code is {i:04d}"} for i, p in enumerate(OPEN * 4)]
    file = tmp_path / "codes.csv"
    # The first run is stopped after 8 rows: the same file, only partly there.
    _write(file, rows[:8])
    code, out, _ = _run(server, "send-bulk", str(file), "--json")
    assert code == 0, out
    first = json.loads(out)
    assert (first["accepted"], first["already_sent"]) == (8, 0)

    _write(file, rows)
    code, out, stderr = _run(server, "send-bulk", str(file))
    assert code == 0, out + stderr
    assert "already sent (earlier run)" in out
    code, out, _ = _run(server, "send-bulk", str(file), "--json")
    again = json.loads(out)
    assert (again["accepted"], again["already_sent"], again["refused"]) == (0, 20, [])

    with Client(server[0].url, server[1]) as wa:
        bodies = [m["message"] for m in wa.list_messages(limit=200)["data"]]
    for row in rows:
        assert bodies.count(row["message"]) == 1, row


def test_bulk_refuses_a_file_it_cannot_use(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    file = _write(tmp_path / "bad.csv", [{"number": "+14155552671", "text": "hi"}])
    code, _, stderr = _run(server, "send-bulk", str(file))
    assert code == 1
    assert "phone" in stderr


def test_send_template_reaches_a_closed_window(server: tuple[ServerProcess, str]) -> None:
    params = {
        "header": ["#77"],
        "body": {"first_name": "Asha", "order_number": "77"},
        "buttons": [{"index": 1, "text": "77"}],
    }
    code, out, err = _run(
        server, "send-template", "--phone", CLOSED, "--template", "order_confirmation",
        "--language", "en_US", "--params", json.dumps(params), "--json",
    )  # fmt: skip
    assert code == 0, out + err
    sent = json.loads(out)
    assert sent["type"] == "template"
    with Client(server[0].url, server[1]) as wa:
        _wait_read(wa, sent["id"])
        assert "Asha" in wa.get_message(sent["id"])["message"]
    code, out, _ = _run(
        server, "send-template", "--phone", CLOSED, "--template", "order_confirmation",
        "--params", json.dumps({"body": {"first_name": "Asha"}}), "--json",
    )  # fmt: skip
    assert code == 1
    assert json.loads(out)["error"]["code"] == "template_params_mismatch"


def test_bulk_template_dry_run_then_send(server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    good = [
        {"phone": p, "header.1": f"#{i}", "body.first_name": f"Customer {i}",
         "body.order_number": str(1000 + i), "button.0.payload": f"track-{i}",
         "button.1.text": str(1000 + i)}
        for i, p in enumerate([*OPEN, CLOSED])
    ]  # fmt: skip
    bad = [
        {"phone": OPEN[1], "header.1": "#9", "body.first_name": "No order number",
         "body.order_number": "", "button.0.payload": "x", "button.1.text": "9"},
        {"phone": "14155552671", "header.1": "#9", "body.first_name": "A",
         "body.order_number": "9", "button.0.payload": "x", "button.1.text": "9"},
    ]  # fmt: skip
    file = _write(tmp_path / "orders.csv", good + bad)
    args = ("send-bulk", str(file), "--template", "order_confirmation", "--language", "en_US")
    code, out, _ = _run(server, *args, "--dry-run", "--json")
    assert code == 1, out
    report = json.loads(out)
    assert report["accepted"] == 6  # templates may go outside the window
    assert report["refused_by_code"] == {
        "template_params_mismatch": 1,
        "invalid_phone_format": 1,
    }
    assert any("order_number" in r["message"] for r in report["refused"])

    code, out, _ = _run(server, *args, "--json")
    assert code == 1
    sent = json.loads(out)
    assert sent["accepted"] == 6
    assert {r["code"] for r in sent["refused"]} == {
        "template_params_mismatch",
        "invalid_phone_format",
    }
    with Client(server[0].url, server[1]) as wa:
        messages = wa.list_messages(limit=200)["data"]
    mine = [m for m in messages if "Customer " in (m["message"] or "")]
    assert len(mine) == 6
    assert {m["type"] for m in mine} == {"template"}


def test_the_client_sends_a_batch_and_types_each_result(
    server: tuple[ServerProcess, str],
) -> None:
    from wagate.client import OutsideServiceWindow, ValidationError

    items = [
        {"phone": OPEN[0], "message": "batch one"},
        {"phone": CLOSED, "message": "closed window"},
        {"kind": "template", "phone": CLOSED, "template": "hello_world", "language": "en_US"},
        {"phone": "+1 415 555 2671", "message": "spaces"},
    ]
    with Client(server[0].url, server[1]) as wa:
        results = wa.send_batch(items)
        assert [r.index for r in results] == [0, 1, 2, 3]
        assert [r.ok for r in results] == [True, False, True, False]
        assert isinstance(results[1].error, OutsideServiceWindow)
        assert isinstance(results[3].error, ValidationError)
        assert results[3].error.code == "invalid_phone_format"
        first = results[0].accepted
        assert first is not None and first.type == "text" and not first.replayed
        _wait_read(wa, first.id)
