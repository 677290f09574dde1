"""The sender's side of the callbacks outbox: claiming due lane heads account by account, and
recording what came of each attempt (store/callbacks.py queues the events; store/callback_lanes.py
keeps the lanes and accounts).

A failed attempt is retried on one of two clocks. A receiver that is down or overloaded (no
answer, a refused connection, 5xx, 429, a redirect, a wrong path or credentials) backs off the
whole account: its lanes wait, and at each retry one event is sent as a probe; when the probe is
delivered, everything due follows. A receiver that refuses one event (400, 409, 413, 415, 422)
backs off only that event's lane (`domain.callbacks.receiver_down`).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate import secret_box
from wagate.domain.callbacks import RetryPolicy, account_retry_at
from wagate.store import callback_lanes
from wagate.store.callbacks import DELIVERED, FAILED, PENDING
from wagate.store.tables import UTCDateTime, accounts, callback_deliveries

_CLAIMED = (
    select(
        callback_deliveries.c.seq,
        callback_deliveries.c.id,
        callback_deliveries.c.account_id,
        callback_deliveries.c.type,
        callback_deliveries.c.payload,
        callback_deliveries.c.attempts,
        callback_deliveries.c.created_at,
        accounts.c.callback_url,
        accounts.c.callback_secret,
    )
    .join(accounts, accounts.c.id == callback_deliveries.c.account_id)
    .where(callback_deliveries.c.seq.in_(bindparam("seqs", expanding=True)))
    .order_by(callback_deliveries.c.seq)
)


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed event, with where to send it and the key to sign it with (as of the claim)."""

    seq: int
    id: str
    account_id: str
    type: str
    payload: dict[str, Any]
    attempts: int  # including this one
    created_at: datetime
    url: str | None
    secret: str | None


# For rows looked up by `seq`: an expression rather than the column, so that SQLite fetches them
# by their key instead of walking every pending event through an index on `status` (it keeps no
# statistics that would tell it which is cheaper; with a failing receiver, pending are many).
_STILL_PENDING = func.coalesce(callback_deliveries.c.status, "") == PENDING

# Arrivals placed per claim, and heads of a failing account looked at per claim for events to
# give up unsent: both bound a claim's work.
ARRIVALS_PER_CLAIM = 1000
EXPIRED_PER_CLAIM = 200


async def has_due(conn: AsyncConnection, *, now: datetime, skip: Collection[str] = ()) -> bool:
    """Cheap reads: is anything waiting to be placed, or any account (outside `skip`) due?
    (Idle senders ask this, not `claim`.)"""
    if await callback_lanes.has_arrivals(conn):
        return True
    return await callback_lanes.due_account_exists(conn, now=now, skip=skip)


@dataclass(frozen=True, slots=True)
class Claimed:
    deliveries: list[DueDelivery]
    given_up: int  # events made dead letters unsent (see `claim`)


