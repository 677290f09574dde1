"""A Send Template request's `params` checked against the template and filled in, with
Meta's limits on text parameters (SPEC §1)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from wagate.domain.errors import FieldError, ValidationFailed
from wagate.domain.messages import _unstorable
from wagate.domain.models import MessageContent, MessageType, TemplateContent
from wagate.domain.phone import describe_type, quote_input
from wagate.domain.templates.buttons import URL_MAX, fill_buttons
from wagate.domain.templates.model import Template
from wagate.domain.templates.shape import (
    ITEMS_CHECKED,
    MEDIA_FORMATS,
    Problems,
    Shape,
    bad_value,
    braces,
    fill_text,
    shape_of,
)

HEADER_TEXT_MAX = 60
BODY_TEXT_MAX = 1024
MAX_SPACES = 4

_MEDIA_KEYS = {
    "IMAGE": ("link", "id"),
    "VIDEO": ("link", "id"),
    "DOCUMENT": ("link", "id", "filename"),
}
_SPACES = re.compile(" " * (MAX_SPACES + 1))


def fill_template(template: Template, params: Mapping[str, Any]) -> MessageContent:
    """`params` (header, body, buttons) checked against the template and filled in; raises
    `ValidationFailed` listing every problem."""
    errors: list[FieldError] = []
    content = fill_into(template, params, errors)
    if content is None:
        raise ValidationFailed(errors)
    return content


def fill_into(
    template: Template, params: Mapping[str, Any], errors: list[FieldError]
) -> MessageContent | None:
    """As `fill_template`, adding problems to `errors` (None when there were any)."""
    shape = shape_of(template)
    problems = Problems(errors, template)
    if shape.unsupported:
        message = (
            f"Template {quote_input(template.name)} has {', '.join(shape.unsupported)}, which "
            "wagate cannot fill in yet; use another template."
        )
        problems.add(FieldError("template", "template_not_supported", message))
        return None
    before = len(errors)
    header_params, header = _header(template, shape, params.get("header"), problems)
    body_params, body = _body(template, shape, params.get("body"), problems)
    button_components, buttons = fill_buttons(shape, params.get("buttons"), problems)
    if len(errors) > before:
        return None
    components: list[dict[str, Any]] = []
    if header_params:
        components.append({"type": "header", "parameters": header_params})
    if body_params:
        components.append({"type": "body", "parameters": body_params})
    return MessageContent(
        type=MessageType.TEMPLATE,
        body=body or f"[template {template.name}]",
        header=header,
        footer=shape.footer,
        buttons=buttons,
        template=TemplateContent(
            template.name, template.language, (*components, *button_components)
        ),
    )


def _header(
    template: Template, shape: Shape, value: object, problems: Problems
) -> tuple[list[dict[str, Any]], str | None]:
    if shape.header_format in MEDIA_FORMATS:
        return _media_header(str(shape.header_format), value, problems), None
    names = shape.header_names
    if not names:
        if value not in (None, [], {}):
            what = "a fixed header" if shape.header_text else "no header"
            problems.mismatch(
                "params.header",
                f"params.header is extra: {problems.where} has "
                f"{what}, with no parameter; leave params.header out.",
            )
        return [], shape.header_text
    if value is None:
        value = {} if template.named else []
    values = _values("params.header", template, names, value, problems, list_ok=True)
    if values is None:
        return [], None
    header = fill_text(shape.header_text or "", values)
    if len(header) > HEADER_TEXT_MAX:
        path = f"params.header.{names[0]}" if isinstance(value, dict) else "params.header[0]"
        problems.too_long(
            path,
            f"With this value the header would be {len(header)} characters; "
            f"WhatsApp allows at most {HEADER_TEXT_MAX}. Shorten {path}.",
        )
        return [], None
    return _text_parameters(template, names, values), header


def _media_header(fmt: str, value: object, problems: Problems) -> list[dict[str, Any]]:
    kind = fmt.lower()
    example = f'{{"{kind}": {{"link": "https://example.com/{kind}"}}}}'
    if not isinstance(value, dict) or list(value) != [kind]:
        state = "is missing" if value is None else f"must be {example}"
        problems.mismatch(
            "params.header",
            f"params.header {state}: {problems.where} has a {kind} header; send e.g. {example}.",
        )
        return []
    media, path = value[kind], f"params.header.{kind}"
    if not isinstance(media, dict):
        problems.shape(path, f"an object with a link (or a Meta media id), e.g. {example}", media)
        return []
    allowed = _MEDIA_KEYS[fmt]
    if any(k not in allowed for k in media) or ("link" in media) == ("id" in media):
        problems.bad(
            path,
            f"{path} takes either a link or an id"
            + (" (and a filename)" if fmt == "DOCUMENT" else "")
            + f", e.g. {example}.",
        )
        return []
    for key, item in media.items():
        if not isinstance(item, str) or not item.strip() or _unstorable(path, item):
            problems.bad(f"{path}.{key}", f"{path}.{key} must be a non-empty string.")
            return []
    link = media.get("link")
    if link is not None and not re.fullmatch(r"https?://\S+", link):
        problems.bad(
            f"{path}.link",
            f"{path}.link {quote_input(link)} is not an http(s) URL WhatsApp can download.",
        )
        return []
    if link is not None and len(link) > URL_MAX:
        problems.too_long(
            f"{path}.link", f"{path}.link is {len(link)} characters; at most {URL_MAX} are allowed."
        )
        return []
    return [{"type": kind, kind: dict(media)}]


def _body(
    template: Template, shape: Shape, value: object, problems: Problems
) -> tuple[list[dict[str, Any]], str]:
    names = shape.body_names
    if value is None:
        value = {} if template.named else []
    values = _values("params.body", template, names, value, problems, list_ok=not template.named)
    if values is None:
        return [], shape.body_text
    body = fill_text(shape.body_text, values)
    if len(body) > BODY_TEXT_MAX:
        problems.too_long(
            "params.body",
            f"With these values the body would be {len(body)} "
            f"characters; WhatsApp allows at most {BODY_TEXT_MAX} (Meta error "
            "132005). Shorten them.",
        )
        return [], body
    return _text_parameters(template, names, values), body


def _values(
    path: str,
    template: Template,
    names: tuple[str, ...],
    value: object,
    problems: Problems,
    *,
    list_ok: bool,
) -> dict[str, str] | None:
    """The values for `names`, from a list (in order) or an object (by name); every missing,
    extra and broken one is reported."""
    part, where = path.removeprefix("params."), problems.where
    before = len(problems.errors)
    values: dict[str, str] = {}
    if isinstance(value, list) and list_ok:
        for i, name in enumerate(names):
            if i >= len(value):
                problems.mismatch(
                    f"{path}[{i}]",
                    f"{path}[{i}] is missing: {where} has "
                    f"{len(names)} {part} parameter(s), {braces(names)}; "
                    f"{{{{{name}}}}} has no value.",
                )
            elif (text := _text_value(f"{path}[{i}]", value[i], problems)) is not None:
                values[name] = text
        for i in range(len(names), min(len(value), len(names) + ITEMS_CHECKED)):
            problems.mismatch(
                f"{path}[{i}]",
                f"{path}[{i}] is extra: {where} has {len(names)} "
                f"{part} parameter(s): {braces(names)}.",
            )
    elif isinstance(value, dict) and template.named:
        for name in names:
            if name not in value:
                problems.mismatch(
                    f"{path}.{name}",
                    f"{path}.{name} is missing: {where} has {{{{{name}}}}} in its {part}.",
                )
            elif (text := _text_value(f"{path}.{name}", value[name], problems)) is not None:
                values[name] = text
        for key in [k for k in value if k not in names][:ITEMS_CHECKED]:
            problems.mismatch(
                f"{path}.{key}",
                f"{path}.{key} is extra: it is not a parameter "
                f"of {where}, whose {part} has {braces(names)}.",
            )
    elif isinstance(value, list | dict):
        if template.named:
            sample = json.dumps({n: "…" for n in names}, ensure_ascii=False)
            message = f"{path} must be an object: {where} uses named parameters, e.g. {sample}."
        else:
            sample = json.dumps(["…"] * len(names), ensure_ascii=False)
            message = (
                f"{path} must be a list: {where} uses numbered parameters "
                f"({braces(names)}), e.g. {sample}."
            )
        problems.mismatch(path, message)
    else:
        problems.shape(path, "a list" if list_ok else "an object", value)
    return None if len(problems.errors) > before else values


def _text_value(path: str, value: object, problems: Problems) -> str | None:
    """A header or body value: a non-empty string WhatsApp takes as a text parameter."""
    problem = _text_problem(path, value)
    if problem is not None:
        problems.add(problem)
        return None
    return str(value)


def _text_problem(path: str, value: object) -> FieldError | None:
    if not isinstance(value, str):
        return bad_value(path, f"{path} must be a string; got {describe_type(value)}.")
    if not value.strip():
        return bad_value(path, f"{path} is empty; WhatsApp needs a value for each parameter.")
    if (problem := _unstorable(path, value, code="invalid_template_param")) is not None:
        return problem
    if "\n" in value or "\r" in value or "\t" in value or _SPACES.search(value):
        return bad_value(
            path,
            f"{path} contains a newline, a tab or more than {MAX_SPACES} spaces in a row, which "
            "WhatsApp does not allow in a template parameter; put line breaks in the template.",
        )
    return None


def _text_parameters(
    template: Template, names: tuple[str, ...], values: Mapping[str, str]
) -> list[dict[str, Any]]:
    if template.named:
        return [{"type": "text", "parameter_name": n, "text": values[n]} for n in names]
    return [{"type": "text", "text": values[n]} for n in names]
