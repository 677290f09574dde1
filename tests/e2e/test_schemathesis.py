"""schemathesis over `/openapi.json` with every check (`--checks all`), against a real
`wagate serve` on loopback: the description and the server agree on every operation (the
webhook endpoints included), status and answer. Bounded in examples (a few hundred requests)
and seeded, so that a run is repeatable; set WAGATE_SCHEMATHESIS_SEED to explore with another
seed, WAGATE_SCHEMATHESIS_EXAMPLES for more examples. What a schema cannot express is in
tests/support/schemathesis.toml, with why."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import ServerProcess, free_port, wagate_env

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).resolve().parents[1] / "support" / "schemathesis.toml"


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
        "schemathesis"
    )
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    return found


def test_the_api_matches_its_description(tmp_path: Path) -> None:
    program = _schemathesis()
    server = ServerProcess(wagate_env(tmp_path / "data"), free_port())
    server.start()
    try:
        deadline = time.monotonic() + 20
        token = None
        while token is None and time.monotonic() < deadline:
            found = re.search(r"token \(shown once\): (wg_\S+)", server.output())
            token = found.group(1) if found else None
            time.sleep(0.1)
        assert token, server.output()
        command = [program, "--config-file", str(CONFIG), "run", f"{server.url}/openapi.json"]
        command += ["--checks", "all", "--header", f"Authorization: Bearer {token}"]
        command += ["--max-examples", os.environ.get("WAGATE_SCHEMATHESIS_EXAMPLES", "25")]
        command += ["--seed", os.environ.get("WAGATE_SCHEMATHESIS_SEED", "20261206")]
        command += ["--no-color"]
        run = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=os.environ | {"SCHEMATHESIS_HOOKS": ""},
        )
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-15000:] + run.stderr[-3000:]
    assert re.search(r"\d+ generated, \d+ passed", run.stdout), run.stdout[-3000:]