async def claim(
    conn: AsyncConnection,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    account_cap: int,
    in_flight: Mapping[str, int],
    give_up_after: float,
) -> Claimed:
    """Lease up to `limit` due lane heads, at most `account_cap` in flight per account
    (`in_flight`: this sender's, by account).

    An account whose receiver is failing gets one probe at a time. Its events that have waited
    longer than `give_up_after` seconds are made dead letters on the way, without another POST
    (a receiver down for days would otherwise hold each for a probe of its own)."""
    await callback_lanes.settle_arrivals(conn, now=now, limit=ARRIVALS_PER_CLAIM)
    full = [a for a, n in in_flight.items() if n >= account_cap]
    accounts = await callback_lanes.due_accounts(conn, now=now, skip=full, limit=limit)
    lease_until = now + lease
    cutoff = now - timedelta(seconds=give_up_after)
    heads: list[int] = []
    given_up = 0
    budget = limit
    for account in accounts:
        if budget <= 0:
            break
        due: datetime | None
        if account.failures:
            # One probe at a time; behind it, heads past the retry period are given up unsent
            # (the receiver has kept failing; the probe itself is tried even if it is that old).
            probing = not in_flight.get(account.account_id)
            looked = EXPIRED_PER_CLAIM + (1 if probing else 0)
            lanes = await _due_lanes(conn, account.account_id, now=now, limit=looked)
            probe = lanes[0] if probing and lanes else None
            expired = [
                lane.head_seq
                for lane in lanes[1 if probe else 0 :]
                if lane.created_at is not None and lane.created_at <= cutoff
            ]
            if expired:
                await _give_up_unsent(conn, account, expired, give_up_after)
                given_up += len(expired)
            if probe is not None:
                await callback_lanes.lease(conn, [probe.lane], until=lease_until)
                heads.append(probe.head_seq)
                budget -= 1
            if (probe is not None or not probing) and not (len(lanes) == looked and expired):
                due = lease_until + callback_lanes.LEASE_END  # no second probe meanwhile
            else:  # nothing to probe, or more heads to look at: when its next lane is due
                due = await callback_lanes.next_due(conn, account.account_id)
        else:
            wanted = min(budget, account_cap - in_flight.get(account.account_id, 0))
            lanes = await _due_lanes(conn, account.account_id, now=now, limit=wanted)
            await callback_lanes.lease(conn, [lane.lane for lane in lanes], until=lease_until)
            heads += [lane.head_seq for lane in lanes]
            budget -= len(lanes)
            # When its next lane is due: at once if it has more waiting (its share of the slots
            # is what keeps it from crowding the others out), or when a lease ends.
            due = await callback_lanes.next_due(conn, account.account_id)
        await callback_lanes.set_due(conn, account.account_id, due)
    if not heads:
        return Claimed([], given_up)
    leased = {
        r.seq
        for r in await conn.execute(
            _LEASE, {"seqs": heads, "lease_until": lease_until, "owner": owner}
        )
    }
    if missing := [h for h in heads if h not in leased]:
        # A lane naming an event that is no longer pending: it moves on to what is.
        await callback_lanes.move_on(conn, missing)
    if not leased:
        return Claimed([], given_up)
    rows = await conn.execute(_CLAIMED, {"seqs": sorted(leased)})
    deliveries = [
        DueDelivery(
            seq=r.seq,
            id=r.id,
            account_id=r.account_id,
            type=r.type,
            payload=r.payload,
            attempts=r.attempts,
            created_at=r.created_at,
            url=r.callback_url,
            secret=secret_box.open_optional(r.callback_secret),
        )
        for r in rows
    ]
    return Claimed(deliveries, given_up)


async def _due_lanes(
    conn: AsyncConnection, account_id: str, *, now: datetime, limit: int
) -> list[callback_lanes.DueLane]:
    """The account's due lanes; one whose head event is gone (retention prunes old events, even
    pending ones) moves on to what is left of it first."""
    lanes = await callback_lanes.due_lanes(conn, account_id=account_id, now=now, limit=limit)
    if orphans := [lane.head_seq for lane in lanes if lane.created_at is None]:
        await callback_lanes.move_on(conn, orphans)
        lanes = [lane for lane in lanes if lane.created_at is not None]
    return lanes


_LEASE = (
    update(callback_deliveries)
    .where(
        callback_deliveries.c.seq.in_(bindparam("seqs", expanding=True)),
        _STILL_PENDING,
    )
    .values(
        lease_until=bindparam("lease_until", type_=UTCDateTime()),
        lease_owner=bindparam("owner"),
        attempts=callback_deliveries.c.attempts + 1,
    )
    .returning(callback_deliveries.c.seq)
)


