"""What one request, or one batch of status reports, costs in CPU inside the gateway: the ASGI app
called directly in this process (no sockets, no other process), so the figure is the app's own
work and not the HTTP server's or the load generator's.

    .venv/bin/python benchmarks/bench_inprocess.py [--requests 2000] [--reports 100,1]
        [--only healthz,send,webhook,reports] [--profile healthz|send|webhook|reports]
        [--sort tottime|cumtime] [--top 25]

It starts the gateway as the test suite does (tests/support/harness.py: SQLite in a temporary
folder, the sandbox mounted, the dispatcher off) and measures, each after 100 to warm up:

- `GET /healthz`: the routing and middleware every request pays;
- `POST /v1/messages`: one text message to a customer whose window is open, alone (each
  request commits on its own, as a lone client's does): parsing, checks, the transaction and
  its fsync (wall time counts the fsync; CPU time what the kernel spends on it too);
- a signed status webhook with one status (for a wamid not recorded yet, so it is parked): the
  webhook's lookups, its transaction and its statements;
- `apply_reports` (store/statuses.py) in its own write transaction, N new `delivered` reports a
  call for each N in `--reports`: what a webhook's statuses cost as the batch grows.

Reported: wall time and this process's CPU time per request (or call, and per report). No
target: it says where a change moves the cost; compare before/after alternately on one machine.
`--profile` prints cProfile's top functions for one of them. For a figure that does not depend
on what else the machine does, count instructions under callgrind for two `--requests` and take
the difference (benchmarks/README.md, "A seventh host").
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine
from tests.support.harness import Harness, running_gateway

from wagate.domain.models import Status
from wagate.sandbox import events
from wagate.store.db import write_tx
from wagate.store.statuses import Report, apply_reports
from wagate.store.tables import messages

WARM_UP = 100


async def call(app: Any, method: str, path: str, body: bytes = b"", headers: Any = ()) -> int:
    """One request to the ASGI app; its status code."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"wagate.test"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def timed(
    name: str, count: int, work: Callable[[], Awaitable[Any]], per: int = 1
) -> tuple[str, ...]:
    for _ in range(WARM_UP):
        await work()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await work()
    wall, cpu = (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count
    line = (name, f"{wall * 1e6:,.0f}", f"{cpu * 1e6:,.0f}", f"{cpu * 1e6 / per:,.1f}")
    print(f"  {name}: wall {line[1]} µs, CPU {line[2]} µs, CPU {line[3]} µs each")
    return line


async def webhook(gateway: Harness) -> Callable[[], Awaitable[int]]:
    channel = await gateway.sandbox_channel()
    metadata = {
        "display_phone_number": channel.display_phone_number,
        "phone_number_id": channel.phone_number_id,
    }
    update = {"id": "wamid.unknown", "status": "delivered", "timestamp": "1700000000"}
    value = {"messaging_product": "whatsapp", "metadata": metadata, "statuses": [update]}
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": channel.waba_id, "changes": [{"field": "messages", "value": value}]}],
    }
    raw = json.dumps(payload).encode()
    headers = [
        (b"x-hub-signature-256", events.sign(gateway.identity.app_secret, raw).encode()),
        (b"content-type", b"application/json"),
    ]
    return lambda: call(gateway.app, "POST", "/webhooks/whatsapp", raw, headers)


async def send(gateway: Harness) -> Callable[[], Awaitable[int]]:
    """A lone `POST /v1/messages` (the customer wrote first, so the window is open)."""
    phone = "+14155552671"
    await gateway.reply(phone, text="hi")
    raw = json.dumps({"phone": phone, "message": "Your order has shipped."}).encode()
    headers = [
        (b"authorization", f"Bearer {gateway.token}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def post() -> int:
        status = await call(gateway.app, "POST", "/v1/messages", raw, headers)
        assert status == 202, status
        return status

    return post


async def reports(gateway: Harness, size: int, calls: int) -> Callable[[], Awaitable[Any]]:
    """`apply_reports` of `size` new reports a call, on messages stored here first."""
    channel = await gateway.sandbox_channel()
    now = datetime.now(UTC)
    total = size * (calls + WARM_UP)
    async with write_tx(gateway.engine) as conn:
        for start in range(0, total, 5000):
            await conn.execute(
                messages.insert(),
                [
                    {
                        "id": f"msg_bench{size}_{i:08d}",
                        "account_id": channel.account_id,
                        "channel_id": channel.id,
                        "phone": "+14155550100",
                        "type": "text",
                        "content": {"text": "x"},
                        "metadata": {},
                        "status": "accepted",
                        "wamid": f"wamid.bench{size}_{i:08d}",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(total, start + 5000))
                ],
            )
    done = 0

    async def apply() -> None:
        nonlocal done
        batch = [
            Report(channel.id, f"wamid.bench{size}_{done * size + i:08d}", Status.DELIVERED, now)
            for i in range(size)
        ]
        done += 1
        async with write_tx(gateway.engine) as conn:
            changes = await apply_reports(conn, batch, now=now)
        assert len(changes) == size, changes

    return apply


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    url = f"sqlite+aiosqlite:///{data_dir}/wagate.db"
    async with running_gateway(url, data_dir, run_dispatcher=False) as gateway:
        work: dict[str, tuple[Callable[[], Awaitable[Any]], int, int]] = {
            "healthz": (lambda: call(gateway.app, "GET", "/healthz"), args.requests, 1),
            "send": (await send(gateway), args.requests, 1),
            "webhook": (await webhook(gateway), args.requests, 1),
        }
        for size in args.sizes if not args.only or "reports" in args.only else ():
            calls = max(20, args.requests // max(size, 1) // 5)
            work[f"reports {size}"] = (await reports(gateway, size, calls), calls, size)
        if args.only:
            work = {name: w for name, w in work.items() if name.split()[0] in args.only}
        rows = [await timed(name, count, fn, per) for name, (fn, count, per) in work.items()]
        print("\n| what | wall µs | CPU µs | CPU µs per request or report |\n|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        if args.profile:
            name = next(n for n in work if n.startswith(args.profile))
            fn, count, _ = work[name]
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(min(count, 500)):
                await fn()
            profiler.disable()
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests a measurement")
    parser.add_argument("--reports", default="100,1", help="report batch sizes")
    parser.add_argument("--profile", choices=("healthz", "send", "webhook", "reports"))
    parser.add_argument("--only", default="", help="measure only these: healthz,send,webhook")
    parser.add_argument("--sort", default="tottime", help="cProfile's order: tottime, cumtime")
    parser.add_argument("--top", type=int, default=25, help="functions printed")
    args = parser.parse_args()
    args.sizes = [int(n) for n in args.reports.split(",") if n]
    args.only = {name for name in args.only.split(",") if name}
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="wagate-bench-") as folder:
        asyncio.run(measure(args, Path(folder)))


if __name__ == "__main__":
    main()
