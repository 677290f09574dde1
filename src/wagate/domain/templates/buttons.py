"""A template's buttons: quick-reply payloads and URL suffixes, by button index."""

from __future__ import annotations

import re
from typing import Any

from wagate.domain.errors import FieldError
from wagate.domain.messages import _unstorable
from wagate.domain.models import Button
from wagate.domain.phone import describe_type, quote_input
from wagate.domain.templates.shape import (
    ITEMS_CHECKED,
    Problems,
    Shape,
    TemplateButton,
    bad_value,
    fill_text,
    too_long,
    wrong_shape,
)

PAYLOAD_MAX = 256
URL_MAX = 2000
_EXAMPLE = '[{"index": 0, "payload": "track-4521"}, {"index": 1, "text": "4521"}]'


def fill_buttons(
    shape: Shape, value: object, problems: Problems
) -> tuple[list[dict[str, Any]], tuple[Button, ...]]:
    """`params.buttons` checked against the template's buttons: Meta's button components, and
    every button as the customer sees it."""
    given = _given(shape, [] if value is None else value, problems)
    components: list[dict[str, Any]] = []
    shown: list[Button] = []
    for button in shape.buttons:
        raw = given.get(button.index)
        if raw is not None and button.takes is not None:
            components.append(
                {
                    "type": "button",
                    "sub_type": "quick_reply" if button.takes == "payload" else "url",
                    "index": str(button.index),
                    "parameters": [{"type": button.takes, button.takes: raw}],
                }
            )
        if button.kind == "QUICK_REPLY":  # a tap returns the payload, or else the text
            shown.append(Button(raw or button.text, button.text))
        elif button.kind == "URL":
            url = fill_text(button.url or "", {"1": raw} if raw else {})
            shown.append(Button(url, button.text))
        else:
            shown.append(Button(button.phone or "", button.text))
    return components, tuple(shown)


def _given(shape: Shape, value: object, problems: Problems) -> dict[int, str]:
    """Button index → its payload or URL suffix; every problem reported."""
    if not isinstance(value, list) or len(value) > ITEMS_CHECKED:
        expected = f"a list of at most {ITEMS_CHECKED} {{index, payload or text}}, e.g. {_EXAMPLE}"
        problems.shape("params.buttons", expected, value)
        return {}
    by_index = {b.index: b for b in shape.buttons}
    given: dict[int, str] = {}
    seen: dict[int, int] = {}  # index → position in params.buttons
    for position, item in enumerate(value):
        path = f"params.buttons[{position}]"
        found = _button_param(path, item)
        if isinstance(found, FieldError):
            problems.add(found)
            continue
        index, key, raw = found
        button = by_index.get(index)
        if index in seen:
            message = (
                f"{path}.index {index} is the same as params.buttons[{seen[index]}].index; "
                "give each button once."
            )
            problems.add(FieldError(f"{path}.index", "invalid_field", message))
        elif button is None or button.takes is None:
            what = (
                f"{button.describe()} takes no parameter"
                if button is not None
                else f"{problems.where} has no button {index}"
            )
            problems.mismatch(path, f"{path} is extra: {what}.")
        elif key != button.takes:
            why = (
                "a quick reply's payload comes back when it is tapped"
                if button.takes == "payload"
                else "a URL button's text is the end of its URL"
            )
            message = f'{button.describe()} takes a "{button.takes}", not a "{key}": {why}.'
            problems.mismatch(f"{path}.{key}", message)
        elif (problem := _value_problem(f"{path}.{key}", button, raw)) is not None:
            problems.add(problem)
        else:
            given[index] = raw
        seen.setdefault(index, position)
    for button in shape.buttons:
        if button.takes == "text" and button.index not in seen:
            problems.mismatch(
                "params.buttons",
                f"params.buttons has nothing for {button.describe()}, whose URL "
                f"{quote_input(button.url or '')} ends with a parameter: add "
                f'{{"index": {button.index}, "text": "…"}}.',
            )
    return given


def _button_param(path: str, item: object) -> tuple[int, str, Any] | FieldError:
    """(index, "payload" or "text", value) from one params.buttons entry, or its problem."""
    if not isinstance(item, dict):
        return wrong_shape(path, 'an object like {"index": 0, "payload": "…"}', item)
    index = item.get("index")
    if isinstance(index, str) and index.isdigit() and len(index) < 3:
        index = int(index)  # Meta writes indexes as strings
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 100:
        if index is None:
            return FieldError(f"{path}.index", "invalid_field", f"{path}.index is missing.")
        return wrong_shape(f"{path}.index", "a button number (0, 1, …)", index)
    keys = [k for k in item if k != "index"]
    if len(keys) != 1 or keys[0] not in ("payload", "text"):
        unknown = [quote_input(str(k)) for k in keys if k not in ("payload", "text")][:5]
        return FieldError(
            path,
            "invalid_field",
            f'{path} takes its index and either a "payload" (a quick reply) or a "text" (the '
            "end of a URL)" + (f"; unknown: {', '.join(unknown)}." if unknown else "."),
        )
    return index, keys[0], item[keys[0]]


def _value_problem(path: str, button: TemplateButton, value: object) -> FieldError | None:
    """What is wrong with a quick reply's payload or a URL button's suffix, if anything."""
    if not isinstance(value, str):
        return bad_value(path, f"{path} must be a string; got {describe_type(value)}.")
    if not value.strip():
        return bad_value(path, f"{path} is empty.")
    if (problem := _unstorable(path, value, code="invalid_template_param")) is not None:
        return problem
    if button.takes == "payload":
        if len(value) > PAYLOAD_MAX:
            return too_long(
                path,
                f"{path} is {len(value)} characters; a quick-reply payload can have at most "
                f"{PAYLOAD_MAX}.",
            )
        return None
    if re.search(r"\s", value):
        return bad_value(
            path,
            f"{path} {quote_input(value)} contains whitespace; it is the end of a URL, so "
            "percent-encode spaces (%20).",
        )
    url = fill_text(button.url or "", {"1": value})
    if len(url) > URL_MAX:
        return too_long(
            path,
            f"With this value {button.describe()}'s URL would be {len(url)} characters; at most "
            f"{URL_MAX} are allowed.",
        )
    return None
