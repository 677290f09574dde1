"""The sandbox's behaviour: what a send, a customer's reply or a look at the state does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from wagate.sandbox import events, graph
from wagate.sandbox.config import SandboxConfig
from wagate.sandbox.customer_kinds import CUSTOMER_KINDS, WITHOUT_CONTACTS, CustomerKindError
from wagate.sandbox.faults import Faults, FaultSpecError, InjectedDrop, InjectedHttpError
from wagate.sandbox.kind_validation import check_read_receipt
from wagate.sandbox.media import SandboxMedia
from wagate.sandbox.state import Outbound, SandboxState
from wagate.sandbox.validation import validate_send
from wagate.sandbox.webhooks import WebhookDispatcher

DEFAULT_PROFILE_NAME = "Sandbox Customer"


class SandboxRequestError(Exception):
    """A bad request to one of the sandbox's own endpoints (not the Graph API)."""

    def __init__(self, code: str, message: str, *, field: str | None = None, status: int = 422):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"success": False, "error": error}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wa_id_of(phone: object, field: str = "phone") -> str:
    if not isinstance(phone, str) or not graph.PHONE_RE.match(phone):
        raise SandboxRequestError(
            "invalid_phone_format",
            f"{field} must be a phone number in international format, e.g. +16505551234.",
            field=field,
        )
    return phone.lstrip("+")


