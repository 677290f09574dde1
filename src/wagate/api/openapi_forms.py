"""The form encodings of a request body, described as they really are.

Endpoints that take JSON, urlencoded and multipart bodies describe all three with one model, but a
form carries only text: no null (a field is left out instead), yes/no words for a boolean, and
JSON text for a list or an object (`buttons`, `metadata`, `params`). `describe_forms` rewrites
the schema of every form encoding in an OpenAPI document to say that, so that a generated client
and a schema-driven fuzzer send what the server reads.
"""

from __future__ import annotations

import copy
from typing import Any

from wagate.domain.messages import FALSE_WORDS, TRUE_WORDS

FORM_MEDIA = ("application/x-www-form-urlencoded", "multipart/form-data")
_KEEP = ("title", "description", "examples", "default", "minLength", "maxLength", "pattern", "enum")


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# The words a form may use for true and false, in any case, with spaces around.
FORM_BOOLEAN = {
    "type": "string",
    "pattern": "^\\s*("
    + "|".join(_any_case(w) for w in sorted(TRUE_WORDS | FALSE_WORDS) if w)
    + ")?\\s*$",
    "description": "true or false (also 1/0, on/off, yes/no; empty is false)",
}
_TRUE = {
    "type": "string",
    "pattern": "^\\s*(" + "|".join(_any_case(w) for w in sorted(TRUE_WORDS)) + ")\\s*$",
}
FORM_NUMBER = {"type": "string", "pattern": "^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$"}


def form_field(schema: dict[str, Any]) -> dict[str, Any]:
    """One property of a JSON body, as a form field."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    inner = options[0] if len(options) == 1 else {}
    kind = inner.get("type")
    described = {k: schema[k] for k in ("title", "description") if k in schema}
    if kind == "boolean":
        return FORM_BOOLEAN | described
    if kind in ("integer", "number"):
        return FORM_NUMBER | described
    if kind == "string":
        return {"type": "string"} | {k: inner[k] for k in _KEEP if k in inner} | described
    # A list, an object, a nested model or a choice of several: JSON text.
    note = "JSON text"
    text = f"{described['description']} ({note})" if "description" in described else note
    return (
        {"type": "string", "contentMediaType": "application/json"}
        | described
        | {"description": text}
    )


def form_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON body's object schema, as a form: every property a text field."""
    form: dict[str, Any] = {
        k: copy.deepcopy(v) for k, v in schema.items() if k not in ("properties", "anyOf")
    }
    form["type"] = "object"
    form["properties"] = {
        name: form_field(field) for name, field in schema.get("properties", {}).items()
    }
    if "anyOf" in schema:  # a rule across fields, e.g. "url, or rotate_secret true"
        form["anyOf"] = [_form_branch(branch) for branch in schema["anyOf"]]
    return form


def _form_branch(branch: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in branch.items() if k == "required"}
    fixed = {
        name: _TRUE if rule.get("const") is True else form_field(rule)
        for name, rule in branch.get("properties", {}).items()
    }
    return out | ({"properties": fixed} if fixed else {})


def describe_forms(document: dict[str, Any]) -> None:
    """Rewrite, in place, every form encoding's body schema of an OpenAPI document."""
    components = document.get("components", {}).get("schemas", {})
    for path in document.get("paths", {}).values():
        for operation in path.values():
            content = (operation.get("requestBody") or {}).get("content", {})
            for media in FORM_MEDIA:
                if media not in content:
                    continue
                schema = content[media].get("schema", {})
                ref = schema.get("$ref", "")
                if ref.startswith("#/components/schemas/"):
                    schema = components.get(ref.rsplit("/", 1)[1], {})
                if schema.get("properties"):
                    content[media]["schema"] = form_schema(schema)
