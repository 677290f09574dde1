"""A campaign's drain: N messages to N different customers are queued first, then one
`wagate worker` drains them to a stand-alone sandbox; for each N and each database, the sustained
rate, the claim's p50/p99, and each process's memory and CPU.

    .venv/bin/python benchmarks/bench_drain.py [--sizes 20000,100000,1000000]
        [--databases sqlite,postgresql] [--mps 1000] [--statuses on|off]
        [--pg postgresql://postgres@127.0.0.1:5432] [--keep]
    .venv/bin/python benchmarks/bench_drain.py --quick      # 2,000, both databases

Queueing: one template message (`hello_world`, no customer window needed) is sent through the
API, then copied in the database to the other N - 1 customers, with what the accept path writes
for each (its message, its `queued` event, its outbox row and its lane): queueing a million
through HTTP would take longer than draining them. The worker serves `/metrics`, and the claim's
time comes from its `wagate_claim_seconds` histogram (quantiles interpolated within its buckets).

The sandbox answers every send and, with `--statuses on` (the default), reports sent, delivered
and read 0.5 s apart as Meta would, so the api process applies three statuses per message while
the worker drains (`off`: none during the run).

Targets: the same sustained rate at every N (within 10 %), the channel's paced rate (960/s at
1,000/s) where the CPU allows; memory under 300 MB per process and flat.
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

import httpx
from bench_memory import slope_per_minute
from common import (
    HOST,
    PYTHON,
    Proc,
    bench_channel,
    cli_json,
    cpu_seconds,
    free_port,
    machine,
    phones,
    postgres_cpu_seconds,
    query,
    rss_mb,
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

PHONE_NUMBER_ID = "100000000000055"
WABA_ID = "200000000000055"
LIMIT_MB = 300.0
CHUNK = 100_000  # messages copied per statement

# The copies of the template message `first`: the same account, channel, content and times,
# to `+1999` + eight digits. Ids sort in the order made (`msg_b` + twelve digits), as ours do.
NUMBERS = {
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT :lo UNION ALL SELECT x + 1 FROM n WHERE x < :hi)",
    "postgresql": "WITH n(x) AS"
    " (SELECT generate_series(CAST(:lo AS integer), CAST(:hi AS integer)))",
}
MESSAGE_ID = {
    "sqlite": "printf('msg_b%012d', x)",
    "postgresql": "'msg_b' || lpad(CAST(x AS text), 12, '0')",
}
PHONE = {
    "sqlite": "printf('+1999%08d', x)",
    "postgresql": "'+1999' || lpad(CAST(x AS text), 8, '0')",
}
COPIES = "id BETWEEN :first_id AND :last_id"


def copy_statements(dialect: str) -> list[str]:
    return [
        f"{NUMBERS[dialect]} INSERT INTO messages (id, account_id, channel_id, phone, type,"
        " content, reply_to, metadata, status, attempts, created_at, updated_at)"
        f" SELECT {MESSAGE_ID[dialect]}, account_id, channel_id, {PHONE[dialect]}, type, content,"
        " reply_to, metadata, status, 0, created_at, updated_at FROM messages, n"
        " WHERE id = :first",
        "INSERT INTO message_events (message_id, status, occurred_at, recorded_at)"
        f" SELECT id, 'queued', created_at, created_at FROM messages WHERE {COPIES}",
        "INSERT INTO outbox (message_id, channel_id, phone, available_at, attempts)"
        f" SELECT id, channel_id, phone, created_at, 0 FROM messages WHERE {COPIES}",
        "INSERT INTO outbox_lanes (channel_id, phone, head_id, due_at)"
        f" SELECT channel_id, phone, id, created_at FROM messages WHERE {COPIES}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,100000,1000000", help="comma-separated N")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true", help="N = 2,000 on both databases")
    parser.add_argument("--mps", type=int, default=1000, help="the channel's messages/s")
    parser.add_argument("--statuses", choices=("on", "off"), default="on")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    args = parser.parse_args()
    sizes = [2000] if args.quick else [int(s) for s in args.sizes.split(",")]
    print(f"machine: {machine()}")
    rows = []
    for database in args.databases.split(","):
        for n in sizes:
            print(f"\n{database}, {n:,} customers")
            rows.append(run(args, database, n))
    table(
        f"bench_drain: N queued to N customers, then one worker; channel at {args.mps}/s "
        f"(paced {0.96 * args.mps:,.0f}/s), statuses {args.statuses}",
        rows,
        (
            "database",
            "N",
            "queued in",
            "sustained (10-90 %)",
            "until empty",
            "claim p50 / p99",
            "peak RSS worker / api (MB/min)",
            "CPU ms/msg worker / api / sandbox / PostgreSQL",
            "< 300 MB, flat",
        ),
    )
    by_db: dict[str, list[float]] = {}
    for row in rows:
        by_db.setdefault(row[0], []).append(float(row[3].split("/")[0].replace(",", "")))
    for database, rates in by_db.items():
        spread = (max(rates) - min(rates)) / max(rates) if max(rates) else 0.0
        print(
            f"{database}: rates {', '.join(f'{r:,.0f}' for r in rates)}/s, spread {spread:.0%}"
            f" ({verdict(spread <= 0.10)}: the same rate at every N, within 10 %)"
        )


def run(args: argparse.Namespace, database: str, n: int) -> tuple[str, ...]:
    with workdir(args.keep) as data_dir:
        if database == "sqlite":
            return drain(args, data_dir, None, n)
        admin = args.pg.rstrip("/") + "/postgres"
        name = f"wagate_bench_{secrets.token_hex(4)}"
        url = f"{args.pg.rstrip('/')}/{name}"
        query(admin, f'CREATE DATABASE "{name}"')
        try:
            return drain(args, data_dir, url, n)
        finally:
            query(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drain(args: argparse.Namespace, data_dir: Path, url: str | None, n: int) -> tuple[str, ...]:
    env = wagate_env(data_dir, url, WAGATE_SANDBOX="off")
    db: Path | str = url or sqlite_path(data_dir)
    port, sandbox_port, metrics_port = free_port(), free_port(), free_port()
    base, sandbox_url = f"http://{HOST}:{port}", f"http://{HOST}:{sandbox_port}"
    token, access_token, app_secret = bench_channel(
        env, PHONE_NUMBER_ID, WABA_ID, sandbox_url, args.mps
    )
    sandbox = standalone_sandbox(
        sandbox_port,
        {
            "phone_number_id": PHONE_NUMBER_ID,
            "waba_id": WABA_ID,
            "display_phone_number": "15550000055",
            "access_token": access_token,
            "app_secret": app_secret,
            "webhook_url": base + "/webhooks/whatsapp",
            # On disk, and without the send log: a million of each would be the sandbox's
            # memory, not ours.
            "state_path": str(data_dir / "sandbox.sqlite3"),
            "record_sends": False,
            "status_delay": 0.5 if args.statuses == "on" else 86400.0,
        },
        data_dir,
    )
    api = wagate("api", env, port)
    with running(sandbox, api):
        sandbox.wait_http(sandbox_url + "/")
        api.wait_http(base + "/healthz")
        cli_json(env, "templates", "sync")
        queued_in = queue(base, token, db, n)
        print(f"  {n:,} queued in {queued_in:.1f} s")
        worker = Proc(
            [PYTHON, "-m", "wagate", "worker", "--metrics-port", str(metrics_port)],
            env,
            data_dir / "worker.log",
        ).start()
        with running(worker):
            return measure(args, db, n, worker, api, sandbox, metrics_port, queued_in)


def queue(base: str, token: str, db: Path | str, n: int) -> float:
    """Queue N messages to N customers (see the module's docstring); the seconds it took."""
    from sqlalchemy import create_engine, text

    started = time.monotonic()
    answer = httpx.post(
        base + "/v1/messages/template",
        json={"phone": phones(1)[0], "template": "hello_world", "language": "en_US"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if answer.status_code != 202:
        raise RuntimeError(f"the template message was refused: {answer.text}")
    first = answer.json()["id"]
    if isinstance(db, Path):
        engine, dialect = create_engine(f"sqlite:///{db}", connect_args={"timeout": 60}), "sqlite"
    else:
        engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://", 1))
        dialect = "postgresql"
    try:
        statements = [text(sql) for sql in copy_statements(dialect)]
        for lo in range(1, n, CHUNK):
            hi = min(n - 1, lo + CHUNK - 1)
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(
                        statement,
                        {
                            "lo": lo,
                            "hi": hi,
                            "first": first,
                            "first_id": f"msg_b{lo:012d}",
                            "last_id": f"msg_b{hi:012d}",
                        },
                    )
        if dialect == "postgresql":
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    finally:
        engine.dispose()
    stored = scalar(db, "SELECT count(*) FROM outbox")
    if stored != n:
        raise RuntimeError(f"{stored} queued, not {n}")
    return time.monotonic() - started


def claim_quantiles(metrics_url: str) -> tuple[float, float, int]:
    """p50 and p99 (seconds) of the worker's claims, from its histogram, and how many."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
        if family.name == "wagate_claim_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0

    def quantile(q: float) -> float:
        # As Prometheus's histogram_quantile: linear within the bucket that holds the rank.
        rank, lower, below = q * total, 0.0, 0.0
        for upper, count in buckets:
            if count >= rank:
                if upper == float("inf"):
                    return lower
                inside = count - below
                return lower + (upper - lower) * ((rank - below) / inside if inside else 0.0)
            lower, below = upper, count
        return float("nan")

    return quantile(0.5), quantile(0.99), int(total)


def measure(
    args: argparse.Namespace,
    db: Path | str,
    n: int,
    worker: Proc,
    api: Proc,
    sandbox: Proc,
    metrics_port: int,
    queued_in: float,
) -> tuple[str, ...]:
    metrics_url = f"http://{HOST}:{metrics_port}/metrics"
    ready_by = time.monotonic() + 60
    while "dispatching" not in worker.output():
        if not worker.alive() or time.monotonic() > ready_by:
            raise RuntimeError(f"the worker did not start:\n{worker.output()[-3000:]}")
        time.sleep(0.05)
    procs = {"worker": worker, "api": api, "sandbox": sandbox}
    cpu0 = {name: cpu_seconds(p.pid) for name, p in procs.items()}
    pg0 = postgres_cpu_seconds() if not isinstance(db, Path) else 0.0
    started = time.monotonic()
    deadline = started + 120 + 3 * n / (0.96 * args.mps)
    samples: list[tuple[float, int, float, float]] = []  # (s, outbox left, worker MB, api MB)
    last_print = 0.0
    while True:
        elapsed = time.monotonic() - started
        left = int(scalar(db, "SELECT count(*) FROM outbox"))
        samples.append((elapsed, left, rss_mb(worker.pid), rss_mb(api.pid)))
        if elapsed - last_print >= 10:
            last_print = elapsed
            print(
                f"  {elapsed:6.0f} s  {left:>9,} left  worker {samples[-1][2]:5.0f} MB"
                f"  api {samples[-1][3]:5.0f} MB"
            )
        if left == 0 or elapsed > deadline - started:
            break
        if not worker.alive():
            raise RuntimeError(f"the worker exited:\n{worker.output()[-3000:]}")
        time.sleep(1.0)
    drained = time.monotonic() - started
    cpu = {name: cpu_seconds(p.pid) - cpu0[name] for name, p in procs.items()}
    pg = postgres_cpu_seconds() - pg0 if not isinstance(db, Path) else 0.0
    p50, p99, claims = claim_quantiles(metrics_url)
    sent = n - samples[-1][1]

    def when(remaining: float) -> float:
        return next((t for t, left, _, _ in samples if left <= remaining), samples[-1][0])

    t10, t90 = when(0.9 * n), when(0.1 * n)
    rate = 0.8 * n / (t90 - t10) if t90 > t10 else sent / max(drained, 0.001)
    worker_mb = [w for _, _, w, _ in samples]
    api_mb = [a for _, _, _, a in samples]
    # The trend leaves out the first tenth of the run (pools, caches and imports warming up);
    # flat: under 10 MB (or 5 %) of growth over the rest.
    settled = [sample for sample in samples if sample[0] >= 0.1 * drained][:-1] or samples
    worker_trend = slope_per_minute([(t, w) for t, _, w, _ in settled])
    api_trend = slope_per_minute([(t, a) for t, _, _, a in settled])
    span = settled[-1][0] - settled[0][0]
    flat = all(
        abs(trend) * span / 60 < max(10.0, 0.05 * peak)
        for trend, peak in ((worker_trend, max(worker_mb)), (api_trend, max(api_mb)))
    )
    per = 1000 / max(sent, 1)
    print(f"  {sent:,} sent at {rate:,.0f}/s (10-90 %); {claims:,} claims")
    return (
        "SQLite" if isinstance(db, Path) else "PostgreSQL",
        f"{n:,}",
        f"{queued_in:.0f} s",
        f"{rate:,.0f}/s",
        f"{drained:.0f} s" + ("" if samples[-1][1] == 0 else f" ({samples[-1][1]:,} LEFT)"),
        f"{p50 * 1000:.1f} / {p99 * 1000:.1f} ms",
        f"{max(worker_mb):.0f} ({worker_trend:+.1f}) / {max(api_mb):.0f} ({api_trend:+.1f})",
        f"{cpu['worker'] * per:.2f} / {cpu['api'] * per:.2f} / {cpu['sandbox'] * per:.2f}"
        + (f" / {pg * per:.2f}" if not isinstance(db, Path) else " / -"),
        verdict(max(worker_mb + api_mb) < LIMIT_MB and flat),
    )


if __name__ == "__main__":
    main()
