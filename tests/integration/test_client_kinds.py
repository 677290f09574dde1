"""The Python client's SPEC §8 methods against the real API and sandbox: each sends its kind,
retries without sending twice, and raises the typed errors."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.test_client import LosesFirstAnswer, _client
from tests.support.harness import Harness
from wagate.client import OutsideServiceWindow, ValidationError

CUSTOMER = "+14155552671"


async def test_every_kind_from_the_async_client(gateway: Harness) -> None:
    inbound = await gateway.reply(CUSTOMER, text="hi")
    async with _client(gateway) as wa:
        sent = [
            await wa.send_list(
                CUSTOMER,
                "Pick a size",
                button="Sizes",
                sections=[{"rows": [{"id": "s", "title": "Small"}]}],
                header="Menu",
            ),
            await wa.send_cta(CUSTOMER, "Track it", button="Track", url="https://example.com/t"),
            await wa.send_location(CUSTOMER, 12.97, 77.59, name="Shop"),
            await wa.request_location(CUSTOMER, "Where to?"),
            await wa.send_contacts(CUSTOMER, [{"name": {"formatted_name": "Asha Rao"}}]),
            await wa.react(CUSTOMER, inbound["wamid"], "👍"),
            await wa.mark_read(CUSTOMER, typing=True),
        ]
        assert [s.type for s in sent] == [
            "list",
            "cta",
            "location",
            "location_request",
            "contacts",
            "reaction",
            "read",
        ]
        for accepted in sent[:-1]:
            await gateway.wait_status(accepted.id, "read")
        await gateway.wait_status(sent[-1].id, "accepted")
        with pytest.raises(ValidationError) as caught:
            await wa.send_cta(CUSTOMER, "x", button="Track", url="http://plain.example")
        assert caught.value.code == "invalid_url"
        with pytest.raises(OutsideServiceWindow):
            await wa.send_location("+919876543210", 1, 2)


async def test_a_lost_answer_is_retried_without_sending_twice(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    transport = LosesFirstAnswer(httpx.ASGITransport(app=gateway.app))
    async with _client(gateway, transport) as wa:
        first = await wa.send_list(
            CUSTOMER, "Pick", button="Open", sections=[{"rows": [{"id": "a", "title": "A"}]}]
        )
    assert transport.requests == 2
    assert first.replayed is True
    await gateway.wait_status(first.id, "read")
    assert sum(1 for p in gateway.sent_to_meta if p.get("type") == "interactive") == 1
