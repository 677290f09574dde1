"""A sign-in flood must not slow the API or the readiness probe (SPEC §10, issue 12 point 6):
latency of `GET /readyz` and `POST /v1/messages` (p50/p99) on an idle `wagate serve`, then the
same while `--flooders` concurrent clients send wrong passwords to `POST /sign-in` as fast as the
server answers them.

    .venv/bin/python benchmarks/bench_signin_flood.py [--duration 15] [--flooders 24] [--quick]

The flood comes from a separate process (so the probe's own timings do not share its CPU), each
request with a made-up client address (X-Forwarded-For, which `wagate serve` trusts from
127.0.0.1) and email, so that no throttle stops it early: every attempt costs an argon2 hash, as
from a botnet. The probe sends one request at a time, alternating the two endpoints, every
`--interval` s.

Target: under the flood, p50 and p99 of both endpoints within 2x of idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import secrets
import time
from collections import Counter
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from typing import Any

import httpx
from common import (
    HOST,
    free_port,
    machine,
    percentile,
    phones,
    running,
    table,
    verdict,
    wagate,
    wagate_env,
    wait_token,
    workdir,
)

RATIO_TARGET = 2.0


def _flood(url: str, flooders: int, stop: StopEvent, out: Any) -> None:
    async def one(client: httpx.AsyncClient, counts: Counter[int]) -> None:
        page = await client.get("/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        while not stop.is_set():
            address = ".".join(str(secrets.randbelow(250)) for _ in range(3))
            address = f"10.{address}"
            try:
                answer = await client.post(
                    "/sign-in",
                    data={
                        "email": f"guess{secrets.randbelow(10**6)}@example.com",
                        "password": "wrong password",
                        "csrf_token": token.group(1),
                    },
                    headers={"X-Forwarded-For": address},
                )
                counts[answer.status_code] += 1
            except httpx.HTTPError:
                counts[0] += 1

    async def main() -> Counter[int]:
        counts: Counter[int] = Counter()
        clients = [httpx.AsyncClient(base_url=url, timeout=60) for _ in range(flooders)]
        try:
            await asyncio.gather(*(one(c, counts) for c in clients))
        finally:
            for c in clients:
                await c.aclose()
        return counts

    out.put(dict(asyncio.run(main())))


def probe(
    url: str, token: str, numbers: list[str], duration: float, interval: float
) -> dict[str, list[float]]:
    """Latencies (ms) of /readyz and POST /v1/messages, one request at a time."""
    timings: dict[str, list[float]] = {"readyz": [], "send": []}
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + duration
    n = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            if n % 2 == 0:
                answer = client.get("/readyz")
                name, ok = "readyz", answer.status_code == 200
            else:
                answer = client.post(
                    "/v1/messages",
                    json={"phone": numbers[n % len(numbers)], "message": f"probe {n}"},
                    headers=headers,
                )
                name, ok = "send", answer.status_code == 202
            elapsed = (time.perf_counter() - started) * 1000
            if not ok:
                raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:300]}")
            timings[name].append(elapsed)
            n += 1
            time.sleep(max(0.0, interval - elapsed / 1000))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--flooders", type=int, default=24)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between probes")
    parser.add_argument("--quick", action="store_true", help="5 s per phase")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    args = parser.parse_args()
    duration = 5.0 if args.quick else args.duration

    with workdir(args.keep) as work:
        data = work / "data"
        port = free_port()
        env = wagate_env(data, WAGATE_LOG_LEVEL="warning")
        server = wagate("serve", env, port)
        url = f"http://{HOST}:{port}"
        with running(server):
            server.wait_http(url + "/readyz")
            token = wait_token(server)
            sandbox = json.loads((Path(data) / "sandbox.json").read_text())
            numbers = phones(20)
            with httpx.Client(base_url=url + "/sandbox", timeout=30) as client:
                for phone in numbers:
                    client.post(
                        "/customer/reply",
                        json={"phone": phone, "text": "hi"},
                        headers={"Authorization": f"Bearer {sandbox['access_token']}"},
                    ).raise_for_status()
            probe(url, token, numbers, 2.0, args.interval)  # warm up
            idle = probe(url, token, numbers, duration, args.interval)

            stop = multiprocessing.Event()
            results: multiprocessing.Queue[dict[int, int]] = multiprocessing.Queue()
            flood = multiprocessing.Process(
                target=_flood, args=(url, args.flooders, stop, results), daemon=True
            )
            flood.start()
            try:
                time.sleep(2.0)  # let the flood fill the hashing pool
                flooded = probe(url, token, numbers, duration, args.interval)
            finally:
                stop.set()
                counts = results.get(timeout=120)
                flood.join(timeout=30)

    rows = []
    ok = True
    for name, label in (("readyz", "GET /readyz"), ("send", "POST /v1/messages")):
        for pct in (50, 99):
            before, during = percentile(idle[name], pct), percentile(flooded[name], pct)
            ratio = during / before if before else float("nan")
            ok &= ratio <= RATIO_TARGET
            rows.append(
                (label, f"p{pct}", f"{before:.2f}", f"{during:.2f}", f"{ratio:.2f}x",
                 verdict(ratio <= RATIO_TARGET))
            )  # fmt: skip
    print(machine())
    flood_total = sum(counts.values())
    print(
        f"flood: {args.flooders} concurrent clients, {flood_total} sign-ins in "
        f"~{duration + 2:.0f} s, answers by status: {dict(sorted(counts.items()))}"
    )
    table(
        f"Latency idle vs under a sign-in flood ({len(idle['send'])}+{len(idle['readyz'])} "
        f"idle probes, {len(flooded['send'])}+{len(flooded['readyz'])} under the flood)",
        rows,
        ("endpoint", "pct", "idle ms", "flood ms", "ratio", f"<= {RATIO_TARGET}x"),
    )
    print("overall:", verdict(ok))


if __name__ == "__main__":
    main()
