"""The `wagate` command line: run the server, manage accounts, channels and tokens, play the
sandbox customer. Every command honours WAGATE_DATA_DIR and WAGATE_DATABASE_URL."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate import __version__, cli_kinds, cli_send, cli_templates
from wagate.asgi import LateASGI
from wagate.cli_server import (
    POINT_ELSEWHERE,
    ServerOpt,
    command_name,
    is_wagate,
    not_wagate,
    target,
    unreachable,
)
from wagate.clock import SystemClock
from wagate.config import Settings
from wagate.logs import configure as configure_logging
from wagate.server_address import Target, forget_server, record_server
from wagate.store import accounts as account_store
from wagate.store.db import make_async_engine, migrate, write_tx

app = typer.Typer(
    help="wagate: a self-hosted WhatsApp Business messaging gateway.", no_args_is_help=True
)
accounts_app = typer.Typer(
    help="Accounts (each with its own tokens, channels and messages).", no_args_is_help=True
)
channels_app = typer.Typer(
    help="WhatsApp business numbers (Cloud API channels).", no_args_is_help=True
)
tokens_app = typer.Typer(help="API tokens (stored only as hashes).", no_args_is_help=True)
sandbox_app = typer.Typer(help="The built-in Cloud API simulator.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(channels_app, name="channels")
app.add_typer(tokens_app, name="tokens")
app.add_typer(sandbox_app, name="sandbox")
users_app = typer.Typer(help="Dashboard users (argon2 password hashes).", no_args_is_help=True)
app.add_typer(users_app, name="users")
cli_send.register(app)
cli_kinds.register(app)
cli_templates.register(app)

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("wagate.server")
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _db(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction on the configured database (migrated first)."""
    settings = Settings()
    url = settings.resolved_database_url
    migrate(url)

    async def run() -> T:
        engine = make_async_engine(url, synchronous=settings.sqlite_synchronous)
        try:
            async with write_tx(engine) as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (account_store.AlreadyExists, account_store.UnknownAccount) as exc:
        _fail(str(exc))
        raise AssertionError from exc  # unreachable


def _check_egress(option: str, url: str) -> None:
    """Refuse a URL that the egress policy would not let wagate reach (url_not_allowed)."""
    from wagate.egress import EgressPolicy

    try:
        policy = EgressPolicy.from_settings(Settings())
    except ValueError as exc:  # a bad WAGATE_EGRESS_ALLOW
        _fail(str(exc))
        return
    problem = asyncio.run(policy.url_problem(url))
    if problem is not None:
        _fail(f"{option} is not allowed (url_not_allowed): {problem}")


async def _account_id(conn: AsyncConnection, name: str | None) -> str | None:
    """The id of the account named `name`, or None (all accounts) when no name is given."""
    if name is None:
        return None
    return str((await account_store.require_account(conn, name=name))["id"])


def _iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else value


def _emit(data: Any, as_json: bool, table: Table | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, default=_iso, indent=2) + "\n")
    elif table is not None:
        console.print(table)


# ---------------------------------------------------------------- server processes


