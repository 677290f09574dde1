"""Message templates as synced from each channel's WhatsApp Business Account.

A sync replaces a channel's whole set in the caller's transaction (templates gone upstream are
removed; a template that stays keeps its id); reads list an account's templates, or find the
ones a send names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.templates import Template, example_params
from wagate.ids import new_id
from wagate.store.accounts import Channel
from wagate.store.messages import iso
from wagate.store.tables import channels, templates


async def replace_channel_templates(
    conn: AsyncConnection, *, channel: Channel, synced: Sequence[Template], now: datetime
) -> int:
    """Make `synced` the channel's templates; returns how many it has now."""
    # Two syncs of one channel at once take turns (PostgreSQL; SQLite writes one at a time
    # anyway): the second then deletes what the first stored instead of colliding with it.
    await conn.execute(select(channels.c.id).where(channels.c.id == channel.id).with_for_update())
    rows = await conn.execute(
        select(templates.c.id, templates.c.name, templates.c.language).where(
            templates.c.channel_id == channel.id
        )
    )
    ids = {(r.name, r.language): r.id for r in rows}
    await conn.execute(delete(templates).where(templates.c.channel_id == channel.id))
    unique = {(t.name, t.language): t for t in reversed(synced)}  # the first of a pair wins
    if unique:
        await conn.execute(
            templates.insert(),
            [
                {
                    "id": ids.get(key) or new_id("tpl"),
                    "account_id": channel.account_id,
                    "channel_id": channel.id,
                    "meta_id": t.meta_id,
                    "name": t.name,
                    "language": t.language,
                    "status": t.status,
                    "category": t.category,
                    "parameter_format": t.parameter_format,
                    "components": list(t.components),
                    "synced_at": now,
                }
                for key, t in unique.items()
            ],
        )
    return len(unique)


async def templates_named(conn: AsyncConnection, *, channel_id: str, name: str) -> list[Template]:
    """The channel's templates of that name, in every language and status (for a send)."""
    result = await conn.execute(
        select(templates)
        .where(templates.c.channel_id == channel_id, templates.c.name == name)
        .order_by(templates.c.language)
    )
    return [template_from_row(r) for r in result.mappings()]


async def list_templates(
    conn: AsyncConnection,
    *,
    account_id: str,
    name: str | None = None,
    status: str | None = None,
    language: str | None = None,
    channel_id: str | None = None,
) -> list[dict[str, Any]]:
    """The account's templates as the API shows them, by name, then language, then channel."""
    query = (
        select(templates, channels.c.phone_number_id, channels.c.waba_id)
        .join(channels, channels.c.id == templates.c.channel_id)
        .where(templates.c.account_id == account_id)
        .order_by(templates.c.name, templates.c.language, channels.c.created_at)
    )
    if name:
        query = query.where(templates.c.name == name)
    if status:
        query = query.where(templates.c.status == status.upper())
    if language:
        query = query.where(func.lower(templates.c.language) == language.lower())
    if channel_id:
        query = query.where(templates.c.channel_id == channel_id)
    result = await conn.execute(query)
    return [template_view(r) for r in result.mappings()]


def template_from_row(row: Any) -> Template:
    return Template(
        name=row["name"],
        language=row["language"],
        status=row["status"],
        category=row["category"],
        parameter_format=row["parameter_format"],
        components=tuple(row["components"] or ()),
        meta_id=row["meta_id"],
    )


def template_view(row: Any) -> dict[str, Any]:
    """A template as `GET /v1/templates` shows it, with a `params` example that fits it."""
    template = template_from_row(row)
    return {
        "id": row["id"],
        "channel_id": row["channel_id"],
        "phone_number_id": row["phone_number_id"],
        "waba_id": row["waba_id"],
        "meta_id": template.meta_id,
        "name": template.name,
        "language": template.language,
        "status": template.status,
        "category": template.category,
        "parameter_format": template.parameter_format,
        "components": list(template.components),
        "example_params": example_params(template),
        "synced_at": iso(row["synced_at"]),
    }
