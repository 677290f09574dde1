"""The SQLite database's disk fills up: sends are answered 503 `service_unavailable` with nothing
half-written (every message stored has its event, outbox row and lane; none that was refused is
there), and sending works again once there is room, nothing accepted lost.

Run on a small tmpfs mounted for the test when the machine allows it (root); otherwise the file
system's limit is played by SQLite's `max_page_count` (the same SQLITE_FULL), and the test says
which it used."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from tests.support.harness import Harness, running_gateway

CUSTOMER = "+14155552671"


@contextlib.contextmanager
def small_file_system(path: Path, megabytes: int) -> Iterator[bool]:
    """A tmpfs of `megabytes` at `path` if this machine lets us mount one (yields True), else
    just the folder (False)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(path)],
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Write a file until the file system is full."""
    filler = path / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as f:
        while True:
            try:
                f.write(chunk)
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


async def counts(gateway: Harness) -> dict[str, Any]:
    async with gateway.engine.connect() as conn:

        async def one(sql: str) -> Any:
            return (await conn.execute(text(sql))).scalar_one()

        return {
            "messages": await one("SELECT count(*) FROM messages"),
            "queued events": await one(
                "SELECT count(*) FROM message_events WHERE status = 'queued'"
            ),
            "outbox": await one("SELECT count(*) FROM outbox"),
            "without a lane": await one(
                "SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM outbox_lanes l"
                " WHERE l.channel_id = o.channel_id AND l.phone = o.phone)"
            ),
            "integrity": await one("PRAGMA integrity_check"),
        }


async def test_a_full_disk_refuses_sends_cleanly_and_recovers(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    with small_file_system(root, megabytes=6) as mounted:
        url = f"sqlite+aiosqlite:///{root / 'wagate.db'}"
        async with running_gateway(url, root / "data", run_dispatcher=False) as gateway:
            await gateway.reply(CUSTOMER, text="hi")
            accepted: list[str] = []
            first = await gateway.send(phone=CUSTOMER, message="before")
            assert first.status_code == 202, first.text
            accepted.append(first.json()["id"])

            simulated: Any = None
            if mounted:
                filler = fill(root)
            else:
                async with gateway.engine.connect() as conn:
                    pages = (await conn.execute(text("PRAGMA page_count"))).scalar_one()

                def limit(dbapi_connection: Any, _record: Any) -> None:
                    dbapi_connection.cursor().execute(f"PRAGMA max_page_count = {pages + 2}")

                simulated = limit
                event.listen(gateway.engine.sync_engine, "connect", limit)
                await gateway.engine.dispose()  # every connection from now on has the limit
            print(f"\ndisk full: {'a 6 MB tmpfs' if mounted else 'SQLite max_page_count'}")

            refused = None
            for n in range(2000):
                answer = await gateway.send(phone=CUSTOMER, message=f"while full {n} " + "x" * 900)
                if answer.status_code == 202:
                    accepted.append(answer.json()["id"])
                    continue
                refused = answer
                break
            assert refused is not None, "the disk never filled"
            print(f"{len(accepted)} accepted before the first refusal")
            assert refused.status_code == 503, refused.text
            body = refused.json()
            assert body["success"] is False
            assert body["error"]["code"] == "service_unavailable"

            state = await counts(gateway)
            assert state == {
                "messages": len(accepted),
                "queued events": len(accepted),
                "outbox": len(accepted),
                "without a lane": 0,
                "integrity": "ok",
            }

            # Room again: sends are taken, and everything accepted goes out.
            if mounted:
                filler.unlink()
            else:
                event.remove(gateway.engine.sync_engine, "connect", simulated)
                await gateway.engine.dispose()
            after = await gateway.send(phone=CUSTOMER, message="after")
            assert after.status_code == 202, after.text
            accepted.append(after.json()["id"])
            await gateway.dispatcher.drain()
            for message_id in accepted:
                assert (await gateway.message(message_id))["status"] != "queued"
            assert (await counts(gateway))["outbox"] == 0
