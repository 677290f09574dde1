"""The bodies of the SPEC §8 endpoints, for /openapi.json (the domain parses them; see
`wagate.domain.kinds` for every rule and error code). `KIND_BODIES` lists the models app.py
adds to the components; a new kind appends its model here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class _Extras(BaseModel):
    token: str | None = Field(None, description="Or send `Authorization: Bearer <token>`")
    phone: str = Field(examples=["+14155552671"], description="`+`, country code and digits")
    reply_to: str | None = Field(None, description="A message id (msg_…) or wamid to quote")
    metadata: dict[str, Any] | None = Field(None, description="Echoed in callbacks")
    channel: str | None = Field(None, description="Channel id or phone number id")
    idempotency_key: str | None = Field(None, description="Or the Idempotency-Key header")


class ListRowIn(BaseModel):
    id: str = Field(min_length=1, max_length=200, description="Sent back when the row is picked")
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(None, max_length=72)


class ListSectionIn(BaseModel):
    title: str | None = Field(
        None, max_length=24, description="Required when there are several sections"
    )
    rows: list[ListRowIn] = Field(min_length=1, max_length=10)


class SendListBody(_Extras):
    message: str = Field(max_length=4096, description="The list message's body")
    header: str | None = Field(None, max_length=60)
    footer: str | None = Field(None, max_length=60)
    button: str = Field(max_length=20, description="The text of the button that opens the list")
    sections: list[ListSectionIn] = Field(
        min_length=1,
        max_length=10,
        description="At most 10 rows in all; row ids unique. In a form body, a JSON string.",
    )


class SendCtaBody(_Extras):
    message: str = Field(max_length=1024)
    header: str | None = Field(None, max_length=60)
    footer: str | None = Field(None, max_length=60)
    button: str = Field(max_length=20, description="The link button's text")
    url: str = Field(examples=["https://example.com/orders/4521"], description="https only")


class SendLocationBody(_Extras):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(None, max_length=1000)
    address: str | None = Field(None, max_length=1000)


class SendLocationRequestBody(_Extras):
    message: str = Field(max_length=1024, description="Asks the customer to share a location")


class ContactName(BaseModel):
    formatted_name: str = Field(min_length=1)
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    prefix: str | None = None
    suffix: str | None = None


class ContactPhone(BaseModel):
    phone: str
    type: Literal["HOME", "WORK"] | None = None
    wa_id: str | None = None


class ContactEmail(BaseModel):
    email: str
    type: Literal["HOME", "WORK"] | None = None


class ContactUrl(BaseModel):
    url: str
    type: Literal["HOME", "WORK"] | None = None


class ContactAddress(BaseModel):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: Literal["HOME", "WORK"] | None = None


class ContactOrg(BaseModel):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactCard(BaseModel):
    name: ContactName
    phones: list[ContactPhone] | None = None
    emails: list[ContactEmail] | None = None
    urls: list[ContactUrl] | None = None
    addresses: list[ContactAddress] | None = None
    org: ContactOrg | None = None
    birthday: str | None = Field(None, description="YYYY-MM-DD", examples=["1990-08-18"])


class SendContactsBody(_Extras):
    contacts: list[ContactCard] = Field(
        min_length=1, max_length=5, description="Meta's contact cards; in a form, a JSON string"
    )


class SendReactionBody(_Extras):
    message_id: str = Field(
        description="One of your messages (msg_…) or the wamid of a message the customer sent"
    )
    emoji: str = Field(description='One emoji; "" removes the reaction', examples=["👍"])


class MarkReadBody(BaseModel):
    token: str | None = Field(None, description="Or send `Authorization: Bearer <token>`")
    typing: bool = Field(False, description="Also show a typing indicator (up to 25 s)")
    metadata: dict[str, Any] | None = Field(None, description="Echoed in callbacks")
    channel: str | None = Field(None, description="Channel id or phone number id")
    idempotency_key: str | None = Field(None, description="Or the Idempotency-Key header")


class SendMediaBody(_Extras):
    media_type: Literal["image", "video", "audio", "document", "sticker"]
    media_id: str | None = Field(
        None, description="A file uploaded with POST /v1/media (med_…); or give media_url"
    )
    media_url: str | None = Field(
        None, max_length=2000, description="An https:// link wagate fetches when it sends"
    )
    caption: str | None = Field(None, max_length=1024, description="Image, video and document only")
    filename: str | None = Field(None, max_length=240, description="Document only")


KIND_BODIES: list[type[BaseModel]] = [
    SendMediaBody,
    SendListBody,
    SendCtaBody,
    SendLocationBody,
    SendLocationRequestBody,
    SendContactsBody,
    SendReactionBody,
    MarkReadBody,
]
