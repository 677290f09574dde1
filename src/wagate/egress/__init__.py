"""The one way out: every request wagate sends (Graph API, callbacks, media) obeys one policy.

    EgressPolicy        which addresses may be reached; `check_url` for configured URLs
    egress_client()     an httpx client that enforces the policy on every request
    EgressTransport     its transport: aiohttp's pool under httpx's interface

    httpx.ConnectError
    └── EgressRefused           the policy refused the destination (or the scheme)
    httpx.RemoteProtocolError
    └── AnswerTooLarge          the answer is over the client's size cap

The policy (SPEC §7): http and https only; no redirects (a 3xx is returned as it is); every
answer capped in size and every request in total time (connect, send, each read and the whole
body under one deadline); and no connection to loopback, private, link-local, CGNAT, multicast,
reserved, documentation or IPv6 unique-local addresses (`REFUSED_IPV4`, `REFUSED_IPV6`, and the
IPv4 address inside IPv4-mapped, IPv4-compatible, 6to4 and NAT64 IPv6 addresses), unless the
operator allows a range with `WAGATE_EGRESS_ALLOW`.

Where the check happens: on the address each socket is about to connect to, after DNS
(aiohttp's `socket_factory` hook), so a name that resolves to a public address when a URL is
configured and to 169.254.169.254 when it is used (DNS rebinding) is still refused, and a name
with both kinds of address is reached on its allowed ones only. A URL is also checked where it is
configured (`check_url`: its literal address, or every address its name resolves to then), so
a user learns at once, with the reason, rather than at the first send.

Behind a proxy (`HTTPS_PROXY`/`HTTP_PROXY`, minus `NO_PROXY`), the socket wagate opens goes to
the proxy, so the proxy's address is what the policy checks: an operator whose proxy listens on
a private address allows that address (`WAGATE_EGRESS_ALLOW=10.0.0.5/32`). The destination is
then reached by the proxy, not by wagate: before each proxied request wagate checks the
destination's literal address or, for a name, the addresses it resolves to here (cached for
`PROXIED_NAME_TTL` seconds), and refuses it when they are all refused. The proxy resolves the
name again, so a rebinding name could still pass there: a proxy that wagate uses should refuse
private destinations itself (SECURITY.md says how).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from wagate.egress.policy import (
    ALLOW_HINT,
    REFUSED_IPV4,
    REFUSED_IPV6,
    EgressPolicy,
    embedded_ipv4,
    literal_address,
    parse_ranges,
)
from wagate.egress.transport import AnswerTooLarge, EgressRefused, EgressTransport

if TYPE_CHECKING:
    from wagate.config import Settings

__all__ = [
    "ALLOW_HINT",
    "CALLBACK_ANSWER_LIMIT",
    "GRAPH_ANSWER_LIMIT",
    "REFUSED_IPV4",
    "REFUSED_IPV6",
    "AnswerTooLarge",
    "EgressPolicy",
    "EgressRefused",
    "EgressTransport",
    "egress_client",
    "embedded_ipv4",
    "graph_client",
    "graph_transport",
    "literal_address",
    "media_client",
    "media_transport",
    "parse_ranges",
]

GRAPH_ANSWER_LIMIT = 1 << 20
"""Bytes of a Graph API answer read at most (Meta's answers are a few hundred bytes)."""
CALLBACK_ANSWER_LIMIT = 1 << 20
"""Bytes of a callback receiver's answer read at most."""
CONNECT_TIMEOUT = 5.0
"""Seconds a connection may take to open (within the request's total deadline)."""


class EgressClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` over an `EgressTransport`, which it names (`egress`) so that the
    hottest caller (`CloudClient.send_message`, once a message) can hand it a built request
    directly: `AsyncClient.send`'s auth, redirect, cookie and hook machinery, none of which
    such a client uses (no auth, no redirects, aiohttp keeps no cookies), cost ~30 % of a
    send's instructions (benchmarks/README.md, "A seventh host")."""

    def __init__(self, egress: EgressTransport, **kwargs: Any) -> None:
        super().__init__(transport=egress, **kwargs)
        self.egress = egress


def egress_client(
    policy: EgressPolicy,
    *,
    max_answer_bytes: int,
    timeout: float,
    max_connections: int = 100,
    headers: dict[str, str] | None = None,
) -> EgressClient:
    """An httpx client whose every request obeys `policy` (see `EgressTransport`)."""
    return EgressClient(
        EgressTransport(
            policy,
            max_answer_bytes=max_answer_bytes,
            timeout=timeout,
            max_connections=max_connections,
        ),
        timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
        follow_redirects=False,
        headers=headers,
    )


def graph_transport(settings: Settings, *, max_connections: int = 200) -> EgressTransport:
    """The network under a Cloud API client: `WAGATE_SEND_TIMEOUT` in all, 1 MiB answers."""
    return EgressTransport(
        EgressPolicy.from_settings(settings),
        max_answer_bytes=GRAPH_ANSWER_LIMIT,
        timeout=settings.send_timeout,
        max_connections=max_connections,
    )


def graph_client(settings: Settings, *, max_connections: int = 200) -> EgressClient:
    """A client for Meta's Graph API (sends, template syncs) under the egress policy."""
    return egress_client(
        EgressPolicy.from_settings(settings),
        max_answer_bytes=GRAPH_ANSWER_LIMIT,
        timeout=settings.send_timeout,
        max_connections=max_connections,
    )


MEDIA_TIMEOUT = 300.0
"""Seconds a media download or upload may take in all (100 MB at a few Mbit/s)."""


def media_transport(settings: Settings, *, max_connections: int = 20) -> EgressTransport:
    """The network under media downloads and uploads: answers up to the largest file."""
    from wagate.domain.media import MAX_UPLOAD

    return EgressTransport(
        EgressPolicy.from_settings(settings),
        max_answer_bytes=MAX_UPLOAD,
        timeout=MEDIA_TIMEOUT,
        max_connections=max_connections,
    )


def media_client(settings: Settings, *, max_connections: int = 20) -> httpx.AsyncClient:
    """A client for files: Meta's media downloads and uploads, a message's `media_url`."""
    return httpx.AsyncClient(
        transport=media_transport(settings, max_connections=max_connections),
        timeout=httpx.Timeout(MEDIA_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
    )
