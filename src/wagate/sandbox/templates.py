"""The sandbox's message templates, as `GET /{waba_id}/message_templates` lists them, and the
checks Meta makes when one is sent.

The set covers what a business meets: Meta's `hello_world`; a utility template with named
parameters (`order_confirmation`: a text header, a body, a quick reply and a URL button); a
utility template with numbered parameters in two languages (`appointment_reminder`: a text header,
a body and quick replies); a marketing template with an image header and a URL button
(`summer_sale`); and one that Meta rejected (`winter_promo`).
"""

from __future__ import annotations

import re
from typing import Any

from wagate.sandbox.graph import GraphError, not_one_of, required

_APPOINTMENT_BUTTONS = {
    "type": "BUTTONS",
    "buttons": [
        {"type": "QUICK_REPLY", "text": "Confirm"},
        {"type": "QUICK_REPLY", "text": "Reschedule"},
    ],
}

TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "hello_world",
        "parameter_format": "POSITIONAL",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability to "
                "send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank "
                "you for taking the time to test with us.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "id": "900000000000001",
    },
    {
        "name": "order_confirmation",
        "parameter_format": "NAMED",
        "components": [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Order {{order_id}}",
                "example": {
                    "header_text_named_params": [{"param_name": "order_id", "example": "#4521"}]
                },
            },
            {
                "type": "BODY",
                "text": "Hi {{first_name}}, your order {{order_number}} is confirmed. We will "
                "let you know when it ships.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Asha"},
                        {"param_name": "order_number", "example": "4521"},
                    ]
                },
            },
            {"type": "FOOTER", "text": "Thank you for shopping with us"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Track order"},
                    {
                        "type": "URL",
                        "text": "View order",
                        "url": "https://shop.example.com/orders/{{1}}",
                        "example": ["https://shop.example.com/orders/4521"],
                    },
                ],
            },
        ],
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "id": "900000000000002",
    },
    {
        "name": "appointment_reminder",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Appointment on {{1}}",
                "example": {"header_text": ["26 November"]},
            },
            {
                "type": "BODY",
                "text": "Hello {{1}}, this is a reminder of your appointment with {{2}} at "
                "{{3}}. Tap a button to confirm or reschedule.",
                "example": {"body_text": [["Asha", "Dr. Rao", "10:00"]]},
            },
            _APPOINTMENT_BUTTONS,
        ],
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "id": "900000000000003",
    },
    {
        "name": "appointment_reminder",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Consulta em {{1}}",
                "example": {"header_text": ["26 de novembro"]},
            },
            {
                "type": "BODY",
                "text": "Olá {{1}}, lembramos a sua consulta com {{2}} às {{3}}. Toque num "
                "botão para confirmar ou remarcar.",
                "example": {"body_text": [["Asha", "Dra. Rao", "10:00"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Confirmar"},
                    {"type": "QUICK_REPLY", "text": "Remarcar"},
                ],
            },
        ],
        "language": "pt_BR",
        "status": "APPROVED",
        "category": "UTILITY",
        "id": "900000000000004",
    },
    {
        "name": "summer_sale",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "HEADER",
                "format": "IMAGE",
                "example": {"header_handle": ["https://shop.example.com/img/summer.jpg"]},
            },
            {
                "type": "BODY",
                "text": "Hi {{1}}, our summer sale is on! Use code {{2}} for 20% off everything "
                "until Sunday.",
                "example": {"body_text": [["Asha", "SUN20"]]},
            },
            {"type": "FOOTER", "text": "Not interested? Reply STOP"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {
                        "type": "URL",
                        "text": "Shop the sale",
                        "url": "https://shop.example.com/sale?code={{1}}",
                        "example": ["https://shop.example.com/sale?code=SUN20"],
                    }
                ],
            },
        ],
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "id": "900000000000005",
    },
    {
        "name": "winter_promo",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, everything must go! 70% off today only.",
                "example": {"body_text": [["Asha"]]},
            },
        ],
        "language": "en_US",
        "status": "REJECTED",
        "rejected_reason": "PROMOTIONAL",
        "category": "MARKETING",
        "id": "900000000000006",
    },
]

_LISTED_FIELDS = ("name", "parameter_format", "components", "language", "status", "category", "id")


def template_page(
    base_url: str, after: str | None, limit: int, fields: str | None = None
) -> dict[str, Any]:
    """One page of templates with Meta's cursor paging: `data`, `paging.cursors.before/after`,
    and `paging.next` while more remain. The cursor is the index, as a string. `fields` is
    Graph's `?fields=a,b` (`id` always comes along)."""
    known = after is not None and after.isascii() and after.isdigit() and len(after) <= 9
    start = int(after) if known and after is not None else 0
    wanted = {f.strip() for f in fields.split(",")} | {"id"} if fields else set(_LISTED_FIELDS)
    page = [{k: v for k, v in t.items() if k in wanted} for t in TEMPLATES[start : start + limit]]
    out: dict[str, Any] = {"data": page}
    if page:
        cursors = {"before": str(start), "after": str(start + len(page))}
        out["paging"] = {"cursors": cursors}
        if start + len(page) < len(TEMPLATES):
            out["paging"]["next"] = f"{base_url}?limit={limit}&after={start + len(page)}"
            if fields:
                out["paging"]["next"] += f"&fields={fields}"
    return out


# --------------------------------------------------------------------------- sending one

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_NOT_SENDABLE = {
    "PAUSED": (
        132015,
        "(#132015) Template is Paused",
        "Template is paused due to low quality so it cannot be sent in a template message.",
    ),
    "DISABLED": (
        132016,
        "(#132016) Template is disabled",
        "Template has been paused too many times due to low quality and is now "
        "permanently disabled.",
    ),
}


