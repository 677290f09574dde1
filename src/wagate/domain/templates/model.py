"""A message template as synced from Meta, read from one entry of Meta's template listing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wagate.domain.phone import describe_type

APPROVED = "APPROVED"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Template:
    """One template name in one language, as Meta lists it."""

    name: str
    language: str
    status: str  # APPROVED, PENDING, REJECTED, PAUSED, DISABLED, … as Meta says
    category: str  # MARKETING, UTILITY, AUTHENTICATION
    parameter_format: str  # POSITIONAL ({{1}}) or NAMED ({{first_name}})
    components: tuple[dict[str, Any], ...] = ()
    meta_id: str | None = None

    @property
    def named(self) -> bool:
        return self.parameter_format == "NAMED"

    @property
    def approved(self) -> bool:
        return self.status == APPROVED


def template_from_meta(item: object) -> Template:
    """One entry of `GET /{waba_id}/message_templates`; ValueError when it lacks a name,
    language or status, or its components are not a list of objects."""
    if not isinstance(item, Mapping):
        raise ValueError(f"a template must be an object, not {describe_type(item)}")
    fields: dict[str, str] = {}
    for key in ("name", "language", "status"):
        value = item.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(f"a template needs a {key} (got {value!r})")
        fields[key] = value
    components = item.get("components") or []
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise ValueError(f"template {fields['name']!r} has malformed components")
    category, meta_id, fmt = item.get("category"), item.get("id"), item.get("parameter_format")
    if not (isinstance(fmt, str) and fmt.upper() in ("NAMED", "POSITIONAL")):
        # Meta leaves it out unless asked for: a placeholder that is not a number means named.
        texts = [c["text"] for c in components if isinstance(c.get("text"), str)]
        names = [n for text in texts for n in _PLACEHOLDER.findall(text)]
        fmt = "NAMED" if any(not n.isdigit() for n in names) else "POSITIONAL"
    return Template(
        name=fields["name"],
        language=fields["language"],
        status=fields["status"].upper(),
        category=category.upper() if isinstance(category, str) else "",
        parameter_format=fmt.upper(),
        components=tuple(components),
        meta_id=str(meta_id) if isinstance(meta_id, str | int) else None,
    )
