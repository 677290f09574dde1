"""Accepting many messages in one transaction (group commit).

Each accept needs its token checked, its channel found and, for free-form messages, the
customer's window read, then three rows written. Done one request at a time that is one fsync
per message; done here for every request waiting at that moment, it is one fsync per batch, with
the same answer for each request as if it had been alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.errors import (
    FieldError,
    InvalidToken,
    OutsideServiceWindow,
    RateLimited,
    ValidationFailed,
    WagateError,
)
from wagate.domain.models import SendRequest, Status
from wagate.domain.window import window_expires_at, window_open
from wagate.ids import new_id
from wagate.store import idempotency
from wagate.store.accept_rows import AcceptRows, ChannelChoice, CoreRows, TokenRow
from wagate.store.accounts import LAST_USED_RESOLUTION, hash_token
from wagate.store.idempotency import Replayed
from wagate.store.messages import iso

# (account_id, api_rate) → seconds to wait, or None when the request may go ahead.
RateCheck = Callable[[str, int], float | None]


@dataclass(frozen=True, slots=True)
class AcceptRequest:
    token: str
    request: SendRequest
    # A caller whose account is already known (the dashboard's signed-in user): no token is
    # checked and no API rate applies; everything else is the same.
    account_id: str | None = None
    # Already counted against the account's API rate (a batch counts its items itself).
    rate_counted: bool = False


class Deferred:
    """Not decided in this batch: another request with the same idempotency key is being
    stored right now. Tried again in the next batch, where the first one's answer is known."""


DEFERRED = Deferred()

Outcome = dict[str, Any] | Replayed | Deferred | WagateError


def accepted_body(outcome: dict[str, Any]) -> dict[str, Any]:
    """The 202 answer for an accepted message (also what an idempotent repeat gets back)."""
    return {
        "success": True,
        "id": outcome["id"],
        "status": outcome["status"],
        "type": outcome["type"],
        "phone": outcome["phone"],
        "window_expires_at": iso(outcome["window_expires_at"]),
    }


def window_closed_error(phone: str, last_inbound: datetime | None) -> OutsideServiceWindow:
    if last_inbound is None:
        detail = f"{phone} has never messaged this number"
    else:
        detail = f"{phone}'s window closed at {iso(window_expires_at(last_inbound))}"
    return OutsideServiceWindow(
        f"The 24-hour customer service window is closed ({detail}). Free-form messages can "
        "only be sent within 24 hours of the customer's last message; send an approved "
        "template with POST /v1/messages/template instead.",
        field="phone",
    )


def unknown_channel_field(wanted: str | None) -> FieldError:
    message = (
        f"This account has no channel {wanted!r}."
        if wanted
        else "This account has no WhatsApp number yet; add one with `wagate channels add`."
    )
    return FieldError("channel", "unknown_channel", message)


def _unknown_channel(wanted: str | None) -> ValidationFailed:
    return ValidationFailed([unknown_channel_field(wanted)])


def _pick_channel(candidates: Sequence[ChannelChoice], wanted: str | None) -> ChannelChoice | None:
    if wanted:
        digits = wanted.lstrip("+")
        for c in candidates:
            if wanted in (c.id, c.phone_number_id) or c.display_phone_number == digits:
                return c
        return None
    for c in candidates:
        if c.is_default:
            return c
    return candidates[0] if candidates else None


async def accept_batch(
    conn: AsyncConnection,
    items: Sequence[AcceptRequest],
    *,
    now: datetime,
    rate_check: RateCheck | None = None,
) -> list[Outcome]:
    """`accept_rows` through SQLAlchemy, in the caller's transaction on `conn`."""
    return await accept_rows(CoreRows(conn), items, now=now, rate_check=rate_check)


