"""Memory: resident memory with a large backlog. `wagate api` (the HTTP API and the embedded
sandbox, no dispatcher) takes N messages; then a `wagate worker` starts on that backlog and both
processes' RSS is sampled every `--interval` seconds for `--duration` seconds.

    .venv/bin/python benchmarks/bench_memory.py [--messages 100000] [--duration 600]
    .venv/bin/python benchmarks/bench_memory.py --quick      # 10,000 messages, 30 s

Target: each process under 300 MB, and flat (no upward trend while the worker drains the
backlog at the channel's 80/s). RSS comes from psutil when installed, else /proc/<pid>/status.
"""

from __future__ import annotations

import argparse
import time

from common import (
    HOST,
    free_port,
    machine,
    open_windows,
    phones,
    post_messages,
    query,
    require_wrk,
    rss_mb,
    running,
    sandbox_token,
    scalar,
    sqlite_path,
    table,
    verdict,
    wagate,
    wagate_env,
    wait_token,
    workdir,
)

LIMIT_MB = 300.0
PER_PHONE = 40  # messages per recipient: under Meta's pair-rate burst (45), so none is postponed


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in samples) / var


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of sampling")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--quick", action="store_true", help="10,000 messages, 30 s, every 5 s")
    parser.add_argument("--connections", type=int, default=128, help="wrk connections")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    n, duration, interval = args.messages, args.duration, args.interval
    if args.quick:
        n, duration, interval = 10_000, 30.0, 5.0
    require_wrk()
    print(f"machine: {machine()}")

    with workdir(args.keep) as data_dir:
        env = wagate_env(data_dir, WAGATE_SANDBOX="on")
        port = free_port()
        base = f"http://{HOST}:{port}"
        db = sqlite_path(data_dir)
        api = wagate("api", env, port)
        with running(api):
            api.wait_http(base + "/healthz")
            token = wait_token(api)
            query(db, "UPDATE accounts SET api_rate = 0")
            rss_idle = rss_mb(api.pid)
            numbers = phones(max(50, -(-n // PER_PHONE)))
            open_windows(base + "/sandbox", numbers, access_token=sandbox_token(data_dir))
            print(f"{len(numbers):,} windows open; queueing {n:,} messages (no dispatcher)")
            _, post_seconds = post_messages(
                base,
                token,
                numbers,
                n,
                data_dir,
                stored=lambda: scalar(db, "SELECT count(*) FROM outbox"),
                connections=args.connections,
                max_seconds=120 + n / 50,
            )
            queued = scalar(db, "SELECT count(*) FROM outbox")
            rss_queued = rss_mb(api.pid)
            print(
                f"  {queued:,} queued in {post_seconds:.1f} s ({queued / post_seconds:,.0f}/s); "
                f"api RSS {rss_idle:.0f} MB idle, "
                f"{rss_queued:.0f} MB now; sampling for {duration:.0f} s with a worker running"
            )
            worker = wagate("worker", env)
            with running(worker):
                ready_by = time.monotonic() + 60
                while "dispatching" not in worker.output() and time.monotonic() < ready_by:
                    if not worker.alive():
                        raise RuntimeError(f"the worker exited:\n{worker.output()[-3000:]}")
                    time.sleep(0.1)
                started = time.monotonic()
                samples: list[tuple[float, float, float, int]] = []
                while True:
                    elapsed = time.monotonic() - started
                    if not worker.alive():
                        raise RuntimeError(f"the worker exited:\n{worker.output()[-3000:]}")
                    left = scalar(db, "SELECT count(*) FROM outbox")
                    samples.append((elapsed, rss_mb(worker.pid), rss_mb(api.pid), left))
                    print(
                        f"  {elapsed:5.0f} s  worker {samples[-1][1]:6.1f} MB  "
                        f"api {samples[-1][2]:6.1f} MB  outbox {left:,}"
                    )
                    if elapsed >= duration:
                        break
                    time.sleep(max(0.0, min(interval, duration - elapsed)))

    def summary(name: str, values: list[tuple[float, float]]) -> tuple[str, ...]:
        mbs = [v for _, v in values]
        # The trend leaves out the first sample (start-up: imports, pools, caches).
        trend = slope_per_minute(values[1:])
        flat = abs(trend) * duration / 60 < max(10.0, 0.05 * max(mbs))
        return (
            name,
            f"{min(mbs):.1f}",
            f"{max(mbs):.1f}",
            f"{mbs[0]:.1f} -> {mbs[-1]:.1f}",
            f"{trend:+.2f}",
            verdict(max(mbs) < LIMIT_MB and flat),
        )

    sent = samples[0][3] - samples[-1][3]
    rows = [
        summary("worker", [(t, w) for t, w, _, _ in samples]),
        summary("api (+ sandbox)", [(t, a) for t, _, a, _ in samples]),
    ]
    table(
        f"bench_memory: {queued:,} queued (api RSS {rss_idle:.0f} MB idle, {rss_queued:.0f} MB "
        f"after queueing), {duration:.0f} s with a worker, {sent:,} sent meanwhile",
        rows,
        ("process", "min MB", "max MB", "first -> last", "MB/min", f"< {LIMIT_MB:.0f} MB, flat"),
    )


if __name__ == "__main__":
    main()
