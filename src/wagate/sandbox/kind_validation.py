"""The sandbox's checks of the SPEC §8 kinds' send bodies, as the Cloud API makes them
(code 100 for a missing, misplaced or mistyped parameter; 131009 for a value outside
WhatsApp's limits): location, contacts, reaction, and the interactive `cta_url` and
`location_request_message`. Each returns `(text shown on the sandbox phone, extra)` where
`extra` is what the sandbox records beside it (`OutboundContent.extra`)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import emoji as emoji_data

from wagate.sandbox.graph import (
    invalid_parameter,
    invalid_value,
    not_one_of,
    required,
    unexpected_key,
    wrong_type,
)
from wagate.sandbox.media import check_media_message

BODY_MAX = 1024
BUTTON_TEXT_MAX = 20
FOOTER_MAX = 60
HEADER_MAX = 60
MAX_CONTACTS = 5
CONTACT_TYPES = ("HOME", "WORK")
_CARD = {
    "name": ("formatted_name", "first_name", "last_name", "middle_name", "prefix", "suffix"),
    "org": ("company", "department", "title"),
}
_CARD_LISTS = {
    "phones": ("phone", "type", "wa_id"),
    "emails": ("email", "type"),
    "urls": ("url", "type"),
    "addresses": ("street", "city", "state", "zip", "country", "country_code", "type"),
}

Checked = tuple[str | None, dict[str, Any]]


def _obj(parent: dict[str, Any], key: str, param: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        raise required(param)
    if not isinstance(value, dict):
        raise wrong_type(param, "an object")
    return value


def _keys(obj: dict[str, Any], allowed: tuple[str, ...], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise unexpected_key(key, param)


def _text(obj: dict[str, Any], key: str, param: str, maximum: int | None = None) -> str:
    value = obj.get(key)
    if value is None or value == "":
        raise required(param)
    if not isinstance(value, str):
        raise wrong_type(param, "a string")
    if maximum is not None and len(value) > maximum:
        raise invalid_value(f"{param} length invalid. Min length: 1, Max length: {maximum}")
    return value


def _number(obj: dict[str, Any], key: str, param: str, limit: float) -> float:
    value = obj.get(key)
    if value is None:
        raise required(param)
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise wrong_type(param, "a number")
    if not -limit <= number <= limit:
        raise invalid_value(f"{param} must be between -{limit:g} and {limit:g}")
    return number


def check_location(body: dict[str, Any]) -> Checked:
    location = _obj(body, "location", "location")
    _keys(location, ("latitude", "longitude", "name", "address"), "location")
    lat = _number(location, "latitude", "location['latitude']", 90)
    lon = _number(location, "longitude", "location['longitude']", 180)
    shown: dict[str, Any] = {"latitude": lat, "longitude": lon}
    for key in ("name", "address"):
        if key in location:
            value = location[key]
            if not isinstance(value, str):
                raise wrong_type(f"location['{key}']", "a string")
            shown[key] = value
    text = shown.get("name") or shown.get("address") or f"{lat:g},{lon:g}"
    return text, {"location": shown}


def check_contacts(body: dict[str, Any]) -> Checked:
    cards = body.get("contacts")
    if cards is None:
        raise required("contacts")
    if not isinstance(cards, list):
        raise wrong_type("contacts", "an array")
    if not 1 <= len(cards) <= MAX_CONTACTS:
        raise invalid_value(
            f"Invalid contacts count. Min allowed contacts: 1, Max allowed: {MAX_CONTACTS}"
        )
    for i, card in enumerate(cards):
        param = f"contacts[{i}]"
        if not isinstance(card, dict):
            raise wrong_type(param, "an object")
        _keys(card, ("birthday", *_CARD, *_CARD_LISTS), param)
        name = _obj(card, "name", f"{param}['name']")
        _text(name, "formatted_name", f"{param}['name']['formatted_name']")
        for key, allowed in _CARD.items():
            if key in card:
                obj = _obj(card, key, f"{param}['{key}']")
                _keys(obj, allowed, f"{param}['{key}']")
                for sub, value in obj.items():
                    if not isinstance(value, str):
                        raise wrong_type(f"{param}['{key}']['{sub}']", "a string")
        for key, allowed in _CARD_LISTS.items():
            items = card.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                raise wrong_type(f"{param}['{key}']", "an array")
            for j, item in enumerate(items):
                where = f"{param}['{key}'][{j}]"
                if not isinstance(item, dict):
                    raise wrong_type(where, "an object")
                _keys(item, allowed, where)
                if allowed[0] != "street":
                    _text(item, allowed[0], f"{where}['{allowed[0]}']")
                if "type" in item and item["type"] not in CONTACT_TYPES:
                    raise not_one_of(f"{where}['type']", CONTACT_TYPES, item["type"])
        if "birthday" in card:
            birthday = card["birthday"]
            try:
                ok = isinstance(birthday, str) and len(birthday) == 10
                ok = ok and bool(date.fromisoformat(birthday))
            except ValueError:
                ok = False
            if not ok:
                raise invalid_parameter(
                    f"Invalid value for {param}['birthday']: use YYYY-MM-DD, e.g. 1990-08-18."
                )
    names = ", ".join(c["name"]["formatted_name"] for c in cards)
    return names, {"contacts": cards}


def check_reaction(body: dict[str, Any]) -> Checked:
    reaction = _obj(body, "reaction", "reaction")
    _keys(reaction, ("message_id", "emoji"), "reaction")
    message_id = _text(reaction, "message_id", "reaction['message_id']")
    value = reaction.get("emoji")
    if value is None:
        raise required("reaction['emoji']")
    if not isinstance(value, str):
        raise wrong_type("reaction['emoji']", "a string")
    if value and not emoji_data.is_emoji(value):
        raise invalid_value("reaction['emoji'] must be a single emoji, or empty to remove it")
    return value, {"reaction": {"message_id": message_id, "emoji": value}}


def _body_text(inter: dict[str, Any]) -> str:
    body_obj = _obj(inter, "body", "interactive['body']")
    _keys(body_obj, ("text",), "interactive['body']")
    return _text(body_obj, "text", "interactive['body']['text']", BODY_MAX)


def check_cta_url(inter: dict[str, Any]) -> dict[str, Any]:
    """An interactive `cta_url`: its button text and https URL (header/body/footer are
    checked by the caller as for other interactive messages)."""
    action = _obj(inter, "action", "interactive['action']")
    _keys(action, ("name", "parameters"), "interactive['action']")
    name = action.get("name")
    if name != "cta_url":
        raise not_one_of("interactive['action']['name']", ("cta_url",), name)
    params = _obj(action, "parameters", "interactive['action']['parameters']")
    _keys(params, ("display_text", "url"), "interactive['action']['parameters']")
    label = _text(
        params,
        "display_text",
        "interactive['action']['parameters']['display_text']",
        BUTTON_TEXT_MAX,
    )
    url = _text(params, "url", "interactive['action']['parameters']['url']")
    if not url.lower().startswith(("https://", "http://")):
        raise invalid_value("interactive['action']['parameters']['url'] must be an http(s) URL")
    return {"interactive_type": "cta_url", "cta": {"display_text": label, "url": url}}


def check_location_request(inter: dict[str, Any]) -> Checked:
    """An interactive `location_request_message`: a body and the send_location action only."""
    _keys(inter, ("type", "body", "action"), "interactive")
    text = _body_text(inter)
    action = _obj(inter, "action", "interactive['action']")
    _keys(action, ("name",), "interactive['action']")
    if action.get("name") != "send_location":
        raise not_one_of("interactive['action']['name']", ("send_location",), action.get("name"))
    return text, {"interactive_type": "location_request_message"}


def check_read_receipt(body: dict[str, Any]) -> None:
    """A read receipt's keys, and its typing indicator (`{"type": "text"}`, the only type)."""
    _keys(body, ("messaging_product", "status", "message_id", "typing_indicator"), "body")
    if "typing_indicator" in body:
        indicator = _obj(body, "typing_indicator", "typing_indicator")
        _keys(indicator, ("type",), "typing_indicator")
        if indicator.get("type") != "text":
            raise not_one_of("typing_indicator['type']", ("text",), indicator.get("type"))


KIND_CHECKS = {
    **dict.fromkeys(("image", "video", "audio", "document", "sticker"), check_media_message),
    "location": check_location,
    "contacts": check_contacts,
    "reaction": check_reaction,
}
