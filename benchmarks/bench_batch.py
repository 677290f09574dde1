"""Accepting through the batch endpoint: how many messages a second a default `wagate serve`
stores when they come 1,000 to a `POST /v1/messages/batch`, next to single `POST /v1/messages`
in the same run.

    .venv/bin/python benchmarks/bench_batch.py [--duration 20] [--quick] [--connections 8]
        [--size 1000] [--phones 200]

Setup as `bench_accept.py`: SQLite (synchronous=FULL) in a fresh data folder, the dispatcher
running and the embedded sandbox on. Messages per second are counted in the database (rows
stored during the run), and checked against the 207 answers. Target: >= 20,000 messages/s
through the batch endpoint with 8 connections. `--profile DIR` samples the server with py-spy
while it takes each kind of request and prints where its time went (take the figures from a
run without it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import profiling
from common import (
    HOST,
    batch_script,
    cpu_seconds,
    free_port,
    machine,
    open_windows,
    phones,
    query,
    require_wrk,
    run_wrk,
    running,
    sandbox_token,
    scalar,
    send_script,
    sqlite_path,
    table,
    verdict,
    wagate,
    wagate_env,
    wait_token,
    workdir,
)

TARGET = 20_000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="5 s per measurement")
    parser.add_argument("--connections", type=int, default=8, help="batch requests in flight")
    parser.add_argument("--size", type=int, default=1000, help="messages per batch request")
    parser.add_argument("--phones", type=int, default=200, help="customers (open windows)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--profile", type=Path, help="py-spy the server; stacks go here")
    args = parser.parse_args()
    if args.profile is not None:
        profiling.require_py_spy()
        args.profile.mkdir(parents=True, exist_ok=True)
    duration = 5.0 if args.quick else args.duration
    require_wrk()
    print(f"machine: {machine()}")

    rows = []
    with workdir(args.keep) as data_dir:
        port = free_port()
        base = f"http://{HOST}:{port}"
        server = wagate("serve", wagate_env(data_dir, WAGATE_SANDBOX="on"), port)
        with running(server):
            server.wait_http(base + "/healthz")
            token = wait_token(server)
            db = sqlite_path(data_dir)
            query(db, "UPDATE accounts SET api_rate = 0")
            numbers = phones(args.phones)
            opened = open_windows(base + "/sandbox", numbers, access_token=sandbox_token(data_dir))
            print(f"opened {opened} customer windows; {duration:.0f} s per measurement")
            batch = batch_script(data_dir, token, numbers, args.size)
            single = send_script(data_dir, token, numbers)
            run_wrk(base, duration=min(3.0, duration), connections=args.connections, script=batch)
            for label, script, connections in (
                (f"batch of {args.size}", batch, args.connections),
                ("single", single, args.connections),
                ("single", single, 128),
            ):
                before = scalar(db, "SELECT count(*) FROM messages")
                cpu_before, started = cpu_seconds(server.pid), time.monotonic()
                tag = f"batch-{label.split()[0]}-{connections}"
                with profiling.sampled([server], args.profile, tag, ready="") as spies:
                    result = run_wrk(
                        base, duration=duration, connections=connections, script=script
                    )
                elapsed = time.monotonic() - started
                cpu = (cpu_seconds(server.pid) - cpu_before) / elapsed
                for spy in spies:
                    profiling.report(spy)
                stored = scalar(db, "SELECT count(*) FROM messages") - before
                ok = result.by_status.get(207 if script is batch else 202, 0)
                others = {s: n for s, n in result.by_status.items() if s not in (202, 207)}
                rate = stored / result.seconds if result.seconds else 0.0
                rows.append(
                    (
                        f"{label}, {connections} connections",
                        f"{rate:,.0f}",
                        f"{result.rps:,.1f}",
                        f"{result.p50_ms:.1f} / {result.p99_ms:.1f}",
                        f"{cpu:.0%}",
                        f"answers {ok}, other {others or 'none'}",
                    )
                )
                print(f"  {rows[-1][0]}: {rate:,.0f} msg/s")
    table(
        f"bench_batch: {duration:.0f} s each, {args.phones} recipients",
        rows,
        ("what", "messages/s", "requests/s", "p50 / p99 ms", "server CPU", "notes"),
    )
    batch_rate = float(rows[0][1].replace(",", ""))
    table(
        "target",
        [(f">= {TARGET:,.0f} msg/s in batches", rows[0][1], verdict(batch_rate >= TARGET))],
        ("target", "measured", "result"),
    )


if __name__ == "__main__":
    main()
