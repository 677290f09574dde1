"""Bulk sending from a CSV file: rows to API requests, their idempotency keys, and how long the
channel's pace will take. Pure (no I/O but reading the file); the `send-bulk` command drives it.

The file has a `phone` column and either
- a `message` column (free-form text, only to customers whose window is open), or
- with `--template NAME`: the template's parameters, one column each:
  `body.1`, `body.2`, … for a positional template or `body.first_name`, … for a named one;
  `header.1` (or `header.<name>`) for a text header; `button.<index>.payload` for a quick-reply
  button and `button.<index>.text` for a URL button's variable part;
- or media: a `media_type` column (image, video, audio, document, sticker) with `media_url` (an
  https link wagate fetches) or `media_id` (a file uploaded with `POST /v1/media`), and
  optional `caption` and `filename` columns. In a file with both `message` and `media_type`,
  a row with a media_type is a media message and a row without one is text.

A free-form file with a `button` column sends list messages (`kind: list` batch items): the
`message` column is the body, `button` the list's button text, `header` and `footer` optional,
and the rows `row.1.id`, `row.1.title`, `row.1.description`, `row.2.id`, … (one section), or a
`sections` column holding the sections as JSON (several sections). Each row is checked with the
server's own list rules (`wagate.domain.kinds.parse_list`) before anything is sent.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wagate.domain.errors import ValidationFailed
from wagate.domain.kinds import parse_list
from wagate.domain.phone import normalize_phone

_PARAM = re.compile(r"^(header|body)\.(\w+)$")
_BUTTON = re.compile(r"^button\.(\d+)\.(payload|text)$")
_LIST_ROW = re.compile(r"^row\.(\d+)\.(id|title|description)$")
LIST_COLUMNS = ("button", "header", "footer", "sections")


class BulkFileError(ValueError):
    """The file cannot be used at all (missing columns, not CSV)."""


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based, counting data rows (the header line is not a row)
    phone: str  # as written in the file
    recipient: str | None  # the valid E.164 number, or None when the phone is not valid
    body: dict[str, Any]  # the API request, without token
    problems: tuple[tuple[str, str], ...] = ()  # (code, message) found without asking the server


@dataclass
class Plan:
    rows: list[Row]
    template: str | None
    recipients: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.recipients = Counter(r.recipient for r in self.rows if r.recipient)


def read_plan(path: Path, *, template: str | None, language: str | None) -> Plan:
    """Every row of the file as the request it will become."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            records = [
                {(k or "").strip(): (v or "").strip() for k, v in record.items()}
                for record in reader
            ]
    except UnicodeDecodeError as exc:
        raise BulkFileError(f"{path} is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise BulkFileError(f"{path} is not a CSV file: {exc}") from exc
    _check_columns(columns, template)
    rows = [
        _row(number, record, template, language) for number, record in enumerate(records, start=1)
    ]
    return Plan(rows, template)


def _check_columns(columns: list[str], template: str | None) -> None:
    if "phone" not in columns:
        raise BulkFileError(f"the file needs a 'phone' column (it has: {', '.join(columns)})")
    if template is None and "message" not in columns and "media_type" not in columns:
        raise BulkFileError(
            "the file needs a 'message' column for free-form text, 'media_type' and 'media_url' "
            "columns for media, or give --template NAME and parameter columns (body.1, "
            "body.first_name, header.1, button.0.payload, …)"
        )
    if template is not None:
        unknown = [
            c
            for c in columns
            if c != "phone" and not _PARAM.match(c) and not _BUTTON.match(c) and c != "message"
        ]
        if unknown:
            raise BulkFileError(
                f"unknown columns for a template: {', '.join(unknown)}; use body.N or "
                "body.<name>, header.N, button.<index>.payload or button.<index>.text"
            )


def _row(number: int, record: dict[str, str], template: str | None, language: str | None) -> Row:
    raw_phone = record.get("phone", "")
    normalized, phone_errors = normalize_phone(raw_phone)
    problems = tuple((e.code, e.message) for e in phone_errors)
    recipient = None if phone_errors else normalized
    phone = normalized or raw_phone
    if template is None and record.get("media_type"):
        return Row(number, raw_phone, recipient, media_body(phone, record), problems)
    if template is None:
        body: dict[str, Any] = {"phone": phone, "message": record.get("message", "")}
        if "button" in record:
            body, list_problems = list_body(body, record)
            return Row(number, raw_phone, recipient, body, problems + list_problems)
        if not body["message"]:
            problems += (("empty_message", "the message column is empty"),)
        return Row(number, raw_phone, recipient, body, problems)
    body = {"phone": phone, "template": template}
    if language:
        body["language"] = language
    params = template_params(record)
    if params:
        body["params"] = params
    return Row(number, raw_phone, recipient, body, problems)


MEDIA_COLUMNS = ("media_type", "media_url", "media_id", "caption", "filename")


def media_body(phone: str, record: dict[str, str]) -> dict[str, Any]:
    """A media row as a batch item of kind media (empty cells left out)."""
    body: dict[str, Any] = {"kind": "media", "phone": phone}
    body.update({c: record[c] for c in MEDIA_COLUMNS if record.get(c)})
    return body


def list_body(
    body: dict[str, Any], record: dict[str, str]
) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """A list message's batch item from one row, and what the server would refuse about it."""
    out: dict[str, Any] = {"kind": "list", **body, "button": record.get("button", "")}
    for key in ("header", "footer"):
        if record.get(key):
            out[key] = record[key]
    problems: tuple[tuple[str, str], ...] = ()
    if record.get("sections"):
        try:
            out["sections"] = json.loads(record["sections"])
        except ValueError:
            out["sections"] = record["sections"]  # refused below, as the server would
    else:
        rows: dict[int, dict[str, str]] = {}
        for column, value in record.items():
            if value and (match := _LIST_ROW.match(column)):
                rows.setdefault(int(match.group(1)), {})[match.group(2)] = value
        out["sections"] = [{"rows": [rows[i] for i in sorted(rows)]}] if rows else []
    try:
        parse_list({k: v for k, v in out.items() if k != "kind"}, form=False)
    except ValidationFailed as failed:
        problems = tuple((e.code, e.message) for e in failed.errors if e.field != "phone")
    return out, problems


def template_params(record: dict[str, str]) -> dict[str, Any]:
    """`params` for Send Template from one row's parameter columns (empty cells are left out,
    so the server names them as missing)."""
    parts: dict[str, dict[str, str]] = {"header": {}, "body": {}}
    buttons: dict[int, dict[str, Any]] = {}
    for column, value in record.items():
        if value == "":
            continue
        if match := _PARAM.match(column):
            parts[match.group(1)][match.group(2)] = value
        elif match := _BUTTON.match(column):
            index = int(match.group(1))
            buttons.setdefault(index, {"index": index})[match.group(2)] = value
    params: dict[str, Any] = {}
    for part, values in parts.items():
        if not values:
            continue
        if all(k.isdigit() for k in values):
            params[part] = [values[k] for k in sorted(values, key=int)]
        else:
            params[part] = values
    if buttons:
        params["buttons"] = [buttons[i] for i in sorted(buttons)]
    return params


def idempotency_key(path: Path, row: Row) -> str:
    """The same row of the same file always gets the same key, so a run that is stopped and
    started again (within the server's 24 hours) skips what was already sent. Editing a row
    makes it a new request."""
    content = json.dumps(row.body, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(f"{path.name}\0{row.number}\0{content}".encode()).hexdigest()
    return f"bulk-{digest[:40]}"


def pace_seconds(per_recipient: Iterable[int], *, mps: float, burst: int, interval: float) -> float:
    """How long the channel's pace needs for these sends: the number's rate for all of them, or
    the pair rate for the busiest recipient (a burst, then one per `interval`), whichever is
    longer."""
    counts = list(per_recipient)
    if not counts:
        return 0.0
    by_rate = sum(counts) / mps if mps > 0 else 0.0
    busiest = max(counts)
    by_pair = max(0, busiest - burst) * interval
    return max(by_rate, by_pair)


def describe_seconds(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {math.ceil(seconds)} s"
    if seconds < 5400:
        return f"about {math.ceil(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