async def _give_up_unsent(
    conn: AsyncConnection,
    account: callback_lanes.DueAccount,
    seqs: list[int],
    give_up_after: float,
) -> None:
    """Events of a failing receiver that waited past the retry period: dead letters, with the
    receiver's last answer, and their lanes move on."""
    hours = give_up_after / 3600
    waited = f"{hours:g} hours" if hours >= 1 else f"{give_up_after:g} s"
    error = f"Given up without another attempt: the receiver kept failing for longer than {waited}."
    if account.last_error:
        error += f" Its last answer: {account.last_error}"
    await conn.execute(
        update(callback_deliveries)
        .where(callback_deliveries.c.seq.in_(seqs), _STILL_PENDING)
        .values(
            status=FAILED,
            last_status_code=account.last_status_code,
            last_error=error[:1000],
            lease_until=None,
            lease_owner=None,
        )
    )
    await callback_lanes.move_on(conn, seqs)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What came of sending one claimed event.

    `retry_at` is when to try the event again (None: given up, a dead letter); a failure that
    says the receiver itself is down (`receiver_down`) backs off the whole account instead,
    counted once per run of failures: by attempts that started after the last one counted."""

    seq: int
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry_at: datetime | None = None
    account_id: str | None = None
    started_at: datetime | None = None
    receiver_down: bool = False


async def record_attempts(
    conn: AsyncConnection,
    *,
    owner: str,
    attempts: Sequence[Attempt],
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> None:
    """Record a batch of attempts, each only if its lease is still ours; move the lanes of
    heads that left on, and the accounts' backoff with what their receivers answered."""
    seqs = [a.seq for a in attempts]
    if not seqs:
        return
    await callback_lanes.lock_lanes(conn, seqs)
    result = await conn.execute(
        select(callback_deliveries.c.seq, callback_deliveries.c.account_id).where(
            callback_deliveries.c.seq.in_(seqs),
            callback_deliveries.c.lease_owner == owner,
            _STILL_PENDING,
        )
    )
    account_of = {r.seq: r.account_id for r in result}
    attempts = [a for a in attempts if a.seq in account_of]
    if not attempts:
        return
    states = await callback_lanes.lock_accounts(conn, set(account_of.values()))
    changed: dict[str, callback_lanes.AccountState] = {}
    for a in attempts:  # in the order they finished
        state = states.get(account_of[a.seq])
        if state is None:
            continue
        if a.delivered:
            state.failures, state.failed_at, state.due_at = 0, None, now
            state.last_status_code, state.last_error = a.status_code, None
            changed[state.account_id] = state
        elif a.receiver_down and (
            state.failed_at is None or (a.started_at is not None and a.started_at > state.failed_at)
        ):
            state.failures += 1
            state.failed_at = now
            state.due_at = account_retry_at(policy, failures=state.failures, now=now, rng=rng)
            state.last_status_code, state.last_error = a.status_code, a.error
            changed[state.account_id] = state

    delivered = [a for a in attempts if a.delivered]
    dead = [a for a in attempts if not a.delivered and a.retry_at is None]
    retried: list[tuple[Attempt, datetime]] = []
    for a in attempts:
        if a.delivered:
            continue
        state = states.get(account_of[a.seq])
        backing_off = state is not None and state.failures > 0 and state.due_at is not None
        at = now if a.retry_at is None else a.retry_at  # a given-up head's lane moves on now
        if a.retry_at is not None:
            if a.receiver_down and backing_off and state is not None and state.due_at:
                at = state.due_at  # with the account's next probe
            retried.append((a, at))
        if state is not None and not backing_off and (state.due_at is None or state.due_at > at):
            # The lane is due then: so is its account (which the claim may have put later).
            state.due_at = at
            changed[state.account_id] = state

    ours = and_(callback_deliveries.c.seq == bindparam("b_seq"))
    released = {"lease_until": None, "lease_owner": None}
    if delivered:
        await conn.execute(
            update(callback_deliveries)
            .where(ours)
            .values(
                status=DELIVERED,
                delivered_at=now,
                last_status_code=bindparam("b_code"),
                last_error=None,
                **released,
            ),
            [{"b_seq": a.seq, "b_code": a.status_code} for a in delivered],
        )
    if retried:
        await conn.execute(
            update(callback_deliveries)
            .where(ours)
            .values(
                available_at=bindparam("b_at", type_=UTCDateTime()),
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
                **released,
            ),
            [
                {"b_seq": a.seq, "b_at": at, "b_code": a.status_code, "b_error": a.error}
                for a, at in retried
            ],
        )
        await callback_lanes.postpone(conn, [(a.seq, at) for a, at in retried])
    if dead:
        await conn.execute(
            update(callback_deliveries)
            .where(ours)
            .values(
                status=FAILED,
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
                **released,
            ),
            [{"b_seq": a.seq, "b_code": a.status_code, "b_error": a.error} for a in dead],
        )
    await callback_lanes.move_on(conn, [a.seq for a in delivered + dead])
    await callback_lanes.save_accounts(conn, list(changed.values()))


async def pending_count(conn: AsyncConnection) -> int:
    result = await conn.execute(
        select(func.count())
        .select_from(callback_deliveries)
        .where(callback_deliveries.c.status == PENDING)
    )
    return int(result.scalar_one())
