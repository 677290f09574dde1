"""Validate JSON against Meta's own OpenAPI 3.1 description of the WhatsApp Cloud API.

Tests use this to prove that what wagate sends to Meta (and what the sandbox answers and posts
back) has exactly the shape Meta documents:

    validate_message(body)          # a send body: POST /{version}/{phone_number_id}/messages
    validate_send_response(body)    # its 200 answer (MessageResponsePayload)
    validate_error_response(body)   # an error envelope (ErrorResponse)
    validate_webhook(body)          # a webhook POST body (WebhookPayload)
    validate_template_list(body)    # GET /{version}/{waba_id}/message_templates' 200 answer

Each raises `jsonschema.ValidationError` (the most relevant error, with its path) when the payload
does not match, and returns None when it does. Mark tests that need the description with
`@requires_meta_spec`; they are skipped with a reason when the file is absent.

The description is `business-messaging-api_v23.0.yaml`, found through the `WAGATE_META_SPEC`
environment variable or else at `<repo>/../shared/meta/`. It is loaded once and then repaired
in memory, because as published it cannot validate Meta's own examples (see `QUIRKS`, each of
which names the fix applied):

* Every message type is `allOf: [BaseMessageProperties, {additionalProperties: false, ...}]`,
  which rejects every message under plain JSON Schema (the second part does not know the
  first part's keys). The parts are merged into one object schema, so `additionalProperties:
  false` still rejects unknown keys, but only keys unknown to both parts.
* `discriminator` is an OpenAPI annotation that JSON Schema ignores; `Message.oneOf` then
  reports eleven failing branches for one typo. Each discriminator becomes an explicit
  dispatch on its property (`if type == "text" then TextMessage`), plus an `enum` of the
  known values, so errors name the branch that was meant.
* Meta's bundler renamed clashing schema names in the webhook section (`TextMessage_2`,
  `BaseMessageProperties_1`, `ErrorObject_2`, ...) without rewriting the `$ref`s, so inbound
  webhook messages point at the *send* schemas (requiring `to`, forbidding `from`). Refs
  inside the webhook section are pointed back at the section's own definitions.
* Fields Meta's examples and documentation treat as optional are made optional; a malformed
  `pattern` and a wrong `type` are corrected (details in `QUIRKS`).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_ENV = "WAGATE_META_SPEC"
SPEC_FILENAME = "business-messaging-api_v23.0.yaml"
SPEC_URI = "urn:wagate:meta:business-messaging-api"
SEND_PATH = "/{Version}/{Phone-Number-ID}/messages"

_REPO = Path(__file__).resolve().parents[2]
_SCHEMAS = "#/components/schemas/"

# What was repaired, and why. Kept as data so tests and docs can show it.
QUIRKS: dict[str, str] = {
    "allOf-merge": "Message types are allOf[BaseMessageProperties, {additionalProperties: false}]; "
    "the parts are merged so additionalProperties applies to the union of their properties.",
    "discriminator": "OpenAPI discriminators become explicit if/then dispatch on the property, "
    "with an enum of the mapped values (JSON Schema ignores `discriminator`).",
    "webhook-refs": "Webhook schemas renamed by Meta's bundler (TextMessage_2, "
    "BaseMessageProperties_1, ErrorObject_2, ...) are re-targeted by refs in the webhook section.",
    "recipient_type": "BaseMessageProperties.recipient_type is optional (Meta's examples omit it; "
    "the API defaults it to 'individual').",
    "language.policy": "LanguageObject.policy is optional (Meta's examples omit it).",
    "template-index": "TemplateComponent/ButtonComponent.index pattern '^[2-6, 11-14]$' is a "
    "malformed character class that rejects '0'; replaced by the documented 0-9.",
    "location-lat-long": "Send LocationMessage latitude/longitude are typed string while Meta's "
    "examples (and the webhook schema) use numbers; both are accepted.",
    "context.referred_product": "Webhook ContextObject.referred_product is optional: it is only "
    "present for product enquiries, not for ordinary replies that quote a message.",
    "list_reply.description": "Webhook list_reply.description is optional: rows may have none.",
    "type-default": "A send body's `type` may be left out and then means 'text', as Meta's "
    "documentation says and its 'Send Text Message with Preview URL' example does.",
    "change-value": "Change.value's oneOf of four shapes is dispatched on the array present "
    "(statuses, groups, messages with or without contacts) so errors name the right shape.",
    "send-response": "Tightened: MessageResponsePayload requires messaging_product and a "
    "non-empty messages[] with an id (as published, `{}` or an error envelope would pass).",
    "interactive-cta-location-request": "InteractiveObject.type lacks `cta_url` and "
    "`location_request_message`, which Meta's documentation (Interactive CTA URL button messages, "
    "Location request messages) describes: both are added, with their actions "
    '({"name": "cta_url", "parameters": {"display_text" <= 20, "url"}} and '
    '{"name": "send_location"}).',
    "list-body": "BodyObject.text is capped at 1024 for every interactive type, but Meta's "
    "documentation of list messages allows a 4096-character body: 4096 for lists, 1024 for the "
    "others.",
    "bsuid": "Business-scoped user ids: an inbound message may carry `from_user_id` instead of "
    "`from`, and a status `recipient_user_id` instead of `recipient_id`.",
}


# --------------------------------------------------------------------------- locating the file


def meta_spec_path() -> Path:
    """Where Meta's description is expected: $WAGATE_META_SPEC, else ../shared/meta/."""
    env = os.environ.get(SPEC_ENV)
    if env:
        return Path(env)
    return _REPO.parent / "shared" / "meta" / SPEC_FILENAME


