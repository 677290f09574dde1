"""Locations (SPEC §8 `POST /v1/messages/location`).

Error codes (HTTP 422): `missing_field` (latitude or longitude absent), `invalid_latitude`
(not a number from -90 to 90), `invalid_longitude` (not a number from -180 to 180),
`field_too_long` (name or address over 1000 characters), and those every kind shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wagate.domain.errors import FieldError, ValidationFailed
from wagate.domain.kinds.fields import (
    PLACE_TEXT_MAX,
    read_extras,
    read_number,
    read_optional_text,
)
from wagate.domain.models import MessageContent, MessageType, SendRequest


def parse_location(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    errors: list[FieldError] = []
    latitude = read_number(
        fields.get("latitude"), "latitude", -90, 90, form, errors, code="invalid_latitude"
    )
    longitude = read_number(
        fields.get("longitude"), "longitude", -180, 180, form, errors, code="invalid_longitude"
    )
    name = read_optional_text(
        fields.get("name"), "name", PLACE_TEXT_MAX, errors, too_long="field_too_long"
    )
    address = read_optional_text(
        fields.get("address"), "address", PLACE_TEXT_MAX, errors, too_long="field_too_long"
    )
    extras = read_extras(fields, form, errors)
    if errors:
        raise ValidationFailed(errors)
    assert latitude is not None and longitude is not None
    data: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        data["name"] = name
    if address is not None:
        data["address"] = address
    # What a message list shows for it: its name, else its address, else the coordinates.
    body = name or address or f"{latitude:g},{longitude:g}"
    return extras.request(MessageContent(type=MessageType.LOCATION, body=body, data=data))
