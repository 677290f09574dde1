"""Retention under steady traffic: a default `wagate serve` (SQLite) takes messages at a steady
rate, with customers writing in, while every kind of row is kept only `--retention` seconds; the
database file's size and the tables' row counts are sampled as it runs. Once the first rows
are old enough to go, both must stay flat.

    .venv/bin/python benchmarks/bench_retention.py [--duration 120] [--retention 30]
        [--rate 40] [--interval 5] [--quick]

The issue asks for 30 minutes (`--duration 1800`); 1-2 minutes shows the same shape. The rate
stays under the sandbox channel's pace (80/s), so that messages are sent, read and finished
(a queued message is never deleted). Space freed by deleting is reused by SQLite for new rows
(its free-page list; no VACUUM): the table shows the file's pages and how many are free.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import httpx
from common import (
    HOST,
    cli_json,
    free_port,
    machine,
    open_windows,
    phones,
    query,
    running,
    sandbox_token,
    sqlite_path,
    static_server,
    table,
    verdict,
    wagate,
    wagate_env,
    wait_token,
    workdir,
)

TABLES = (
    "messages",
    "message_events",
    "outbox",
    "inbound_messages",
    "webhook_events",
    "callback_deliveries",
    "idempotency_keys",
)
GROWTH_ALLOWED = 0.10  # after the first prune, at most this much above the level it reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of traffic")
    parser.add_argument("--retention", type=float, default=30.0, help="seconds rows are kept")
    parser.add_argument("--rate", type=int, default=40, help="messages a second")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--phones", type=int, help="customers (default: 10 x the rate, each written to every 10 s)"
    )
    parser.add_argument("--quick", action="store_true", help="60 s, retention 15 s")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.retention = 60.0, 15.0
    print(f"machine: {machine()}")
    days = f"{args.retention / 86400:.8f}"
    settings = {
        "WAGATE_SANDBOX": "on",
        "WAGATE_RETENTION_DAYS": days,
        "WAGATE_RETENTION_WEBHOOKS_DAYS": days,
        "WAGATE_RETENTION_PARKED_DAYS": days,
        "WAGATE_RETENTION_INTERVAL": str(max(1.0, args.retention / 6)),
        # The business's callback receiver below is on this machine.
        "WAGATE_EGRESS_ALLOW": "127.0.0.0/8",
    }
    with workdir(args.keep) as data_dir:
        port, receiver_port = free_port(), free_port()
        base = f"http://{HOST}:{port}"
        env = wagate_env(data_dir, **settings)
        server = wagate("serve", env, port)
        receiver = static_server(receiver_port)  # answers every callback 200
        with running(receiver, server):
            server.wait_http(base + "/healthz")
            token = wait_token(server)
            db = sqlite_path(data_dir)
            query(db, "UPDATE accounts SET api_rate = 0")
            callback = f"http://{HOST}:{receiver_port}/events"
            cli_json(env, "accounts", "set-callback", "--account", "sandbox", "--url", callback)
            # Meta's pair rate is one message per 6 s to a customer, past a burst of 45: with
            # fewer customers than rate x 6 the dispatcher rightly holds messages back (200 at
            # 40/s: after 22 minutes the outbox grew by 6.7/s).
            numbers = phones(args.phones or 10 * args.rate)
            open_windows(base + "/sandbox", numbers, access_token=sandbox_token(data_dir))
            samples = run(base, token, db, numbers, args)
    report(samples, args)


def run(
    base: str, token: str, db: Path, numbers: list[str], args: argparse.Namespace
) -> list[dict[str, float]]:
    samples: list[dict[str, float]] = []
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    next_sample = started
    sent = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        # Customers write in all along (their messages, webhooks and windows go on), and each
        # second brings `rate` answers as one batch.
        while (now := time.monotonic()) < started + args.duration:
            second = int(now - started)
            writers = numbers[second % len(numbers) :][:5]
            open_windows(
                base + "/sandbox", writers, parallel=5, access_token=sandbox_token(db.parent)
            )
            items = [
                {"phone": numbers[(sent + i) % len(numbers)], "message": f"steady {sent + i}"}
                for i in range(args.rate)
            ]
            answer = client.post("/v1/messages/batch", json={"messages": items}, headers=headers)
            answer.raise_for_status()
            sent += json.loads(answer.content)["accepted"]
            if now >= next_sample:
                samples.append(sample(db, now - started, sent))
                print(
                    f"  t={samples[-1]['t']:5.0f} s  file {samples[-1]['file_mb']:6.2f} MB  "
                    f"messages {samples[-1]['messages']:7.0f}  free pages "
                    f"{samples[-1]['free_pages']:6.0f}"
                )
                next_sample += args.interval
            time.sleep(max(0.0, started + second + 1 - time.monotonic()))
    return samples


def sample(db: Path, t: float, sent: int) -> dict[str, float]:
    size = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    row: dict[str, float] = {"t": t, "sent": sent, "file_mb": size / 2**20}
    row["pages"] = query(db, "PRAGMA page_count")[0][0]
    row["free_pages"] = query(db, "PRAGMA freelist_count")[0][0]
    for name in TABLES:
        row[name] = query(db, f"SELECT count(*) FROM {name}")[0][0]
    return row


def report(samples: list[dict[str, float]], args: argparse.Namespace) -> None:
    rows = [
        (
            f"{s['t']:.0f}",
            f"{s['sent']:.0f}",
            f"{s['file_mb']:.2f}",
            f"{s['pages']:.0f} / {s['free_pages']:.0f}",
            *(f"{s[name]:.0f}" for name in TABLES),
        )
        for s in samples
    ]
    table(
        f"bench_retention: {args.rate} msg/s for {args.duration:.0f} s, rows kept "
        f"{args.retention:.0f} s",
        rows,
        ("t s", "sent", "file MB", "pages / free", *TABLES),
    )
    # Flat after the first prune: from twice the retention on (rows that old are gone by then,
    # a pruning interval included), the second half's highest at most GROWTH_ALLOWED above the
    # first half's (each kind saw-tooths between two prunes).
    settled = [s for s in samples if s["t"] >= 2 * args.retention + args.interval]
    checks = []
    if len(settled) >= 4:
        half = len(settled) // 2
        for name in ("file_mb", "messages", "message_events", "webhook_events", *TABLES[5:]):
            first = max(s[name] for s in settled[:half])
            second = max(s[name] for s in settled[half:])
            checks.append(
                (
                    f"{name} flat after the first prune",
                    f"max {first:,.1f} -> {second:,.1f}",
                    verdict(second <= max(first, 1.0) * (1 + GROWTH_ALLOWED)),
                )
            )
    else:
        checks.append(("flat after the first prune", "run too short to tell", verdict(False)))
    table("targets", checks, ("target", "measured", "result"))


if __name__ == "__main__":
    main()
