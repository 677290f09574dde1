"""Sampling a benchmark's processes with py-spy, and saying where their time went.

py-spy (`pip install py-spy`) attaches to a running process and records its stacks (`--format
raw`: one line per distinct stack, frames separated by `;`, then the number of samples). The
summary counts, per process, the functions most often on top of the stack (where the CPU was
spent) and the share of samples under each library (what the time was spent doing).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import Proc

# A frame's file tells its library; the first match from the top of the stack wins.
LIBRARIES = (
    ("psycopg", "psycopg (PostgreSQL driver)"),
    ("sqlalchemy", "SQLAlchemy"),
    ("aiosqlite", "aiosqlite"),
    ("httpx", "httpx"),
    ("httpcore", "httpx"),
    ("aiohttp", "aiohttp"),
    ("redis", "redis client"),
    ("wagate/dispatch/pacing", "wagate pacing"),
    ("wagate/dispatch", "wagate dispatcher"),
    ("wagate/store", "wagate store"),
    ("wagate/cloud", "wagate Cloud API client"),
    ("wagate", "wagate (other)"),
    ("asyncio", "asyncio / event loop"),
    ("uvloop", "asyncio / event loop"),
)


@dataclass
class Spy:
    name: str
    output: Path
    proc: subprocess.Popen[bytes]


def require_py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"  # in the virtualenv running us
    path = str(beside) if beside.exists() else shutil.which("py-spy")
    if path is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return path


@contextlib.contextmanager
def sampled(
    procs: Sequence[Proc], directory: Path | None, tag: str, *, ready: str = "dispatching"
) -> Iterator[list[Spy]]:
    """py-spy on each of `procs` while the block runs (nothing when `directory` is None), from
    when each has printed `ready` (start-up's imports are not what is measured)."""
    spies: list[Spy] = []
    if directory is not None:
        for n, proc in enumerate(procs):
            deadline = time.monotonic() + 60
            while ready not in proc.output() and proc.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            output = directory / f"{tag}-{n}.txt"
            command = [require_py_spy(), "record", "--pid", str(proc.pid), "--rate", "100"]
            # Not --nonblocking: reading a busy process without pausing it loses most samples of
            # its busiest thread (a server at 75 % of a core showed 35 % in its event loop).
            command += ["--format", "raw", "--output", str(output)]
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            spies.append(Spy(f"{tag} #{n} (pid {proc.pid})", output, spy))
    try:
        yield spies
    finally:
        for spy in spies:  # py-spy writes its file when interrupted
            if spy.proc.poll() is None:
                spy.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.proc.wait(timeout=30)


def summarize(raw: str, top: int = 12) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, the `top` functions on top of the stack, samples by library)."""
    leaves: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaves[frames[-1]] += n
        libraries[_library(frames)] += n
    return total, leaves.most_common(top), libraries.most_common()


def _library(frames: list[str]) -> str:
    for frame in reversed(frames):
        for needle, name in LIBRARIES:
            if needle in frame:
                return name
    return "other (interpreter, stdlib)"


def report(spy: Spy) -> None:
    if not spy.output.exists():
        print(f"  (no profile from {spy.name})")
        return
    total, leaves, libraries = summarize(spy.output.read_text())
    if not total:
        print(f"  (an empty profile from {spy.name})")
        return
    print(f"\n  where {spy.name}'s time went ({total:,} samples at 100/s; {spy.output}):")
    for name, n in libraries:
        print(f"    {n / total:6.1%}  {name}")
    print("    on top of the stack:")
    for frame, n in leaves:
        print(f"    {n / total:6.1%}  {frame[:110]}")
