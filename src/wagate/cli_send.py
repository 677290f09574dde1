"""The CLI's sending commands (`send`, `send-template`, `send-bulk`), all through the Python
client against a running server: what the CLI sends is exactly what the API accepts."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from wagate.bulk import (
    BulkFileError,
    Plan,
    Row,
    describe_seconds,
    idempotency_key,
    pace_seconds,
    read_plan,
)
from wagate.cli_media import chosen_media, send_media_from_cli
from wagate.cli_server import (
    LegacyUrlOpt,
    ServerOpt,
    command_name,
    is_wagate,
    not_wagate,
    target,
    unknown_token,
    unreachable,
)
from wagate.client import Accepted, ApiError, AsyncClient, Client
from wagate.server_address import Target

# Rows per `POST /v1/messages/batch` request (the endpoint's most).
BATCH_ROWS = 1000

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

TokenOpt = Annotated[
    str | None, typer.Option(help="An API token of the account", envvar="WAGATE_TOKEN")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _connection(server: str | None, url: str | None, token: str | None) -> tuple[Target, str]:
    if not token:
        _fail(
            "an API token is needed: --token or WAGATE_TOKEN "
            f"(see `{command_name()} tokens create`)"
        )
    return target(server, url), str(token)


def _print_sent(sent: Accepted, as_json: bool) -> None:
    if as_json:
        data = {
            "id": sent.id,
            "status": sent.status,
            "type": sent.type,
            "phone": sent.phone,
            "window_expires_at": sent.window_expires_at.isoformat().replace("+00:00", "Z")
            if sent.window_expires_at
            else None,
            "replayed": sent.replayed,
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        again = " (the first answer to this idempotency key)" if sent.replayed else ""
        console.print(f"{sent.id} {sent.status}: {sent.type} to {sent.phone}{again}")


def api_failure(error: ApiError, as_json: bool, found: Target) -> None:
    explained = _wrong_server(error, found)
    if explained is not None:
        error = ApiError(error.code, explained, status_code=error.status_code)
    if as_json:
        detail: dict[str, Any] = {"code": error.code, "message": error.message}
        if error.field:
            detail["field"] = error.field
        if error.errors:
            detail["errors"] = error.errors
        body = {"success": False, "error": detail}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        raise typer.Exit(1)
    details = [f"  {e.get('field')}: {e.get('message')}" for e in error.errors[1:]]
    _fail("\n".join([f"{error.code}: {error.message}", *details]))


def _wrong_server(error: ApiError, found: Target) -> str | None:
    """The explanation of an error that means "not this server": nothing answers, the token is
    unknown there, or what answers is not a wagate."""
    if error.code == "connection_error":
        return unreachable(found)
    if error.code == "invalid_token":
        return unknown_token(found)
    if error.code in ("http_error", "not_found", "method_not_allowed") and not is_wagate(found.url):
        return not_wagate(found, f"HTTP {error.status_code}")
    return None


def _parse_button(spec: str) -> dict[str, str]:
    ident, sep, title = spec.partition("=")
    if not sep:
        raise typer.BadParameter(f"{spec!r}: write a button as ID=TITLE, e.g. yes=Yes please")
    return {"id": ident, "title": title}


def send(
    phone: Annotated[str, typer.Option(help="The customer, e.g. +14155552671")],
    message: Annotated[
        str | None, typer.Option(help="The text (WhatsApp formatting passes through)")
    ] = None,
    header: Annotated[str | None, typer.Option(help="Header (makes it interactive)")] = None,
    footer: Annotated[str | None, typer.Option(help="Footer (makes it interactive)")] = None,
    button: Annotated[
        list[str] | None, typer.Option(help="A quick-reply button ID=TITLE (up to 3)")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Makes a retry safe")] = None,
    channel: Annotated[str | None, typer.Option(help="Which of the account's numbers")] = None,
    image: Annotated[str | None, typer.Option(help="Send an image: a FILE or https:// URL")] = None,
    video: Annotated[str | None, typer.Option(help="Send a video: FILE or URL")] = None,
    audio: Annotated[str | None, typer.Option(help="Send audio: FILE or URL")] = None,
    document: Annotated[str | None, typer.Option(help="Send a document: FILE or URL")] = None,
    sticker: Annotated[str | None, typer.Option(help="Send a WebP sticker: FILE or URL")] = None,
    caption: Annotated[str | None, typer.Option(help="With an image, video or document")] = None,
    filename: Annotated[str | None, typer.Option(help="A document's name as shown")] = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a text, interactive or media message (inside the customer's 24-hour window)."""
    media = chosen_media(
        {"image": image, "video": video, "audio": audio, "document": document, "sticker": sticker}
    )
    if media is None and message is None:
        raise typer.BadParameter("give --message, or a file with --image, --document, …")
    if media is not None and (message is not None or header or footer or button):
        raise typer.BadParameter(
            "a media message has a --caption, not --message, --header, --footer or --button"
        )
    found, secret = _connection(server, url, token)
    buttons = [_parse_button(b) for b in button] if button else None
    with Client(found.url, secret) as wa:
        try:
            if media is not None:
                sent = send_media_from_cli(
                    wa,
                    phone,
                    media[0],
                    media[1],
                    caption=caption,
                    filename=filename,
                    channel=channel,
                    idempotency_key=idempotency_key,
                )
                _print_sent(sent, as_json)
                return
            assert message is not None
            sent = wa.send(
                phone,
                message,
                header=header,
                footer=footer,
                buttons=buttons,
                channel=channel,
                idempotency_key=idempotency_key,
            )
        except ApiError as error:
            api_failure(error, as_json, found)
            return
    _print_sent(sent, as_json)