async def accept_rows(
    rows: AcceptRows,
    items: Sequence[AcceptRequest],
    *,
    now: datetime,
    rate_check: RateCheck | None = None,
) -> list[Outcome]:
    """Store and queue every acceptable message; for each item, its message row (with
    `window_expires_at`), the first answer to its idempotency key, or the error that refused
    it. Nothing is written for refused items."""
    hashes = [hash_token(item.token) if item.account_id is None else "" for item in items]
    wanted = list({h for h in hashes if h})
    by_hash: dict[str, TokenRow] = {}
    if wanted:
        by_hash = {r.token_hash: r for r in await rows.tokens(wanted)}
    account_ids = {r.account_id for r in by_hash.values()}
    account_ids |= {item.account_id for item in items if item.account_id is not None}
    by_account: dict[str, list[ChannelChoice]] = {a: [] for a in account_ids}
    if account_ids:
        for choice in await rows.channels(list(account_ids)):
            by_account[choice.account_id].append(choice)

    outcomes: list[Outcome] = []
    chosen: list[tuple[int, str, ChannelChoice]] = []  # (index, account, channel) still running
    keyed: dict[int, tuple[str, str]] = {}  # index → (account, idempotency key)
    seen_keys: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        account_id = item.account_id
        if account_id is None:
            token = by_hash.get(hashes[index])
            if token is None:
                outcomes.append(InvalidToken())
                continue
            wait = None
            if rate_check is not None and not item.rate_counted:
                wait = rate_check(token.account_id, token.api_rate)
            if wait is not None:
                outcomes.append(RateLimited(wait, api_rate=token.api_rate))
                continue
            account_id = token.account_id
        key = item.request.idempotency_key
        if key is not None:
            if (account_id, key) in seen_keys:
                outcomes.append(DEFERRED)  # a repeat inside this batch: answered by the next
                continue
            seen_keys.add((account_id, key))
            keyed[index] = (account_id, key)
        channel = _pick_channel(by_account[account_id], item.request.channel)
        if channel is None:
            outcomes.append(_unknown_channel(item.request.channel))
            continue
        outcomes.append({})
        chosen.append((index, account_id, channel))

    fingerprints = {i: idempotency.request_fingerprint(items[i].request) for i in keyed}
    if keyed:
        # A key seen before answers with its first answer, whatever the window or the channels
        # are now; checked before anything else so a repeat never creates a second message.
        known = await rows.idempotency(list(keyed.values()), now=now)
        for index, pair in keyed.items():
            if pair in known:
                stored_hash, replay = known[pair]
                outcomes[index] = (
                    replay
                    if stored_hash == fingerprints[index]
                    else idempotency.conflict_error(pair[1])
                )
        chosen = [c for c in chosen if keyed.get(c[0]) not in known]

    lanes = {(c.id, items[i].request.phone) for i, _, c in chosen}
    windows: dict[tuple[str, str], datetime] = {}
    if lanes:
        phones = list({p for _, p in lanes})
        channel_ids = list({c for c, _ in lanes})
        windows = await rows.windows(channel_ids, phones)

    message_rows: list[dict[str, Any]] = []
    for index, account_id, channel in chosen:
        request = items[index].request
        last_inbound = windows.get((channel.id, request.phone))
        free_form = request.content.type.free_form
        if free_form and not window_open(last_inbound, now):
            outcomes[index] = window_closed_error(request.phone, last_inbound)
            continue
        message: dict[str, Any] = {
            "id": new_id("msg"),
            "account_id": account_id,
            "channel_id": channel.id,
            "phone": request.phone,
            "type": request.content.type.value,
            "content": request.content.as_dict(),
            "reply_to": request.reply_to,
            "metadata": request.metadata,
            "status": Status.QUEUED.value,
            "wamid": None,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        message_rows.append(message)
        outcomes[index] = message | {"window_expires_at": window_expires_at(last_inbound)}

    claims = [
        {
            "account_id": keyed[index][0],
            "key": keyed[index][1],
            "request_hash": fingerprints[index],
            "message_id": outcome["id"],
            "status_code": 202,
            "response": accepted_body(outcome),
        }
        for index, _, _ in chosen
        if index in keyed and isinstance(outcome := outcomes[index], dict)
    ]
    if claims:
        ours = await rows.claim_keys(claims, now=now)
        lost = {c["message_id"] for c in claims if (c["account_id"], c["key"]) not in ours}
        if lost:
            # Another process stored the same key while we prepared: its answer is the answer.
            message_rows = [r for r in message_rows if r["id"] not in lost]
            for index in keyed:
                outcome = outcomes[index]
                if isinstance(outcome, dict) and outcome.get("id") in lost:
                    outcomes[index] = DEFERRED

    if message_rows:
        await rows.store(message_rows, now=now)
    stale = [
        r.id
        for r in by_hash.values()
        if r.last_used_at is None or now - r.last_used_at > LAST_USED_RESOLUTION
    ]
    if stale:
        # last_used_at is a hint for people; refreshing it at most once a minute keeps it cheap.
        await rows.touch_tokens(stale, now=now)
    return outcomes
