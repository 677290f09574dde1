"""End to end: N messages from `POST /v1/messages` to `read`, through the embedded sandbox, with
the sandbox channel paced at 1,000 messages/s (Meta's highest tier).

    .venv/bin/python benchmarks/bench_e2e.py [--messages 20000] [--quick] [--mps 1000]

Reports, for each phase (accepting, handing to the Cloud API (sandbox), `read` webhooks
applied), its steady-state rate: the events between one second after the phase's first and one
second before its last, over that span. "Sustained" is the slowest phase's steady-state rate
(target >= 1,000/s, or the channel's paced rate, mps x WAGATE_PACE_HEADROOM (0.96), when that is
lower: the dispatcher never sends a channel faster, by design). First POST -> last read is shown
too, beside its ceiling (N/mps/0.96 + 3 status delays). Progress is read straight from the
SQLite file (read-only queries), so polling costs the server nothing.
"""

from __future__ import annotations

import argparse
import time

from common import (
    HOST,
    cpu_seconds,
    free_port,
    machine,
    open_windows,
    phones,
    post_messages,
    query,
    require_wrk,
    running,
    sandbox_token,
    scalar,
    sqlite_path,
    table,
    to_epoch,
    verdict,
    wagate,
    wagate_env,
    wait_token,
    workdir,
)

TARGET_RATE = 1000.0
STATUS_DELAY = 0.5  # the embedded sandbox's seconds between accepted, sent, delivered, read
EDGE = 1.0  # seconds left out at each end of a phase for its steady-state rate


