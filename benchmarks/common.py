"""Shared helpers for the benchmarks: wagate processes, a stand-alone sandbox, the `wrk` load
generator, a static reference server, database peeks and result tables.

Everything binds 127.0.0.1, every loop is bounded in count and time, and every child process is
stopped by its own pid when the benchmark ends.

Also runnable, for the child processes the benchmarks start:

    python benchmarks/common.py static-server PORT
    python benchmarks/common.py sandbox CONFIG_JSON
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# The benchmark decides these; any other WAGATE_* setting of the caller's is passed on to the
# servers, to try a knob (e.g. WAGATE_DISPATCH_CONCURRENCY=256, WAGATE_SQLITE_SYNCHRONOUS=NORMAL).
_OWN_SETTINGS = {"WAGATE_DATA_DIR", "WAGATE_DATABASE_URL", "WAGATE_HOST", "WAGATE_PORT"}
_OWN_SETTINGS |= {"WAGATE_PUBLIC_URL", "WAGATE_URL"}


def passed_settings() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k.startswith("WAGATE_") and k not in _OWN_SETTINGS
    }


def wagate_env(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a wagate child: ours, plus the caller's WAGATE_* settings other than
    where to keep data and listen (which the benchmark decides); `extra` wins over both."""
    env = {k: v for k, v in os.environ.items() if k not in _OWN_SETTINGS}
    env["WAGATE_DATA_DIR"] = str(data_dir)
    env["WAGATE_HOST"] = HOST
    # Statuses 0.5 s apart, as the results so far were measured (the default is paced for
    # people watching the dashboard's ticks).
    env.setdefault("WAGATE_SANDBOX_STATUS_DELAY", "0.5")
    # The stand-alone sandbox the servers send to listens on loopback, which the egress policy
    # refuses unless allowed.
    env.setdefault("WAGATE_EGRESS_ALLOW", "127.0.0.0/8,::1/128")
    if database_url:
        env["WAGATE_DATABASE_URL"] = database_url
    env.update(extra)
    return env


class Proc:
    """A child process with its output in a log file, stopped by its pid."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.args[2:4]} exited:\n{self.output()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer in {timeout:.0f} s:\n{self.output()[-4000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wagate(command: str, env: dict[str, str], port: int | None = None) -> Proc:
    """`python -m wagate serve|api|worker` (started; call `wait_http` for serve and api)."""
    args = [PYTHON, "-m", "wagate", command]
    if port is not None:
        args += ["--port", str(port)]
    name = f"{command}-{port}" if port else f"{command}-{time.monotonic_ns()}"
    return Proc(args, env, Path(env["WAGATE_DATA_DIR"]) / f"{name}.log").start()


def find_token(text: str) -> str | None:
    match = re.search(r"\bwg_[A-Za-z0-9_\-]{16,}", text)
    return match.group(0) if match else None


def wait_token(proc: Proc, timeout: float = 30.0) -> str:
    """The sandbox API token `wagate serve` prints on its first start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        token = find_token(proc.output())
        if token:
            return token
        if not proc.alive():
            break
        time.sleep(0.1)
    raise RuntimeError(f"no wg_ token in the server's output:\n{proc.output()[-4000:]}")


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "-m", "wagate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wagate {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def cli_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(cli(env, *args, "--json"))


