"""CPU per delivered message, from its POST to its `read`: the gateway's processes only, with the
stand-alone sandbox's CPU (and PostgreSQL's) shown apart.

    .venv/bin/python benchmarks/bench_cpu.py [--messages 20000] [--databases sqlite,postgresql]
        [--mps 1000] [--pg postgresql://postgres@127.0.0.1:5432] [--keep]
    .venv/bin/python benchmarks/bench_cpu.py --quick      # 2,000 messages

SQLite: `wagate serve` (the API and the dispatcher in one process, its own sandbox off) with a
channel on the stand-alone sandbox. PostgreSQL: `wagate api` and one `wagate worker`. The
customers' windows are opened first (20 messages per customer, under Meta's pair burst); then
wrk POSTs N messages (128 connections) while they are delivered, and the run ends when every
message is `read` in the database. A process's CPU is its user + system time from the first
POST to the last `read`, divided by the messages.

Target: at most 0.5 ms of the gateway's CPU per message.
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

from common import (
    HOST,
    Proc,
    bench_channel,
    cpu_seconds,
    free_port,
    machine,
    open_windows,
    phones,
    post_messages,
    postgres_cpu_seconds,
    query,
    require_wrk,
    running,
    scalar,
    sqlite_path,
    standalone_sandbox,
    table,
    verdict,
    wagate,
    wagate_env,
    workdir,
)

PHONE_NUMBER_ID = "100000000000044"
WABA_ID = "200000000000044"
TARGET_MS = 0.5
PER_PHONE = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true", help="2,000 messages")
    parser.add_argument("--mps", type=int, default=1000, help="the channel's messages/s")
    parser.add_argument("--connections", type=int, default=128, help="wrk connections")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    args = parser.parse_args()
    n = 2000 if args.quick else args.messages
    require_wrk()
    print(f"machine: {machine()}")
    rows = []
    for database in args.databases.split(","):
        print(f"\n{database}: {n:,} messages")
        with workdir(args.keep) as data_dir:
            if database == "sqlite":
                rows.append(run(args, data_dir, None, n))
                continue
            admin = args.pg.rstrip("/") + "/postgres"
            name = f"wagate_bench_{secrets.token_hex(4)}"
            query(admin, f'CREATE DATABASE "{name}"')
            try:
                rows.append(run(args, data_dir, f"{args.pg.rstrip('/')}/{name}", n))
            finally:
                query(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    table(
        f"bench_cpu: CPU per message from POST to read, channel at {args.mps}/s",
        rows,
        (
            "database",
            "gateway processes",
            "messages",
            "POST -> last read",
            "gateway ms/msg",
            "by process",
            "sandbox ms/msg",
            "PostgreSQL ms/msg",
            f"<= {TARGET_MS} ms",
        ),
    )


def run(args: argparse.Namespace, data_dir: Path, url: str | None, n: int) -> tuple[str, ...]:
    env = wagate_env(data_dir, url, WAGATE_SANDBOX="off")
    db: Path | str = url or sqlite_path(data_dir)
    port, sandbox_port = free_port(), free_port()
    base, sandbox_url = f"http://{HOST}:{port}", f"http://{HOST}:{sandbox_port}"
    token, access_token, app_secret = bench_channel(
        env, PHONE_NUMBER_ID, WABA_ID, sandbox_url, args.mps
    )
    sandbox = standalone_sandbox(
        sandbox_port,
        {
            "phone_number_id": PHONE_NUMBER_ID,
            "waba_id": WABA_ID,
            "display_phone_number": "15550000044",
            "access_token": access_token,
            "app_secret": app_secret,
            "webhook_url": base + "/webhooks/whatsapp",
            "record_sends": False,
        },
        data_dir,
    )
    gateway: dict[str, Proc] = {}
    if url is None:
        gateway["serve"] = wagate("serve", env, port)
    else:
        gateway["api"] = wagate("api", env, port)
    with running(sandbox, *gateway.values()):
        sandbox.wait_http(sandbox_url + "/")
        next(iter(gateway.values())).wait_http(base + "/healthz")
        if url is not None:
            gateway["worker"] = wagate("worker", env)
        with running(*gateway.values()):
            numbers = phones(max(20, -(-n // PER_PHONE)))
            open_windows(sandbox_url, numbers, access_token=access_token)
            time.sleep(1.0)  # the windows' webhooks and callbacks settle before measuring
            procs = {**gateway, "sandbox": sandbox}
            cpu0 = {name: cpu_seconds(p.pid) for name, p in procs.items()}
            pg0 = postgres_cpu_seconds() if url else 0.0
            started = time.monotonic()
            post_messages(
                base,
                token,
                numbers,
                n,
                data_dir,
                stored=lambda: scalar(db, "SELECT count(*) FROM messages"),
                connections=args.connections,
            )
            stored = int(scalar(db, "SELECT count(*) FROM messages"))
            deadline = time.monotonic() + 120 + 3 * stored / (0.96 * args.mps)
            read = 0
            while time.monotonic() < deadline:
                read = int(scalar(db, "SELECT count(*) FROM messages WHERE status = 'read'"))
                if read >= stored:
                    break
                time.sleep(0.5)
            took = time.monotonic() - started
            cpu = {name: cpu_seconds(p.pid) - cpu0[name] for name, p in procs.items()}
            pg = postgres_cpu_seconds() - pg0 if url else 0.0
    per = 1000 / max(read, 1)
    own = sum(seconds for name, seconds in cpu.items() if name != "sandbox") * per
    print(f"  {read:,} of {stored:,} read in {took:.1f} s; gateway {own:.2f} ms/msg")
    return (
        "SQLite" if url is None else "PostgreSQL",
        " + ".join(gateway),
        f"{read:,} of {stored:,} read",
        f"{took:.1f} s",
        f"{own:.2f}",
        ", ".join(f"{name} {cpu[name] * per:.2f}" for name in gateway),
        f"{cpu['sandbox'] * per:.2f}",
        f"{pg * per:.2f}" if url else "-",
        verdict(own <= TARGET_MS and read >= stored),
    )


if __name__ == "__main__":
    main()