def steady_rate(times: list[float]) -> tuple[float, float]:
    """(events/s between first + EDGE and last - EDGE, that span in seconds); the whole span
    when it is too short to leave the edges out."""
    if len(times) < 2:
        return 0.0, 0.0
    times = sorted(times)
    lo, hi = times[0] + EDGE, times[-1] - EDGE
    if hi - lo < 1.0:
        lo, hi = times[0], times[-1]
    inside = sum(1 for t in times if lo <= t <= hi)
    return inside / (hi - lo), hi - lo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--quick", action="store_true", help="2,000 messages")
    parser.add_argument("--mps", type=int, default=1000, help="the channel's messages/s")
    parser.add_argument(
        "--per-phone",
        type=int,
        default=5,
        help="messages per recipient (one is in flight per recipient at a time; keep it under "
        "Meta's pair-rate burst of 45)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=128,
        help="wrk connections (as bench_accept: a bulk sender keeps many requests open, and "
        "group commit stores what arrives together in one transaction)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    n = 2000 if args.quick else args.messages
    require_wrk()
    print(f"machine: {machine()}")

    with workdir(args.keep) as data_dir:
        env = wagate_env(data_dir, WAGATE_SANDBOX="on")
        port = free_port()
        base = f"http://{HOST}:{port}"
        db = sqlite_path(data_dir)
        first = wagate("serve", env, port)
        with running(first):
            first.wait_http(base + "/healthz")
            token = wait_token(first)
        # Pace the sandbox channel at --mps before the dispatcher first reads it.
        query(db, "UPDATE channels SET mps = ? WHERE is_sandbox", (args.mps,))
        query(db, "UPDATE accounts SET api_rate = 0")
        server = wagate("serve", env, port)
        with running(server):
            server.wait_http(base + "/healthz")
            numbers = phones(max(20, -(-n // args.per_phone)))
            open_windows(base + "/sandbox", numbers, access_token=sandbox_token(data_dir))
            print(f"{len(numbers)} windows open; sending {n:,} messages at {args.mps}/s")
            cpu0 = cpu_seconds(server.pid)
            t0 = time.time()
            post, post_seconds = post_messages(
                base,
                token,
                numbers,
                n,
                data_dir,
                stored=lambda: scalar(db, "SELECT count(*) FROM messages"),
                connections=args.connections,
            )
            total = scalar(db, "SELECT count(*) FROM messages")
            cpu1, t1 = cpu_seconds(server.pid), time.time()
            cpu_post = (cpu1 - cpu0) / (t1 - t0)
            deadline = time.monotonic() + 120 + 3 * total / args.mps
            shown = 0.0
            counts: dict[str, int] = {}
            while time.monotonic() < deadline:
                counts = dict(query(db, "SELECT status, count(*) FROM messages GROUP BY status"))
                if counts.get("read", 0) + counts.get("failed", 0) >= total:
                    break
                if time.monotonic() - shown > 5:
                    shown = time.monotonic()
                    print(f"  {time.time() - t0:5.1f} s  {counts}")
                time.sleep(0.25)
            cpu_after = (cpu_seconds(server.pid) - cpu1) / max(0.001, time.time() - t1)
            phase = {
                status: (count, to_epoch(lo), to_epoch(hi))
                for status, count, lo, hi in query(
                    db,
                    "SELECT status, count(*), min(recorded_at), max(recorded_at)"
                    " FROM message_events GROUP BY status",
                )
            }
            steadies = {
                "queued": steady_rate(
                    [to_epoch(t) for (t,) in query(db, "SELECT created_at FROM messages")]
                ),
                **{
                    status: steady_rate(
                        [
                            to_epoch(t)
                            for (t,) in query(
                                db,
                                "SELECT recorded_at FROM message_events WHERE status = ?",
                                (status,),
                            )
                        ]
                    )
                    for status in ("accepted", "read")
                },
            }
            headroom = float(env.get("WAGATE_PACE_HEADROOM", "0.96"))

    read = counts.get("read", 0)
    failed = counts.get("failed", 0)
    if read < total:
        print(f"NOT ALL READ before the deadline: {counts}")
    last_read = phase.get("read", (0, t0, t0))[2]
    sustained = read / (last_read - t0) if last_read > t0 else 0.0

    def rate(status: str) -> str:
        count, lo, hi = phase.get(status, (0, 0.0, 0.0))
        return f"{(count - 1) / (hi - lo):,.0f}/s over {hi - lo:.1f} s" if hi > lo else "-"

    paced = args.mps * headroom
    cap = total / (total / paced + 3 * STATUS_DELAY)

    def steady(name: str) -> str:
        value, span = steadies[name]
        return f"{value:,.0f}/s over {span:.1f} s"

    slowest = min(value for value, _ in steadies.values())
    target = min(TARGET_RATE, paced)
    rows = [
        ("messages posted (202)", f"{post.by_status.get(202, 0):,} of {total:,} stored"),
        ("non-202 answers", str({s: c for s, c in post.by_status.items() if s != 202} or "none")),
        ("accept phase (wrk start to last stored)", f"{total / post_seconds:,.0f}/s"),
        ("queued, steady state", steady("queued")),
        ("handed to the sandbox (accepted), first to last", rate("accepted")),
        ("handed to the sandbox (accepted), steady state", steady("accepted")),
        ("read webhooks applied, first to last", rate("read")),
        ("read webhooks applied, steady state", steady("read")),
        ("read / failed", f"{read:,} / {failed:,}"),
        ("first POST -> last read", f"{last_read - t0:.1f} s = {sustained:,.0f} msg/s"),
        (
            f"ceiling of that at this pace (N / (N/{paced:,.0f} + 3 x {STATUS_DELAY} s))",
            f"{cap:,.0f} msg/s",
        ),
        ("sustained (the slowest phase's steady state)", f"{slowest:,.0f} msg/s"),
        ("server CPU (of one core): posting / after", f"{cpu_post:.0%} / {cpu_after:.0%}"),
    ]
    table(
        f"bench_e2e: {n:,} messages, channel at {args.mps}/s (paced at {paced:,.0f}/s)",
        rows,
        ("measure", "value"),
    )
    table(
        "targets",
        [
            (
                f">= {target:,.0f} msg/s sustained, every phase (1,000, or the paced rate)",
                f"{slowest:,.0f}",
                verdict(slowest >= target * 0.99),
            )
        ],
        ("target", "measured", "result"),
    )


if __name__ == "__main__":
    main()