def meta_spec_available() -> bool:
    return meta_spec_path().is_file()


def meta_examples_dir() -> Path:
    """Meta's documented example payloads (`examples/` beside the description)."""
    return meta_spec_path().parent / "examples"


def load_meta_example(name: str) -> Any:
    """One file from `meta_examples_dir()`, parsed."""
    return json.loads((meta_examples_dir() / name).read_text(encoding="utf-8"))


requires_meta_spec = pytest.mark.skipif(
    not meta_spec_available(),
    reason=f"Meta's API description (../shared/meta/{SPEC_FILENAME}) is not present",
)


# --------------------------------------------------------------------------- loading


@functools.cache
def raw_spec() -> dict[str, Any]:
    """Meta's description exactly as published (parsed once)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with meta_spec_path().open("rb") as fh:
        doc = yaml.load(fh, Loader=loader)  # a safe loader either way
    if not isinstance(doc, dict) or "components" not in doc:
        raise AssertionError(f"{meta_spec_path()} is not an OpenAPI document")
    return doc


@functools.cache
def patched_spec() -> dict[str, Any]:
    """The description with the known quirks repaired (see `QUIRKS`)."""
    doc = copy.deepcopy(raw_spec())
    schemas: dict[str, Any] = doc["components"]["schemas"]
    _retarget_webhook_refs(schemas)
    _relax(schemas)
    for name, schema in schemas.items():
        schemas[name] = _merge_closed_allofs(schema, schemas)
    before = copy.deepcopy(schemas)
    for name, schema in before.items():
        schemas[name] = _dispatch_discriminators(schema, before, name)
    return doc


@functools.cache
def _registry() -> Registry[Any]:
    resource = Resource(contents=patched_spec(), specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


@functools.cache
def validator_for(schema_name: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for `#/components/schemas/<schema_name>`."""
    if schema_name not in patched_spec()["components"]["schemas"]:
        raise KeyError(f"Meta's description has no schema {schema_name!r}")
    schema = {"$ref": f"{SPEC_URI}{_SCHEMAS}{schema_name}"}
    return Draft202012Validator(schema, registry=_registry())


# --------------------------------------------------------------------------- validating


def schema_errors(schema_name: str, payload: Any) -> list[ValidationError]:
    """Every way `payload` breaks the schema (empty when it is valid)."""
    return list(validator_for(schema_name).iter_errors(payload))


