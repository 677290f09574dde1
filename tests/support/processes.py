"""Real processes for end-to-end tests: `wagate` subprocesses and a sandbox on a loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wagate_env(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a `wagate` child; its egress policy lets it reach the loopback peers
    tests run (a stand-alone sandbox, callback receivers) unless `extra` says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
    env["WAGATE_DATA_DIR"] = str(data_dir)
    # The sandbox's statuses as fast as before they were paced for people to watch.
    env["WAGATE_SANDBOX_STATUS_DELAY"] = "0.5"
    env["WAGATE_EGRESS_ALLOW"] = "127.0.0.0/8,::1/128"
    if database_url:
        env["WAGATE_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "wagate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"wagate {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def cli_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(cli(env, *args, "--json").stdout)


class ServerProcess:
    """`wagate serve` (or `api`/`worker`) as a child process, waited on until it answers."""

    def __init__(
        self,
        env: dict[str, str],
        port: int,
        command: str = "serve",
        *,
        extra_args: tuple[str, ...] = (),
        health_path: str = "/healthz",
        program: tuple[str, ...] = (sys.executable, "-m", "wagate"),
        cwd: Path | None = None,
        separate_stderr: bool = False,
    ) -> None:
        """`program` runs wagate (e.g. the `wagate` script itself); `separate_stderr` keeps the
        log (stderr) apart from what is printed for people (stdout): see `errors()`."""
        self.env = env
        self.port = port
        self.command = command
        self.extra_args = extra_args
        self.health_path = health_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        name = command.replace(" ", "-")
        self.log_path = Path(env["WAGATE_DATA_DIR"]) / f"{name}-{port}.log"
        self.program = program
        self.cwd = cwd
        self.stderr_path = self.log_path.with_suffix(".err") if separate_stderr else None

    def start(self, timeout: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        errors = self.stderr_path.open("ab") if self.stderr_path else subprocess.STDOUT
        args = [*self.program, *self.command.split(), *self.extra_args]
        if self.command != "worker":
            args += ["--port", str(self.port)]
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=errors, cwd=self.cwd)
        if self.command == "worker":
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.health_path, timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing; what was committed is all there is."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def errors(self) -> str:
        """What the server wrote to stderr (its log), when kept apart from stdout."""
        assert self.stderr_path is not None, "start it with separate_stderr=True"
        return self.stderr_path.read_text(errors="replace")


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int) -> Iterator[str]:
    """Run an ASGI app with uvicorn on 127.0.0.1:port in a background thread."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