def _params_error(details: str) -> GraphError:
    return GraphError(
        132000,
        "(#132000) Number of parameters does not match the expected number of params",
        details=details,
    )


def _invalid(details: str) -> GraphError:
    return GraphError(100, "(#100) Invalid parameter", details=details)


def find_template(name: str, code: str) -> dict[str, Any]:
    """The template Meta would send, or Meta's error: 132001 for an unknown name or language
    (and for one not approved), 132015 / 132016 for a paused or disabled one."""
    for template in TEMPLATES:
        if template["name"] == name and template["language"] == code:
            status = template["status"]
            if status in _NOT_SENDABLE:
                error_code, message, details = _NOT_SENDABLE[status]
                raise GraphError(error_code, message, details=details)
            if status == "APPROVED":
                return template
    raise GraphError(
        132001,
        "(#132001) Template name does not exist in the translation",
        details=f"template name ({name}) does not exist in {code}",
    )


def check_template(name: str, code: str, components: list[dict[str, Any]]) -> dict[str, Any]:
    """Check a template send's components as Meta does; what the customer sees: text, header,
    footer and buttons with the parameters filled in."""
    template = find_template(name, code)
    named = template.get("parameter_format") == "NAMED"
    parts = {c["type"]: c for c in template["components"]}
    given: dict[str, dict[str, Any]] = {}
    for i, component in enumerate(components):
        kind, index = component["type"], component.get("index")
        if kind not in ("header", "body", "button"):
            raise not_one_of(
                f"template['components'][{i}]['type']", ("header", "body", "button"), kind
            )
        if kind == "button" and not (isinstance(index, int) or str(index).isdigit()):
            raise required(f"template['components'][{i}]['index']")
        key = f"button {int(str(index))}" if kind == "button" else kind
        if key in given:
            raise _invalid(f"Duplicate {key} component.")
        given[key] = component
    header = parts.get("HEADER")
    header_text = None
    if header is not None and header.get("format", "TEXT") != "TEXT":
        kind = header["format"].lower()
        parameters = given.pop("header", {}).get("parameters", [])
        if len(parameters) != 1 or parameters[0].get("type") != kind:
            raise _params_error(f"header: expected one {kind} parameter")
        media = parameters[0].get(kind)
        if not isinstance(media, dict) or not (media.get("link") or media.get("id")):
            raise _invalid(f"header: the {kind} parameter needs a link or an id.")
    elif header is not None:
        header_text = _hydrate("header", header["text"], given.pop("header", None), named)
        if len(header_text) > 60:
            raise _too_long("Header", len(header_text), 60)
    body = _hydrate("body", parts["BODY"]["text"], given.pop("body", None), named)
    if len(body) > 1024:
        raise _too_long("Body", len(body), 1024)
    buttons = _buttons(parts.get("BUTTONS", {}).get("buttons", []), given)
    if given:
        raise _params_error(f"{next(iter(given))}: the template has no such component")
    footer = parts.get("FOOTER", {}).get("text")
    return {"text": body, "header": header_text, "footer": footer, "buttons": buttons}


def _too_long(part: str, length: int, limit: int) -> GraphError:
    return GraphError(
        132005,
        "(#132005) Template Hydrated Text Too Long",
        details=f"{part} text is {length} characters with the parameters; the limit is {limit}.",
    )


def _hydrate(part: str, text: str, component: dict[str, Any] | None, named: bool) -> str:
    expected = list(dict.fromkeys(_PLACEHOLDER.findall(text)))
    parameters = component.get("parameters", []) if component is not None else []
    if len(parameters) != len(expected):
        raise _params_error(
            f"{part}: number of localizable_params ({len(parameters)}) does not match the "
            f"expected number of params ({len(expected)})"
        )
    values: dict[str, str] = {}
    for i, parameter in enumerate(parameters):
        value = parameter.get("text")
        if parameter.get("type") != "text" or not isinstance(value, str) or not value.strip():
            raise _invalid(f"{part}: parameter {i} must be a non-empty text parameter.")
        if re.search(r"[\n\t]| {5,}", value):
            raise _invalid(
                "Param text cannot have new-line/tab characters or more than 4 consecutive spaces"
            )
        slot = parameter.get("parameter_name") if named else str(i + 1)
        if slot not in expected:
            raise _params_error(f"{part}: parameter name ({slot}) is not in the template")
        values[str(slot)] = value
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _buttons(buttons: list[dict[str, Any]], given: dict[str, dict[str, Any]]) -> list[Any]:
    shown: list[dict[str, str]] = []
    for index, button in enumerate(buttons):
        component = given.pop(f"button {index}", None)
        value = None
        if component is not None:
            sub_type = {"QUICK_REPLY": "quick_reply", "URL": "url"}.get(button["type"])
            takes = "payload" if sub_type == "quick_reply" else "text"
            parameters = component.get("parameters", [])
            if component.get("sub_type") != sub_type or len(parameters) != 1:
                raise _params_error(f"button {index}: expected one {button['type']} parameter")
            value = parameters[0].get(takes)
            if parameters[0].get("type") != takes or not isinstance(value, str) or not value:
                raise _invalid(f"button {index}: the parameter needs a non-empty {takes}.")
        url = button.get("url")
        if url is not None and _PLACEHOLDER.search(url):
            if value is None:
                raise _params_error(f"button {index}: the URL needs its parameter")
            url = _PLACEHOLDER.split(url, maxsplit=1)[0] + value
        shown.append({"id": url or value or button["text"], "title": button["text"]})
    return shown