def _run_server(host: str, port: int, *, dispatcher: bool, http_api: bool) -> None:
    import uvicorn

    from wagate.api.app import create_app
    from wagate.bootstrap import (
        SandboxIdentity,
        ensure_first_admin,
        ensure_sandbox,
        sandbox_wanted,
    )

    settings = Settings(host=host, port=port)
    configure_logging(settings.log_level, settings.log_format)
    url = settings.resolved_database_url
    migrate(url)
    clock = SystemClock()

    async def decide() -> bool:
        engine = make_async_engine(url, synchronous=settings.sqlite_synchronous)
        try:
            return await sandbox_wanted(settings, engine)
        finally:
            await engine.dispose()

    use_sandbox = http_api and asyncio.run(decide())
    engine = make_async_engine(url, synchronous=settings.sqlite_synchronous)
    sandbox = None
    cloud_http: httpx.AsyncClient | None = None
    media_http: httpx.AsyncClient | None = None
    gateway = LateASGI()
    if use_sandbox:
        from wagate.sandbox import create_sandbox_app

        identity = SandboxIdentity.load_or_create(settings.data_dir)
        # The gateway and its embedded sandbox call each other in-process (no loopback sockets,
        # no HTTP parsing); clients outside still reach the sandbox over HTTP at /sandbox.
        in_process = httpx.ASGITransport(app=gateway)
        sandbox = create_sandbox_app(
            identity.sandbox_config(
                webhook_url=settings.local_url + "/webhooks/whatsapp",
                state_path=settings.data_dir / "sandbox.sqlite3",
                status_delay=settings.sandbox_status_delay,
            ),
            webhook_client=httpx.AsyncClient(transport=in_process, timeout=10),
        )
        from wagate.egress import graph_transport
        from wagate.sandbox.fastpath import GraphSendFastPath, InProcessClient

        # Sends skip the gateway's and the sandbox's FastAPI stacks (most of a send's CPU).
        cloud_http = InProcessClient(
            settings.local_url,
            httpx.ASGITransport(app=GraphSendFastPath(gateway, sandbox.state.sandbox)),
            graph_transport(settings),
            timeout=httpx.Timeout(settings.send_timeout, connect=5.0),
        )
        from wagate.egress import MEDIA_TIMEOUT, media_transport

        # Files (uploads to Meta, downloads of customers' files) reach the sandbox in process
        # too, and real Graph URLs with answers up to the largest file.
        media_http = InProcessClient(
            settings.local_url,
            httpx.ASGITransport(app=gateway),
            media_transport(settings),
            timeout=httpx.Timeout(MEDIA_TIMEOUT, connect=5.0),
        )

    command = "serve" if dispatcher else "api"
    me = command_name()

    async def announce() -> None:
        record_server(
            settings.data_dir, url=settings.local_url, public_url=settings.base_url, command=command
        )
        log.info(
            "wagate %s %s listening on %s (pid %d, storage %s, sandbox %s)",
            command,
            __version__,
            settings.local_url,
            os.getpid(),
            _safe_url(url),
            "on" if use_sandbox else "off",
        )
        console.print(f"[bold]wagate[/bold] listening on {settings.local_url}")
        console.print(f"  storage: {_safe_url(url)}")
        console.print(f"  dashboard: {settings.local_url}/")
        if not use_sandbox:
            await _hint_first_user(engine, me)
            return
        ready = await ensure_sandbox(settings, engine, clock)
        console.print("  sandbox: on (a simulator of Meta's Cloud API; no Meta account needed)")
        if ready.new_token:
            console.print(
                f"\n  Your sandbox API token (shown once): [bold green]{ready.new_token}[/]"
            )
        else:
            console.print(
                f"\n  Make a new API token with: {me} tokens create --account {ready.account_name}"
            )
        admin = await ensure_first_admin(engine, clock, account_name=ready.account_name)
        if admin is not None:
            console.print(
                f"\n  Sign in to the dashboard at {settings.local_url}/ as [bold]{admin.email}[/]"
                f"\n  with this password (shown once): [bold green]{admin.password}[/]"
            )
        console.print(
            f"\n  In the browser: the sandbox phone at {settings.local_url}/sandbox-phone plays"
            " the customer.\n  Or from a shell, open the window by replying as a customer, then"
            " send:\n"
            f"    {me} sandbox reply --phone +14155552671 --text hello\n"
            f"    curl -s {settings.local_url}/v1/messages -H 'Authorization: Bearer <token>' \\\n"
            "      -H 'Content-Type: application/json' \\\n"
            '      -d \'{"phone": "+14155552671", "message": "Hi from wagate"}\'\n'
            f"  API docs: {settings.local_url}/docs\n",
            highlight=False,
        )

    async def stopped() -> None:
        forget_server(settings.data_dir)
        # Here, not after uvicorn.run: uvicorn re-raises the stopping signal once it is done.
        log.info("wagate %s on %s stopped", command, settings.local_url)
        if media_http is not None:
            await media_http.aclose()
        if cloud_http is not None:
            # Its connections to Meta (real channels next to the sandbox) close with the app.
            await cloud_http.aclose()

    if http_api:
        server_app = create_app(
            settings,
            engine=engine,
            clock=clock,
            run_dispatcher=dispatcher,
            sandbox=sandbox,
            cloud_http=cloud_http,
            media_http=media_http,
            on_startup=_then_settle_heap(announce),
            on_shutdown=stopped,
        )
        gateway.app = server_app
        uvicorn.run(
            server_app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            # Longer than the idle timeout of the load balancers and clients that keep
            # connections open (60 s is common): the side that closes an idle connection must be
            # the client, or a request sent as the server closes it is lost in flight.
            timeout_keep_alive=75,
            log_config=None,  # wagate.logs set up the handlers, uvicorn's lines included
        )
    else:
        _run_loop(_worker_forever(settings, url))
        log.info("wagate worker stopped")


