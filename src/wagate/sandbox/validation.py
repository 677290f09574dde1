"""The rules of Meta's send body, checked as the Cloud API checks them.

A missing, misplaced or malformed parameter is code 100 (`(#100) The parameter text['body'] is
required.`, `(#100) Unexpected key "x" on param "text".`); a value outside WhatsApp's limits on an
interactive message is code 131009 (`(#131009) Parameter value is not valid`, with the rule in
`error_data.details`). Text, interactive (reply buttons, and lists loosely) and template messages
are simulated; other types are refused with code 100. A template is checked against the sandbox's
own set (`templates.check_template`): 132001 for an unknown name or language or one not approved,
132000 when the parameters do not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wagate.sandbox.graph import (
    PHONE_RE,
    GraphError,
    invalid_parameter,
    invalid_value,
    not_one_of,
    required,
    unexpected_key,
    wrong_type,
)
from wagate.sandbox.kind_validation import (
    KIND_CHECKS,
    check_cta_url,
    check_location_request,
)
from wagate.sandbox.templates import check_template

TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
LIST_BODY_MAX = 4096
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_ROW_TITLE_MAX = 24
LIST_ROW_ID_MAX = 200

MESSAGE_TYPES = (
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
)
SIMULATED_TYPES = ("text", "interactive", "template", *KIND_CHECKS)
INTERACTIVE_TYPES = (
    "button",
    "call_permission_request",
    "catalog_message",
    "cta_url",
    "flow",
    "list",
    "location_request_message",
    "product",
    "product_list",
)
HEADER_TYPES = ("text", "image", "video", "document")


@dataclass(frozen=True, slots=True)
class OutboundContent:
    """A validated send body, reduced to what the sandbox records and shows."""

    type: str
    to: str
    wa_id: str
    text: str | None = None
    header: str | None = None
    footer: str | None = None
    buttons: tuple[dict[str, str], ...] = ()
    template: dict[str, Any] | None = None
    preview_url: bool = False
    context: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "text": self.text}
        if self.type in ("interactive", "template"):
            out.update(header=self.header, footer=self.footer, buttons=list(self.buttons))
        if self.template is not None:
            out["template"] = self.template
        if self.context is not None:
            out["context"] = self.context
        out.update(self.extra)
        return out


def _obj(body: dict[str, Any], key: str, param: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        raise required(param)
    if not isinstance(value, dict):
        raise wrong_type(param, "an object")
    return value


def _keys(obj: dict[str, Any], allowed: tuple[str, ...], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise unexpected_key(key, param)


def _str(obj: dict[str, Any], key: str, param: str, *, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if optional:
            return None
        raise required(param)
    if not isinstance(value, str):
        raise wrong_type(param, "a string")
    return value


def _length(value: str, what: str, maximum: int) -> None:
    if not 1 <= len(value) <= maximum:
        raise invalid_value(f"{what} length invalid. Min length: 1, Max length: {maximum}")


def validate_send(body: object) -> OutboundContent:
    """Check a `POST /{phone_number_id}/messages` body as the Cloud API does."""
    if not isinstance(body, dict):
        raise invalid_parameter("The request body must be a JSON object.")
    product = body.get("messaging_product")
    if product is None:
        raise required("messaging_product")
    if product != "whatsapp":
        raise not_one_of("messaging_product", ("whatsapp",), product)
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise not_one_of("recipient_type", ("individual",), recipient_type)
    to = body.get("to")
    if to is None or to == "":
        raise required("to")
    if not isinstance(to, str) or not PHONE_RE.match(to):
        raise invalid_parameter(
            f"Invalid value for parameter 'to': {to!r}. Use the recipient's phone number in "
            "international format: country code and digits, optionally with a leading +."
        )
    msg_type = body.get("type", "text")
    if not isinstance(msg_type, str) or msg_type not in MESSAGE_TYPES:
        raise not_one_of("type", MESSAGE_TYPES, msg_type)
    if msg_type not in SIMULATED_TYPES:
        raise invalid_parameter(
            f"The wagate sandbox simulates {', '.join(SIMULATED_TYPES)} messages; "
            f"'{msg_type}' messages are not supported."
        )
    context = None
    if "context" in body:
        ctx = _obj(body, "context", "context")
        _keys(ctx, ("message_id",), "context")
        context = _str(ctx, "message_id", "context['message_id']")
    common: dict[str, Any] = {"to": to, "wa_id": to.lstrip("+"), "context": context}
    if msg_type == "text":
        return _text(body, common)
    if msg_type == "interactive":
        return _interactive(body, common)
    if msg_type in KIND_CHECKS:
        if msg_type == "reaction" and context is not None:
            raise unexpected_key("context", "reaction message")  # it names its message itself
        text, extra = KIND_CHECKS[msg_type](body)
        return OutboundContent(type=msg_type, text=text, extra=extra, **common)
    return _template(body, common)


def _text(body: dict[str, Any], common: dict[str, Any]) -> OutboundContent:
    text = _obj(body, "text", "text['body']")
    _keys(text, ("body", "preview_url"), "text")
    value = _str(text, "body", "text['body']")
    assert value is not None
    if len(value) > TEXT_MAX:
        raise GraphError(
            100,
            f"(#100) Param text['body'] must be at most {TEXT_MAX} characters long.",
            details=f"Message text is {len(value)} characters; the limit is {TEXT_MAX}.",
        )
    preview = text.get("preview_url", False)
    if not isinstance(preview, bool):
        raise wrong_type("text['preview_url']", "a boolean")
    return OutboundContent(type="text", text=value, preview_url=preview, **common)


def _interactive(body: dict[str, Any], common: dict[str, Any]) -> OutboundContent:
    inter = _obj(body, "interactive", "interactive")
    _keys(inter, ("type", "header", "body", "footer", "action"), "interactive")
    kind = inter.get("type")
    if kind is None:
        raise required("interactive['type']")
    if kind not in INTERACTIVE_TYPES:
        raise not_one_of("interactive['type']", INTERACTIVE_TYPES, kind)
    if kind == "location_request_message":
        asked, shown = check_location_request(inter)
        return OutboundContent(type="interactive", text=asked, extra=shown, **common)
    if kind not in ("button", "list", "cta_url"):
        raise invalid_parameter(
            f"The wagate sandbox simulates reply-button, list, cta_url and "
            f"location_request_message messages; interactive type '{kind}' is not supported."
        )
    action = _obj(inter, "action", "interactive['action']")
    body_obj = _obj(inter, "body", "interactive['body']")
    _keys(body_obj, ("text",), "interactive['body']")
    text = _str(body_obj, "text", "interactive['body']['text']")
    assert text is not None
    # Meta allows a list message a longer body than the other interactive types.
    _length(text, "Body text", LIST_BODY_MAX if kind == "list" else INTERACTIVE_BODY_MAX)
    header = _header(inter)
    footer = None
    if "footer" in inter:
        footer_obj = _obj(inter, "footer", "interactive['footer']")
        _keys(footer_obj, ("text",), "interactive['footer']")
        footer = _str(footer_obj, "text", "interactive['footer']['text']")
        assert footer is not None
        _length(footer, "Footer text", FOOTER_MAX)
    if kind == "button":
        buttons = _buttons(action)
        extra: dict[str, Any] = {"interactive_type": "button"}
    elif kind == "cta_url":
        buttons, extra = (), check_cta_url(inter)
    else:
        buttons, extra = _list_rows(action)
    return OutboundContent(
        type="interactive",
        text=text,
        header=header,
        footer=footer,
        buttons=buttons,
        extra=extra,
        **common,
    )


def _header(inter: dict[str, Any]) -> str | None:
    if "header" not in inter:
        return None
    header = _obj(inter, "header", "interactive['header']")
    kind = header.get("type")
    if kind is None:
        raise required("interactive['header']['type']")
    if kind not in HEADER_TYPES:
        raise not_one_of("interactive['header']['type']", HEADER_TYPES, kind)
    _keys(header, ("type", "text", "sub_text", kind), "interactive['header']")
    if kind != "text":
        media = _obj(header, kind, f"interactive['header']['{kind}']")
        if not (isinstance(media.get("link"), str) or isinstance(media.get("id"), str)):
            raise required(f"interactive['header']['{kind}']['link']")
        return f"[{kind}]"
    text = _str(header, "text", "interactive['header']['text']")
    assert text is not None
    _length(text, "Header text", HEADER_MAX)
    return text


def _buttons(action: dict[str, Any]) -> tuple[dict[str, str], ...]:
    _keys(action, ("buttons",), "interactive['action']")
    buttons = action.get("buttons")
    if buttons is None:
        raise required("interactive['action']['buttons']")
    if not isinstance(buttons, list):
        raise wrong_type("interactive['action']['buttons']", "an array")
    if not 1 <= len(buttons) <= 3:
        raise invalid_value("Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3")
    out: list[dict[str, str]] = []
    for i, button in enumerate(buttons):
        param = f"interactive['action']['buttons'][{i}]"
        if not isinstance(button, dict):
            raise wrong_type(param, "an object")
        _keys(button, ("type", "reply"), param)
        kind = button.get("type")
        if kind is None:
            raise required(f"{param}['type']")
        if kind != "reply":
            raise not_one_of(f"{param}['type']", ("reply",), kind)
        reply = _obj(button, "reply", f"{param}['reply']")
        _keys(reply, ("id", "title"), f"{param}['reply']")
        for key in ("id", "title"):
            if key not in reply:
                raise required(f"{param}['reply']['{key}']")
            if not isinstance(reply[key], str):
                raise wrong_type(f"{param}['reply']['{key}']", "a string")
        button_id, title = reply["id"], reply["title"]
        _length(title, "Button title", BUTTON_TITLE_MAX)
        _length(button_id, "Button id", BUTTON_ID_MAX)
        if button_id != button_id.strip():
            raise invalid_value("Button id cannot have leading or trailing whitespace")
        out.append({"id": button_id, "title": title})
    if len({b["id"] for b in out}) != len(out):
        raise invalid_value("Button ids must be unique")
    if len({b["title"] for b in out}) != len(out):
        raise invalid_value("Button titles must be unique")
    return tuple(out)


def _list_rows(action: dict[str, Any]) -> tuple[tuple[dict[str, str], ...], dict[str, Any]]:
    """A list message, checked loosely: the button label, sections and their rows."""
    _keys(action, ("button", "sections"), "interactive['action']")
    label = _str(action, "button", "interactive['action']['button']")
    assert label is not None
    _length(label, "Button text", BUTTON_TITLE_MAX)
    sections = action.get("sections")
    if sections is None:
        raise required("interactive['action']['sections']")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise invalid_value("Invalid sections count. Min allowed sections: 1, Max: 10")
    rows: list[dict[str, str]] = []
    for i, section in enumerate(sections):
        param = f"interactive['action']['sections'][{i}]"
        if not isinstance(section, dict) or not isinstance(section.get("rows"), list):
            raise required(f"{param}['rows']")
        for j, row in enumerate(section["rows"]):
            row_param = f"{param}['rows'][{j}]"
            if not isinstance(row, dict):
                raise wrong_type(row_param, "an object")
            row_id = _str(row, "id", f"{row_param}['id']")
            title = _str(row, "title", f"{row_param}['title']")
            assert row_id is not None and title is not None
            _length(title, "Row title", LIST_ROW_TITLE_MAX)
            _length(row_id, "Row id", LIST_ROW_ID_MAX)
            rows.append({"id": row_id, "title": title})
    if not 1 <= len(rows) <= 10:
        raise invalid_value("Invalid rows count. Min allowed rows: 1, Max allowed rows: 10")
    if len({r["id"] for r in rows}) != len(rows):
        raise invalid_value("Row ids must be unique")
    return tuple(rows), {"interactive_type": "list", "list_button": label}


def _template(body: dict[str, Any], common: dict[str, Any]) -> OutboundContent:
    template = _obj(body, "template", "template")
    _keys(template, ("name", "language", "components", "namespace"), "template")
    name = _str(template, "name", "template['name']")
    language = _obj(template, "language", "template['language']")
    _keys(language, ("code", "policy"), "template['language']")
    code = _str(language, "code", "template['language']['code']")
    components = template.get("components", [])
    if not isinstance(components, list):
        raise wrong_type("template['components']", "an array")
    for i, component in enumerate(components):
        param = f"template['components'][{i}]"
        if not isinstance(component, dict):
            raise wrong_type(param, "an object")
        if not isinstance(component.get("type"), str):
            raise required(f"{param}['type']")
        parameters = component.get("parameters", [])
        if not isinstance(parameters, list) or not all(
            isinstance(p, dict) and isinstance(p.get("type"), str) for p in parameters
        ):
            raise invalid_parameter(
                f"{param}['parameters'] must be an array of objects with a type"
            )
    assert name is not None and code is not None
    shown = check_template(name, code, components)
    summary = {"name": name, "language": code, "components": components}
    return OutboundContent(
        type="template",
        text=shown["text"],
        header=shown["header"],
        footer=shown["footer"],
        buttons=tuple(shown["buttons"]),
        template=summary,
        **common,
    )
