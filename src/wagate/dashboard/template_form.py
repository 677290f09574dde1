"""A synced template as a form: one input per parameter it takes (empty, with Meta's example as
a placeholder: a sample value must never reach a real customer by accident), the form's
answers turned back into Send Template `params`, an error of those `params` pointed back at its
input, and the message as drafted so far (pure, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wagate.domain.errors import ValidationFailed
from wagate.domain.models import MessageContent
from wagate.domain.templates import Template, example_params, fill_template
from wagate.domain.templates.shape import MEDIA_FORMATS, PLACEHOLDER, Shape, shape_of


@dataclass(frozen=True, slots=True)
class ParamInput:
    name: str  # the form field
    label: str
    value: str  # what was typed (never a sample value)
    hint: str | None = None
    required: bool = True
    placeholder: str | None = None  # Meta's example, shown greyed out


def template_key(template: Template | Mapping[str, Any]) -> str:
    """How a form names a template: "name|language"."""
    if isinstance(template, Template):
        return f"{template.name}|{template.language}"
    return f"{template['name']}|{template['language']}"


def param_inputs(template: Template, typed: Mapping[str, str] | None = None) -> list[ParamInput]:
    """What the form asks for, in the template's order: header, body, buttons."""
    shape = shape_of(template)
    examples = example_params(template) or {}
    typed = typed or {}
    inputs: list[ParamInput] = []

    def add(name: str, label: str, example: Any, hint: str | None = None, **kw: Any) -> None:
        sample = f"e.g. {example}" if isinstance(example, str) and example else None
        inputs.append(ParamInput(name, label, typed.get(name, ""), hint, placeholder=sample, **kw))

    if shape.header_format in MEDIA_FORMATS:
        kind = str(shape.header_format).lower()
        add("header_link", f"Header {kind} URL", "https://…", "A public https link to the file.")
    else:
        header_examples = examples.get("header") or []
        for i, name in enumerate(shape.header_names):
            example = header_examples[i] if i < len(header_examples) else ""
            add(f"header_{i}", f"Header {{{{{name}}}}}", example, _where(shape.header_text, name))
    body_examples = examples.get("body") or ({} if template.named else [])
    for i, name in enumerate(shape.body_names):
        if isinstance(body_examples, dict):
            example = body_examples.get(name, "")
        else:
            example = body_examples[i] if i < len(body_examples) else ""
        # A number says nothing by itself: show where {{3}} stands in the text.
        hint = _where(shape.body_text, name) if name.isdigit() else None
        add(f"body_{name}", f"Body {{{{{name}}}}}", example, hint)
    button_examples = {b["index"]: b for b in examples.get("buttons") or []}
    for button in shape.buttons:
        example = button_examples.get(button.index, {})
        if button.takes == "payload":
            add(
                f"button_{button.index}",
                f"Payload of the “{button.text}” button",
                example.get("payload", ""),
                "What comes back when the customer taps it (optional).",
                required=False,
            )
        elif button.takes == "text":
            add(
                f"button_{button.index}",
                f"End of the “{button.text}” link",
                example.get("text", ""),
                f"Added to {(button.url or '').split('{{', 1)[0]}",
            )
    return inputs


def _where(text: str | None, name: str, around: int = 28) -> str | None:
    """`{{name}}` with a little of the text around it: “…with {{2}} at {{3}}. Tap a…”."""
    found = re.search(r"\{\{\s*" + re.escape(name) + r"\s*\}\}", text or "")
    if text is None or found is None:
        return None
    start, end = max(0, found.start() - around), min(len(text), found.end() + around)
    snippet = " ".join(text[start:end].split())
    return (
        "In the text: “" + ("…" if start else "") + snippet + ("…" if end < len(text) else "") + "”"
    )


