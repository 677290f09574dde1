"""Every example in README.md runs, in order, against a real `wagate serve` started as the
README starts it (`.venv/bin/wagate serve`, from a folder that holds `.venv`, with `wagate` not
on the PATH), on a free port with its own data folder. Shell blocks share one shell's exported
variables; only placeholders are replaced (see tests/support/readme.py, which also says how to
mark a block that cannot run). A block that is neither run nor marked fails the test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import ServerProcess, free_port, wagate_env
from tests.support.readme import (
    Block,
    Placeholders,
    blocks,
    json_documents,
    matches,
    refusals,
    write_files,
)

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
FOUND = blocks(README.read_text())
BLOCK_TIMEOUT = 90
# What a newcomer's shell has: no virtualenv on the PATH until they activate it.
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class Project:
    folder: Path
    env: dict[str, str]
    server: ServerProcess
    placeholders: Placeholders
    state: Path  # the shell's exported variables, carried from block to block
    last_output: str = ""


def _token(server: ServerProcess) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"token \(shown once\): (wg_\S+)", server.output())
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no token printed:\n{server.output()}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    folder = tmp_path_factory.mktemp("readme")
    _fake_venv(folder / ".venv")
    write_files(FOUND, folder)
    env = wagate_env(folder / "wagate-data") | {"PATH": BARE_PATH, "COLUMNS": "120"}
    del env["WAGATE_DATA_DIR"]  # the default, ./wagate-data, as for a newcomer
    server = ServerProcess(
        env | {"WAGATE_DATA_DIR": str(folder / "wagate-data")},
        free_port(),
        program=(".venv/bin/wagate",),
        cwd=folder,
    )
    server.env = env
    server.start()
    state = folder / ".readme-shell-state"
    state.write_text(f"export PATH={BARE_PATH}\n")
    try:
        yield Project(folder, env, server, Placeholders(server.url, _token(server)), state)
    finally:
        server.stop()


def _fake_venv(venv: Path) -> None:
    """The folder looks like a checkout after the README's first command: `.venv/bin` holds
    `wagate`, `python` and an `activate` script. Links to this test run's own interpreter and
    script, in a folder of their own, so that no example can change the real virtualenv."""
    bin_dir = venv / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "wagate").symlink_to(Path(sys.executable).parent / "wagate")
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "activate").write_text(
        f'export VIRTUAL_ENV="{venv}"\nexport PATH="$VIRTUAL_ENV/bin:$PATH"\n'
    )


def _run(project: Project, block: Block) -> subprocess.CompletedProcess[str]:
    text = project.placeholders.fill(block.text)
    if block.action == "run-python":
        return subprocess.run(
            [sys.executable, "-c", text],
            cwd=project.folder,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
    # `set -e` stops at a failing command, but not inside `a && b`: the block's own status (its
    # last command's) is kept and returned too.
    script = (
        f"set -eo pipefail\nsource {project.state}\n{text}\nstatus=$?\n"
        f"declare -px | grep -v -E '^declare -[a-z]*r' > {project.state}\nexit $status\n"
    )
    return subprocess.run(
        ["bash", "-c", script],
        cwd=project.folder,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )


def test_every_block_is_run_or_marked() -> None:
    problems = [
        f"{b.name}: add `<!-- readme-test: skip (why) -->`, `file NAME` or `answer` above it"
        for b in FOUND
        if b.action == "unmarked" or b.action.startswith("unknown")
    ]
    problems += [
        f"{b.name}: say why it is skipped" for b in FOUND if b.action == "skip" and not b.argument
    ]
    problems += [f"{b.name}: name the file" for b in FOUND if b.action == "file" and not b.argument]
    assert problems == []
    assert [b for b in FOUND if b.action.startswith("run")], "no example is run"


@pytest.mark.parametrize("block", FOUND, ids=[b.name for b in FOUND])
def test_readme_example(project: Project, block: Block) -> None:
    if block.action == "skip":
        pytest.skip(block.argument)
    if block.action == "file":
        assert (project.folder / block.argument).read_text() == block.text
        return
    if block.action == "answer":
        shown = next(json_documents(block.text))
        printed = list(json_documents(project.last_output))
        assert any(matches(shown, value) for value in printed), (
            f"{block.name} shows an answer the block before it does not print:\n"
            f"{project.last_output}"
        )
        return
    assert block.action.startswith("run-"), f"{block.name} is not marked: see the module doc"
    result = _run(project, block)
    log = project.server.output()[-3000:]
    said = f"{block.name}:\n{result.stdout}\n{result.stderr}\nserver output:\n{log}"
    assert result.returncode == 0, said
    assert refusals(result.stdout) == [], f"an example got an error answer: {said}"
    project.last_output = result.stdout
    project.placeholders.learn(result.stdout)


def test_the_readme_server_lived_through_every_example(project: Project) -> None:
    assert project.server.proc is not None and project.server.proc.poll() is None
    assert os.path.exists(project.folder / "wagate-data" / "server.json")