def validate(schema_name: str, payload: Any) -> None:
    """Raise the most relevant ValidationError if `payload` does not match the schema."""
    error = best_match(validator_for(schema_name).iter_errors(payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        error.message = f"{schema_name} at {where}: {error.message}"
        raise error


def validate_message(payload: Any) -> None:
    """A send body for POST /{version}/{phone_number_id}/messages (`Message`)."""
    validate("Message", payload)


# A read receipt (and typing indicator) is POSTed to the send path but is not a `Message`;
# Meta describes it only by its example ("Send typing indicator and read receipt").
READ_RECEIPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["messaging_product", "status", "message_id"],
    "properties": {
        "messaging_product": {"const": "whatsapp"},
        "status": {"const": "read"},
        "message_id": {"type": "string", "minLength": 1},
        "typing_indicator": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {"type": {"const": "text"}},
        },
    },
}


def validate_read_receipt(payload: Any) -> None:
    """A read receipt body, as Meta's example of one (and that example itself passes)."""
    example = send_examples()["Send typing indicator and read receipt"]
    Draft202012Validator(READ_RECEIPT_SCHEMA).validate(example)
    error = best_match(Draft202012Validator(READ_RECEIPT_SCHEMA).iter_errors(payload))
    if error is not None:
        raise error


def validate_send_response(payload: Any) -> None:
    """The 200 answer to a send (`MessageResponsePayload`)."""
    validate("MessageResponsePayload", payload)


def validate_error_response(payload: Any) -> None:
    """A Graph API error envelope (`ErrorResponse`)."""
    validate("ErrorResponse", payload)


def validate_webhook(payload: Any) -> None:
    """A webhook POST body (`WebhookPayload`)."""
    validate("WebhookPayload", payload)