async def _hint_first_user(engine: AsyncEngine, me: str) -> None:
    from wagate.store import users as user_store

    async with engine.connect() as conn:
        if await user_store.count_users(conn):
            return
    console.print(
        "  No dashboard users yet; add one with:\n"
        f"    {me} users create --account NAME --email you@example.com --admin"
    )


def _settle_heap() -> None:
    """Keep what start-up built out of the garbage collector's full passes.

    A server's start-up leaves well over a hundred thousand long-lived objects (modules, the
    routes, the schemas, SQLAlchemy's tables and compiled statements), and every full collection
    walked them all: 30-40 ms with the event loop stopped, about once a second under load, long
    enough for paced sends to miss their slots. Frozen after start-up, they are no longer walked;
    what is made later is collected as before.
    """
    gc.collect()
    gc.freeze()


def _then_settle_heap(startup: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await startup()
        _settle_heap()

    return run


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, on uvloop when it is installed (it comes with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _worker_forever(settings: Settings, url: str) -> None:
    import signal

    from wagate.cloud.client import CloudClient
    from wagate.dispatch.worker import Dispatcher
    from wagate.egress import graph_client

    engine = make_async_engine(url, synchronous=settings.sqlite_synchronous)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from wagate.cloud.client import CloudMedia
    from wagate.egress import media_client

    async with graph_client(settings) as http, media_client(settings) as files_http:
        dispatcher = Dispatcher(
            engine=engine,
            settings=settings,
            clock=SystemClock(),
            cloud=CloudClient(http),
            # Files (customers' downloads, media_url fetches, uploads to Meta) may be larger
            # than a Graph API answer's cap.
            media=CloudMedia(http, files_http),
        )
        dispatcher.start()
        _settle_heap()
        console.print(f"wagate worker {dispatcher.owner} dispatching from {_safe_url(url)}")
        log.info(
            "wagate worker %s %s dispatching from %s (pid %d)",
            dispatcher.owner,
            __version__,
            _safe_url(url),
            os.getpid(),
        )
        await stop.wait()
        await dispatcher.stop()
    await engine.dispose()


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="WAGATE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="WAGATE_PORT")] = 8000,
) -> None:
    """Run everything in one process: the API, the dispatcher and (without real channels) the
    sandbox."""
    _run_server(host, port, dispatcher=True, http_api=True)


@app.command("api")
def api_command(
    host: Annotated[str, typer.Option(envvar="WAGATE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="WAGATE_PORT")] = 8000,
) -> None:
    """Run the HTTP API only (pair with `wagate worker` processes)."""
    _run_server(host, port, dispatcher=False, http_api=True)


@app.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (127.0.0.1)")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port")] = "127.0.0.1",
) -> None:
    """Run a dispatcher only: claims queued messages and delivers them."""
    settings = Settings()
    if metrics_port is not None:
        from wagate.metrics import start_metrics_server

        start_metrics_server(metrics_port, metrics_host)
    _run_server(settings.host, settings.port, dispatcher=True, http_api=False)


@app.command("migrate")
def migrate_command() -> None:
    """Bring the database schema up to date."""
    settings = Settings()
    url = settings.resolved_database_url
    done = migrate(url)
    where = url.split("///", 1)[1] if url.startswith("sqlite") else _safe_url(url)
    console.print(f"{where}: {done.describe()}")


