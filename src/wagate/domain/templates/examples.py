"""A `params` object that fits a template, from Meta's example values."""

from __future__ import annotations

import re
from typing import Any

from wagate.domain.templates.model import Template
from wagate.domain.templates.params import fill_into
from wagate.domain.templates.shape import MEDIA_FORMATS, shape_of


def example_params(template: Template) -> dict[str, Any] | None:
    """A `params` object that fits the template, with Meta's example values where the template
    has them (`GET /v1/templates` shows it beside each template); None when wagate cannot fill
    the template in."""
    shape = shape_of(template)
    if shape.unsupported:
        return None
    out: dict[str, Any] = {}
    if shape.header_format in MEDIA_FORMATS:
        kind = str(shape.header_format).lower()
        out["header"] = {kind: {"link": f"https://example.com/{kind}"}}
    elif shape.header_names:
        found = _examples("header", shape.examples.get("HEADER"), shape.header_names)
        out["header"] = list(found.values())
    if shape.body_names:
        found = _examples("body", shape.examples.get("BODY"), shape.body_names)
        out["body"] = found if template.named else list(found.values())
    buttons: list[dict[str, Any]] = []
    for button in shape.buttons:
        if button.takes == "payload":
            slug = re.sub(r"[^a-z0-9]+", "-", button.text.lower()).strip("-") or "tapped"
            buttons.append({"index": button.index, "payload": slug})
        elif button.takes == "text":
            prefix = (button.url or "").split("{{", 1)[0]
            example = button.url_example or ""
            suffix = example[len(prefix) :] if example.startswith(prefix) else ""
            ok = suffix and not re.search(r"\s", suffix)
            buttons.append({"index": button.index, "text": suffix if ok else "example"})
    if buttons:
        out["buttons"] = buttons
    # Meta's examples are free text; offer them only when they pass the checks a send gets.
    return out if fill_into(template, out, []) is not None else None


def _examples(part: str, example: object, names: tuple[str, ...]) -> dict[str, str]:
    """Meta's example values for `names` (`body_text` / `body_text_named_params`, …)."""
    found: dict[str, str] = {}
    if isinstance(example, dict):
        named, positional = example.get(f"{part}_text_named_params"), example.get(f"{part}_text")
        if isinstance(named, list):
            for item in named:
                if isinstance(item, dict) and isinstance(item.get("example"), str):
                    found[str(item.get("param_name"))] = item["example"]
        elif isinstance(positional, list) and positional:
            row = positional[0] if isinstance(positional[0], list) else positional
            found = {n: v for n, v in zip(names, row, strict=False) if isinstance(v, str)}
    return {n: found.get(n) or f"value {i}" for i, n in enumerate(names, 1)}
