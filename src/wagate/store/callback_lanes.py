"""The callback lanes and accounts as data, so that a claim costs what it takes, not what waits.

- An event is queued with an *arrival* row beside it (a plain insert: the transactions that
  queue events never wait for each other or for the sender). The sender's next claim moves
  arrivals into `callback_lanes` (a row per lane with pending events: its head, and when that is
  due) and wakes their accounts in `callback_accounts`.
- A claim looks at the accounts that are due, longest waiting first, and takes each one's due
  lane heads through the index (account, due time). A receiver that is down costs one look at
  its account per retry however many of its events wait, and an account takes at most its
  share of the sender's slots.
- A leased head is due at the end of its lease; a head that leaves (delivered, given up) hands
  over to the lane's oldest pending event, or the lane goes.

Locks on PostgreSQL: whoever changes lanes or accounts and may wait for a lock takes the lanes
first, then the accounts, each in key order; claims skip what is locked. SQLite's writers take
turns (BEGIN IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.store.tables import (
    UTCDateTime,
    callback_accounts,
    callback_arrivals,
    callback_deliveries,
    callback_lanes,
)

# A lease holds to its last instant: the lane is due again just after it.
LEASE_END = timedelta(microseconds=1)


async def arrive(conn: AsyncConnection, events: Sequence[tuple[int, str, str]]) -> None:
    """Note newly queued events (seq, lane, account_id) for the sender's next claim."""
    if events:
        await conn.execute(
            insert(callback_arrivals),
            [{"seq": s, "lane": lane, "account_id": a} for s, lane, a in events],
        )


# --------------------------------------------------------------------------- arrivals

_TAKE_ARRIVALS = {
    "sqlite": text(
        "DELETE FROM callback_arrivals WHERE seq IN"
        " (SELECT seq FROM callback_arrivals ORDER BY seq LIMIT :limit)"
        " RETURNING lane, account_id"
    ),
    "postgresql": text(
        "DELETE FROM callback_arrivals WHERE seq IN"
        " (SELECT seq FROM callback_arrivals ORDER BY seq LIMIT :limit FOR UPDATE SKIP LOCKED)"
        " RETURNING lane, account_id"
    ),
}
# A new lane's head is its oldest pending event (ix_callback_deliveries_pending_lane: a lookup
# per lane, whatever the lane delivered before); a lane that exists keeps its head.
_NEW_LANES = text(
    "INSERT INTO callback_lanes (lane, account_id, head_seq, due_at)"
    " SELECT d.lane, d.account_id, d.seq, d.available_at FROM callback_deliveries d"
    " WHERE d.seq IN (SELECT MIN(p.seq) FROM callback_deliveries p"
    "                 WHERE p.status = 'pending' AND p.lane IN :lanes GROUP BY p.lane)"
    " ORDER BY d.lane ON CONFLICT (lane) DO NOTHING"
).bindparams(bindparam("lanes", expanding=True))