def validate_template_list(payload: Any) -> None:
    """A page of `GET /{version}/{waba_id}/message_templates`: Meta describes it inline (no
    named schema), so that description is used as it is."""
    get = raw_spec()["paths"]["/{Version}/{WABA-ID}/message_templates"]["get"]
    schema = get["responses"]["200"]["content"]["application/json"]["schema"]
    error = best_match(Draft202012Validator(schema).iter_errors(payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        error.message = f"message_templates page at {where}: {error.message}"
        raise error


def send_examples() -> dict[str, Any]:
    """Meta's example send bodies, by their title, from the Send Message operation."""
    post = raw_spec()["paths"][SEND_PATH]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    return {name: copy.deepcopy(ex["value"]) for name, ex in examples.items()}


# --------------------------------------------------------------------------- repairs


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict inside `node`, depth first (node itself included)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _ref_name(ref: Any) -> str | None:
    if isinstance(ref, str) and ref.startswith(_SCHEMAS):
        return ref[len(_SCHEMAS) :]
    return None


def _retarget_webhook_refs(schemas: dict[str, Any]) -> None:
    """Point refs in the webhook section at that section's own (renamed) definitions.

    The webhook section starts at `WebhookPayload` and runs to the end of the schemas. Meta's
    bundler gave its clashing names a suffix (`TextMessage_2`) but left the refs alone, so
    `IncomingMessage` refers to the send `TextMessage`. Within the section, a ref to `X` where
    the section defines `X_<n>` is rewritten to `X_<n>`.
    """
    names = list(schemas)
    section = names[names.index("WebhookPayload") :]
    renamed: dict[str, str] = {}
    for name in section:
        m = re.fullmatch(r"(.+)_(\d+)", name)
        if m and m.group(1) in schemas:
            renamed[m.group(1)] = name
    for name in section:
        for node in _walk(schemas[name]):
            target = _ref_name(node.get("$ref"))
            if target in renamed:
                node["$ref"] = _SCHEMAS + renamed[target]
            mapping = node.get("discriminator", {}).get("mapping", {})
            for value, ref in mapping.items():
                target = _ref_name(ref)
                if target in renamed:
                    mapping[value] = _SCHEMAS + renamed[target]


def _drop_required(schema: dict[str, Any], key: str) -> None:
    required = schema.get("required")
    if not isinstance(required, list) or key not in required:
        raise AssertionError(f"expected {key!r} to be required in {schema!r}: Meta fixed it?")
    required.remove(key)


def _either_required(schema: dict[str, Any], key: str, alternative: str) -> None:
    _drop_required(schema, key)
    schema.setdefault("properties", {}).setdefault(alternative, {"type": "string"})
    schema["anyOf"] = [{"required": [key]}, {"required": [alternative]}]


def _relax(schemas: dict[str, Any]) -> None:
    _drop_required(schemas["BaseMessageProperties"], "recipient_type")
    _drop_required(schemas["BaseMessageProperties"], "type")  # see _DISCRIMINATOR_DEFAULTS
    _drop_required(schemas["LanguageObject"], "policy")
    _drop_required(schemas["ContextObject"], "referred_product")
    _drop_required(
        schemas["InteractiveListReplyContent"]["properties"]["list_reply"], "description"
    )
    _either_required(schemas["BaseMessageProperties_1"], "from", "from_user_id")
    _either_required(schemas["Statuses"], "recipient_id", "recipient_user_id")

    for name in ("TemplateComponent", "ButtonComponent"):
        index = _properties(schemas[name])["index"]
        index["pattern"] = "^[0-9]$"

    schemas["BodyObject"]["properties"]["text"]["maxLength"] = 4096
    schemas["InteractiveObject"].setdefault("allOf", []).append(
        {
            "if": {"properties": {"type": {"not": {"const": "list"}}}},
            "then": {"properties": {"body": {"properties": {"text": {"maxLength": 1024}}}}},
        }
    )
    interactive = schemas["InteractiveObject"]["properties"]["type"]
    interactive["enum"] = [*interactive["enum"], "cta_url", "location_request_message"]
    schemas["ActionObject"]["oneOf"] += [
        {
            "required": ["name", "parameters"],
            "properties": {
                "name": {"type": "string", "enum": ["cta_url"]},
                "parameters": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["display_text", "url"],
                    "properties": {
                        "display_text": {"type": "string", "minLength": 1, "maxLength": 20},
                        "url": {"type": "string", "pattern": "^https?://"},
                    },
                },
            },
        },
        {
            "required": ["name"],
            "properties": {"name": {"type": "string", "enum": ["send_location"]}},
            "not": {"required": ["parameters"]},
        },
    ]

    location = _properties(schemas["LocationMessage"])["location"]["properties"]
    for key in ("latitude", "longitude"):
        location[key]["type"] = ["number", "string"]

    # Tightened, not relaxed: as published, every property of a send response is optional, so
    # `{}` (or an error envelope) would pass. Meta always answers a send with the message id.
    response = schemas["MessageResponsePayload"]
    response["required"] = ["messaging_product", "messages"]
    response["properties"]["messages"].update(minItems=1)
    response["properties"]["messages"]["items"]["required"] = ["id"]

    # Change.value is a oneOf of four shapes told apart by which array they carry; as a plain
    # oneOf a typo in one message is reported as "not valid under any", or worse against the
    # wrong shape. Dispatch on the array present instead.
    value = schemas["Change"]["properties"]["value"]
    refs = {_ref_name(p["$ref"]) for p in value.pop("oneOf")}
    dispatch = {
        "StatusMessageValue": {"required": ["statuses"]},
        "GroupValue": {"required": ["groups"]},
        "IncomingMessageValueSystem": {"required": ["messages"], "not": {"required": ["contacts"]}},
        "IncomingMessageValueGeneral": {"required": ["messages", "contacts"]},
    }
    if refs != set(dispatch):
        raise AssertionError(f"Change.value is now a oneOf of {sorted(map(str, refs))}")
    value["anyOf"] = [{"required": [key]} for key in ("statuses", "groups", "messages")]
    value["allOf"] = [
        {"if": cond, "then": {"$ref": _SCHEMAS + name}} for name, cond in dispatch.items()
    ]


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    """The `properties` of a schema, or of the inline part of its allOf."""
    if "properties" in schema:
        props: dict[str, Any] = schema["properties"]
        return props
    for part in schema.get("allOf", []):
        if "properties" in part:
            found: dict[str, Any] = part["properties"]
            return found
    raise AssertionError(f"no properties in {schema!r}")


def _flatten_allof(schema: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of an allOf, with `$ref` parts (and their own allOfs) inlined."""
    parts: list[dict[str, Any]] = []
    for part in schema["allOf"]:
        target = _ref_name(part.get("$ref"))
        if target is not None:
            part = copy.deepcopy(schemas[target])
        if "allOf" in part:
            rest = {k: v for k, v in part.items() if k != "allOf"}
            parts.extend(_flatten_allof({"allOf": part["allOf"]}, schemas))
            if rest:
                parts.append(rest)
        else:
            parts.append(part)
    return parts


def _merge_closed_allofs(node: Any, schemas: dict[str, Any]) -> Any:
    """Merge every allOf that has a part with `additionalProperties: false` into one schema."""
    if isinstance(node, list):
        return [_merge_closed_allofs(v, schemas) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _merge_closed_allofs(v, schemas) for k, v in node.items()}
    parts = node.get("allOf")
    if not (
        isinstance(parts, list)
        and any(isinstance(p, dict) and p.get("additionalProperties") is False for p in parts)
    ):
        return node
    merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in _flatten_allof(node, schemas):
        for key, value in part.items():
            if key == "properties":
                for prop, sub in value.items():
                    if prop in properties and properties[prop] != sub:
                        properties[prop] = {"allOf": [properties[prop], sub]}
                    else:
                        properties[prop] = sub
            elif key == "required":
                required.extend(r for r in value if r not in required)
            elif key == "additionalProperties":
                if value is False or "additionalProperties" not in merged:
                    merged["additionalProperties"] = value
            elif key in ("description", "example", "type"):
                merged.setdefault(key, value)
            elif key in merged and merged[key] != value:
                merged.setdefault("allOf", []).append({key: value})
            else:
                merged[key] = value
    merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


# A discriminator whose property may be left out, and the value it then defaults to: Meta
# documents the send body's `type` as optional, defaulting to "text".
_DISCRIMINATOR_DEFAULTS = {"Message": "text"}


def _dispatch_discriminators(node: Any, schemas: dict[str, Any], own_name: str) -> Any:
    """Turn each OpenAPI `discriminator` into if/then dispatch on its property."""
    if isinstance(node, list):
        return [_dispatch_discriminators(v, schemas, own_name) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _dispatch_discriminators(v, schemas, own_name) for k, v in node.items()}
    disc = node.get("discriminator")
    if not isinstance(disc, dict) or not isinstance(disc.get("mapping"), dict):
        return node
    prop: str = disc["propertyName"]
    mapping: dict[str, str] = disc["mapping"]
    own_ref = _SCHEMAS + own_name
    rules: list[dict[str, Any]] = [{"properties": {prop: {"enum": list(mapping)}}}]
    default = _DISCRIMINATOR_DEFAULTS.get(own_name) if "oneOf" in node else None
    if default is None:
        rules[0]["required"] = [prop]
    else:
        absent = {"not": {"required": [prop]}}
        rules.append({"if": absent, "then": {"$ref": mapping[default]}})
    for value, ref in mapping.items():
        then: dict[str, Any] = {"$ref": ref}
        target = schemas.get(_ref_name(ref) or "")
        if isinstance(target, dict) and isinstance(target.get("allOf"), list):
            # Inheritance style (the target is allOf[this schema, ...]): keep only its own
            # part, or the dispatch would recurse into itself forever.
            own_parts = [p for p in target["allOf"] if p.get("$ref") != own_ref]
            if len(own_parts) != len(target["allOf"]):
                then = {"allOf": own_parts}
        rules.append(
            {"if": {"properties": {prop: {"const": value}}, "required": [prop]}, "then": then}
        )
    one_of = node.get("oneOf")
    if isinstance(one_of, list) and {p.get("$ref") for p in one_of} == set(mapping.values()):
        del node["oneOf"]  # the dispatch replaces "exactly one of" the mapped schemas
    node["allOf"] = [*node.get("allOf", []), *rules]
    return node
