"""The callbacks sender: claims due events from the callbacks outbox, POSTs each to its account's
callback URL signed at the moment of sending, and records what came of it.

It runs wherever the message dispatcher runs (`Dispatcher` starts and stops it). Claims are
leases taken in batches, one event per lane at a time; POSTs run concurrently (at most
`WAGATE_CALLBACK_CONCURRENCY`, and at most `WAGATE_CALLBACK_ACCOUNT_CONCURRENCY` to one
account, so a slow receiver cannot take every slot); results are recorded in batches by one
committer. Any 2xx is a delivery; anything else is retried with backoff (store/callback_claims.py:
a receiver that is down backs off its whole account, one refusing an event only that event's
lane) until the event is `WAGATE_CALLBACK_GIVE_UP_AFTER` seconds old, then kept as a dead letter
(status `failed`) for `POST /v1/callbacks/{id}/replay`.

POSTs go out under the egress policy (`wagate.egress`): no private addresses, no redirects, a
1 MiB answer at most and `WAGATE_CALLBACK_TIMEOUT` for the whole attempt. A claim's lease is
that timeout plus `lease_margin` (the time to record the outcome), and an attempt never runs
past its lease: its deadline is cut to what the lease leaves, and an event whose lease has run
short before its attempt could start is put back at once instead of sent. So no other sender
can claim an event while a POST of it is in flight, and a receiver that answers one byte at a
time holds a connection for the timeout, no longer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import socket
import time
import unicodedata
from datetime import timedelta

import httpx
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate import __version__, metrics
from wagate.clock import Clock
from wagate.config import Settings
from wagate.dispatch.drain import drain
from wagate.domain.callbacks import (
    SIGNATURE_HEADER,
    RetryPolicy,
    next_attempt_at,
    receiver_down,
    sign,
)
from wagate.egress import CALLBACK_ANSWER_LIMIT, EgressPolicy, egress_client
from wagate.ids import new_id
from wagate.net_errors import describe_failure
from wagate.store import callback_claims as callback_store
from wagate.store.callback_claims import Attempt, DueDelivery
from wagate.store.db import write_tx
from wagate.store.sqlite_inline import in_thread

log = logging.getLogger("wagate.callbacks")

IDLE_POLL_SECONDS = 0.25
IDLE_CHECK_SPACING = 0.05
"""An idle sender looks for due events at most this often (seconds), however often it is woken:
under load every status applied wakes it, hundreds of times a second, and each look is a read
of the database on the event loop the API shares."""
DEPTH_EVERY_SECONDS = 5.0
STOP_GRACE_SECONDS = 2.0
LEASE_MARGIN_SECONDS = 30.0
"""A lease outlasts the callback timeout by this much: the time to record the outcome."""
MAX_ERROR_BODY = 160  # characters of a refusing receiver's answer kept in last_error
_READ_LIMIT = 1024  # bytes of a refusing answer read (the rest is dropped with the connection)


class CallbackSender:
    """`http`, when given, is used as is (and not closed); otherwise the sender makes its own
    client under the egress policy when started and closes it when stopped."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        http: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        lease_margin: float = LEASE_MARGIN_SECONDS,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('cb')[-8:]}"
        self.policy = RetryPolicy(
            base=settings.callback_retry_base,
            max_delay=settings.callback_retry_max,
            give_up_after=settings.callback_give_up_after,
        )
        self.lease_margin = lease_margin
        self.lease = timedelta(seconds=settings.callback_timeout + lease_margin)
        self._http = http
        self._own_http = http is None
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._account_of: dict[asyncio.Task[None], str] = {}
        self._in_flight_by_account: collections.Counter[str] = collections.Counter()
        self._results: list[tuple[Attempt, asyncio.Future[None]]] = []
        self._results_ready = asyncio.Event()
        self._stopping = False
        self._depth_counted_at = 0.0

    # ------------------------------------------------------------------ lifecycle

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = egress_client(
                EgressPolicy.from_settings(self.settings),
                max_answer_bytes=CALLBACK_ANSWER_LIMIT,
                timeout=self.settings.callback_timeout,
                max_connections=self.settings.callback_concurrency,
                headers={"User-Agent": f"wagate/{__version__}"},
            )
        return self._http

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="wagate-callbacks")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # POSTs under way get a moment to finish and be recorded; one cut off is sent again
        # when its lease ends (receivers drop repeats by the event id).
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=STOP_GRACE_SECONDS)
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _run(self) -> None:
        failing = False
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except DBAPIError as exc:  # the database is away: said once, not every second
                if not failing:
                    log.warning("cannot claim callbacks (%s); retrying", type(exc).__name__)
                failing = True
                await asyncio.sleep(1.0)
                claimed = 0
            except Exception:
                log.exception("callback cycle failed; retrying shortly")
                await asyncio.sleep(1.0)
                claimed = 0
            else:
                failing = False
            if claimed == 0:
                self._wake.clear()
                await asyncio.sleep(IDLE_CHECK_SPACING)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), timeout=IDLE_POLL_SECONDS - IDLE_CHECK_SPACING
                    )

    async def run_once(self) -> int:
        """Claim one batch of due lane heads and start sending them; returns how many."""
        free = self.settings.callback_concurrency - len(self._inflight)
        if free <= 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.05)
            return 0
        now = self.clock.now()
        cap = self.settings.callback_account_concurrency
        full = self._full_accounts()
        # The claim's lease runs from `now`; as this process's monotonic clock sees it, it ends
        # no later than this.
        leased_until = time.monotonic() + self.lease.total_seconds()
        # An idle sender only reads; the claim (a write transaction) waits for work.
        async with self.engine.connect() as conn:
            if time.monotonic() - self._depth_counted_at > DEPTH_EVERY_SECONDS:
                self._depth_counted_at = time.monotonic()
                # Counts every pending event (a receiver down for hours leaves many): on
                # SQLite, off the event loop (store/sqlite_inline.py).
                with in_thread():
                    depth = await callback_store.pending_count(conn)
                metrics.set_callback_queue_depth(depth)
            due = await callback_store.has_due(conn, now=now, skip=full)
        if not due:
            return 0
        # The claim reads the lanes it takes, account by account (store/callback_lanes.py): a
        # receiver that is down costs it one look at its account, however much waits.
        async with write_tx(self.engine) as conn:
            claimed = await callback_store.claim(
                conn,
                owner=self.owner,
                now=now,
                lease=self.lease,
                limit=free,
                account_cap=cap,
                in_flight=self._in_flight_by_account,
                give_up_after=self.policy.give_up_after,
            )
        for _ in range(claimed.given_up):
            metrics.record_callback("failed")
        for claim in claimed.deliveries:
            task = asyncio.create_task(self._deliver(claim, leased_until))
            self._inflight.add(task)
            self._account_of[task] = claim.account_id
            self._in_flight_by_account[claim.account_id] += 1
            task.add_done_callback(self._done)
        return len(claimed.deliveries) + claimed.given_up

    def _full_accounts(self) -> list[str]:
        """Accounts with their share of this sender's slots in flight."""
        cap = self.settings.callback_account_concurrency
        return [a for a, n in self._in_flight_by_account.items() if n >= cap]

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        account_id = self._account_of.pop(task, None)
        if account_id is not None:
            self._in_flight_by_account[account_id] -= 1
            if self._in_flight_by_account[account_id] <= 0:
                del self._in_flight_by_account[account_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("callback task failed", exc_info=task.exception())
        self._wake.set()  # a slot (perhaps an account's last free one) is free again

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until no lane head is due (for tests and the CLI)."""
        await drain(self.run_once, self._inflight, timeout, still_due=self._still_due)

    async def _still_due(self) -> bool:
        async with self.engine.connect() as conn:
            return await callback_store.has_due(
                conn, now=self.clock.now(), skip=self._full_accounts()
            )

    # ------------------------------------------------------------------ one event

    async def _deliver(self, claim: DueDelivery, leased_until: float) -> None:
        attempt = await self.attempt(claim, leased_until=leased_until)
        await self._record(attempt)

    def _deadline(self, leased_until: float | None) -> float:
        """Seconds this attempt may take: the callback timeout, or less when the lease has
        less left than that plus the margin for recording the outcome."""
        timeout = self.settings.callback_timeout
        if leased_until is None:
            return timeout
        return min(timeout, leased_until - time.monotonic() - self.lease_margin)

    async def attempt(self, claim: DueDelivery, *, leased_until: float | None = None) -> Attempt:
        """POST one claimed event; what came of it (retry time or give-up included).
        `leased_until` (time.monotonic()) bounds the attempt when given."""
        started_at = self.clock.now()
        if not claim.url or not claim.secret:
            return Attempt(
                claim.seq,
                delivered=False,
                error="The account has no callback URL.",
                account_id=claim.account_id,
                started_at=started_at,
            )
        deadline = self._deadline(leased_until)
        if deadline < self.settings.callback_timeout / 2:
            # Sent now, it could outlive its lease and be claimed and sent again meanwhile.
            log.warning("callback %s: lease ran short before sending; put back", claim.id)
            return Attempt(
                claim.seq,
                delivered=False,
                error="Not sent: the sender was too busy to start it while its claim lasted; "
                "it is sent again at once.",
                retry_at=self.clock.now(),
                account_id=claim.account_id,
                started_at=started_at,
            )
        body = json.dumps(claim.payload, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(claim.secret, body, timestamp),
            "X-Wagate-Event": claim.type,
            "X-Wagate-Delivery": claim.id,
        }
        status_code: int | None = None
        error: str | None
        try:
            async with self.http.stream(
                "POST",
                claim.url,
                content=body,
                headers=headers,
                timeout=deadline,
                extensions={"total_timeout": deadline},
            ) as answer:
                status_code = answer.status_code
                text = "" if answer.is_success else await _read_some(answer)
        except httpx.TimeoutException:
            error = f"No complete answer within {round(deadline, 1):g} s."
        except httpx.HTTPError as exc:
            # What went wrong in words (connection refused, DNS, TLS, ...), never the URL, which
            # may carry credentials.
            error = describe_failure(exc)
        except Exception as exc:  # an unusable URL, say: keep the sender going
            error = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status_code < 300:
                return Attempt(
                    claim.seq,
                    delivered=True,
                    status_code=status_code,
                    account_id=claim.account_id,
                    started_at=started_at,
                )
            error = f"HTTP {status_code}"
            if 300 <= status_code < 400:
                error += " (redirects are not followed; set the final URL)"
            elif excerpt := _excerpt(text):
                error += ": " + excerpt
        retry_at = next_attempt_at(
            self.policy,
            created_at=claim.created_at,
            now=self.clock.now(),
            attempts=claim.attempts,
            rng=self._rng,
        )
        down = receiver_down(status_code)
        log.info(
            "callback %s attempt %d failed (%s); %s",
            claim.id,
            claim.attempts,
            status_code or "no answer",
            "given up"
            if retry_at is None
            else "the account's receiver backs off"
            if down
            else f"retry at {retry_at:%H:%M:%S}",
        )
        return Attempt(
            claim.seq,
            delivered=False,
            status_code=status_code,
            error=error[:1000],
            retry_at=retry_at,
            account_id=claim.account_id,
            started_at=started_at,
            receiver_down=down,
        )

    # ------------------------------------------------------------------ group commit

    async def _record(self, attempt: Attempt) -> None:
        """Queue an attempt for the committer and wait until it is durable, so the lane's next
        event is claimed only after this one is settled."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._results.append((attempt, future))
        self._results_ready.set()
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(
                self._commit_loop(), name="wagate-callbacks-committer"
            )
        await future

    async def _commit_loop(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            while self._results:
                batch = self._results[:500]
                del self._results[:500]
                attempts = [a for a, _ in batch]
                try:
                    async with write_tx(self.engine) as conn:
                        await callback_store.record_attempts(
                            conn,
                            owner=self.owner,
                            attempts=attempts,
                            now=self.clock.now(),
                            policy=self.policy,
                            rng=self._rng,
                        )
                except Exception as exc:
                    # Nothing recorded: the leases run out and the events are sent again.
                    log.error("could not record %d callback attempts: %s", len(batch), exc)
                else:
                    for a in attempts:
                        metrics.record_callback(
                            "delivered" if a.delivered else "retried" if a.retry_at else "failed"
                        )
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
                self._wake.set()  # the lanes may have a next event


async def _read_some(answer: httpx.Response) -> str:
    """The start of an answer's body (a receiver's error page can be large)."""
    data = b""
    try:
        async for chunk in answer.aiter_bytes():
            data += chunk
            if len(data) >= _READ_LIMIT:
                break
    except httpx.HTTPError:
        pass  # the status said enough
    return data[:_READ_LIMIT].decode("utf-8", errors="replace")


def _excerpt(text: str) -> str:
    """A short, printable start of a receiver's answer, for last_error: its control and
    formatting characters dropped, its whitespace collapsed."""
    printable = "".join(
        c if unicodedata.category(c)[0] not in "CZ" or c == " " else " " for c in text
    )
    words = " ".join(printable.split())
    return words[:MAX_ERROR_BODY] + ("…" if len(words) > MAX_ERROR_BODY else "")
