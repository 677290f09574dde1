"""Secrets at rest (SPEC §10, issue 12 point 5): channel access tokens, app secrets and callback
secrets are sealed with a key kept outside the database; the data folder and the database files
are readable by their owner only; a process with the wrong key stops at start, saying why."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import text

from tests.support.harness import Harness
from tests.support.processes import ServerProcess, cli, cli_json, free_port, wagate_env
from tests.support.tenants import add_tenant
from wagate.secret_box import PREFIX, SecretBox, new_key
from wagate.store.db import _alembic_config, make_sync_engine, migrate

pytestmark = pytest.mark.slow

ACCESS_TOKEN = "EAAG-access-token-" + "x7" * 10
APP_SECRET = "app-secret-" + "q9" * 10


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _add_channel(env: dict[str, str]) -> None:
    cli_json(env, "accounts", "create", "--name", "acme")
    cli_json(
        env, "channels", "add", "--account", "acme", "--phone-number-id", "106540352242922",
        "--waba-id", "102290129340398", "--access-token", ACCESS_TOKEN,
        "--app-secret", APP_SECRET, "--verify-token", "verify-me",
    )  # fmt: skip


def _callback_secret(env: dict[str, str]) -> str:
    saved = cli_json(
        env, "accounts", "set-callback", "--account", "acme", "--url", "http://127.0.0.1:9/hook"
    )
    secret: str = saved["callback_secret"]
    return secret


def _database_bytes(db: Path) -> bytes:
    """Everything SQLite keeps of the database, after a checkpoint moved the log into it."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return b"".join(
        p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()
    )


