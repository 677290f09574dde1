"""The server's log as an operator reads it: a line per request, per send outcome and retry, at
start and stop, as JSON with WAGATE_LOG_FORMAT=json; and never a token, a password, a secret or
a message's content, whatever a day of use passed through it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.processes import ServerProcess, free_port, wagate_env

pytestmark = pytest.mark.slow

CUSTOMER = "+14155552671"
FAILING = "+14155552672"
THROTTLED = "+14155552673"
CONTENT = "Your parcel code is 7F3K-SECRET-CONTENT"
_SIGN_IN_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _wait(what: str, check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A day in a few seconds: sends (Bearer token and token field), a failure, a retry, a
    dashboard sign-in, a callback URL set; then the server is stopped and its log read."""
    data = tmp_path_factory.mktemp("logs") / "data"
    env = wagate_env(data, WAGATE_LOG_FORMAT="json", WAGATE_RETRY_BASE_SECONDS="0.05")
    server = ServerProcess(env, free_port(), separate_stderr=True)
    server.start()
    secrets: dict[str, str] = {}
    try:
        out = _wait("the first start's secrets", lambda: re.search(
            r"token \(shown once\): (wg_\S+).*password \(shown once\): (\S+)",
            server.output(), re.S,
        ))  # fmt: skip
        token, password = out.group(1), out.group(2)
        identity = json.loads((data / "sandbox.json").read_text())
        secrets |= {
            "token": token,
            "password": password,
            "sandbox access token": identity["access_token"],
            "app secret": identity["app_secret"],
        }
        bearer = {"Authorization": f"Bearer {token}"}
        sandbox = {"Authorization": f"Bearer {identity['access_token']}"}
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for phone in (CUSTOMER, FAILING, THROTTLED):
                replied = http.post(
                    "/sandbox/customer/reply", json={"phone": phone, "text": "hi"}, headers=sandbox
                )
                assert replied.status_code == 200, replied.text
            faults = [
                {"code": 131026, "mode": "response", "phone": FAILING},
                {"code": 130429, "count": 1, "phone": THROTTLED},
            ]
            for fault in faults:
                assert http.post("/sandbox/faults", json=fault, headers=sandbox).is_success
            ids = {}
            for phone in (CUSTOMER, FAILING, THROTTLED):
                sent = http.post("/v1/messages", json={"phone": phone, "message": CONTENT},
                                 headers=bearer)  # fmt: skip
                assert sent.status_code == 202, sent.text
                ids[phone] = sent.json()["id"]
            in_form = http.post(
                "/v1/messages",
                data={"token": token, "phone": CUSTOMER, "message": CONTENT},
            )
            assert in_form.status_code == 202, in_form.text
            callback = http.put(
                "/v1/callback", json={"url": "https://example.com/wagate/events"}, headers=bearer
            )
            assert callback.status_code == 200, callback.text
            secrets["callback secret"] = callback.json()["callback_secret"]
            page = http.get("/sign-in")
            csrf = _SIGN_IN_TOKEN.search(page.text)
            assert csrf, page.text
            signed_in = http.post("/sign-in", data={
                "email": "admin@localhost", "password": password, "csrf_token": csrf.group(1),
            })  # fmt: skip
            assert signed_in.status_code == 303, signed_in.text
            assert http.get("/messages").status_code == 200
            for _ in range(3):
                assert http.get("/healthz").status_code == 200

            def status(message_id: str) -> str:
                return str(http.get(f"/v1/messages/{message_id}", headers=bearer).json()["status"])

            _wait("a read message", lambda: status(ids[CUSTOMER]) == "read")
            _wait("a failed message", lambda: status(ids[FAILING]) == "failed")
            _wait(
                "a retried message", lambda: status(ids[THROTTLED]) in ("sent", "delivered", "read")
            )
    finally:
        server.stop()
    log = server.errors()
    yield {
        "log": log,
        "lines": [json.loads(line) for line in log.splitlines() if line.strip()],
        "secrets": secrets,
        "ids": ids,
        "account": None,
    }


def test_every_log_line_is_json(day: dict[str, Any]) -> None:
    raw = [line for line in day["log"].splitlines() if line.strip()]
    assert raw and len(day["lines"]) == len(raw)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in day["lines"])


def test_one_line_per_request_with_its_account_and_duration(day: dict[str, Any]) -> None:
    requests = [line for line in day["lines"] if line["logger"] == "wagate.http"]
    sends = [r for r in requests if (r["method"], r["path"]) == ("POST", "/v1/messages")]
    assert len(sends) == 4
    assert {r["status"] for r in sends} == {202}
    assert all(r["account"] and r["account"].startswith("acc_") for r in sends)
    assert all(isinstance(r["duration_ms"], float | int) and r["duration_ms"] >= 0 for r in sends)
    pages = [r for r in requests if r["path"] == "/messages" and r["method"] == "GET"]
    assert pages and pages[0]["account"] == sends[0]["account"]  # the signed-in user's
    assert not [r for r in requests if r["path"] == "/healthz"], "probes are logged at debug"


def test_one_line_per_send_outcome_and_retry(day: dict[str, Any]) -> None:
    dispatch = [line for line in day["lines"] if line["logger"] == "wagate.dispatch"]
    by_message: dict[str, list[dict[str, Any]]] = {}
    for line in dispatch:
        by_message.setdefault(line["message_id"], []).append(line)
    ids = day["ids"]
    accepted = by_message[ids[CUSTOMER]]
    assert [line["status"] for line in accepted] == ["accepted"]
    assert accepted[0]["wamid"].startswith("wamid.")
    failed = by_message[ids[FAILING]]
    assert [(line["status"], line["meta_code"]) for line in failed] == [("failed", 131026)]
    assert failed[0]["level"] == "warning"
    retried = by_message[ids[THROTTLED]]
    assert [line["status"] for line in retried] == ["retry", "accepted"]
    assert retried[0]["meta_code"] == 130429


def test_start_and_stop_are_logged(day: dict[str, Any]) -> None:
    messages = [line["message"] for line in day["lines"] if line["logger"] == "wagate.server"]
    assert re.match(r"wagate serve \S+ listening on http://127\.0\.0\.1:\d+ \(pid \d+", messages[0])
    assert re.match(r"wagate serve on http://127\.0\.0\.1:\d+ stopped", messages[-1])


def test_no_secret_and_no_content_is_ever_logged(day: dict[str, Any]) -> None:
    for name, secret in day["secrets"].items():
        assert secret not in day["log"], f"the {name} is in the log"
    assert "SECRET-CONTENT" not in day["log"], "a message's text is in the log"
