"""Dashboard users from the command line, and the first admin that the very first
`wagate serve` makes and prints once; each signs in over HTTP."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess, cli, cli_json, free_port, wagate_env

pytestmark = pytest.mark.slow

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(url: str, email: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=url) as browser:
        form = browser.get("/sign-in")
        token = _CSRF.search(form.text)
        assert token, form.text
        return browser.post(
            "/sign-in", data={"email": email, "password": password, "csrf_token": token.group(1)}
        )


def test_users_create_list_and_set_password(database_url: str, tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data", database_url, WAGATE_SANDBOX="off")
    cli_json(env, "accounts", "create", "--name", "acme")
    made = cli_json(
        env, "users", "create", "--account", "acme", "--email", "Ops@Example.com", "--admin"
    )
    assert made["email"] == "ops@example.com" and made["is_admin"] is True
    assert len(made["password"]) >= 12 and "password_hash" not in made
    for args, complaint in (
        (("--account", "acme", "--email", "ops@example.com"), "exists already"),
        (("--account", "nobody", "--email", "x@example.com"), "no account named 'nobody'"),
        (("--account", "acme", "--email", "not-an-email"), "is not an email address"),
        (("--account", "acme", "--email", "y@example.com", "--password", "short"), "at least"),
    ):
        failed = cli(env, "users", "create", *args, check=False)
        assert failed.returncode != 0 and complaint in failed.stderr, failed.stderr
    listed = cli(env, "users", "list", "--account", "acme", "--json").stdout
    assert "ops@example.com" in listed
    assert made["password"] not in listed and "argon2" not in listed
    changed = cli_json(
        env, "users", "set-password", "--email", "ops@example.com", "--password", "a new password!"
    )
    assert changed == {"email": "ops@example.com", "changed": True}
    missing = cli(env, "users", "set-password", "--email", "ghost@example.com", check=False)
    assert missing.returncode != 0 and "no user" in missing.stderr

    server = ServerProcess(env, free_port())
    server.start()
    try:
        assert sign_in(server.url, "ops@example.com", made["password"]).status_code == 401
        assert sign_in(server.url, "ops@example.com", "a new password!").status_code == 303
    finally:
        server.stop()


def _wait_for(server: ServerProcess, text: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if text in server.output():
            break
        time.sleep(0.1)
    return server.output()


def test_first_serve_makes_an_admin_and_prints_the_password_once(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data")
    port = free_port()
    server = ServerProcess(env, port)
    server.start()
    try:
        output = _wait_for(server, "shown once): ")
        found = re.search(r"as (\S+@\S+)\s+with this password \(shown once\): (\S+)", output)
        assert found, output
        email, password = found.groups()
        assert f"{server.url}/" in output
        signed_in = sign_in(server.url, email, password)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/messages"
    finally:
        server.stop()
    assert cli_json(env, "users", "list")[0]["is_admin"] is True
    server = ServerProcess(env, port)
    server.log_path = tmp_path / "second.log"
    server.start()
    try:
        output = _wait_for(server, "API docs")
        assert "dashboard:" in output
        assert password not in output and "with this password" not in output
    finally:
        server.stop()