# ---------------------------------------------------------------- accounts


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option(help="A unique name")],
    api_rate: Annotated[
        int, typer.Option(help="API requests/s allowed (bursts to twice); 0 = no limit", min=0)
    ] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Create an account."""
    if not name.strip():
        _fail("--name must not be blank")

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await account_store.create_account(
            conn, name=name.strip(), now=SystemClock().now(), api_rate=api_rate
        )

    row = _db(work)
    if as_json:
        _emit(row, True)
    else:
        console.print(f"created account [bold]{row['name']}[/] ({row['id']})")


@accounts_app.command("list")
def accounts_list(as_json: JsonOpt = False) -> None:
    """List accounts."""
    # The callback secret is shown only by set-callback.
    rows = [
        {k: v for k, v in r.items() if k != "callback_secret"}
        for r in _db(account_store.list_accounts)
    ]
    table = Table("id", "name", "created")
    for r in rows:
        table.add_row(r["id"], r["name"], _iso(r["created_at"]))
    _emit(rows, as_json, table)


@accounts_app.command("set-callback")
def accounts_set_callback(
    account: Annotated[str, typer.Option(help="Account name")],
    url: Annotated[
        str | None, typer.Option(help="Where to POST message.status and message.inbound events")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Stop callbacks")] = False,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Replace the signing secret")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set the account's callback URL; prints the secret that signs every callback."""
    from wagate.domain.callbacks import SIGNATURE_HEADER, callback_url_problem
    from wagate.store import callback_log

    if url is not None and clear:
        _fail("give --url or --clear, not both")
    if url is None and not clear and not rotate_secret:
        _fail("give --url URL, --clear or --rotate-secret")
    if url is not None and (problem := callback_url_problem(url, "--url")) is not None:
        _fail(problem.message)
    if url is not None:
        _check_egress("--url", url)

    async def work(conn: AsyncConnection) -> callback_log.CallbackSettings:
        acc = await account_store.require_account(conn, name=account)
        new_url = None if clear else url if url is not None else acc["callback_url"]
        return await callback_log.set_callback(
            conn, account_id=acc["id"], url=new_url, rotate_secret=rotate_secret
        )

    saved = _db(work)
    data = {"account": account, **saved.as_dict(), "signature_header": SIGNATURE_HEADER}
    if as_json:
        _emit(data, True)
    elif saved.callback_url is None:
        console.print(f"callbacks for {account} are off")
    else:
        console.print(f"{account} callbacks go to {saved.callback_url}")
        console.print(f"verify {SIGNATURE_HEADER} with this secret (keep it safe):")
        console.print(saved.callback_secret or "", style="bold green", soft_wrap=True)


# ---------------------------------------------------------------- channels


