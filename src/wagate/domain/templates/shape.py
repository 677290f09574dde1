"""What a synced template asks for: its header, body and buttons and their placeholders."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wagate.domain.errors import FieldError
from wagate.domain.phone import describe_type, quote_input
from wagate.domain.templates.model import Template

MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
ITEMS_CHECKED = 10  # per list or object, so a huge request cannot make a huge answer
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_PLAIN_BUTTONS = ("QUICK_REPLY", "URL", "PHONE_NUMBER", "VOICE_CALL")


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """One button of a template, at `index` in its BUTTONS component."""

    index: int
    kind: str  # QUICK_REPLY, URL, PHONE_NUMBER, …
    text: str
    url: str | None = None
    phone: str | None = None
    url_example: str | None = None  # the whole URL, as Meta's example gives it

    @property
    def takes(self) -> str | None:
        """The parameter the button takes: "payload", "text" (the end of its URL) or none."""
        if self.kind == "QUICK_REPLY":
            return "payload"
        if self.kind == "URL" and self.url and PLACEHOLDER.search(self.url):
            return "text"
        return None

    def describe(self) -> str:
        kind = {"QUICK_REPLY": "quick reply", "PHONE_NUMBER": "call"}.get(self.kind, self.kind)
        return f"button {self.index} ({kind} {quote_input(self.text)})"


@dataclass(frozen=True, slots=True)
class Shape:
    """What a template asks for."""

    header_format: str | None  # TEXT, IMAGE, VIDEO, DOCUMENT, … or None (no header)
    header_text: str | None
    header_names: tuple[str, ...]
    body_text: str
    body_names: tuple[str, ...]
    footer: str | None
    buttons: tuple[TemplateButton, ...]
    unsupported: tuple[str, ...]
    examples: Mapping[str, Any]  # component type → Meta's `example`


def _names(text: str | None) -> tuple[str, ...]:
    """Placeholders in order: by number for {{1}}, {{2}}; as written for named ones."""
    found = list(dict.fromkeys(PLACEHOLDER.findall(text or "")))
    if found and all(n.isdigit() for n in found):
        found.sort(key=int)
    return tuple(found)


def _text(value: object) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else None


def shape_of(template: Template) -> Shape:
    """What `template` asks for, read from Meta's components (whatever their case)."""
    header_format = header_text = body_text = footer = None
    buttons: list[TemplateButton] = []
    unsupported: list[str] = []
    examples: dict[str, Any] = {}
    for component in template.components:
        kind = str(component.get("type", "")).upper()
        text = _text(component.get("text"))
        if isinstance(component.get("example"), dict):
            examples[kind] = component["example"]
        if kind == "HEADER":
            header_format, header_text = str(component.get("format", "TEXT")).upper(), text
            if header_format not in ("TEXT", *MEDIA_FORMATS):
                unsupported.append(f"a {header_format.lower()} header")
        elif kind == "BODY":
            body_text = text
        elif kind == "FOOTER":
            footer = text
        elif kind == "BUTTONS":
            for index, b in enumerate(component.get("buttons") or ()):
                if not isinstance(b, dict):
                    continue
                button = TemplateButton(
                    index=index,
                    kind=str(b.get("type", "")).upper(),
                    text=str(b.get("text", "")),
                    url=_text(b.get("url")),
                    phone=_text(b.get("phone_number")),
                    url_example=_text(b.get("example")),
                )
                if button.kind not in _PLAIN_BUTTONS:
                    unsupported.append(f"a {button.kind.lower().replace('_', '-')} button")
                buttons.append(button)
        else:
            unsupported.append(f"a {kind.lower() or 'nameless'} component")
    return Shape(
        header_format=header_format,
        header_text=header_text,
        header_names=_names(header_text) if header_format == "TEXT" else (),
        body_text=body_text or "",
        body_names=_names(body_text),
        footer=footer,
        buttons=tuple(buttons),
        unsupported=tuple(unsupported),
        examples=examples,
    )


def fill_text(text: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def braces(names: Sequence[str]) -> str:
    return ", ".join("{{" + n + "}}" for n in names) or "none"


def mismatch(path: str, message: str) -> FieldError:
    return FieldError(path, "template_params_mismatch", message)


def bad_value(path: str, message: str) -> FieldError:
    return FieldError(path, "invalid_template_param", message)


def too_long(path: str, message: str) -> FieldError:
    return FieldError(path, "template_param_too_long", message)


def wrong_shape(path: str, expected: str, value: object) -> FieldError:
    return FieldError(
        path, "invalid_field", f"{path} must be {expected}; got {describe_type(value)}."
    )


class Problems:
    """The problems found in one request's `params`, and how to name its template in them."""

    def __init__(self, errors: list[FieldError], template: Template) -> None:
        self.errors = errors
        self.where = f"template {quote_input(template.name)}"

    def add(self, error: FieldError) -> None:
        self.errors.append(error)

    def mismatch(self, path: str, message: str) -> None:
        self.add(mismatch(path, message))

    def bad(self, path: str, message: str) -> None:
        self.add(bad_value(path, message))

    def too_long(self, path: str, message: str) -> None:
        self.add(too_long(path, message))

    def shape(self, path: str, expected: str, value: object) -> None:
        self.add(wrong_shape(path, expected, value))
