"""Where the CLI looks for its server (`--server`, `WAGATE_URL`, the data folder's record, the
default), and how hints name the CLI so that they can be pasted as printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wagate.cli_server import command_name
from wagate.server_address import find_server, forget_server, read_record, record_server

DEFAULT = "http://127.0.0.1:8000"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_flag_then_the_environment_then_the_record_then_the_default(tmp_path: Path) -> None:
    record_server(
        tmp_path, url="http://127.0.0.1:18301", public_url="https://x.test", command="api"
    )
    env = {"WAGATE_URL": "http://env.test:1/"}
    assert find_server("http://flag.test:2/", data_dir=tmp_path, environ=env).url == (
        "http://flag.test:2"
    )
    from_env = find_server(None, data_dir=tmp_path, environ=env)
    assert (from_env.url, from_env.source) == ("http://env.test:1", "WAGATE_URL")
    recorded = find_server(None, data_dir=tmp_path, environ={})
    assert recorded.url == "http://127.0.0.1:18301"
    assert f"pid {os.getpid()}" in recorded.source and "wagate api" in recorded.source
    assert recorded.webhook_url == "https://x.test/webhooks/whatsapp"
    nothing = find_server(None, data_dir=tmp_path / "empty", environ={}, default_url=DEFAULT)
    assert nothing.url == DEFAULT and nothing.source.startswith("the default address")
    assert nothing.note is None


def test_a_record_left_by_a_killed_server_is_ignored_with_a_note(tmp_path: Path) -> None:
    record_server(tmp_path, url="http://127.0.0.1:18301", public_url="", command="serve")
    path = tmp_path / "server.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data | {"pid": _dead_pid()}))
    found = find_server(None, data_dir=tmp_path, environ={}, default_url=DEFAULT)
    assert found.url == DEFAULT
    assert found.note is not None and "no longer running" in found.note


def test_a_record_is_written_whole_and_removed_only_by_its_server(tmp_path: Path) -> None:
    record_server(tmp_path, url="http://127.0.0.1:1/", public_url="", command="serve")
    assert [p.name for p in tmp_path.iterdir()] == ["server.json"]  # no temporary file left
    record = read_record(tmp_path)
    assert record is not None and record.url == "http://127.0.0.1:1"
    path = tmp_path / "server.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"pid": os.getpid() + 1}))
    forget_server(tmp_path)  # another server's record now: left alone
    assert path.exists()
    record_server(tmp_path, url="http://127.0.0.1:1", public_url="", command="serve")
    forget_server(tmp_path)
    assert not path.exists()
    path.write_text("{half a rec")
    assert read_record(tmp_path) is None


@pytest.fixture
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "project" / ".venv" / "bin" / "wagate"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path / "project")
    monkeypatch.setattr(sys, "argv", [str(script), "serve"])
    return script


def test_hints_use_the_scripts_path_when_wagate_is_not_on_the_path(
    venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name() == ".venv/bin/wagate"


def test_hints_say_wagate_when_the_shell_finds_this_very_program(
    venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{venv.parent}:/usr/bin:/bin")
    assert command_name() == "wagate"


def test_hints_keep_the_path_when_another_wagate_is_on_the_path(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere" / "wagate"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{other.parent}:/usr/bin:/bin")
    assert command_name() == ".venv/bin/wagate"


def test_hints_for_python_dash_m(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/wagate/__main__.py", "serve"])
    monkeypatch.chdir(tmp_path)
    assert command_name() == f"{sys.executable} -m wagate"