@channels_app.command("add")
def channels_add(
    account: Annotated[str, typer.Option(help="Account name")],
    phone_number_id: Annotated[str, typer.Option(help="Meta's phone number id")],
    waba_id: Annotated[str, typer.Option(help="WhatsApp Business Account id")],
    access_token: Annotated[str, typer.Option(help="System user access token")],
    app_secret: Annotated[str, typer.Option(help="The Meta app's secret (signs webhooks)")],
    verify_token: Annotated[str, typer.Option(help="Your choice; paste it into Meta's app")],
    graph_url: Annotated[
        str, typer.Option(help="Graph API base URL")
    ] = "https://graph.facebook.com",
    mps: Annotated[
        int, typer.Option(help="Messages per second (Meta's tier)", min=1, max=1000)
    ] = 80,
    display_phone_number: Annotated[str | None, typer.Option(help="e.g. 15550783881")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a WhatsApp business number to an account."""
    for label, value in (("--phone-number-id", phone_number_id), ("--waba-id", waba_id)):
        if not value.strip():
            _fail(f"{label} must not be blank")
    if not graph_url.startswith(("http://", "https://")):
        _fail("--graph-url must start with http:// or https://")
    _check_egress("--graph-url", graph_url)

    async def work(conn: AsyncConnection) -> account_store.Channel:
        acc = await account_store.require_account(conn, name=account)
        return await account_store.add_channel(
            conn,
            account_id=acc["id"],
            phone_number_id=phone_number_id.strip(),
            waba_id=waba_id.strip(),
            access_token=access_token,
            app_secret=app_secret,
            verify_token=verify_token,
            graph_url=graph_url,
            mps=mps,
            display_phone_number=display_phone_number,
            now=SystemClock().now(),
        )

    channel = _db(work)
    settings = Settings()
    # Where Meta must post: WAGATE_PUBLIC_URL here, else what the running server says it is;
    # the channel's own webhook path (one signature check per request).
    base = settings.base_url if settings.public_url else target(None).public_url
    data = channel.public() | {"webhook_url": f"{base}/webhooks/whatsapp/{channel.id}"}
    if as_json:
        _emit(data, True)
    else:
        console.print(f"added channel {channel.id} for phone number id {channel.phone_number_id}")
        console.print(f"In Meta's app, set the webhook URL to {data['webhook_url']}")
        console.print("and the verify token to the one you gave; subscribe to `messages`.")


@channels_app.command("list")
def channels_list(
    account: Annotated[str | None, typer.Option(help="Account name")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List channels (secrets are never shown)."""

    async def work(conn: AsyncConnection) -> list[account_store.Channel]:
        return await account_store.list_channels(conn, account_id=await _account_id(conn, account))

    channels = _db(work)
    table = Table("id", "phone number id", "waba id", "mps", "default", "sandbox")
    for c in channels:
        table.add_row(
            c.id, c.phone_number_id, c.waba_id, str(c.mps), str(c.is_default), str(c.is_sandbox)
        )
    _emit([c.public() for c in channels], as_json, table)


# ---------------------------------------------------------------- tokens


@tokens_app.command("create")
def tokens_create(
    account: Annotated[str, typer.Option(help="Account name")],
    name: Annotated[str, typer.Option(help="A label for you")] = "default",
    as_json: JsonOpt = False,
) -> None:
    """Create an API token. It is printed once; only its hash is stored."""

    async def work(conn: AsyncConnection) -> tuple[str, dict[str, Any]]:
        acc = await account_store.require_account(conn, name=account)
        return await account_store.create_token(
            conn, account_id=acc["id"], name=name, now=SystemClock().now()
        )

    token, row = _db(work)
    data = {
        "id": row["id"],
        "account": account,
        "name": row["name"],
        "prefix": row["prefix"],
        "token": token,
        "created_at": row["created_at"],
    }
    if as_json:
        _emit(data, True)
    else:
        console.print(f"token {row['id']} for {account} (shown once, keep it safe):")
        console.print(token, style="bold green", soft_wrap=True)


@tokens_app.command("list")
def tokens_list(
    account: Annotated[str | None, typer.Option(help="Account name")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List tokens (their prefixes; the tokens themselves are never stored)."""

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        names = {a["id"]: a["name"] for a in await account_store.list_accounts(conn)}
        listed = await account_store.list_tokens(conn, account_id=await _account_id(conn, account))
        return [
            {k: v for k, v in r.items() if k != "token_hash"}
            | {"account": names.get(r["account_id"])}
            for r in listed
        ]

    rows = _db(work)
    # An id is what `tokens revoke` takes: never cut short, whatever the terminal's width.
    several = len({r["account_id"] for r in rows}) > 1
    table = Table()
    table.add_column("id", no_wrap=True, min_width=max((len(r["id"]) for r in rows), default=2))
    for column in (*(["account"] if several else []), "name", "prefix"):
        table.add_column(column, overflow="fold")
    for column in ("created", "last used", "revoked"):
        table.add_column(column, overflow="fold", min_width=10)
    for r in rows:
        table.add_row(
            r["id"],
            *([r["account"] or r["account_id"]] if several else []),
            r["name"],
            r["prefix"] + "…",
            _minute(r["created_at"]),
            _minute(r["last_used_at"]),
            _minute(r["revoked_at"]),
        )
    _emit(rows, as_json, table)


def _minute(value: Any) -> str:
    """A time for a table (UTC, to the minute); the JSON keeps every digit."""
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (tok_…) or prefix")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token; it stops working at once."""

    async def work(conn: AsyncConnection) -> bool:
        return await account_store.revoke_token(
            conn, token_id=token_id, account_id=None, now=SystemClock().now()
        )

    revoked = _db(work)
    if as_json:
        _emit({"id": token_id, "revoked": revoked}, True)
    if not revoked:
        _fail(f"no live token {token_id!r}")
    if not as_json:
        console.print(f"revoked {token_id}")


# ---------------------------------------------------------------- dashboard users


def _password_or_new(password: str | None) -> tuple[str, bool]:
    """The password given (checked), or a generated one; and whether it was generated."""
    from wagate.dashboard.rules import password_problem

    if password is None:
        import secrets

        return secrets.token_urlsafe(12), True
    problem = password_problem(password)
    if problem:
        _fail(f"--password: {problem}")
    return password, False


@users_app.command("create")
def users_create(
    account: Annotated[str, typer.Option(help="Account name: the user sees only its data")],
    email: Annotated[str, typer.Option(help="Signs in with this")],
    password: Annotated[
        str | None, typer.Option(help="Default: a generated one, printed once")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May add users in the dashboard")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a dashboard user."""
    from wagate.dashboard.rules import email_problem
    from wagate.store import users as user_store

    problem = email_problem(email)
    if problem:
        _fail(f"--email: {problem}")
    secret, generated = _password_or_new(password)
    password_hash = user_store.hash_password(secret)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        acc = await account_store.require_account(conn, name=account)
        return await user_store.create_user(
            conn,
            account_id=acc["id"],
            email=email,
            password_hash=password_hash,
            is_admin=admin,
            now=SystemClock().now(),
        )

    row = _db(work) | {"account": account}
    if generated:
        row["password"] = secret
    if as_json:
        _emit(row, True)
        return
    console.print(f"created {'admin' if admin else 'user'} {row['email']} in {account}")
    if generated:
        console.print("password (shown once, keep it safe):")
        console.print(secret, style="bold green", soft_wrap=True)


@users_app.command("list")
def users_list(
    account: Annotated[str | None, typer.Option(help="Account name")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List dashboard users (never their passwords)."""
    from wagate.store import users as user_store

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        return await user_store.list_users(conn, account_id=await _account_id(conn, account))

    rows = _db(work)
    table = Table("email", "account", "admin", "created", "last sign-in")
    for r in rows:
        table.add_row(
            r["email"],
            r["account"],
            str(r["is_admin"]),
            _iso(r["created_at"]),
            _iso(r["last_sign_in_at"]) or "-",
        )
    _emit(rows, as_json, table)


@users_app.command("set-password")
def users_set_password(
    email: Annotated[str, typer.Option(help="The user's email")],
    password: Annotated[
        str | None, typer.Option(help="Default: a generated one, printed once")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a user a new password; lifts a sign-in block and signs them out everywhere."""
    from wagate.store import users as user_store

    secret, generated = _password_or_new(password)
    password_hash = user_store.hash_password(secret)

    async def work(conn: AsyncConnection) -> bool:
        return await user_store.set_password(conn, email=email, password_hash=password_hash)

    if not _db(work):
        _fail(f"no user with email {email!r}")
    data: dict[str, Any] = {"email": user_store.normalize_email(email), "changed": True}
    if generated:
        data["password"] = secret
    if as_json:
        _emit(data, True)
    elif generated:
        console.print(f"new password for {data['email']} (shown once):")
        console.print(secret, style="bold green", soft_wrap=True)
    else:
        console.print(f"password changed for {data['email']}")


# ---------------------------------------------------------------- sandbox


@sandbox_app.command("info")
def sandbox_info(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The sandbox's Graph API base URL and fake Meta credentials, on the running server."""
    from wagate.bootstrap import SANDBOX_ACCOUNT, SandboxIdentity

    settings = Settings()
    identity = SandboxIdentity.load_or_create(settings.data_dir)
    found = target(server)
    if found.record is None and found.source.startswith("the default"):
        err.print(
            f"[yellow]note:[/yellow] no running server is recorded in {settings.data_dir}; the "
            f"URLs below assume one at {found.url} (start it with `{command_name()} serve`)"
        )

    async def channel_id(conn: AsyncConnection) -> str | None:
        named = await account_store.channels_named(
            conn, phone_number_ids=[identity.phone_number_id]
        )
        return named[0].id if named else None

    # The channel's own webhook path once `wagate serve` has made the channel (one signature
    # check per request); the shared one before, or when the database cannot be read.
    try:
        channel = _db(channel_id)
    except Exception:
        channel = None
    data = {
        "graph_url": found.url + "/sandbox/graph",
        "graph_api_version": settings.graph_api_version,
        "phone_number_id": identity.phone_number_id,
        "waba_id": identity.waba_id,
        "display_phone_number": identity.display_phone_number,
        "access_token": identity.access_token,
        "app_secret": identity.app_secret,
        "verify_token": identity.verify_token,
        "account": SANDBOX_ACCOUNT,
        # Where the sandbox posts its webhooks: the server itself, as this machine reaches it.
        "webhook_url": found.url + "/webhooks/whatsapp" + (f"/{channel}" if channel else ""),
        "server": found.url,
        "server_source": found.source,
    }
    if as_json:
        _emit(data, True)
        return
    table = Table("setting", "value")
    for key, value in data.items():
        table.add_row(key, str(value))
    console.print(table)


@sandbox_app.command("reply")
def sandbox_reply(
    phone: Annotated[str, typer.Option(help="The customer, e.g. +14155552671")],
    text: Annotated[str | None, typer.Option(help="A text message")] = None,
    button: Annotated[str | None, typer.Option(help="Tap the reply button with this id")] = None,
    payload: Annotated[str | None, typer.Option(help="Tap a template quick reply")] = None,
    name: Annotated[str | None, typer.Option(help="The customer's profile name")] = None,
    list_reply: Annotated[
        str | None, typer.Option(help="Pick the row with this id from the last list")
    ] = None,
    location: Annotated[str | None, typer.Option(help="Share a location LAT,LON")] = None,
    place: Annotated[str | None, typer.Option(help="The shared location's name")] = None,
    address: Annotated[str | None, typer.Option(help="The shared location's address")] = None,
    reaction: Annotated[
        str | None, typer.Option(help='React with this emoji ("" removes the reaction)')
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="The wamid reacted to (default: the business's last)")
    ] = None,
    contacts: Annotated[
        str | None, typer.Option(help="Share contact cards: JSON, or a JSON file")
    ] = None,
    order: Annotated[
        str | None, typer.Option(help='Send an order: JSON, or "" for a sample one')
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="A system notice (the customer changed number)")
    ] = None,
    unsupported: Annotated[
        bool, typer.Option("--unsupported", help="A message type Meta does not support")
    ] = False,
    image: Annotated[Path | None, typer.Option(help="Send a photo (a file)")] = None,
    video: Annotated[Path | None, typer.Option(help="Send a video (a file)")] = None,
    audio: Annotated[Path | None, typer.Option(help="Send audio (a file)")] = None,
    voice: Annotated[Path | None, typer.Option(help="Send a voice note (an Opus file)")] = None,
    document: Annotated[Path | None, typer.Option(help="Send a document (a file)")] = None,
    sticker: Annotated[Path | None, typer.Option(help="Send a sticker (a WebP file)")] = None,
    caption: Annotated[str | None, typer.Option(help="With an image, video or document")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Play the customer: send the business a message or a file (opens the 24-hour window)."""
    from wagate.bootstrap import SandboxIdentity
    from wagate.cli_media import chosen_media

    media = chosen_media(
        {
            "image": str(image) if image else None, "video": str(video) if video else None,
            "audio": str(audio) if audio else None, "voice": str(voice) if voice else None,
            "document": str(document) if document else None,
            "sticker": str(sticker) if sticker else None,
        }
    )  # fmt: skip
    kind_fields = cli_kinds.customer_kind_fields(
        list_reply=list_reply,
        location=location,
        place=place,
        address=address,
        reaction=reaction,
        to=to,
        contacts=contacts,
        order=order,
        system=system,
        unsupported=unsupported,
    )
    chosen = [x for x in (text, button, payload, media) if x is not None] + list(kind_fields)
    if len(chosen) != 1:
        _fail(
            "give exactly one of --text, --button, --payload, --list-reply, --location, "
            "--reaction, --contacts, --order, --system, --unsupported or a file (--image, "
            "--video, --audio, --voice, --document, --sticker)"
        )
    body: dict[str, Any] = {"phone": phone, **kind_fields}
    if text is not None:
        body["text"] = text
    elif button is not None:
        body["button_id"] = button
    elif payload is not None:
        body["payload"] = payload
        body["button_text"] = payload
    if name:
        body["name"] = name
    found = target(server)
    identity = SandboxIdentity.load_or_create(Settings().data_dir)
    # The sandbox's own routes take its access token, as its Graph API does.
    headers = {"Authorization": f"Bearer {identity.access_token}"}
    try:
        if media is not None:
            path = Path(media[1])
            if not path.is_file():
                _fail(f"{path}: no such file")
            fields = {"phone": phone, "kind": media[0]}
            if caption:
                fields["caption"] = caption
            if name:
                fields["name"] = name
            with path.open("rb") as handle:
                response = httpx.post(
                    found.url + "/sandbox/customer/media",
                    data=fields,
                    files={"file": (path.name, handle)},
                    headers=headers,
                    timeout=120,
                )
        else:
            response = httpx.post(
                found.url + "/sandbox/customer/reply", json=body, headers=headers, timeout=15
            )
    except httpx.HTTPError as exc:
        _fail(unreachable(found, exc))
        return
    try:
        data = response.json()
    except ValueError:
        data = {"status_code": response.status_code, "body": response.text[:500]}
    if response.status_code >= 400:
        if as_json:
            _emit(data, True)
        _fail(_sandbox_refusal(found, response.status_code, data))
    if as_json:
        _emit(data, True)
    else:
        state = "took it" if data.get("delivered") else "did not take it yet (it will be retried)"
        console.print(f"{phone} sent {data.get('wamid')}; the gateway at {found.url} {state}.")


def _sandbox_refusal(found: Target, status: int, data: Any) -> str:
    """Why the sandbox refused a reply, and what to do: a wrong server is the usual cause."""
    if status in (401, 403):
        return (
            f"the sandbox at {found.url} refused this data folder's sandbox token: it belongs "
            f"to another server (another data folder); the address came from {found.source}. "
            "Run the command in that server's folder (or set WAGATE_DATA_DIR), or "
            f"{POINT_ELSEWHERE}."
        )
    if status in (404, 405):
        if not is_wagate(found.url):
            return not_wagate(found, f"HTTP {status} for /sandbox/customer/reply")
        return (
            f"the server at {found.url} has no sandbox (it has real channels, or WAGATE_SANDBOX "
            f"is off); the address came from {found.source}. Point at another server with "
            "--server URL or WAGATE_URL."
        )
    return f"the sandbox at {found.url} refused: {json.dumps(data)}"


@sandbox_app.command("run")
def sandbox_run(
    webhook_url: Annotated[str, typer.Option(help="Where to POST signed webhooks")],
    access_token: Annotated[str, typer.Option(help="The Bearer token the sandbox accepts")],
    app_secret: Annotated[str, typer.Option(help="Signs the webhooks")],
    phone_number_id: Annotated[str, typer.Option()] = "100000000000001",
    waba_id: Annotated[str, typer.Option()] = "200000000000001",
    display_phone_number: Annotated[str, typer.Option()] = "15550000001",
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8100,
    state: Annotated[
        Path | None, typer.Option(help="SQLite file to keep state in (default: memory)")
    ] = None,
    status_delay: Annotated[float, typer.Option(help="Seconds between statuses")] = 0.5,
    throughput: Annotated[
        int | None, typer.Option(help="Refuse sends over this many a second with 130429")
    ] = None,
    pair_interval: Annotated[
        float | None, typer.Option(help="Refuse sends to one customer faster (131056)")
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(help='A fault as JSON, e.g. \'{"code": 130429, "rate": 0.1}\' (repeatable)'),
    ] = None,
    fault_seed: Annotated[int | None, typer.Option(help="Seed the faults' random draws")] = None,
) -> None:
    """Run the sandbox on its own, as a stand-in for graph.facebook.com (point a channel's
    --graph-url at http://HOST:PORT/graph)."""
    import uvicorn

    from wagate.sandbox import SandboxConfig, create_sandbox_app

    config = SandboxConfig(
        phone_number_id=phone_number_id,
        waba_id=waba_id,
        display_phone_number=display_phone_number,
        access_token=access_token,
        app_secret=app_secret,
        webhook_url=webhook_url,
        state_path=state,
        status_delay=status_delay,
        throughput_limit=throughput,
        pair_rate_limit=pair_interval,
        faults=[_json_option("--fault", f) for f in fault or ()],
        fault_seed=fault_seed,
    )
    console.print(f"sandbox Graph API at http://{host}:{port}/graph")
    uvicorn.run(
        create_sandbox_app(config),
        host=host,
        port=port,
        log_level="warning",
        # A request held by a timeout fault must not hold up shutdown.
        timeout_graceful_shutdown=3,
    )


def _json_option(name: str, value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        _fail(f"{name} is not JSON: {exc}")
    if not isinstance(parsed, dict):
        _fail(f"{name} must be a JSON object")
    return dict(parsed)


def main() -> None:
    from pydantic import ValidationError

    from wagate.cli_help import tidy

    try:
        tidy(typer.main.get_command(app))()
    except ValidationError as exc:  # a WAGATE_* setting that cannot be used: say which
        for problem in exc.errors():
            name = "WAGATE_" + "_".join(str(part) for part in problem["loc"]).upper()
            err.print(f"[red]error:[/red] {name}: {problem['msg']}")
        raise SystemExit(2) from None