def field_for_error(template: Template, form: Mapping[str, str], path: str) -> str | None:
    """The form input a Send Template error is about (`params.body[2]` is the input labelled
    {{3}}), or None when it is about no one input."""
    shape = shape_of(template)
    found = re.match(r"params\.(header|body|buttons)(?:\[(\d+)\]|\.(\w+))?", path)
    if found is None:
        return None
    part, position, key = found.group(1), found.group(2), found.group(3)
    if part == "header":
        if shape.header_format in MEDIA_FORMATS:
            return "header_link"
        names = shape.header_names
        index = int(position) if position is not None else names.index(key) if key in names else 0
        return f"header_{index}" if index < len(names) else None
    if part == "body":
        names = shape.body_names
        if position is not None:
            return f"body_{names[int(position)]}" if int(position) < len(names) else None
        return f"body_{key}" if key in names else (f"body_{names[0]}" if names else None)
    sent = _buttons_sent(shape, form)
    if position is not None and int(position) < len(sent):
        return f"button_{sent[int(position)]}"
    return None


def _buttons_sent(shape: Shape, form: Mapping[str, str]) -> list[int]:
    """The index of each button in `params.buttons`, in order (as `params_from_form` fills it)."""
    return [
        b.index
        for b in shape.buttons
        if b.takes == "text" or (b.takes == "payload" and form.get(f"button_{b.index}", "").strip())
    ]


def draft(template: Template, form: Mapping[str, str]) -> dict[str, Any]:
    """The message as drafted so far: what was typed in place of each placeholder, the
    placeholder itself where nothing was typed yet."""
    shape = shape_of(template)
    body_values = {n: form.get(f"body_{n}", "").strip() for n in shape.body_names}
    header_values = {
        n: form.get(f"header_{i}", "").strip() for i, n in enumerate(shape.header_names)
    }

    def filled(text: str | None, values: Mapping[str, str]) -> str | None:
        if text is None:
            return None
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or m.group(0), text)

    media = None
    if shape.header_format in MEDIA_FORMATS:
        media = {
            "kind": str(shape.header_format).lower(),
            "link": form.get("header_link", "").strip() or _media_example(shape),
        }
    return {
        "header": None if media else filled(shape.header_text, header_values),
        "body": filled(shape.body_text, body_values),
        "footer": shape.footer,
        "buttons": [{"id": str(b.index), "title": b.text} for b in shape.buttons],
        "media": media,
    }


def _media_example(shape: Shape) -> str | None:
    """The sample file Meta keeps for a media header (its `header_handle`), if any."""
    handle = shape.examples.get("HEADER", {}).get("header_handle")
    link = handle[0] if isinstance(handle, list) and handle else handle
    return link if isinstance(link, str) and link.startswith(("http://", "https://")) else None


def params_from_form(template: Template, form: Mapping[str, str]) -> dict[str, Any]:
    """The `params` of a Send Template request, from `param_inputs`' fields."""
    shape = shape_of(template)
    params: dict[str, Any] = {}
    if shape.header_format in MEDIA_FORMATS:
        kind = str(shape.header_format).lower()
        params["header"] = {kind: {"link": form.get("header_link", "").strip()}}
    elif shape.header_names:
        params["header"] = [form.get(f"header_{i}", "") for i in range(len(shape.header_names))]
    if shape.body_names:
        values = [form.get(f"body_{name}", "") for name in shape.body_names]
        params["body"] = (
            dict(zip(shape.body_names, values, strict=True)) if template.named else values
        )
    buttons: list[dict[str, Any]] = []
    for button in shape.buttons:
        value = form.get(f"button_{button.index}", "")
        if button.takes == "payload" and value.strip():
            buttons.append({"index": button.index, "payload": value.strip()})
        elif button.takes == "text":
            buttons.append({"index": button.index, "text": value.strip()})
    if buttons:
        params["buttons"] = buttons
    return params


def preview(template: Template) -> MessageContent | None:
    """The template as a customer would see it, filled with Meta's example values (None when
    it cannot be filled in)."""
    params = example_params(template)
    if params is None:
        return None
    try:
        return fill_template(template, params)
    except ValidationFailed:
        return None