def test_the_sqlite_file_holds_none_of_the_secrets_and_only_its_owner_reads_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = wagate_env(data, WAGATE_SANDBOX="on")
    _add_channel(env)
    callback_secret = _callback_secret(env)
    server = ServerProcess(env, free_port())
    server.start()  # the sandbox channel (its own token and app secret) is stored too
    try:
        assert _mode(data / "server.json") == 0o600
        sandbox = json.loads((data / "sandbox.json").read_text())
        # The secrets still work: the callback secret is read back through the API.
        token = cli_json(env, "tokens", "create", "--account", "acme", "--name", "t")["token"]
        shown = httpx.get(
            f"{server.url}/v1/callback", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert shown["callback_secret"] == callback_secret
    finally:
        server.stop()

    db = data / "wagate.db"
    raw = _database_bytes(db)
    assert b"106540352242922" in raw  # the file is readable, and the channel is in it
    for secret in (ACCESS_TOKEN, APP_SECRET, callback_secret, sandbox["access_token"]):
        assert secret.encode() not in raw, secret
    assert sandbox["app_secret"].encode() not in raw
    assert PREFIX.encode() in raw

    assert _mode(data) == 0o700
    assert _mode(db) == 0o600
    assert _mode(data / "secret.key") == 0o600
    for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        if extra.exists():
            assert _mode(extra) == 0o600


def test_a_data_folder_made_by_an_older_version_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    db = data / "wagate.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    cli_json(wagate_env(data), "accounts", "list")
    assert _mode(data) == 0o700
    assert _mode(db) == 0o600


async def test_the_raw_columns_hold_ciphertext_on_every_database(gateway: Harness) -> None:
    tenant = await add_tenant(gateway, "globex")
    put = await gateway.client.put(
        "/v1/callback", json={"url": "http://127.0.0.1:9/hook"}, headers=tenant.auth
    )
    assert put.status_code == 200, put.text
    callback_secret = put.json()["callback_secret"]
    async with gateway.engine.connect() as conn:
        channel = (
            await conn.execute(
                text("SELECT access_token, app_secret FROM channels WHERE id = :id"),
                {"id": tenant.channel.id},
            )
        ).one()
        account = (
            await conn.execute(
                text("SELECT callback_secret FROM accounts WHERE id = :id"),
                {"id": tenant.account_id},
            )
        ).one()
    stored = [channel.access_token, channel.app_secret, account.callback_secret]
    assert all(value.startswith(PREFIX) for value in stored), stored
    plain = [tenant.channel.access_token, tenant.channel.app_secret, callback_secret]
    for value, secret in zip(stored, plain, strict=True):
        assert secret not in value
    # And read back through the API as the business set it.
    got = await gateway.client.get("/v1/callback", headers=tenant.auth)
    assert got.json()["callback_secret"] == callback_secret


def test_a_wrong_or_lost_key_stops_the_server_at_start_saying_why(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = new_key()
    _add_channel(wagate_env(data, WAGATE_SECRET_KEY=first))

    wrong = wagate_env(data, WAGATE_SECRET_KEY=new_key(), WAGATE_SANDBOX="off")
    port = free_port()
    started = cli(wrong, "serve", "--port", str(port), check=False)
    assert started.returncode != 0
    assert "sealed with another key" in started.stderr
    assert "Traceback" not in started.stderr + started.stdout

    listed = cli(wrong, "channels", "list", check=False)
    assert listed.returncode != 0 and "WAGATE_SECRET_KEY" in listed.stderr

    bad_key = wagate_env(data, WAGATE_SECRET_KEY="not-a-key")
    malformed = cli(bad_key, "channels", "list", check=False)
    assert malformed.returncode != 0
    assert "not a Fernet key" in malformed.stderr and "Traceback" not in malformed.stderr

    # Without the variable, a key file is made for the folder: not the key the rows need.
    no_key = cli(wagate_env(data), "channels", "list", check=False)
    assert no_key.returncode != 0 and "sealed with another key" in no_key.stderr

    right = cli_json(wagate_env(data, WAGATE_SECRET_KEY=first), "channels", "list")
    assert [c["phone_number_id"] for c in right] == ["106540352242922"]


def _raw_secrets(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT access_token, app_secret FROM channels").fetchall()
        secrets = [v for row in rows for v in row]
        rows = conn.execute("SELECT callback_secret FROM accounts").fetchall()
    return secrets + [row[0] for row in rows if row[0] is not None]


def test_rotate_key_with_the_key_file_reseals_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = wagate_env(data)
    _add_channel(env)
    callback_secret = _callback_secret(env)
    before = cli_json(env, "secrets", "status")
    old_key = (data / "secret.key").read_text().split()[0]
    sealed_before = _raw_secrets(data / "wagate.db")

    rotated = cli(env, "secrets", "rotate-key")
    assert "resealed 3 secrets" in rotated.stdout

    after = cli_json(env, "secrets", "status")
    assert after["key_id"] != before["key_id"]
    assert (after["sealed"], after["plaintext"], after["unreadable"]) == (3, 0, 0)
    keys = (data / "secret.key").read_text().split()
    assert len(keys) == 1 and keys[0] != old_key
    assert _mode(data / "secret.key") == 0o600
    sealed_after = _raw_secrets(data / "wagate.db")
    assert set(sealed_after).isdisjoint(sealed_before)
    new_box = SecretBox(keys, source="test")
    assert {new_box.open(v) for v in sealed_after} == {ACCESS_TOKEN, APP_SECRET, callback_secret}
    with pytest.raises(Exception, match="another key"):
        SecretBox([old_key], source="old").open(sealed_after[0])


def test_rotate_key_with_the_environment_variable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old, new = new_key(), new_key()
    _add_channel(wagate_env(data, WAGATE_SECRET_KEY=old))
    both = wagate_env(data, WAGATE_SECRET_KEY=f"{new},{old}")
    assert (
        "now set WAGATE_SECRET_KEY to the first key alone"
        in cli(both, "secrets", "rotate-key").stdout
    )
    only_new = wagate_env(data, WAGATE_SECRET_KEY=new)
    status = cli_json(only_new, "secrets", "status")
    assert (status["sealed"], status["unreadable"]) == (2, 0)
    assert cli(wagate_env(data, WAGATE_SECRET_KEY=old), "channels", "list", check=False).returncode


def test_migration_0007_seals_plaintext_rows_and_its_downgrade_opens_them(
    database_url: str,
) -> None:
    engine = make_sync_engine(database_url)
    box = SecretBox([new_key()], source="test")
    try:
        config = _alembic_config(engine, box)
        command.upgrade(config, "0006")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (id, name, api_rate, created_at, callback_url, "
                    "callback_secret) VALUES ('acc_1', 'old', 1000, '2026-01-01 00:00:00', "
                    "'http://127.0.0.1:9/', 'whsec_plain')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO channels (id, account_id, phone_number_id, waba_id, "
                    "access_token, app_secret, verify_token, graph_url, mps, is_default, "
                    "is_sandbox, created_at) VALUES ('ch_1', 'acc_1', '1', '2', 'EAAG-plain', "
                    "'secret-plain', 'v', 'https://graph.facebook.com', 80, true, false, "
                    "'2026-01-01 00:00:00')"
                )
            )
        migrate(database_url, secret_box=box)

        def stored() -> list[str]:
            with engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT c.access_token, c.app_secret, a.callback_secret FROM channels c "
                        "JOIN accounts a ON a.id = c.account_id"
                    )
                ).one()
            return list(row)

        sealed = stored()
        assert all(v.startswith(PREFIX) for v in sealed)
        assert [box.open(v) for v in sealed] == ["EAAG-plain", "secret-plain", "whsec_plain"]
        command.downgrade(config, "0006")
        assert stored() == ["EAAG-plain", "secret-plain", "whsec_plain"]
    finally:
        engine.dispose()


def test_sealing_twice_gives_different_ciphertexts_that_open_alike() -> None:
    box = SecretBox([new_key()], source="test")
    one, two = box.seal("s"), box.seal("s")
    assert one != two and box.open(one) == box.open(two) == "s"
    assert box.open("legacy-plaintext") == "legacy-plaintext"


def test_processes_starting_together_on_a_new_folder_agree_on_one_key(tmp_path: Path) -> None:
    """An api and a worker started at once on a new data folder: one key file, one key."""
    import subprocess
    import sys

    env = wagate_env(tmp_path / "data")
    code = (
        "from wagate import secret_box; from wagate.config import Settings; "
        "print(secret_box.load(Settings()).keys[0])"
    )
    started = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    keys = {p.communicate(timeout=120)[0].strip() for p in started}
    assert len(keys) == 1
    assert (tmp_path / "data" / "secret.key").read_text().split() == list(keys)
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".secret-")]
