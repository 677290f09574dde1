"""The CLI's `templates` commands: sync every channel's templates from Meta's Graph API into the
database, and list them. They use the database and the Graph API directly, so they work with or
without a running server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.cli_secrets import prepare_database
from wagate.cli_server import ServerOpt, target
from wagate.clock import SystemClock
from wagate.config import Settings
from wagate.store import accounts as account_store
from wagate.store import templates as template_store
from wagate.store.db import make_async_engine
from wagate.template_sync import ChannelSync, fetch_channels, graph_clients, store_synced

T = TypeVar("T")

templates_app = typer.Typer(
    help="Message templates, as synced from each channel's WhatsApp Business Account.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

AccountOpt = Annotated[str | None, typer.Option(help="Only this account (default: all)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _run(work: Callable[[Settings, AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` against the configured database (migrated first)."""
    settings = Settings()
    url = prepare_database(settings)

    async def run() -> T:
        engine = make_async_engine(url, synchronous=settings.sqlite_synchronous)
        try:
            return await work(settings, engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except account_store.UnknownAccount as exc:
        _fail(str(exc))
        raise AssertionError from exc  # unreachable


async def _account_ids(engine: AsyncEngine, account: str | None) -> dict[str, str]:
    """Account id → name: the one named, or all."""
    async with engine.connect() as conn:
        if account is not None:
            row = await account_store.require_account(conn, name=account)
            return {row["id"]: row["name"]}
        return {r["id"]: r["name"] for r in await account_store.list_accounts(conn)}


@templates_app.command("sync")
def templates_sync(
    account: AccountOpt = None,
    token: Annotated[
        str | None,
        typer.Option(
            metavar="TOKEN",
            help="Sync through the running server's API instead, for this token's account "
            "(the server is found as for `wagate send`: --server, WAGATE_URL, the data folder)",
        ),
    ] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch every channel's templates from Meta and replace the synced copy (exit 1 if any
    channel fails; that channel keeps its previous copy). Works without a running server."""
    if token is not None or server is not None:
        _sync_through_server(token, server, as_json)
        return

    async def work(settings: Settings, engine: AsyncEngine) -> list[ChannelSync]:
        names = await _account_ids(engine, account)
        async with engine.connect() as conn:
            channels = [c for c in await account_store.list_channels(conn) if c.account_id in names]
        async with graph_clients(settings) as http_for:
            synced = await fetch_channels(channels, http_for, version=settings.graph_api_version)
        await store_synced(engine, synced, now=SystemClock().now())
        return synced

    synced = _run(work)
    summaries = [s.summary() for s in synced]
    if as_json:
        total = sum(s["templates"] or 0 for s in summaries)
        sys.stdout.write(json.dumps({"channels": summaries, "templates": total}, indent=2) + "\n")
    else:
        if not synced:
            console.print("no channels to sync; add one with `wagate channels add`")
        for item in synced:
            if item.error is None:
                console.print(
                    f"channel {item.channel.id} (WABA {item.channel.waba_id}): "
                    f"{len(item.templates)} templates"
                )
    failed = [s for s in synced if s.error is not None]
    for item in failed:
        err.print(f"[red]error:[/red] {item.problem()}; its templates were left as they were")
    if failed:
        raise typer.Exit(1)


def _sync_through_server(token: str | None, server: str | None, as_json: bool) -> None:
    """`POST /v1/templates/sync` on the running server (all or nothing, as the API does it)."""
    from wagate.cli_send import api_failure
    from wagate.client import ApiError, Client

    if not token:
        _fail("syncing through a server needs the account's API token: --token")
    found = target(server)
    with Client(found.url, token) as wa:
        try:
            result = wa.sync_templates()
        except ApiError as error:
            api_failure(error, as_json, found)
            return
    summaries = result.get("channels", [])
    if as_json:
        total = sum(s["templates"] or 0 for s in summaries)
        sys.stdout.write(json.dumps({"channels": summaries, "templates": total}, indent=2) + "\n")
        return
    for item in summaries:
        console.print(
            f"channel {item['channel_id']} (WABA {item['waba_id']}): {item['templates']} "
            f"templates, through {found.url}"
        )


@templates_app.command("list")
def templates_list(account: AccountOpt = None, as_json: JsonOpt = False) -> None:
    """List the synced templates, by name and language."""

    async def work(_: Settings, engine: AsyncEngine) -> list[dict[str, Any]]:
        names = await _account_ids(engine, account)
        rows: list[dict[str, Any]] = []
        async with engine.connect() as conn:
            for account_id, name in names.items():
                listed = await template_store.list_templates(conn, account_id=account_id)
                rows += [{"account": name, **r} for r in listed]
        return rows

    rows = _run(work)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        console.print("no templates synced yet; run `wagate templates sync`")
        return
    several = len({r["channel_id"] for r in rows}) > 1
    table = Table("account")
    table.add_column("name", overflow="fold")  # never cut a name short: it is what one sends
    for column in ("language", "status", "category", *(["channel"] if several else [])):
        table.add_column(column)
    for r in rows:
        cells = [r["account"], r["name"], r["language"], r["status"], r["category"]]
        table.add_row(*cells, *([r["channel_id"]] if several else []))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(templates_app, name="templates")
