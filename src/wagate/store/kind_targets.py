"""The messages reactions and read receipts point at, looked up in one account
(`wagate.domain.kinds.TargetLookups`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate.domain.kinds import Target
from wagate.domain.models import MessageType
from wagate.store import accounts as account_store
from wagate.store.tables import channels, inbound_messages, messages


def _names(row: object) -> tuple[str, ...]:
    names = [getattr(row, "channel_id"), getattr(row, "phone_number_id")]  # noqa: B009
    display = getattr(row, "display_phone_number")  # noqa: B009
    if display:
        names += [display, "+" + display]
    return tuple(names)


class AccountTargets:
    def __init__(self, conn: AsyncConnection, account_id: str) -> None:
        self.conn = conn
        self.account_id = account_id

    async def our_message(self, message_id: str) -> Target | None:
        result = await self.conn.execute(
            select(
                messages.c.id,
                messages.c.phone,
                channels.c.id.label("channel_id"),
                channels.c.phone_number_id,
                channels.c.display_phone_number,
            )
            .join(channels, channels.c.id == messages.c.channel_id)
            .where(
                messages.c.id == message_id,
                messages.c.account_id == self.account_id,
                # A read receipt is no message on the customer's phone: nothing to react to.
                messages.c.type != MessageType.READ.value,
            )
        )
        row = result.first()
        if row is None:
            return None
        return Target(row.id, row.channel_id, _names(row), row.phone)

    async def inbound_message(self, wamid: str) -> Target | None:
        result = await self.conn.execute(
            select(
                inbound_messages.c.wamid,
                inbound_messages.c.phone,
                channels.c.id.label("channel_id"),
                channels.c.phone_number_id,
                channels.c.display_phone_number,
            )
            .join(channels, channels.c.id == inbound_messages.c.channel_id)
            .where(inbound_messages.c.wamid == wamid, channels.c.account_id == self.account_id)
            .limit(1)
        )
        row = result.first()
        if row is None:
            return None
        return Target(row.wamid, row.channel_id, _names(row), row.phone)

    async def latest_inbound(self, channel: str | None, phone: str) -> Target | None:
        """The customer's latest message to the named number, or (no channel given) to any
        of the account's numbers."""
        query = (
            select(
                inbound_messages.c.wamid,
                inbound_messages.c.phone,
                channels.c.id.label("channel_id"),
                channels.c.phone_number_id,
                channels.c.display_phone_number,
            )
            .join(channels, channels.c.id == inbound_messages.c.channel_id)
            .where(channels.c.account_id == self.account_id, inbound_messages.c.phone == phone)
            .order_by(inbound_messages.c.sent_at.desc(), inbound_messages.c.id.desc())
            .limit(1)
        )
        if channel:
            found = await account_store.channel_for_send(
                self.conn, account_id=self.account_id, wanted=channel
            )
            if found is None:
                return None
            query = query.where(channels.c.id == found.id)
        row = (await self.conn.execute(query)).first()
        if row is None:
            return None
        return Target(row.wamid, row.channel_id, _names(row), row.phone)


class EngineTargets:
    """`AccountTargets` on a connection of its own for each lookup (the batch endpoint)."""

    def __init__(self, engine: AsyncEngine, account_id: str) -> None:
        self.engine = engine
        self.account_id = account_id

    async def our_message(self, message_id: str) -> Target | None:
        async with self.engine.connect() as conn:
            return await AccountTargets(conn, self.account_id).our_message(message_id)

    async def inbound_message(self, wamid: str) -> Target | None:
        async with self.engine.connect() as conn:
            return await AccountTargets(conn, self.account_id).inbound_message(wamid)

    async def latest_inbound(self, channel: str | None, phone: str) -> Target | None:
        async with self.engine.connect() as conn:
            return await AccountTargets(conn, self.account_id).latest_inbound(channel, phone)
