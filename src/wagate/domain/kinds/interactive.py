"""List menus, CTA link buttons and location requests (SPEC §8): the interactive kinds.

Error codes (HTTP 422), besides those every kind shares (`missing_field`, `invalid_field`,
`invalid_phone_format`, `invalid_phone_number`, `field_too_long`, `invalid_metadata`,
`metadata_too_large`):

    empty_message              message is "" or only whitespace
    message_too_long           list body over 4096; CTA and location-request body over 1024
    header_too_long            header over 60
    footer_too_long            footer over 60
    button_text_too_long       the list's or CTA's button text over 20 (`button` missing or
                               blank: missing_field)
    invalid_sections           sections is not an array of section objects (an empty array, a
                               section that is not an object or has unknown keys or no rows)
    too_many_sections          more than 10 sections
    section_title_required     several sections and one has no title
    section_title_too_long     a section title over 24
    too_many_rows              more than 10 rows in all sections together
    invalid_row                a row that is not {"id", "title", "description"?}, or has an
                               empty id or title, or an id with surrounding spaces
    row_id_too_long            a row id over 200
    row_title_too_long         a row title over 24
    row_description_too_long   a row description over 72
    duplicate_row_id           two rows (in any sections) share an id
    invalid_url                url is not an https:// link with a host
    url_too_long               url over 2000 characters
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wagate.domain.errors import FieldError, ValidationFailed
from wagate.domain.kinds.fields import (
    describe_type,
    quote_input,
    read_extras,
    read_json,
    read_optional_text,
    read_required_text,
    read_url,
    unstorable,
)
from wagate.domain.models import MessageContent, MessageType, SendRequest

LIST_BODY_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTON_TEXT_MAX = 20
MAX_SECTIONS = 10
MAX_ROWS = 10
SECTION_TITLE_MAX = 24
ROW_ID_MAX = 200
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72

SECTIONS_EXAMPLE = (
    '[{"title": "Sizes", "rows": [{"id": "s", "title": "Small"}, '
    '{"id": "m", "title": "Medium", "description": "Serves two"}]}]'
)


def _texts(
    fields: Mapping[str, Any], body_max: int, errors: list[FieldError], *, why: str
) -> tuple[str | None, str | None, str | None]:
    body = read_required_text(
        fields.get("message"),
        "message",
        body_max,
        errors,
        too_long="message_too_long",
        empty="empty_message",
        what="the text to send",
        why=why,
    )
    header = read_optional_text(
        fields.get("header"), "header", HEADER_MAX, errors, too_long="header_too_long"
    )
    footer = read_optional_text(
        fields.get("footer"), "footer", FOOTER_MAX, errors, too_long="footer_too_long"
    )
    return body, header, footer


def _button_text(fields: Mapping[str, Any], errors: list[FieldError], what: str) -> str | None:
    return read_required_text(
        fields.get("button"),
        "button",
        BUTTON_TEXT_MAX,
        errors,
        too_long="button_text_too_long",
        what=what,
    )


def parse_list(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    """`POST /v1/messages/list`: a menu of up to 10 rows behind one button."""
    errors: list[FieldError] = []
    body, header, footer = _texts(fields, LIST_BODY_MAX, errors, why=" for a list message's body")
    button = _button_text(fields, errors, "the text of the button that opens the list")
    sections = _sections(fields.get("sections"), form, errors)
    extras = read_extras(fields, form, errors)
    if errors:
        raise ValidationFailed(errors)
    assert body is not None and button is not None and sections is not None
    content = MessageContent(
        type=MessageType.LIST,
        body=body,
        header=header,
        footer=footer,
        data={"button": button, "sections": sections},
    )
    return extras.request(content)


def _sections(value: object, form: bool, errors: list[FieldError]) -> list[dict[str, Any]] | None:
    if value is None or (form and value == ""):
        errors.append(
            FieldError(
                "sections",
                "missing_field",
                f"sections is required: the list's sections and rows, e.g. {SECTIONS_EXAMPLE}.",
            )
        )
        return None
    value = read_json(
        value, "sections", form, errors, code="invalid_sections", example=SECTIONS_EXAMPLE
    )
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        got = "an empty array" if value == [] else describe_type(value)
        errors.append(
            FieldError(
                "sections",
                "invalid_sections",
                f"sections must be an array of 1 to {MAX_SECTIONS} sections, e.g. "
                f"{SECTIONS_EXAMPLE}; got {got}.",
            )
        )
        return None
    ok = True
    if len(value) > MAX_SECTIONS:
        errors.append(
            FieldError(
                "sections",
                "too_many_sections",
                f"sections has {len(value)} sections; WhatsApp allows at most {MAX_SECTIONS}.",
            )
        )
        ok = False
    total_rows = sum(
        len(s["rows"]) for s in value if isinstance(s, dict) and isinstance(s.get("rows"), list)
    )
    if total_rows > MAX_ROWS:
        errors.append(
            FieldError(
                "sections",
                "too_many_rows",
                f"the sections hold {total_rows} rows in all; WhatsApp allows at most "
                f"{MAX_ROWS} rows in one list message.",
            )
        )
        ok = False
    several = len(value) > 1
    seen_ids: dict[str, str] = {}
    budget = [0]  # rows checked so far, in all sections
    out: list[dict[str, Any]] = []
    for index, section in enumerate(value[:MAX_SECTIONS]):
        checked = _section(section, f"sections[{index}]", several, seen_ids, budget, errors)
        if checked is None:
            ok = False
        else:
            out.append(checked)
    return out if ok else None


def _section(
    section: object,
    path: str,
    several: bool,
    seen_ids: dict[str, str],
    budget: list[int],
    errors: list[FieldError],
) -> dict[str, Any] | None:
    if not isinstance(section, dict):
        errors.append(
            FieldError(
                path,
                "invalid_sections",
                f'{path} must be an object {{"title": …, "rows": [ … ]}}; '
                f"got {describe_type(section)}.",
            )
        )
        return None
    ok = True
    extra = sorted(str(k) for k in section if k not in ("title", "rows"))
    if extra:
        names = ", ".join(quote_input(k) for k in extra[:5])
        errors.append(
            FieldError(
                path,
                "invalid_sections",
                f'{path} has unknown field(s) {names}; a section has "title" and "rows".',
            )
        )
        ok = False
    out: dict[str, Any] = {}
    title = section.get("title")
    if title is None or (isinstance(title, str) and not title.strip()):
        if several:
            errors.append(
                FieldError(
                    f"{path}.title",
                    "section_title_required",
                    f"{path}.title is missing; WhatsApp requires a title on every section "
                    "when a list has more than one.",
                )
            )
            ok = False
    elif (
        checked := read_required_text(
            title, f"{path}.title", SECTION_TITLE_MAX, errors, too_long="section_title_too_long"
        )
    ) is None:
        ok = False
    else:
        out["title"] = checked
    rows = section.get("rows")
    if not isinstance(rows, list) or not rows:
        got = "an empty array" if rows == [] else describe_type(rows)
        errors.append(
            FieldError(
                f"{path}.rows",
                "invalid_sections",
                f"{path}.rows must be an array of 1 to {MAX_ROWS} rows, e.g. "
                f'[{{"id": "s", "title": "Small"}}]; got {got}.',
            )
        )
        return None
    checked_rows = []
    for index, row in enumerate(rows[:MAX_ROWS]):
        # Rows are checked up to the limit of the whole list (so a huge list gets a short
        # answer: too_many_rows already says to cut it).
        if budget[0] >= MAX_ROWS:
            break
        budget[0] += 1
        checked_row = _row(row, f"{path}.rows[{index}]", seen_ids, errors)
        if checked_row is None:
            ok = False
        else:
            checked_rows.append(checked_row)
    out["rows"] = checked_rows
    return out if ok else None


def _row(
    row: object, path: str, seen_ids: dict[str, str], errors: list[FieldError]
) -> dict[str, str] | None:
    def invalid(message: str) -> None:
        errors.append(FieldError(path, "invalid_row", message))

    if not isinstance(row, dict):
        invalid(f'{path} must be an object {{"id": …, "title": …}}; got {describe_type(row)}.')
        return None
    ok = True
    extra = sorted(str(k) for k in row if k not in ("id", "title", "description"))
    if extra:
        names = ", ".join(quote_input(k) for k in extra[:5])
        invalid(f'{path} has unknown field(s) {names}; a row has "id", "title", "description".')
        ok = False
    row_id = row.get("id")
    if not isinstance(row_id, str) or not row_id.strip():
        got = "missing" if row_id is None else f"{describe_type(row_id)}"
        errors.append(
            FieldError(
                f"{path}.id",
                "invalid_row",
                f"{path}.id must be a non-empty string (sent back when the row is picked); "
                f"got {got}.",
            )
        )
        ok = False
    elif row_id != row_id.strip():
        errors.append(
            FieldError(
                f"{path}.id",
                "invalid_row",
                f"{path}.id {quote_input(row_id)} has leading or trailing spaces; "
                f"write it as {quote_input(row_id.strip())}.",
            )
        )
        ok = False
    elif (bad := unstorable(f"{path}.id", row_id, code="invalid_row")) is not None:
        errors.append(bad)
        ok = False
    elif len(row_id) > ROW_ID_MAX:
        errors.append(
            FieldError(
                f"{path}.id",
                "row_id_too_long",
                f"{path}.id is {len(row_id)} characters; WhatsApp allows at most {ROW_ID_MAX}.",
            )
        )
        ok = False
    elif row_id in seen_ids:
        errors.append(
            FieldError(
                f"{path}.id",
                "duplicate_row_id",
                f"{path}.id {quote_input(row_id)} is the same as {seen_ids[row_id]}.id; each "
                "row needs its own id.",
            )
        )
        ok = False
    else:
        seen_ids[row_id] = path
    title = read_required_text(
        row.get("title"),
        f"{path}.title",
        ROW_TITLE_MAX,
        errors,
        too_long="row_title_too_long",
        empty="invalid_row",
        missing="invalid_row",
        what="the row's text",
    )
    description = read_optional_text(
        row.get("description"),
        f"{path}.description",
        ROW_DESCRIPTION_MAX,
        errors,
        too_long="row_description_too_long",
    )
    if not ok or title is None or (description is None and _present(row.get("description"))):
        return None
    assert isinstance(row_id, str)
    out = {"id": row_id, "title": title}
    if description is not None:
        out["description"] = description
    return out


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def parse_cta(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    """`POST /v1/messages/cta`: a message with one button that opens a link."""
    errors: list[FieldError] = []
    body, header, footer = _texts(
        fields, INTERACTIVE_BODY_MAX, errors, why=" for an interactive message's body"
    )
    button = _button_text(fields, errors, "the text of the link button")
    url = read_url(fields.get("url"), "url", errors)
    extras = read_extras(fields, form, errors)
    if errors:
        raise ValidationFailed(errors)
    assert body is not None and button is not None and url is not None
    content = MessageContent(
        type=MessageType.CTA,
        body=body,
        header=header,
        footer=footer,
        data={"button": button, "url": url},
    )
    return extras.request(content)


def parse_location_request(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    """`POST /v1/messages/location-request`: asks the customer to share their location."""
    errors: list[FieldError] = []
    body = read_required_text(
        fields.get("message"),
        "message",
        INTERACTIVE_BODY_MAX,
        errors,
        too_long="message_too_long",
        empty="empty_message",
        what="the text asking for the location",
        why=" for an interactive message's body",
    )
    extras = read_extras(fields, form, errors)
    if errors:
        raise ValidationFailed(errors)
    assert body is not None
    return extras.request(MessageContent(type=MessageType.LOCATION_REQUEST, body=body, data={}))