def bench_channel(
    env: dict[str, str], phone_number_id: str, waba_id: str, sandbox_url: str, mps: int
) -> tuple[str, str, str]:
    """A `bench` account (no API rate limit) with a channel on the stand-alone sandbox at
    `sandbox_url`; returns its API token and the channel's access token and app secret."""
    access_token, app_secret = secrets.token_urlsafe(24), secrets.token_hex(16)
    cli_json(env, "accounts", "create", "--name", "bench", "--api-rate", "0")
    cli_json(
        env,
        *("channels", "add", "--account", "bench"),
        *("--phone-number-id", phone_number_id, "--waba-id", waba_id),
        *("--access-token", access_token, "--app-secret", app_secret),
        *("--verify-token", "bench-verify", "--graph-url", sandbox_url + "/graph"),
        *("--mps", str(mps)),
    )
    token: str = cli_json(env, "tokens", "create", "--account", "bench")["token"]
    return token, access_token, app_secret


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (psutil when installed, else /proc)."""
    try:
        import psutil

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        pass
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (from /proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def user_cpu_seconds(user: str) -> float:
    """CPU seconds used so far by the live processes of one user (e.g. postgres's backends)."""
    import pwd

    uid = pwd.getpwnam(user).pw_uid
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    total += cpu_seconds(int(entry))
    return total


def postgres_cpu_seconds() -> float:
    """CPU seconds the local PostgreSQL server has used so far (0 when it is not on this
    machine): every live process of the `postgres` user, plus what the server's finished
    backends used (a parent is charged its reaped children's time), so that connections closing
    between two readings do not make the difference negative."""
    import pwd

    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return 0.0
    hz = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / hz  # utime + stime
            parent = int(fields[1])
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{parent}").st_uid == uid:
                    continue  # a backend: its parent counts it once it is reaped
            total += (int(fields[13]) + int(fields[14])) / hz  # the server: reaped children
    return total


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="wagate-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    """Stop the given processes (in reverse order) however the block ends."""
    try:
        yield
    finally:
        for proc in reversed(procs):
            proc.stop()


# ------------------------------------------------------------------------------ customers


def phones(n: int, start: int = 0) -> list[str]:
    """`n` distinct valid (libphonenumber) US numbers."""
    import phonenumbers

    out: list[str] = []
    candidate = start
    while len(out) < n and candidate < start + 100 * n + 1000:
        number = f"+1415{2000000 + candidate:07d}"
        candidate += 1
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            out.append(number)
    if len(out) < n:
        raise RuntimeError("could not make enough valid phone numbers")
    return out


def sandbox_token(data_dir: Path) -> str:
    """The access token of the sandbox `wagate serve` embeds (its own routes take it)."""
    token: str = json.loads((data_dir / "sandbox.json").read_text())["access_token"]
    return token


def open_windows(
    sandbox_url: str,
    numbers: Sequence[str],
    timeout: float = 300.0,
    parallel: int = 8,
    *,
    access_token: str,
) -> int:
    """The customers write to the business (POST {sandbox}/customer/reply, with the sandbox's
    access token), opening their 24-hour windows; returns how many the gateway took."""
    from concurrent.futures import ThreadPoolExecutor

    deadline = time.monotonic() + timeout

    def reply(client: httpx.Client, phone: str) -> bool:
        if time.monotonic() > deadline:
            raise RuntimeError(f"opening windows took over {timeout:.0f} s")
        response = client.post("/customer/reply", json={"phone": phone, "text": "hi"})
        response.raise_for_status()
        return bool(response.json().get("delivered"))

    limits = httpx.Limits(max_connections=parallel)
    with (
        httpx.Client(
            base_url=sandbox_url,
            timeout=30,
            limits=limits,
            headers={"Authorization": f"Bearer {access_token}"},
        ) as client,
        ThreadPoolExecutor(parallel) as pool,
    ):
        return sum(pool.map(lambda phone: reply(client, phone), numbers))


# ------------------------------------------------------------------------------ databases


def sqlite_path(data_dir: Path) -> Path:
    return data_dir / "wagate.db"


def query(database: Path | str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the SQLite file or PostgreSQL URL; rows (if any)."""
    if isinstance(database, Path):
        conn = sqlite3.connect(database, timeout=30)
        try:
            rows = conn.execute(sql, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(database, autocommit=True) as pg:
        cursor = pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def scalar(database: Path | str, sql: str, params: Sequence[Any] = ()) -> Any:
    rows = query(database, sql, params)
    return rows[0][0] if rows else None


def to_epoch(value: Any) -> float:
    """A naive-UTC timestamp from our tables (datetime or SQLite text) as epoch seconds."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC).timestamp()


# ------------------------------------------------------------------------------ wrk


WRK_INSTALL = "apt-get install -y wrk"
STALL_SECONDS = 5.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        print(
            "This benchmark drives the server with `wrk` (a cheap C load generator), which is "
            f"not installed.\nInstall it with:  {WRK_INSTALL}   (Debian/Ubuntu, as root)",
            file=sys.stderr,
        )
        sys.exit(2)
    return path


@dataclass
class WrkResult:
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p99_ms: float = float("nan")
    non_2xx: int = 0
    socket_errors: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    output: str = ""


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not match:
        return float("nan")
    number, unit = float(match.group(1)), match.group(2)
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> WrkResult:
    result = WrkResult(output=output)
    if m := re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output):
        result.requests = int(m.group(1))
        result.seconds = _ms(m.group(2) + m.group(3)) / 1000
    if m := re.search(r"Requests/sec:\s+([\d.]+)", output):
        result.rps = float(m.group(1))
    for pct, attr in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE):
            setattr(result, attr, _ms(m.group(1)))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        result.non_2xx = int(m.group(1))
    if m := re.search(r"Socket errors: (.*)", output):
        result.socket_errors = sum(int(x) for x in re.findall(r"\d+", m.group(1)))
    for status, count in re.findall(r"^BENCH status (\d+) (\d+)$", output, re.MULTILINE):
        result.by_status[int(status)] = result.by_status.get(int(status), 0) + int(count)
    return result


def _wrk_args(
    url: str, duration: float, connections: int, threads: int, script: Path | None
) -> list[str]:
    args = [
        require_wrk(),
        f"-t{threads}",
        f"-c{max(connections, threads)}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    if script is not None:
        args += ["-s", str(script)]
    return [*args, url]


def run_wrk(
    url: str,
    *,
    duration: float,
    connections: int = 32,
    threads: int = 1,
    script: Path | None = None,
) -> WrkResult:
    """wrk for `duration` seconds (one thread by default: the machine has few cores and the
    server needs them)."""
    args = _wrk_args(url, duration, connections, threads, script)
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=duration + 60, check=False, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


class WrkRun:
    """wrk in the background (for a fixed number of requests: stop it with `finish`)."""

    def __init__(
        self, url: str, *, max_seconds: float, connections: int, threads: int, script: Path
    ) -> None:
        self.out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by finish)
        self.proc = subprocess.Popen(
            _wrk_args(url, max_seconds, connections, threads, script),
            stdout=self.out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self) -> WrkResult:
        """SIGINT (wrk then prints its summary), wait, parse."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        return parse_wrk(text)


def send_script(
    directory: Path,
    token: str,
    numbers: Sequence[str],
    *,
    limit_per_thread: int | None = None,
    tag: str = "bench",
) -> Path:
    """A wrk Lua script that POSTs /v1/messages round-robin over `numbers`, counts answers by
    status (printed as `BENCH status <code> <n>` lines) and, with `limit_per_thread`, sends no
    more than that many messages per wrk thread (then one GET /healthz a second per connection
    until it is stopped)."""
    for value in (token, *numbers, tag):
        if not re.fullmatch(r"[A-Za-z0-9_+\-]+", value):
            raise ValueError(f"unsafe value for the Lua script: {value!r}")
    phone_list = ", ".join(f'"{p}"' for p in numbers)
    cap = "nil" if limit_per_thread is None else str(limit_per_thread)
    lua = textwrap.dedent(
        f"""
        -- generated by benchmarks/common.py
        local threads = {{}}
        local counter = 0
        function setup(thread)
          counter = counter + 1
          thread:set("tid", counter)
          table.insert(threads, thread)
        end
        function init(args)
          phones = {{{phone_list}}}
          cap = {cap}
          sent = 0
          statuses = {{}}
          post_headers = {{
            ["Content-Type"] = "application/json",
            ["Authorization"] = "Bearer {token}",
          }}
        end
        function delay()
          if cap ~= nil and sent >= cap then
            return 1000
          end
          return 0
        end
        function request()
          if cap ~= nil and sent >= cap then
            -- Done: idle (a slow /healthz per connection) until stopped, so that the answers
            -- to the last POSTs are still counted.
            return wrk.format("GET", "/healthz")
          end
          sent = sent + 1
          local phone = phones[((sent + tid * 7919) % #phones) + 1]
          local text = "{tag} " .. tid .. "-" .. sent
          local body = '{{"phone":"' .. phone .. '","message":"' .. text .. '"}}'
          return wrk.format("POST", "/v1/messages", post_headers, body)
        end
        function response(status, headers, body)
          statuses[status] = (statuses[status] or 0) + 1
        end
        function done(summary, latency, requests)
          for _, t in ipairs(threads) do
            local s = t:get("statuses")
            if s ~= nil then
              for code, n in pairs(s) do
                io.write(string.format("BENCH status %d %d\\n", code, n))
              end
            end
          end
        end
        """
    )
    path = directory / f"send-{tag}-{time.monotonic_ns()}.lua"
    path.write_text(lua)
    return path


def batch_script(
    directory: Path, token: str, numbers: Sequence[str], size: int, tag: str = "batch"
) -> Path:
    """A wrk Lua script that POSTs /v1/messages/batch with `size` messages spread over
    `numbers` (the same body each time: every request stores `size` new messages) and prints
    `BENCH status <code> <n>` lines like `send_script`."""
    for value in (token, *numbers, tag):
        if not re.fullmatch(r"[A-Za-z0-9_+\-]+", value):
            raise ValueError(f"unsafe value for the Lua script: {value!r}")
    items = [{"phone": numbers[i % len(numbers)], "message": f"{tag} {i}"} for i in range(size)]
    body = json.dumps({"messages": items}, separators=(",", ":"))
    lua = textwrap.dedent(
        f"""
        -- generated by benchmarks/common.py
        local threads = {{}}
        function setup(thread)
          table.insert(threads, thread)
        end
        function init(args)
          statuses = {{}}
          request_text = wrk.format("POST", "/v1/messages/batch", {{
            ["Content-Type"] = "application/json",
            ["Authorization"] = "Bearer {token}",
          }}, [[{body}]])
        end
        function request()
          return request_text
        end
        function response(status, headers, body)
          statuses[status] = (statuses[status] or 0) + 1
        end
        function done(summary, latency, requests)
          for _, t in ipairs(threads) do
            local s = t:get("statuses")
            if s ~= nil then
              for code, n in pairs(s) do
                io.write(string.format("BENCH status %d %d\\n", code, n))
              end
            end
          end
        end
        """
    )
    path = directory / f"batch-{tag}-{time.monotonic_ns()}.lua"
    path.write_text(lua)
    return path


def post_messages(
    base_url: str,
    token: str,
    numbers: Sequence[str],
    count: int,
    scratch: Path,
    *,
    stored: Callable[[], int],
    connections: int = 32,
    threads: int = 1,
    max_seconds: float | None = None,
    tag: str = "bench",
) -> tuple[WrkResult, float]:
    """POST at least `count` messages with wrk, as fast as the server takes them: wrk is stopped
    once `stored()` (how many of them the server has stored so far) reaches `count`, so a few
    more (those in flight) may be stored. Returns wrk's result and the seconds until `count`
    were stored.

    (wrk may call a script's request() and drop its result when a write would block, so a
    count kept in Lua is not exact; the script's cap only bounds the overshoot.)"""
    cap = -(-int(count * 1.05 + connections) // threads)
    script = send_script(scratch, token, numbers, limit_per_thread=cap, tag=tag)
    limit = max_seconds if max_seconds is not None else 60 + count / 100
    started = time.monotonic()
    run = WrkRun(
        base_url, max_seconds=limit, connections=connections, threads=threads, script=script
    )
    last, last_change = -1, started
    try:
        while run.running() and time.monotonic() - started < limit + 5:
            now_stored = stored()
            if now_stored >= count:
                break
            if now_stored != last:
                last, last_change = now_stored, time.monotonic()
            elif now_stored > 0 and time.monotonic() - last_change > STALL_SECONDS:
                print(f"  (stopped posting: {now_stored} stored, none for {STALL_SECONDS} s)")
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - started
    finally:
        result = run.finish()
    # Requests wrk had in flight when stopped are still being stored: wait until it settles.
    settle_until = time.monotonic() + 10
    previous = stored()
    while time.monotonic() < settle_until:
        time.sleep(0.3)
        current = stored()
        if current == previous:
            break
        previous = current
    return result, elapsed


# ------------------------------------------------------------------------------ references


def static_server(port: int) -> Proc:
    """A minimal keep-alive HTTP server answering every GET with a fixed 200 (uvloop when
    available): the load generator's ceiling on this machine is at least its rate."""
    args = [PYTHON, str(Path(__file__).resolve()), "static-server", str(port)]
    log = Path(tempfile.gettempdir()) / f"wagate-bench-static-{port}.log"
    return Proc(args, dict(os.environ), log).start()


def generator_ceiling(duration: float, connections: int) -> WrkResult:
    """wrk against the static server, with the same settings as the measurement."""
    port = free_port()
    server = static_server(port)
    try:
        with running(server):
            server.wait_http(f"http://{HOST}:{port}/", timeout=15)
            return run_wrk(f"http://{HOST}:{port}/", duration=duration, connections=connections)
    finally:
        server.log_path.unlink(missing_ok=True)


def _serve_static(port: int) -> None:
    import asyncio

    body = b'{"status":"ok"}'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )

    class Static(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            count = self.buffer.count(b"\r\n\r\n")
            if count:
                self.buffer = self.buffer.rsplit(b"\r\n\r\n", 1)[1]
                self.transport.write(answer * count)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Static, HOST, port, backlog=1024)
        async with server:
            await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# ------------------------------------------------------------------------------ sandbox


def empty_asgi_server(port: int, log_dir: Path) -> Proc:
    """An ASGI app that answers every request with a fixed 200 and does nothing else, under
    uvicorn as `wagate serve` runs it (its default event loop, httptools, one process): the
    floor any endpoint of ours stands on, and the tail this machine gives even that."""
    args = [PYTHON, str(Path(__file__).resolve()), "empty-asgi", str(port)]
    return Proc(args, dict(os.environ), log_dir / f"empty-asgi-{port}.log").start()


def _serve_empty_asgi(port: int) -> None:
    import uvicorn

    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json")],
    }
    body = {"type": "http.response.body", "body": b'{"status":"ok"}'}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send(start)
            await send(body)

    uvicorn.run(
        app,
        host=HOST,
        port=port,
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


def standalone_sandbox(port: int, config: dict[str, Any], log_dir: Path) -> Proc:
    """The sandbox (Meta's Cloud API simulator) on its own port, in its own process so that it
    does not take CPU from the gateway's event loop. `config` is SandboxConfig's fields.

    It also answers `GET /bench/sends`: every `POST …/messages` it answered, as
    `[epoch seconds, HTTP status, Meta error code or null]` (none with `"record_sends": false`
    in `config`)."""
    path = log_dir / f"sandbox-{port}.json"
    path.write_text(json.dumps({"port": port, **config}))
    args = [PYTHON, str(Path(__file__).resolve()), "sandbox", str(path)]
    return Proc(args, dict(os.environ), log_dir / f"sandbox-{port}.log").start()


def sandbox_sends(url: str) -> list[tuple[float, int, int | None]]:
    response = httpx.get(url + "/bench/sends", timeout=30)
    response.raise_for_status()
    return [(float(t), int(s), c) for t, s, c in response.json()]


def _serve_sandbox(config_path: str) -> None:
    import uvicorn

    from wagate.sandbox import SandboxConfig, create_sandbox_app

    raw = json.loads(Path(config_path).read_text())
    port = raw.pop("port")
    record = raw.pop("record_sends", True)  # a million sends' log would be the sandbox's memory
    if raw.get("state_path"):
        raw["state_path"] = Path(raw["state_path"])
    app = create_sandbox_app(SandboxConfig(**raw))
    sends: list[tuple[float, int, int | None]] = []

    async def recorder(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/sends":
            body = json.dumps(sends).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/messages")
        ):
            await app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 0, "body": b""}

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["at"] = time.time()
            elif message["type"] == "http.response.body" and seen["status"] != 200:
                seen["body"] += message.get("body", b"")
            await send(message)

        await app(scope, receive, watch)
        code = None
        if seen["status"] != 200:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                code = json.loads(seen["body"])["error"]["code"]
        if record:
            sends.append((seen.get("at", time.time()), seen["status"], code))

    uvicorn.run(
        recorder, host=HOST, port=port, log_level="warning", access_log=False, lifespan="on"
    )


# ------------------------------------------------------------------------------ reporting


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> str:
    model = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    settings = " ".join(f"{k}={v}" for k, v in sorted(passed_settings().items()))
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        + (f"\nsettings passed to the servers: {settings}" if settings else "")
    )


def table(title: str, rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(f"\n{title}\n")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    print()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "static-server":
        _serve_static(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "empty-asgi":
        _serve_empty_asgi(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "sandbox":
        _serve_sandbox(sys.argv[2])
    else:
        sys.exit(f"usage: {sys.argv[0]} static-server PORT | empty-asgi PORT | sandbox CONFIG_JSON")