def send_template(
    phone: Annotated[str, typer.Option(help="The customer, e.g. +14155552671")],
    template: Annotated[str, typer.Option(help="The approved template's name")],
    language: Annotated[str | None, typer.Option(help="e.g. en_US")] = None,
    params: Annotated[
        str | None,
        typer.Option(help='JSON, e.g. \'{"body": {"first_name": "Asha"}, "header": ["#4521"]}\''),
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Makes a retry safe")] = None,
    channel: Annotated[str | None, typer.Option(help="Which of the account's numbers")] = None,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send an approved template (allowed outside the window)."""
    found, secret = _connection(server, url, token)
    parsed: dict[str, Any] | None = None
    if params:
        try:
            parsed = json.loads(params)
        except ValueError as exc:
            _fail(f"--params is not JSON: {exc}")
        if not isinstance(parsed, dict):
            _fail("--params must be a JSON object with header, body and buttons")
    with Client(found.url, secret) as wa:
        try:
            sent = wa.send_template(
                phone,
                template,
                language=language,
                params=parsed,
                channel=channel,
                idempotency_key=idempotency_key,
            )
        except ApiError as error:
            api_failure(error, as_json, found)
            return
    _print_sent(sent, as_json)


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")


def send_bulk(
    file: Annotated[Path, typer.Argument(help="CSV with a phone column", exists=True)],
    template: Annotated[str | None, typer.Option(help="Send this template to every row")] = None,
    language: Annotated[str | None, typer.Option(help="The template's language")] = None,
    channel: Annotated[str | None, typer.Option(help="Which of the account's numbers")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row, send nothing")
    ] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help=f"Batch requests ({BATCH_ROWS} rows) in flight")
    ] = 4,
    server: ServerOpt = None,
    url: LegacyUrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send to every row of a CSV file: free-form (a `message` column) or a template (one column
    per parameter). Safe to stop and run again: rows already sent are not sent twice."""
    found, secret = _connection(server, url, token)
    try:
        httpx.get(found.url + "/healthz", timeout=5)
    except httpx.HTTPError as exc:  # fail now, not after the client's patient retries
        _fail(unreachable(found, exc))
    try:
        plan = read_plan(file, template=template, language=language)
    except (BulkFileError, OSError) as exc:
        _fail(str(exc))
        return
    try:
        if dry_run:
            report = asyncio.run(_check(plan, found.url, secret, channel))
        else:
            report = asyncio.run(
                _send(plan, file, found.url, secret, channel, concurrency, as_json)
            )
    except ApiError as error:  # the server refused the run itself (token, channel lookup …)
        api_failure(error, as_json, found)
        return
    _summarise(report, as_json, dry_run)
    if report["refused"]:
        raise typer.Exit(1)


def _refusal(row: Row, code: str, message: str) -> dict[str, Any]:
    return {"row": row.number, "phone": row.phone, "code": code, "message": message}


async def _channel_pace(wa: AsyncClient, wanted: str | None) -> dict[str, Any]:
    channels = await wa.channels()
    for c in channels:
        if wanted in (c["id"], c["phone_number_id"]) or (wanted is None and c["is_default"]):
            return c
    raise ApiError(
        "unknown_channel",
        f"the account has no channel {wanted!r}" if wanted else "the account has no channel",
        status_code=422,
        field="channel",
    )


async def _check(plan: Plan, base: str, token: str, channel: str | None) -> dict[str, Any]:
    """Everything the server would say about each row, without sending anything."""
    refused: list[dict[str, Any]] = []
    async with AsyncClient(base, token, max_retries=6) as wa:
        pace = await _channel_pace(wa, channel)
        closed: set[str] = set()
        if plan.template is None:
            phones = list(plan.recipients)
            windows = await asyncio.gather(*(wa.conversation(p) for p in phones))
            closed = {p for p, w in zip(phones, windows, strict=True) if not w["window_open"]}
        else:
            templates = await wa.templates()
        for row in plan.rows:
            if row.problems:
                refused += [_refusal(row, code, message) for code, message in row.problems]
            elif row.recipient in closed:
                refused.append(
                    _refusal(
                        row,
                        "outside_service_window",
                        "the customer's 24-hour window is closed; send a template instead",
                    )
                )
            elif plan.template is not None:
                refused += [
                    _refusal(row, code, message)
                    for code, message in template_problems(templates, row.body)
                ]
    sendable = Counter(
        r.recipient
        for r in plan.rows
        if r.recipient and r.number not in {x["row"] for x in refused}
    )
    seconds = pace_seconds(
        sendable.values(),
        mps=pace["mps"],
        burst=pace["pair_rate"]["burst"],
        interval=pace["pair_rate"]["interval_seconds"],
    )
    return {
        "rows": len(plan.rows),
        "accepted": sum(sendable.values()),
        "already_sent": 0,
        "refused": refused,
        "recipients": len(plan.recipients),
        "pace_mps": pace["mps"],
        "estimated_seconds": round(seconds, 1),
    }


def template_problems(
    templates: list[dict[str, Any]], body: dict[str, Any]
) -> list[tuple[str, str]]:
    """What the server would refuse about this template send, judged from the synced copy."""
    from wagate.domain.templates import check_request  # the same rules as the server's

    return [(e.code, e.message) for e in check_request(templates, body)]


async def _send(
    plan: Plan,
    file: Path,
    base: str,
    token: str,
    channel: str | None,
    concurrency: int,
    quiet: bool,
) -> dict[str, Any]:
    """Every row through `POST /v1/messages/batch`, BATCH_ROWS at a time, each row with its
    own idempotency key (so a run started again skips what was already accepted)."""
    refused: list[dict[str, Any]] = []
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]sending"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    )
    sendable = []
    for row in plan.rows:
        if row.problems:
            refused.extend(_refusal(row, c, m) for c, m in row.problems)
        else:
            sendable.append(row)
    chunks = [sendable[i : i + BATCH_ROWS] for i in range(0, len(sendable), BATCH_ROWS)]
    async with AsyncClient(base, token, max_retries=8) as wa:

        async def one(chunk: list[Row], task: Any) -> None:
            items = [_item(row, file, channel) for row in chunk]
            async with gate:
                results = await wa.send_batch(items)
            for row, result in zip(chunk, results, strict=True):
                if result.accepted is not None:
                    outcomes["already_sent" if result.accepted.replayed else "accepted"] += 1
                elif result.error is not None:
                    refused.append(_refusal(row, result.error.code, result.error.message))
            progress.advance(task, len(chunk))

        with progress:
            task = progress.add_task("send", total=len(plan.rows))
            progress.advance(task, len(plan.rows) - len(sendable))
            await asyncio.gather(*(one(chunk, task) for chunk in chunks))
    refused.sort(key=lambda r: int(r["row"]))
    return {
        "rows": len(plan.rows),
        "accepted": outcomes["accepted"],
        "already_sent": outcomes["already_sent"],
        "refused": refused,
        "recipients": len(plan.recipients),
        "seconds": round(time.monotonic() - started, 2),
    }


def _item(row: Row, file: Path, channel: str | None) -> dict[str, Any]:
    """A row as a batch item: its body, its kind, its key."""
    item = dict(row.body)
    if "template" in item:
        item["kind"] = "template"
    if channel:
        item["channel"] = channel
    item["idempotency_key"] = idempotency_key(file, row)
    return item


def _summarise(report: dict[str, Any], as_json: bool, dry_run: bool) -> None:
    by_code = Counter(r["code"] for r in report["refused"])
    refused_rows = len({r["row"] for r in report["refused"]})
    if as_json:
        data = report | {"dry_run": dry_run, "refused_by_code": dict(by_code)}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    title = "Dry run: nothing was sent" if dry_run else "Bulk send"
    table = Table(title=title, show_header=False)
    table.add_row("rows", str(report["rows"]))
    table.add_row("unique recipients", str(report["recipients"]))
    table.add_row("would be accepted" if dry_run else "accepted", str(report["accepted"]))
    if not dry_run:
        table.add_row("already sent (earlier run)", str(report["already_sent"]))
    table.add_row("refused", str(refused_rows))
    for code, count in by_code.most_common():
        table.add_row(f"  {code}", str(count))
    if dry_run:
        table.add_row(
            "time at the channel's pace",
            f"{describe_seconds(report['estimated_seconds'])} ({report['pace_mps']} msg/s)",
        )
    else:
        table.add_row("took", f"{report['seconds']} s")
    console.print(table)
    for refusal in report["refused"][:20]:
        console.print(
            f"  row {refusal['row']} ({refusal['phone']}): {refusal['code']}: {refusal['message']}"
        )
    if len(report["refused"]) > 20:
        console.print(f"  … and {len(report['refused']) - 20} more (use --json for all)")


def register(app: typer.Typer) -> None:
    app.command("send")(send)
    app.command("send-template")(send_template)
    app.command("send-bulk")(send_bulk)