def _wake(conn: AsyncConnection) -> Any:
    """Upsert accounts due now, unless due earlier or backing off (then the retry decides)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(callback_accounts)
    row = callback_accounts.c
    woken = statement.excluded.due_at
    return statement.on_conflict_do_update(
        index_elements=["account_id"],
        set_={
            "due_at": case(
                (and_(row.failures > 0, row.due_at.is_not(None)), row.due_at),
                (row.due_at.is_(None), woken),
                (row.due_at > woken, woken),
                else_=row.due_at,
            )
        },
    )


async def settle_arrivals(conn: AsyncConnection, *, now: datetime, limit: int) -> int:
    """Place up to `limit` arrivals in their lanes and wake their accounts; how many."""
    rows = list(await conn.execute(_TAKE_ARRIVALS[conn.dialect.name], {"limit": limit}))
    if not rows:
        return 0
    await conn.execute(_NEW_LANES, {"lanes": sorted({r.lane for r in rows})})
    await conn.execute(
        _wake(conn),
        [{"account_id": a, "due_at": now} for a in sorted({r.account_id for r in rows})],
    )
    return len(rows)


async def has_arrivals(conn: AsyncConnection) -> bool:
    result = await conn.execute(select(callback_arrivals.c.seq).limit(1))
    return result.first() is not None


# --------------------------------------------------------------------------- claiming


@dataclass(frozen=True, slots=True)
class DueAccount:
    account_id: str
    failures: int
    last_status_code: int | None
    last_error: str | None


async def due_accounts(
    conn: AsyncConnection, *, now: datetime, skip: Collection[str], limit: int
) -> list[DueAccount]:
    """Up to `limit` accounts due now, longest waiting first, but not those in `skip` (at
    their share of this sender's slots); on PostgreSQL not those another claim holds."""
    row = callback_accounts.c
    query = (
        select(row.account_id, row.failures, row.last_status_code, row.last_error)
        .where(row.due_at <= now)
        .order_by(row.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if skip:
        query = query.where(row.account_id.not_in(list(skip)))
    result = await conn.execute(query)
    return [DueAccount(r.account_id, r.failures, r.last_status_code, r.last_error) for r in result]


async def due_account_exists(
    conn: AsyncConnection, *, now: datetime, skip: Collection[str]
) -> bool:
    """A cheap read for an idle sender: is any account (outside `skip`) due?"""
    row = callback_accounts.c
    query = select(row.account_id).where(row.due_at <= now).limit(1)
    if skip:
        query = query.where(row.account_id.not_in(list(skip)))
    return (await conn.execute(query)).first() is not None


@dataclass(frozen=True, slots=True)
class DueLane:
    lane: str
    head_seq: int
    created_at: datetime | None  # the head event's; None when it is gone (pruned by retention)


async def due_lanes(
    conn: AsyncConnection, *, account_id: str, now: datetime, limit: int
) -> list[DueLane]:
    """Up to `limit` of the account's lanes whose heads are due, longest waiting first."""
    lanes, events = callback_lanes.c, callback_deliveries.c
    result = await conn.execute(
        select(lanes.lane, lanes.head_seq, events.created_at)
        .outerjoin(callback_deliveries, events.seq == lanes.head_seq)
        .where(lanes.account_id == account_id, lanes.due_at <= now)
        .order_by(lanes.due_at, lanes.head_seq)
        .limit(limit)
        .with_for_update(of=callback_lanes, skip_locked=True)
    )
    return [DueLane(r.lane, r.head_seq, r.created_at) for r in result]


async def lease(conn: AsyncConnection, lanes: Sequence[str], *, until: datetime) -> None:
    """The lanes' heads are leased until `until`: they are due again just after."""
    if lanes:
        await conn.execute(
            update(callback_lanes)
            .where(callback_lanes.c.lane.in_(list(lanes)))
            .values(due_at=until + LEASE_END)
        )


async def next_due(conn: AsyncConnection, account_id: str) -> datetime | None:
    """When the account's next lane is due (leases included), or None when it has none."""
    result = await conn.execute(
        select(func.min(callback_lanes.c.due_at)).where(callback_lanes.c.account_id == account_id)
    )
    value: datetime | None = result.scalar()
    return value


async def set_due(conn: AsyncConnection, account_id: str, due_at: datetime | None) -> None:
    await conn.execute(
        update(callback_accounts)
        .where(callback_accounts.c.account_id == account_id)
        .values(due_at=due_at)
    )


# --------------------------------------------------------------------------- heads leaving

_LOCK_LANES = text(
    'SELECT lane FROM callback_lanes WHERE head_seq IN :seqs ORDER BY lane COLLATE "C" FOR UPDATE'
).bindparams(bindparam("seqs", expanding=True))
_NEXT_HEAD = (
    "(SELECT MIN(p.seq) FROM callback_deliveries p"
    " WHERE p.lane = callback_lanes.lane AND p.status = 'pending')"
)
# A lane with no next head goes. (Asked as "no oldest pending event" and not NOT EXISTS: for
# that SQLite's planner picked ix_callback_deliveries_due by status and read every pending event
# of every lane to learn that one lane had none left, so each delivery cost what was waiting.)
_DROP_EMPTY = text(
    f"DELETE FROM callback_lanes WHERE head_seq IN :seqs AND {_NEXT_HEAD} IS NULL"
).bindparams(bindparam("seqs", expanding=True))
_MOVE_ON = text(
    f"UPDATE callback_lanes SET head_seq = {_NEXT_HEAD},"
    " due_at = (SELECT d.available_at FROM callback_deliveries d"
    f"          WHERE d.seq = {_NEXT_HEAD})"
    " WHERE head_seq IN :seqs"
).bindparams(bindparam("seqs", expanding=True))
_POSTPONE = text("UPDATE callback_lanes SET due_at = :due_at WHERE head_seq = :seq").bindparams(
    bindparam("due_at", type_=UTCDateTime)
)


async def lock_lanes(conn: AsyncConnection, head_seqs: Sequence[int]) -> None:
    """Lock the lanes of these heads before they move on (PostgreSQL; a no-op on SQLite)."""
    if head_seqs and conn.dialect.name == "postgresql":
        await conn.execute(_LOCK_LANES, {"seqs": list(head_seqs)})


async def move_on(conn: AsyncConnection, left: Sequence[int]) -> None:
    """The heads `left` are no longer pending: their lanes take their oldest pending event, or
    go when none is left."""
    if left:
        seqs = list(left)
        await conn.execute(_DROP_EMPTY, {"seqs": seqs})
        await conn.execute(_MOVE_ON, {"seqs": seqs})


async def postpone(conn: AsyncConnection, retries: Sequence[tuple[int, datetime]]) -> None:
    """Heads to be tried again later: their lanes are due then."""
    if retries:
        await conn.execute(_POSTPONE, [{"seq": s, "due_at": at} for s, at in retries])


# --------------------------------------------------------------------------- account state


@dataclass(slots=True)
class AccountState:
    """An account's receiver as the sender sees it (`failures` in a row; 0 when it works)."""

    account_id: str
    due_at: datetime | None
    failures: int
    failed_at: datetime | None
    last_status_code: int | None
    last_error: str | None


async def lock_accounts(conn: AsyncConnection, ids: Collection[str]) -> dict[str, AccountState]:
    """The accounts' state, locked until the transaction ends (in key order, after the lanes)."""
    if not ids:
        return {}
    row = callback_accounts.c
    result = await conn.execute(
        select(callback_accounts)
        .where(row.account_id.in_(sorted(ids)))
        .order_by(row.account_id)
        .with_for_update()
    )
    return {
        r.account_id: AccountState(
            r.account_id, r.due_at, r.failures, r.failed_at, r.last_status_code, r.last_error
        )
        for r in result
    }


async def save_accounts(conn: AsyncConnection, states: Sequence[AccountState]) -> None:
    if states:
        await conn.execute(
            update(callback_accounts)
            .where(callback_accounts.c.account_id == bindparam("b_id"))
            .values(
                due_at=bindparam("b_due", type_=UTCDateTime),
                failures=bindparam("b_failures"),
                failed_at=bindparam("b_failed_at", type_=UTCDateTime),
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
            ),
            [
                {
                    "b_id": s.account_id,
                    "b_due": s.due_at,
                    "b_failures": s.failures,
                    "b_failed_at": s.failed_at,
                    "b_code": s.last_status_code,
                    "b_error": s.last_error,
                }
                for s in sorted(states, key=lambda s: s.account_id)
            ],
        )


async def retry_now(conn: AsyncConnection, account_id: str, *, now: datetime) -> None:
    """Someone asked for an event to be sent again (a replay): try the receiver now, whatever
    its backoff says."""
    await conn.execute(
        _wake(conn).values(account_id=account_id, due_at=now),
    )
    await conn.execute(
        update(callback_accounts)
        .where(callback_accounts.c.account_id == account_id)
        .values(due_at=now, failures=0, failed_at=None)
    )
