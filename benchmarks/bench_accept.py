"""Accept rate: how many `POST /v1/messages` a default `wagate serve` stores and answers 202 a
second, with p50/p99 latency, next to the same server's bare `GET /healthz` and the load
generator's own ceiling.

    .venv/bin/python benchmarks/bench_accept.py [--duration 30] [--quick] [--connections 32]

Default setup: SQLite (synchronous=FULL) in a fresh data folder, the dispatcher running and the
embedded sandbox on. Targets: >= 3,000 accepted messages/s and >= half the /healthz rate.
"""

from __future__ import annotations

import argparse
import time

from common import (
    HOST,
    cpu_seconds,
    free_port,
    generator_ceiling,
    machine,
    open_windows,
    phones,
    query,
    require_wrk,
    run_wrk,
    running,
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

TARGET_RATE = 3000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="10 s per measurement")
    parser.add_argument("--connections", type=int, default=128, help="wrk keep-alive connections")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also measure POST at 32 and 512 connections (group commit needs concurrency)",
    )
    parser.add_argument("--phones", type=int, default=200, help="customers (open windows)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    duration = 10.0 if args.quick else args.duration
    require_wrk()

    print(f"machine: {machine()}")
    ceiling = generator_ceiling(duration, args.connections)
    print(f"load generator ceiling (wrk vs a static server): {ceiling.rps:,.0f} req/s")

    with workdir(args.keep) as data_dir:
        port = free_port()
        base = f"http://{HOST}:{port}"
        server = wagate("serve", wagate_env(data_dir, WAGATE_SANDBOX="on"), port)
        with running(server):
            server.wait_http(base + "/healthz")
            token = wait_token(server)
            db = sqlite_path(data_dir)
            # No per-account API limit: this measures the server, not the 1,000/s default.
            query(db, "UPDATE accounts SET api_rate = 0")
            numbers = phones(args.phones)
            opened = open_windows(base + "/sandbox", numbers)
            print(f"opened {opened} customer windows; measuring for {duration:.0f} s each")

            script = send_script(data_dir, token, numbers)
            run_wrk(base, duration=min(3.0, duration), connections=args.connections, script=script)

            before = scalar(db, "SELECT count(*) FROM messages")
            cpu_before, wall_before = cpu_seconds(server.pid), time.monotonic()
            post = run_wrk(base, duration=duration, connections=args.connections, script=script)
            cpu = (cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - wall_before)
            stored = scalar(db, "SELECT count(*) FROM messages") - before
            accepted = post.by_status.get(202, 0)
            healthz = run_wrk(base + "/healthz", duration=duration, connections=args.connections)
            sweep = []
            for connections in (32, 512) if args.sweep else ():
                result = run_wrk(base, duration=duration, connections=connections, script=script)
                sweep.append((connections, result))
            queued = scalar(db, "SELECT count(*) FROM outbox")

    rate = accepted / post.seconds if post.seconds else 0.0
    others = {s: n for s, n in sorted(post.by_status.items()) if s != 202}
    rows = [
        (
            "wrk -> static server (generator ceiling)",
            f"{ceiling.rps:,.0f}",
            f"{ceiling.p50_ms:.2f}",
            f"{ceiling.p99_ms:.2f}",
            "",
        ),
        (
            "GET /healthz (bare endpoint)",
            f"{healthz.rps:,.0f}",
            f"{healthz.p50_ms:.2f}",
            f"{healthz.p99_ms:.2f}",
            f"non-2xx {healthz.non_2xx}",
        ),
        (
            "POST /v1/messages (202 accepted)",
            f"{rate:,.0f}",
            f"{post.p50_ms:.2f}",
            f"{post.p99_ms:.2f}",
            f"202s {accepted}, stored {stored}, other {others or 'none'}, "
            f"socket errors {post.socket_errors}, server CPU {cpu:.0%}",
        ),
    ]
    for connections, result in sweep:
        rows.append(
            (
                f"POST /v1/messages, {connections} connections",
                f"{result.by_status.get(202, 0) / result.seconds:,.0f}",
                f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}",
                f"other {({s: n for s, n in result.by_status.items() if s != 202}) or 'none'}",
            )
        )
    table(
        f"bench_accept: {duration:.0f} s per row, {args.connections} connections, "
        f"{args.phones} recipients",
        rows,
        ("what", "req/s", "p50 ms", "p99 ms", "notes"),
    )
    half = healthz.rps / 2
    table(
        "targets",
        [
            (f">= {TARGET_RATE:,.0f} accepted msg/s", f"{rate:,.0f}", verdict(rate >= TARGET_RATE)),
            (f">= half of /healthz ({half:,.0f})", f"{rate:,.0f}", verdict(rate >= half)),
        ],
        ("target", "measured", "result"),
    )
    print(f"(outbox left with {queued} messages: the dispatcher sends at the channel's 80/s)")


if __name__ == "__main__":
    main()
