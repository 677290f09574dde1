"""What the CLI prints for people: help without type tags or broken sentences, `migrate`
saying what it did, token ids never cut short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.processes import cli, cli_json, wagate_env

pytestmark = pytest.mark.slow


def test_help_has_no_type_tags_and_whole_sentences(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data", COLUMNS="200")
    top = cli(env, "--help").stdout
    # Wide enough for each command's summary to be one line: no break in mid-sentence.
    assert re.search(r"send-bulk +Send to every row .* are not sent twice\. *│", top), top
    assert re.search(r"serve +Run everything in one process: .* the sandbox\. *│", top), top
    for command in (["send"], ["sandbox", "run"], ["tokens", "list"], ["serve"]):
        shown = cli(env, *command, "--help").stdout
        assert not re.search(r"<(str|bool|int|float|path|list\[[a-z]+\])>", shown), shown
    send = cli(env, "send", "--help").stdout
    assert re.search(r"--phone +TEXT", send) and re.search(r"--server +URL", send)
    assert re.search(r"--json +Print JSON", send)


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data")
    first = cli(env, "migrate").stdout
    assert re.search(r"created \d\d tables \(the database is now at revision \w+\)", first), first
    again = cli(env, "migrate").stdout
    assert re.search(r"the database is up to date at revision \w+", again), again


def test_tokens_list_never_cuts_an_id(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data")
    cli_json(env, "accounts", "create", "--name", "acme")
    made = [
        cli_json(env, "tokens", "create", "--account", "acme", "--name", name)
        for name in ("backend-production-eu-west-1", "ci")
    ]
    cli(env, "tokens", "revoke", made[1]["id"])
    for columns in ("80", "120"):
        shown = cli(env | {"COLUMNS": columns}, "tokens", "list").stdout
        for token in made:
            assert token["id"] in shown, shown
    listed = cli_json(env, "tokens", "list")
    assert [t["id"] for t in listed] == [t["id"] for t in made]
    assert {t["account"] for t in listed} == {"acme"}
    assert listed[1]["revoked_at"] is not None and made[0]["token"] not in str(listed)


def test_a_bad_setting_is_named_without_a_traceback(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data", WAGATE_LOG_FORMAT="xml")
    result = cli(env, "migrate", check=False)
    assert result.returncode == 2
    assert "WAGATE_LOG_FORMAT: Input should be 'text' or 'json'" in result.stderr
    assert "Traceback" not in result.stderr