class Sandbox:
    """One simulated business number: its Graph API, its customers and its webhooks.

    Created by `create_sandbox_app` and kept at `app.state.sandbox`. A parent app that mounts
    the sandbox app (sub-apps get no lifespan events) should `await sandbox.start()` at startup,
    to resume pending webhooks at once rather than at the first request, and must
    `await sandbox.aclose()` at shutdown.
    """

    def __init__(
        self, config: SandboxConfig, *, webhook_client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = config
        self.state = SandboxState(config.state_path)
        self.webhooks = WebhookDispatcher(config, self.state, webhook_client)
        self.media = SandboxMedia(
            config.state_path.parent / "sandbox-media" if config.state_path else None,
            secret=config.app_secret,
        )
        self.faults = Faults(
            config.throughput_limit,
            config.pair_rate_limit,
            config.pair_rate_burst,
            throughput_tolerance=config.throughput_tolerance,
            seed=config.fault_seed,
        )
        for i, fault in enumerate(config.faults):
            try:
                self.faults.add(fault)
            except FaultSpecError as exc:
                raise ValueError(f"SandboxConfig.faults[{i}]: {exc.message}") from None
        self.send_requests = 0
        """`POST /{phone_number_id}/messages` requests received since start."""
        self.held = 0
        """Requests being held by a timeout or latency fault right now."""
        self.closed = False
        self._closing = asyncio.Event()

    async def start(self) -> None:
        self.ensure_started()

    def ensure_started(self) -> None:
        if not self.closed:
            self.webhooks.start()

    async def aclose(self) -> None:
        """Stop the webhook pump and close the state store (pending webhooks stay stored)."""
        if self.closed:
            return
        self.closed = True
        self._closing.set()  # held requests end now
        await self.webhooks.aclose()
        self.state.close()
        self.media.close()

    # --- Graph API --------------------------------------------------------------------------

    def check_graph(self, version: str, path: str, token: str | None) -> None:
        if not graph.VERSION_RE.match(version):
            raise graph.unknown_path(f"/{version}{path}")
        expected = self.config.access_token.encode()
        if token is None or not hmac.compare_digest(token.encode(), expected):
            raise graph.invalid_token()

    async def send(
        self,
        raw: bytes,
        phone_number_id: str | None = None,
        *,
        client_gone: Callable[[], Awaitable[object]] | None = None,
    ) -> dict[str, Any]:
        """`POST /{phone_number_id}/messages` after the path and token checks.

        Raises `GraphError` for Meta's error answers, and `InjectedHttpError` or `InjectedDrop`
        for injected faults that are not Meta's. `client_gone`, when given, returns once the
        client has hung up; a request held by a timeout fault is let go then.
        """
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise graph.invalid_parameter("The request body is not valid JSON.") from None
        if isinstance(body, dict) and body.get("status") == "read" and "message_id" in body:
            return self._mark_read(body)
        content = validate_send(body)
        assert isinstance(body, dict)
        self.media.check_send(body)
        draw = self.faults.draw(content.wa_id, phone_number_id or self.config.phone_number_id)
        if draw.delay > 0:
            await self.hold(draw.delay)
            if self.closed:
                raise graph.service_unavailable()
        fault = draw.fault
        if fault is not None:
            if fault.kind == "timeout":
                await self.hold(fault.seconds or 0.0, client_gone)
                raise InjectedDrop()
            if fault.kind == "drop":
                raise InjectedDrop()
            if fault.http_status is not None:
                raise InjectedHttpError(fault.http_status, fault.retry_after)
            if fault.mode == "response":
                raise fault.graph_error()
        self.faults.check_limits(content.wa_id)

        cfg = self.config
        now = time.time()
        template = content.type == "template"
        window_start = self.state.last_inbound_at(cfg.phone_number_id, content.wa_id)
        in_window = window_start is not None and now < window_start + events.DAY
        first, error, billing = "sent", None, None
        if fault is not None:
            first, error = "failed", fault.status_error()
        elif not template and not in_window:
            first, error = "failed", events.reengagement_error()
        else:
            billing = events.billing(
                cfg.phone_number_id,
                content.wa_id,
                template=template,
                window_start=window_start,
                now=now,
            )
        key = json.dumps({**body, "to": content.wa_id}, sort_keys=True, separators=(",", ":"))
        wamid = events.new_wamid(content.wa_id)
        due = now + cfg.status_delay
        self.state.record_outbound(
            Outbound(
                wamid=wamid,
                phone_number_id=cfg.phone_number_id,
                wa_id=content.wa_id,
                type=content.type,
                content={**content.as_dict(), "to": content.to},
                payload_key=hashlib.sha256(key.encode()).hexdigest()[:32],
                created_at=now,
                first_status=first,
                first_due=due,
                error=error,
                billing=billing,
            )
        )
        self.webhooks.notify(due)
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": content.to, "wa_id": content.wa_id}],
            "messages": [{"id": wamid}],
        }

    async def hold(
        self, seconds: float, client_gone: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        """Wait `seconds`, or less if the sandbox closes or `client_gone` returns first.

        Nothing is left running: the helper tasks are cancelled and awaited before returning,
        also when the caller is cancelled (an ASGI server or transport giving up on it).
        """
        self.held += 1
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(self._closing.wait())]
        if client_gone is not None:
            waiters.append(asyncio.ensure_future(client_gone()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.held -= 1
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _mark_read(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("messaging_product") != "whatsapp":
            raise graph.required("messaging_product")
        check_read_receipt(body)
        wamid = body.get("message_id")
        if not isinstance(wamid, str) or not self.state.mark_read(
            self.config.phone_number_id, wamid
        ):
            raise graph.invalid_parameter(
                f"Invalid message_id: {wamid!r} is not a received message."
            )
        return {"success": True}

    def phone_number(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "verified_name": cfg.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": "+" + cfg.display_phone_number.lstrip("+"),
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": cfg.phone_number_id,
        }

    # --- the customer -----------------------------------------------------------------------

    async def reply(self, body: object) -> dict[str, Any]:
        """The customer sends the business a message: record it, then POST Meta's webhook."""
        if not isinstance(body, dict):
            raise SandboxRequestError("invalid_body", "Send a JSON object.", status=400)
        cfg = self.config
        wa_id = wa_id_of(body.get("phone"))
        name = body.get("name") or DEFAULT_PROFILE_NAME
        if not isinstance(name, str):
            raise SandboxRequestError("invalid_field", "name must be a string.", field="name")
        now = time.time()
        sent_at = self._timestamp(body.get("timestamp"), now)
        kinds = ("text", "button_id", "payload", *CUSTOMER_KINDS)
        given = [k for k in kinds if body.get(k) is not None]
        if len(given) != 1:
            raise SandboxRequestError(
                "missing_field",
                "Give exactly one of text (a message), button_id (a tap on a reply button or a "
                "list row of the last interactive message), payload (a tap on a template's "
                f"quick-reply button) or one of {', '.join(CUSTOMER_KINDS)}.",
                field="text",
            )
        if given[0] in CUSTOMER_KINDS:
            return await self._customer_kind(wa_id, name, sent_at, now, given[0], body)
        for key in (*given, "button_title", "button_text", "context"):
            if body.get(key) is not None and not (isinstance(body[key], str) and body[key]):
                raise SandboxRequestError(
                    "invalid_field", f"{key} must be a non-empty string.", field=key
                )
        context: str | None = body.get("context")
        wamid = events.new_wamid(wa_id)
        message: dict[str, Any] = {}
        if given == ["text"]:
            record: dict[str, Any] = {"type": "text", "text": body["text"]}
            fields: dict[str, Any] = {"type": "text", "text": {"body": body["text"]}}
        elif given == ["button_id"]:
            context, record, fields = self._button_reply(wa_id, body, context)
        else:
            found = self.state.last_outbound(cfg.phone_number_id, wa_id, "template", context)
            context = found[0] if found is not None else context
            text = body.get("button_text") or body["payload"]
            record = {"type": "button", "text": text, "payload": body["payload"]}
            fields = {"type": "button", "button": {"payload": body["payload"], "text": text}}
        if context is not None:
            message["context"] = {"from": cfg.display_phone_number, "id": context}
            record["context"] = context
        message.update({"from": wa_id, "id": wamid, "timestamp": str(sent_at), **fields})
        record.update(name=name, timestamp=sent_at)
        self.ensure_started()
        self.state.record_inbound(
            wamid=wamid,
            phone_number_id=cfg.phone_number_id,
            wa_id=wa_id,
            type=record["type"],
            content=record,
            sent_at=sent_at,
            received_at=now,
        )
        value = events.inbound_value(cfg, wa_id, name, message)
        delivered, status_code = await self.webhooks.deliver_now(
            events.dumps(events.envelope(cfg, value))
        )
        return {"wamid": wamid, "delivered": delivered, "status_code": status_code}

    async def _customer_kind(
        self, wa_id: str, name: str, sent_at: int, now: float, key: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """A location, reaction, contacts, order, system or unsupported message
        (sandbox/customer_kinds.py), recorded and posted as Meta's webhook."""
        cfg = self.config
        last = self.state.last_outbound(cfg.phone_number_id, wa_id, None)
        try:
            record, fields = CUSTOMER_KINDS[key](body[key], last[0] if last else None)
        except CustomerKindError as exc:
            raise SandboxRequestError("invalid_field", exc.message, field=exc.field) from None
        context = body.get("context")
        wamid = events.new_wamid(wa_id)
        message: dict[str, Any] = {}
        if isinstance(context, str) and context and key != "reaction":
            message["context"] = {"from": cfg.display_phone_number, "id": context}
            record["context"] = context
        message.update({"from": wa_id, "id": wamid, "timestamp": str(sent_at), **fields})
        record.update(name=name, timestamp=sent_at)
        self.ensure_started()
        self.state.record_inbound(
            wamid=wamid,
            phone_number_id=cfg.phone_number_id,
            wa_id=wa_id,
            type=record["type"],
            content=record,
            sent_at=sent_at,
            received_at=now,
        )
        value = events.inbound_value(cfg, wa_id, name, message)
        if key in WITHOUT_CONTACTS:
            del value["contacts"]
        delivered, status_code = await self.webhooks.deliver_now(
            events.dumps(events.envelope(cfg, value))
        )
        return {"wamid": wamid, "delivered": delivered, "status_code": status_code}

    @staticmethod
    def _timestamp(value: object, now: float) -> int:
        if value is None:
            return int(now)
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return int(value)
        raise SandboxRequestError(
            "invalid_field", "timestamp must be epoch seconds.", field="timestamp"
        )

    def _button_reply(
        self, wa_id: str, body: dict[str, Any], context: str | None
    ) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
        button_id: str = body["button_id"]
        title: str | None = body.get("button_title")
        kind = "button_reply"
        found = self.state.last_outbound(self.config.phone_number_id, wa_id, "interactive", context)
        if found is not None:
            context, content = found
            if content.get("interactive_type") == "list":
                kind = "list_reply"
            match = [b for b in content.get("buttons") or () if b.get("id") == button_id]
            if match:
                title = title or match[0]["title"]
        if title is None:
            where = "the last interactive message" if found else "no interactive message was"
            raise SandboxRequestError(
                "no_such_button",
                f"No button with id {button_id!r}: {where} sent to +{wa_id}"
                + (" has no such button." if found else ".")
                + " Give button_title to tap it anyway.",
                field="button_id",
            )
        record = {"type": kind, "text": title, "button_id": button_id}
        fields = {
            "type": "interactive",
            "interactive": {"type": kind, kind: {"id": button_id, "title": title}},
        }
        return context, record, fields

    # --- looking ----------------------------------------------------------------------------

    def messages(self, phone: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Both sides of one customer's chat, oldest first (the latest `limit` if given)."""
        wa_id = wa_id_of(phone if phone.startswith("+") else "+" + phone)
        out = []
        for m in self.state.conversation(self.config.phone_number_id, wa_id, limit):
            content = dict(m["content"])
            ts = content.pop("timestamp", None) or m["created_at"]
            item: dict[str, Any] = {
                "direction": m["direction"],
                "wamid": m["wamid"],
                "type": content.pop("type", m["type"]),
                "text": content.pop("text", None),
                "header": content.pop("header", None),
                "footer": content.pop("footer", None),
                "buttons": content.pop("buttons", None) or [],
                "status": m["status"],
                "error": m["error"],
                "time": _iso(ts),
                "timestamp": int(ts),
            }
            content.pop("to", None)
            item.update(content)
            out.append(item)
        return out

    def stats(self) -> dict[str, Any]:
        stats = self.state.stats()
        stats["webhooks_in_flight"] = self.webhooks.in_flight
        # Since the sandbox started (not kept across restarts):
        stats["send_requests"] = self.send_requests
        stats["faults_injected"] = dict(sorted(self.faults.injected.items()))
        stats["requests_held"] = self.held
        return stats
