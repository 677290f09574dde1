"""Pacing: a channel at 80 messages/s with 2,000 queued messages, measured where Meta would see
it: at a stand-alone sandbox that enforces the same limit (over 80 sends in any one-second window
it answers error 130429, as Meta does).

    .venv/bin/python benchmarks/bench_pacing.py [--messages 2000] [--mps 80] [--quick]

Target: the send rate the sandbox sees is within 5 % of the channel's rate, and no 130429.
The sandbox runs in its own process (so it does not share a CPU with the gateway) and records
the time of every send it answers; `wagate serve` has a real channel pointing at it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import (
    HOST,
    bench_channel,
    free_port,
    machine,
    open_windows,
    phones,
    post_messages,
    query,
    require_wrk,
    running,
    sandbox_sends,
    scalar,
    sqlite_path,
    standalone_sandbox,
    table,
    verdict,
    wagate,
    wagate_env,
    workdir,
)

PHONE_NUMBER_ID = "100000000000077"
WABA_ID = "200000000000077"


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any `window`-second interval."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--mps", type=int, default=80, help="the channel's and Meta's limit")
    parser.add_argument("--quick", action="store_true", help="800 messages (10 s of sending)")
    parser.add_argument("--phones", type=int, default=500, help="recipients")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--dump", help="write the sandbox's send log (JSON) to this file")
    args = parser.parse_args()
    n = 800 if args.quick else args.messages
    require_wrk()
    print(f"machine: {machine()}")

    with workdir(args.keep) as data_dir:
        env = wagate_env(data_dir, WAGATE_SANDBOX="off")
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
                "display_phone_number": "15550000077",
                "access_token": access_token,
                "app_secret": app_secret,
                "webhook_url": base + "/webhooks/whatsapp",
                "throughput_limit": args.mps,
            },
            data_dir,
        )
        server = wagate("serve", env, port)
        with running(sandbox, server):
            sandbox.wait_http(sandbox_url + "/")
            server.wait_http(base + "/healthz")
            numbers = phones(args.phones)
            open_windows(sandbox_url, numbers, access_token=access_token)
            db = sqlite_path(data_dir)
            print(
                f"{len(numbers)} windows open; queueing {n:,} messages for a {args.mps}/s channel"
            )
            _post, post_seconds = post_messages(
                base,
                token,
                numbers,
                n,
                data_dir,
                stored=lambda: scalar(db, "SELECT count(*) FROM messages"),
            )
            total = scalar(db, "SELECT count(*) FROM messages")
            print(
                f"  {total:,} queued in {post_seconds:.1f} s; waiting for the sandbox to get them"
            )
            deadline = time.monotonic() + 60 + 2 * total / args.mps
            sends = sandbox_sends(sandbox_url)
            while time.monotonic() < deadline:
                sends = sandbox_sends(sandbox_url)
                if sum(1 for _, status, _ in sends if status == 200) >= total:
                    break
                time.sleep(1.0)
            retried = scalar(db, "SELECT count(*) FROM messages WHERE attempts > 1")
            statuses = dict(query(db, "SELECT status, count(*) FROM messages GROUP BY status"))

    if args.dump:
        Path(args.dump).write_text(json.dumps(sends))
    ok = sorted(t for t, status, _ in sends if status == 200)
    throttled = sum(1 for _, _, code in sends if code == 130429)
    other_errors = sum(1 for _, status, code in sends if status != 200 and code != 130429)
    rate = (len(ok) - 1) / (ok[-1] - ok[0]) if len(ok) > 1 else 0.0
    # The steady state, without the first second (a full token bucket's burst).
    steady = [t for t in ok if t >= ok[0] + 1.0] if ok else []
    steady_rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    per_second = max_in_window(ok)
    error = abs(rate - args.mps) / args.mps
    rows = [
        ("messages queued", f"{total:,} in {post_seconds:.1f} s"),
        ("sends the sandbox accepted", f"{len(ok):,} over {ok[-1] - ok[0]:.1f} s" if ok else "0"),
        ("send rate, first to last", f"{rate:.1f}/s ({error:.1%} off {args.mps}/s)"),
        ("send rate after the first second", f"{steady_rate:.1f}/s"),
        ("most sends in any 1-second window", str(per_second)),
        ("130429 throughput errors", str(throttled)),
        ("other Graph API errors", str(other_errors)),
        ("messages sent more than once (attempts > 1)", str(retried)),
        ("final statuses", str(statuses)),
    ]
    table(f"bench_pacing: {total:,} messages, channel at {args.mps}/s", rows, ("measure", "value"))
    table(
        "targets",
        [
            (f"rate within 5 % of {args.mps}/s", f"{rate:.1f}/s", verdict(error <= 0.05)),
            ("no 130429", str(throttled), verdict(throttled == 0)),
        ],
        ("target", "measured", "result"),
    )


if __name__ == "__main__":
    main()
