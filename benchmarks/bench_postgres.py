"""PostgreSQL mode: `wagate api` plus one `wagate worker`, then plus two, delivering to a
stand-alone sandbox; the delivery throughput of each.

    .venv/bin/python benchmarks/bench_postgres.py [--messages 20000] [--quick]
        [--pg postgresql://postgres@127.0.0.1:5432] [--redis-url redis://127.0.0.1:6379/14]

The script creates a fresh database (`wagate_bench_<random>`) and drops it at the end. For each
phase it queues N messages through the API with no worker running, then starts the workers and
times the drain: from the first to the last send the sandbox answered, and until the outbox is
empty. The channel is paced at 1,000/s for the workers together: through Redis with
`--redis-url`, through PostgreSQL without it.

`--profile DIR` samples each worker with py-spy (`pip install py-spy`; attaching needs the right
to ptrace the worker, e.g. root) for the whole drain, writes the raw stacks to DIR and prints
where each worker's time went: the functions most often on top of the stack, and the share of
samples in each library (SQLAlchemy, psycopg, the HTTP client, asyncio, wagate itself).
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

import profiling
from common import (
    HOST,
    Proc,
    bench_channel,
    cpu_seconds,
    free_port,
    machine,
    machine_cpu_seconds,
    open_windows,
    phones,
    post_messages,
    postgres_cpu_seconds,
    query,
    require_wrk,
    running,
    sandbox_sends,
    scalar,
    standalone_sandbox,
    table,
    wagate,
    wagate_env,
    workdir,
)

PHONE_NUMBER_ID = "100000000000088"
WABA_ID = "200000000000088"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="per phase")
    parser.add_argument("--quick", action="store_true", help="3,000 messages per phase")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", help="share the workers' pacing through Redis")
    parser.add_argument("--mps", type=int, default=1000, help="the channel's messages/s")
    parser.add_argument("--connections", type=int, default=128, help="wrk connections")
    parser.add_argument(
        "--per-phone",
        type=int,
        default=5,
        help="messages per recipient (one is in flight per recipient at a time; keep it under "
        "Meta's pair-rate burst of 45)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--profile", type=Path, help="py-spy each worker; stacks go here")
    args = parser.parse_args()
    if args.profile is not None:
        profiling.require_py_spy()
        args.profile.mkdir(parents=True, exist_ok=True)
    n = 3000 if args.quick else args.messages
    require_wrk()
    print(f"machine: {machine()}")
    admin = args.pg.rstrip("/") + "/postgres"
    try:
        version = scalar(admin, "SHOW server_version")
    except Exception as exc:
        raise SystemExit(f"PostgreSQL is not reachable at {admin}: {exc}") from None
    name = f"wagate_bench_{secrets.token_hex(4)}"
    database = f"{args.pg.rstrip('/')}/{name}"
    query(admin, f'CREATE DATABASE "{name}"')
    print(f"PostgreSQL {version}: created {name}")
    try:
        results = run(args, n, database)
    finally:
        query(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"dropped {name}")
    table(
        f"bench_postgres: {n:,} messages per phase, channel at {args.mps}/s"
        + (", pacing shared in Redis" if args.redis_url else ", pacing per worker"),
        results,
        (
            "setup",
            "queued at (API)",
            "delivered (sandbox, first->last)",
            "until outbox empty",
            "CPU (of one core): api / workers / sandbox / PostgreSQL",
            "machine busy (all cores)",
        ),
    )


def run(args: argparse.Namespace, n: int, database: str) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    with workdir(args.keep) as data_dir:
        extra = {"WAGATE_REDIS_URL": args.redis_url} if args.redis_url else {}
        env = wagate_env(data_dir, database, WAGATE_SANDBOX="off", **extra)
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
                "display_phone_number": "15550000088",
                "access_token": access_token,
                "app_secret": app_secret,
                "webhook_url": base + "/webhooks/whatsapp",
            },
            data_dir,
        )
        api = wagate("api", env, port)
        with running(sandbox, api):
            sandbox.wait_http(sandbox_url + "/")
            api.wait_http(base + "/healthz")
            per_phase = max(20, -(-n // args.per_phone))
            for phase, workers in enumerate((1, 2)):
                numbers = phones(per_phase, start=phase * 100 * per_phase)
                opening = time.monotonic()
                open_windows(sandbox_url, numbers, access_token=access_token)
                print(f"{len(numbers):,} windows opened in {time.monotonic() - opening:.1f} s")
                rows.append(
                    measure(env, base, token, numbers, n, workers, api, sandbox, sandbox_url, args)
                )
    return rows


def measure(
    env: dict[str, str],
    base: str,
    token: str,
    numbers: list[str],
    n: int,
    workers: int,
    api: Proc,
    sandbox: Proc,
    sandbox_url: str,
    args: argparse.Namespace,
) -> tuple[str, ...]:
    database = env["WAGATE_DATABASE_URL"]
    print(f"queueing {n:,} messages for {workers} worker(s)")
    _, post_seconds = post_messages(
        base,
        token,
        numbers,
        n,
        Path(env["WAGATE_DATA_DIR"]),
        stored=lambda: scalar(database, "SELECT count(*) FROM outbox"),
        connections=args.connections,
    )
    queued = scalar(database, "SELECT count(*) FROM outbox")
    already = len(sandbox_sends(sandbox_url))
    procs = [wagate("worker", env) for _ in range(workers)]
    with running(*procs), profiling.sampled(procs, args.profile, f"{workers}-workers") as spies:
        cpu0 = {p.pid: cpu_seconds(p.pid) for p in (api, sandbox, *procs)}
        pg0, (busy0, all0) = postgres_cpu_seconds(), machine_cpu_seconds()
        started = time.monotonic()
        deadline = started + 120 + 5 * queued / args.mps
        left = queued
        while time.monotonic() < deadline:
            left = scalar(database, "SELECT count(*) FROM outbox")
            if left == 0:
                break
            if not all(p.alive() for p in procs):
                raise RuntimeError("a worker exited:\n" + procs[0].output()[-3000:])
            time.sleep(0.25)
        drained = time.monotonic() - started
        cpu = {pid: (cpu_seconds(pid) - c) / drained for pid, c in cpu0.items()}
        pg_cpu = (postgres_cpu_seconds() - pg0) / drained
        busy1, all1 = machine_cpu_seconds()
        machine_busy = (busy1 - busy0) / max(0.001, all1 - all0)
    for spy in spies:
        profiling.report(spy)
    sends = sandbox_sends(sandbox_url)[already:]
    ok = sorted(t for t, status, _ in sends if status == 200)
    errors = len(sends) - len(ok)
    span = ok[-1] - ok[0] if len(ok) > 1 else 0.0
    rate = (len(ok) - 1) / span if span else 0.0
    worker_cpu = " + ".join(f"{cpu[p.pid]:.0%}" for p in procs)
    print(f"  {len(ok):,} sent at {rate:,.0f}/s; outbox {left} left after {drained:.1f} s")
    return (
        f"api + {workers} worker{'s' if workers > 1 else ''}",
        f"{queued / post_seconds:,.0f}/s",
        f"{rate:,.0f}/s ({len(ok):,} in {span:.1f} s, {errors} errors)",
        f"{drained:.1f} s" + ("" if left == 0 else f" ({left} LEFT)"),
        f"{cpu[api.pid]:.0%} / {worker_cpu} / {cpu[sandbox.pid]:.0%} / {pg_cpu:.0%}",
        f"{machine_busy:.0%}",
    )


if __name__ == "__main__":
    main()
