"""A synced template as a form: one input per parameter it takes (filled with Meta's examples),
and the form's answers turned back into Send Template `params` (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wagate.domain.errors import ValidationFailed
from wagate.domain.models import MessageContent
from wagate.domain.templates import Template, example_params, fill_template
from wagate.domain.templates.shape import MEDIA_FORMATS, shape_of


@dataclass(frozen=True, slots=True)
class ParamInput:
    name: str  # the form field
    label: str
    value: str  # Meta's example, or what was typed
    hint: str | None = None
    required: bool = True


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
        value = typed.get(name, example if isinstance(example, str) else "")
        inputs.append(ParamInput(name, label, value, hint, **kw))

    if shape.header_format in MEDIA_FORMATS:
        kind = str(shape.header_format).lower()
        link = examples.get("header", {}).get(kind, {}).get("link", "")
        add("header_link", f"Header {kind} URL", link, "A public https link to the file.")
    else:
        header_examples = examples.get("header") or []
        for i, name in enumerate(shape.header_names):
            example = header_examples[i] if i < len(header_examples) else ""
            add(f"header_{i}", f"Header {{{{{name}}}}}", example)
    body_examples = examples.get("body") or ({} if template.named else [])
    for i, name in enumerate(shape.body_names):
        if isinstance(body_examples, dict):
            example = body_examples.get(name, "")
        else:
            example = body_examples[i] if i < len(body_examples) else ""
        add(f"body_{name}", f"{{{{{name}}}}}", example)
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
