"""Where the running server can be found (SPEC §7): `wagate serve` and `wagate api` record the
address they listen on in the data folder, and the CLI's client commands read it unless
`--server URL` or `WAGATE_URL` says otherwise.

The record is `server.json` in the data folder, written atomically (a temporary file renamed
over it) once the server is up and removed when it stops. A server killed without a chance to
remove it leaves a stale record behind: a reader on the same machine checks that its process is
still alive and ignores it otherwise. Standard library only, so that the Python client can use it
without importing the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ADDRESS_FILE = "server.json"
DEFAULT_DATA_DIR = Path("wagate-data")
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """What a running server says about itself in the data folder."""

    url: str  # how this machine reaches it
    public_url: str  # how Meta reaches it (WAGATE_PUBLIC_URL, or the same as url)
    pid: int
    hostname: str
    command: str  # "serve" or "api"
    started_at: str

    @property
    def webhook_url(self) -> str:
        return self.public_url.rstrip("/") + "/webhooks/whatsapp"

    def is_alive(self) -> bool:
        """False only when we can tell the server is gone: its process, on this machine, no
        longer exists. (On another machine sharing the folder, it cannot be checked here.)"""
        if self.hostname != socket.gethostname():
            return True
        return _process_exists(self.pid)


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def address_file(data_dir: Path) -> Path:
    return data_dir / ADDRESS_FILE


def record_server(data_dir: Path, *, url: str, public_url: str, command: str) -> ServerRecord:
    """Write this process's address into the data folder, atomically (readers never see half a
    file), and return what was written."""
    record = ServerRecord(
        url=url.rstrip("/"),
        public_url=public_url.rstrip("/"),
        pid=os.getpid(),
        hostname=socket.gethostname(),
        command=command,
        started_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".server-", suffix=".json", dir=data_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(record), handle, indent=2)
            handle.write("\n")
        os.replace(temporary, address_file(data_dir))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return record


def forget_server(data_dir: Path) -> None:
    """Remove the record at shutdown, if it is still this process's (another server started
    on the same folder since may have replaced it)."""
    record = read_record(data_dir)
    if record is not None and record.pid == os.getpid():
        with contextlib.suppress(OSError):
            address_file(data_dir).unlink()


def read_record(data_dir: Path) -> ServerRecord | None:
    """The recorded server, alive or not; None when there is no readable record."""
    try:
        data: Any = json.loads(address_file(data_dir).read_text())
        return ServerRecord(
            url=str(data["url"]),
            public_url=str(data.get("public_url") or data["url"]),
            pid=int(data["pid"]),
            hostname=str(data.get("hostname", "")),
            command=str(data.get("command", "serve")),
            started_at=str(data.get("started_at", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class Target:
    """The server a client command talks to, and where that address came from (said in every
    error, so that a user talking to the wrong server sees why)."""

    url: str
    source: str
    record: ServerRecord | None = None  # set when the address came from the data folder
    note: str | None = None  # e.g. a stale record that was ignored

    @property
    def public_url(self) -> str:
        """How Meta reaches the server: what it recorded (WAGATE_PUBLIC_URL), else `url`."""
        return self.record.public_url if self.record else self.url

    @property
    def webhook_url(self) -> str:
        return self.public_url + "/webhooks/whatsapp"


def find_server(
    explicit: str | None,
    *,
    data_dir: Path | None = None,
    environ: dict[str, str] | None = None,
    default_url: str = DEFAULT_URL,
) -> Target:
    """`explicit` (the --server flag), else WAGATE_URL, else the data folder's record of a live
    server, else `default_url` (WAGATE_HOST/WAGATE_PORT, or 127.0.0.1:8000)."""
    env = os.environ if environ is None else environ
    if explicit:
        return Target(explicit.rstrip("/"), "--server")
    if env.get("WAGATE_URL"):
        return Target(env["WAGATE_URL"].rstrip("/"), "WAGATE_URL")
    folder = data_dir if data_dir is not None else Path(env.get("WAGATE_DATA_DIR") or "wagate-data")
    where = address_file(folder)
    record = read_record(folder)
    if record is not None and record.is_alive():
        return Target(
            record.url,
            f"{where} (written by `wagate {record.command}`, pid {record.pid})",
            record,
        )
    note = None
    if record is not None:
        note = (
            f"ignored {where}: the server that wrote it (pid {record.pid}, {record.url}) is no "
            "longer running"
        )
    return Target(
        default_url.rstrip("/"),
        f"the default address (no running server recorded in {where})",
        note=note,
    )
