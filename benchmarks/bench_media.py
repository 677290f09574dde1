"""Media memory: the server's resident memory while a 100 MB document is uploaded
(`POST /v1/media`) and then sent (`POST /v1/messages/media`: the dispatcher uploads it to the
sandbox's `POST /{phone_number_id}/media`, streamed from the media store).

    .venv/bin/python benchmarks/bench_media.py [--size-mb 100]
    .venv/bin/python benchmarks/bench_media.py --quick      # 20 MB

Target: flat memory. `wagate serve` (SQLite, embedded sandbox, dispatcher) is sampled every
0.1 s; the peak of each phase over the idle RSS before it must stay under `--budget` MB (30):
a file held whole in memory anywhere on the way would add its own size (100 MB) at least.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import httpx
from common import (
    HOST,
    cli,
    free_port,
    machine,
    query,
    rss_mb,
    running,
    sqlite_path,
    table,
    verdict,
    wagate,
    wagate_env,
    wait_token,
    workdir,
)

PHONE = "+14155550100"


class Sampler:
    """The peak RSS of a process while a phase runs (a thread sampling every 0.1 s)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.1)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def make_document(path: Path, size: int) -> None:
    """A PDF of `size` bytes (its header, then a comment), written a megabyte at a time."""
    head = b"%PDF-1.4\n1 0 obj <<>> endobj\n%"
    chunk = b"x" * (1 << 20)
    with path.open("wb") as out:
        out.write(head)
        left = size - len(head) - 7
        while left > 0:
            out.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
        out.write(b"\n%%EOF\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100, help="the document, in MB (≤ 100)")
    parser.add_argument("--budget", type=float, default=30.0, help="MB over idle allowed")
    parser.add_argument("--quick", action="store_true", help="a 20 MB document")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    size = (20 if args.quick else min(args.size_mb, 100)) * 1_000_000
    print(f"machine: {machine()}")

    with workdir(args.keep) as data_dir:
        env = wagate_env(data_dir, WAGATE_SANDBOX="on")
        port = free_port()
        base = f"http://{HOST}:{port}"
        server = wagate("serve", env, port)
        document = data_dir / "catalogue.pdf"
        make_document(document, size)
        with running(server):
            server.wait_http(base + "/healthz")
            token = wait_token(server)
            auth = {"Authorization": f"Bearer {token}"}
            cli(env, "sandbox", "reply", "--server", base, "--phone", PHONE, "--text", "hi")
            time.sleep(1.0)
            idle = rss_mb(server.pid)

            started = time.monotonic()
            with Sampler(server.pid) as upload, document.open("rb") as handle:
                answer = httpx.post(
                    base + "/v1/media",
                    files={"file": ("catalogue.pdf", handle)},
                    headers=auth,
                    timeout=600,
                )
            upload_seconds = time.monotonic() - started
            answer.raise_for_status()
            media_id = answer.json()["id"]
            print(f"  uploaded {size:,} bytes in {upload_seconds:.1f} s as {media_id}")

            time.sleep(1.0)
            idle_before_send = rss_mb(server.pid)
            started = time.monotonic()
            with Sampler(server.pid) as send:
                sent = httpx.post(
                    base + "/v1/messages/media",
                    json={"phone": PHONE, "media_type": "document", "media_id": media_id,
                          "filename": "Catalogue.pdf"},
                    headers=auth,
                    timeout=30,
                )  # fmt: skip
                sent.raise_for_status()
                message_id = sent.json()["id"]
                status = "queued"
                deadline = time.monotonic() + 600
                while status in ("queued",) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    got = httpx.get(f"{base}/v1/messages/{message_id}", headers=auth, timeout=10)
                    status = got.json()["status"]
            send_seconds = time.monotonic() - started
            print(f"  sent by media id: {status} after {send_seconds:.1f} s")
            uploads = query(sqlite_path(data_dir), "SELECT count(*) FROM media_uploads")[0][0]

    rows = [
        ("upload (POST /v1/media)", f"{idle:.0f}", f"{upload.peak:.0f}",
         f"{upload.peak - idle:+.0f}", f"{upload_seconds:.1f}",
         verdict(upload.peak - idle < args.budget)),
        ("send (fetch from store, upload to Meta)", f"{idle_before_send:.0f}",
         f"{send.peak:.0f}", f"{send.peak - idle_before_send:+.0f}", f"{send_seconds:.1f}",
         verdict(send.peak - idle_before_send < args.budget and status != "failed"
                 and uploads == 1)),
    ]  # fmt: skip
    table(
        f"A {size / 1_000_000:.0f} MB document through `wagate serve` (RSS in MB)",
        rows,
        ("phase", "idle", "peak", "peak - idle", "seconds", f"< {args.budget:.0f} MB"),
    )


if __name__ == "__main__":
    main()
