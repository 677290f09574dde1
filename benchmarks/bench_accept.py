"""Accept rate and latency: how many `POST /v1/messages` a default `wagate serve` stores and answers
202 a second, with p50/p99 latency, each next to the same server's bare `GET /healthz` at the
same number of connections, measured right after it.

    .venv/bin/python benchmarks/bench_accept.py [--duration 20] [--quick] [--connections 128]
        [--sweep] [--database sqlite|postgresql|both] [--pg postgresql://postgres@127.0.0.1:5432]
        [--layout serve|serve+sandbox|api+worker] [--rounds 1] [--floor]

Default setup: SQLite (synchronous=FULL) in a fresh data folder, the dispatcher running and the
embedded sandbox on (a channel at 80/s, so the backlog grows while the dispatcher sends);
`--database postgresql` runs the same `wagate serve` on a fresh PostgreSQL database (dropped at
the end). `--sweep` measures 1, 4, 16, 64, 128 and 512 connections. `--layout` says where the
work other than accepting runs: `serve` (the default: one process, the sandbox inside it),
`serve+sandbox` (the sandbox in a process of its own, as Meta is in production: the server
still sends and takes the status webhooks) or `api+worker` (`wagate api` takes the POSTs and the
webhooks, one `wagate worker` sends; the sandbox on its own); the server's CPU is the process
that answers the POSTs. `--profile DIR` samples the
server with py-spy while it accepts at each level (`pip install py-spy`) and prints where its
time went (the sampling costs the server a little CPU: take the figures from a run without it).
`--floor` also measures, after /healthz at each level, an ASGI app that does nothing under the
same uvicorn in its own process: the latency any endpoint stands on, and the tail this machine
gives even that (its p99 / p50 is printed beside each p99 target).

Targets (SQLite): >= 3,000 accepted messages/s and >= half the /healthz rate at 128 connections;
with `--sweep` also p50 <= 0.8 ms at 1 connection, >= 0.6 x /healthz at 16, >= 0.7 x at 128, and
p99 <= 4 x p50 at every level. PostgreSQL is reported against the same lines.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import profiling
from common import (
    HOST,
    Proc,
    WrkResult,
    bench_channel,
    cpu_seconds,
    empty_asgi_server,
    free_port,
    generator_ceiling,
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
    standalone_sandbox,
    table,
    verdict,
    wagate,
    wagate_env,
    wait_token,
    workdir,
)

TARGET_RATE = 3000.0
SWEEP = (1, 4, 16, 64, 128, 512)
RATIO_TARGETS = {16: 0.6, 128: 0.7}
LONE_P50_MS = 0.8
P99_OVER_P50 = 4.0
LAYOUTS = ("serve", "serve+sandbox", "api+worker")
PHONE_NUMBER_ID = "100000000000045"
WABA_ID = "200000000000045"
CHANNEL_MPS = 80  # as the embedded sandbox's channel


@dataclass
class Level:
    connections: int
    post: WrkResult
    bare: WrkResult
    server_cpu: float  # share of one core while POSTing
    floor: WrkResult | None = None  # the empty ASGI app (--floor)

    @property
    def accepted_rate(self) -> float:
        return self.post.by_status.get(202, 0) / self.post.seconds if self.post.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.accepted_rate / self.bare.rps if self.bare.rps else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="5 s per measurement")
    parser.add_argument("--connections", type=int, default=128, help="wrk keep-alive connections")
    parser.add_argument("--sweep", action="store_true", help=f"measure at {SWEEP} connections")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--phones", type=int, default=200, help="customers (open windows)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--profile", type=Path, help="py-spy the server; stacks go here")
    parser.add_argument("--layout", choices=LAYOUTS, default="serve", help="see above")
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate POSTs and /healthz this many times"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also measure an empty ASGI app at each level"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.profile is not None:
        profiling.require_py_spy()
        args.profile.mkdir(parents=True, exist_ok=True)
    duration = 5.0 if args.quick else args.duration
    levels = SWEEP if args.sweep else (args.connections,)
    require_wrk()

    print(f"machine: {machine()}")
    ceiling = generator_ceiling(duration, max(levels))
    print(f"load generator ceiling (wrk vs a static server): {ceiling.rps:,.0f} req/s")
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    for kind in kinds:
        if kind == "sqlite":
            results = measure(args, None, levels, duration)
        else:
            results = on_fresh_postgres(args, levels, duration)
        report(kind, results, duration, args)


def on_fresh_postgres(
    args: argparse.Namespace, levels: tuple[int, ...], duration: float
) -> list[Level]:
    admin = args.pg.rstrip("/") + "/postgres"
    name = f"wagate_bench_{secrets.token_hex(4)}"
    query(admin, f'CREATE DATABASE "{name}"')
    try:
        return measure(args, f"{args.pg.rstrip('/')}/{name}", levels, duration)
    finally:
        query(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(
    args: argparse.Namespace, database_url: str | None, levels: tuple[int, ...], duration: float
) -> list[Level]:
    with workdir(args.keep) as data_dir:
        port = free_port()
        base = f"http://{HOST}:{port}"
        db: Path | str = database_url or sqlite_path(data_dir)
        numbers = phones(args.phones)
        if args.layout == "serve":
            server = wagate("serve", wagate_env(data_dir, database_url, WAGATE_SANDBOX="on"), port)
            others: list[Proc] = []
        else:
            env = wagate_env(data_dir, database_url, WAGATE_SANDBOX="off")
            sandbox_port = free_port()
            sandbox_url = f"http://{HOST}:{sandbox_port}"
            channel_token, access_token, app_secret = bench_channel(
                env, PHONE_NUMBER_ID, WABA_ID, sandbox_url, CHANNEL_MPS
            )
            sandbox = standalone_sandbox(
                sandbox_port,
                {
                    "phone_number_id": PHONE_NUMBER_ID,
                    "waba_id": WABA_ID,
                    "display_phone_number": "15550000045",
                    "access_token": access_token,
                    "app_secret": app_secret,
                    "webhook_url": base + "/webhooks/whatsapp",
                    "record_sends": False,
                },
                data_dir,
            )
            server = wagate("api" if args.layout == "api+worker" else "serve", env, port)
            others = [sandbox]
        floor_port = free_port()
        floor_url = f"http://{HOST}:{floor_port}/"
        if args.floor:
            others.append(empty_asgi_server(floor_port, data_dir))
        with running(server, *others), contextlib.ExitStack() as later:
            server.wait_http(base + "/healthz")
            if args.floor:
                others[-1].wait_http(floor_url)
            if args.layout == "api+worker":
                later.enter_context(running(wagate("worker", env)))
            if args.layout == "serve":
                token = wait_token(server)
                # No per-account API limit: this measures the server, not the 1,000/s default.
                query(db, "UPDATE accounts SET api_rate = 0")
                opened = open_windows(
                    base + "/sandbox", numbers, access_token=sandbox_token(data_dir)
                )
            else:
                token = channel_token
                opened = open_windows(sandbox_url, numbers, access_token=access_token)
            print(f"opened {opened} customer windows; {duration:.0f} s per measurement")

            script = send_script(data_dir, token, numbers)
            run_wrk(base, duration=min(3.0, duration), connections=16, script=script)
            results = []
            kind = "postgresql" if database_url else "sqlite"
            slice_seconds = duration / args.rounds
            for connections in levels:
                posts, bares, floors, cpu_spent, post_wall = [], [], [], 0.0, 0.0
                for round_no in range(args.rounds):
                    before = scalar(db, "SELECT count(*) FROM messages")
                    cpu_before, wall_before = cpu_seconds(server.pid), time.monotonic()
                    tag = f"accept-{kind}-{connections}"
                    if args.rounds > 1:
                        tag += f"-round{round_no + 1}"
                    with profiling.sampled([server], args.profile, tag, ready="") as spies:
                        post = run_wrk(
                            base, duration=slice_seconds, connections=connections, script=script
                        )
                    cpu_spent += cpu_seconds(server.pid) - cpu_before
                    post_wall += time.monotonic() - wall_before
                    for spy in spies:
                        profiling.report(spy)
                    stored = scalar(db, "SELECT count(*) FROM messages") - before
                    if stored < post.by_status.get(202, 0):
                        raise SystemExit(f"{post.by_status.get(202)} answered 202, {stored} stored")
                    bare = run_wrk(
                        base + "/healthz", duration=slice_seconds, connections=connections
                    )
                    posts.append(post)
                    bares.append(bare)
                    if args.floor:
                        floors.append(
                            run_wrk(floor_url, duration=slice_seconds, connections=connections)
                        )
                    if args.rounds > 1:
                        print(
                            f"    {connections} connections, round {round_no + 1}: "
                            f"{post.by_status.get(202, 0) / max(post.seconds, 1e-9):,.0f} msg/s "
                            f"(p50 {post.p50_ms:.2f} / p99 {post.p99_ms:.2f} ms), /healthz "
                            f"{bare.rps:,.0f} req/s"
                        )
                level = Level(
                    connections,
                    combined(posts),
                    combined(bares),
                    cpu_spent / post_wall,
                    combined(floors) if floors else None,
                )
                results.append(level)
                print(f"  {connections} connections: {level.accepted_rate:,.0f} msg/s")
    return results


def combined(runs: list[WrkResult]) -> WrkResult:
    """One result from `--rounds` runs of wrk at the same level: counts and seconds added up,
    the median of the rounds' p50 and p90, and the highest of their p99 (the tail target is
    judged on the worst round)."""
    if len(runs) == 1:
        return runs[0]
    by_status: dict[int, int] = {}
    for run in runs:
        for status, count in run.by_status.items():
            by_status[status] = by_status.get(status, 0) + count
    requests, seconds = sum(r.requests for r in runs), sum(r.seconds for r in runs)
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p90_ms=statistics.median(r.p90_ms for r in runs),
        p99_ms=max(r.p99_ms for r in runs),
        non_2xx=sum(r.non_2xx for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        by_status=by_status,
        output="\n".join(r.output for r in runs),
    )


def report(kind: str, results: list[Level], duration: float, args: argparse.Namespace) -> None:
    rows = []
    for level in results:
        others = {s: n for s, n in sorted(level.post.by_status.items()) if s != 202}
        rows.append(
            (
                str(level.connections),
                f"{level.accepted_rate:,.0f}",
                f"{level.post.p50_ms:.2f} / {level.post.p99_ms:.2f}",
                f"{level.bare.rps:,.0f}",
                f"{level.bare.p50_ms:.2f} / {level.bare.p99_ms:.2f}",
                f"{level.ratio:.2f}",
                f"{level.server_cpu:.0%}",
                *(
                    [f"{level.floor.rps:,.0f}, {level.floor.p50_ms:.2f} / {level.floor.p99_ms:.2f}"]
                    if level.floor
                    else []
                ),
                f"{others or 'none'}, socket errors {level.post.socket_errors}",
            )
        )
    table(
        f"bench_accept ({kind}, {args.layout}): POST /v1/messages (202s) next to GET /healthz, "
        f"{duration:.0f} s each"
        + (f" in {args.rounds} alternating rounds" if args.rounds > 1 else "")
        + f", {args.phones} recipients",
        rows,
        (
            "connections",
            "accepted/s",
            "p50 / p99 ms",
            "/healthz req/s",
            "p50 / p99 ms",
            "ratio",
            "server CPU",
            *(["empty ASGI app req/s, p50 / p99 ms"] if args.floor else []),
            "other answers",
        ),
    )
    by_level = {level.connections: level for level in results}
    checks = []
    main_level = by_level.get(128 if args.sweep else args.connections)
    if main_level is not None:
        level = main_level
        half = level.bare.rps / 2
        checks += [
            (
                f">= {TARGET_RATE:,.0f} msg/s at {level.connections}",
                level.accepted_rate,
                TARGET_RATE,
            ),
            (
                f">= half of /healthz ({half:,.0f}) at {level.connections}",
                level.accepted_rate,
                half,
            ),
        ]
    rows = [(name, f"{value:,.0f}", verdict(value >= goal)) for name, value, goal in checks]
    if 1 in by_level:
        p50 = by_level[1].post.p50_ms
        rows.append((f"p50 <= {LONE_P50_MS} ms at 1", f"{p50:.2f} ms", verdict(p50 <= LONE_P50_MS)))
    for connections, goal in RATIO_TARGETS.items():
        if connections in by_level and args.sweep:
            ratio = by_level[connections].ratio
            rows.append(
                (f">= {goal} x /healthz at {connections}", f"{ratio:.2f}", verdict(ratio >= goal))
            )
    for level in results:
        spread = level.post.p99_ms / level.post.p50_ms if level.post.p50_ms else float("inf")
        floor = level.floor
        beside = (
            f" (empty app {floor.p99_ms / floor.p50_ms:.1f} x)" if floor and floor.p50_ms else ""
        )
        rows.append(
            (
                f"p99 <= {P99_OVER_P50:.0f} x p50 at {level.connections}",
                f"{spread:.1f} x{beside}",
                verdict(spread <= P99_OVER_P50),
            )
        )
    table(f"targets ({kind})", rows, ("target", "measured", "result"))


if __name__ == "__main__":
    main()
