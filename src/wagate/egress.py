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

import asyncio
import errno
import ipaddress
import re
import socket
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import httpx

from wagate.domain.errors import UrlNotAllowed

if TYPE_CHECKING:
    from wagate.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

GRAPH_ANSWER_LIMIT = 1 << 20
"""Bytes of a Graph API answer read at most (Meta's answers are a few hundred bytes)."""
CALLBACK_ANSWER_LIMIT = 1 << 20
"""Bytes of a callback receiver's answer read at most."""
RESOLVE_TIMEOUT = 5.0
"""Seconds `check_url` waits for DNS; a name that does not resolve is checked when used."""
PROXIED_NAME_TTL = 10.0
"""Seconds a proxied destination's DNS check is reused (aiohttp's own DNS cache lasts 10 s)."""
ALLOW_HINT = "WAGATE_EGRESS_ALLOW can allow a range"


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), why) for cidr, why in rows)


# IANA's special-purpose registries, as what a person reading the refusal needs to know.
REFUSED_IPV4 = _table(
    ("0.0.0.0/8", 'an unspecified ("this network") address'),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (CGNAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address (IETF protocol assignments)"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a reserved address (6to4 relay)"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),  # 255.255.255.255 (broadcast) included
)
REFUSED_IPV6 = _table(
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a reserved address (local-use NAT64)"),
    ("100::/64", "a reserved address (discard-only)"),
    ("2001::/23", "a reserved address (IETF protocol assignments)"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "an IPv6 unique-local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# inet_aton's forms: 2130706433, 0x7f000001, 0x7f.1, 017700000001, 127.1
_LEGACY_IPV4 = re.compile(
    r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE
)


class EgressRefused(httpx.ConnectError):
    """The egress policy refused the destination; the text says why."""


class AnswerTooLarge(httpx.RemoteProtocolError):
    """The answer is larger than the client reads; the rest was not read."""


def parse_ranges(text: str) -> tuple[IPNetwork, ...]:
    """`WAGATE_EGRESS_ALLOW`'s comma-separated CIDRs (a bare address is its own range)."""
    ranges = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            ranges.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"WAGATE_EGRESS_ALLOW: {item!r} is not an address range; write CIDRs separated "
                "by commas, e.g. 127.0.0.0/8,10.1.0.0/16,::1/128"
            ) from None
    return tuple(ranges)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, NAT64)."""
    if ip.version == 4:
        return None
    assert isinstance(ip, ipaddress.IPv6Address)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _why_refused(ip: IPAddress) -> str | None:
    table = REFUSED_IPV4 if ip.version == 4 else REFUSED_IPV6
    for network, why in table:
        if ip in network:
            return why
    if ip.version == 6 and ip not in _GLOBAL_UNICAST_V6:
        return "a reserved address (outside IPv6 global unicast)"
    return None


def literal_address(host: str) -> IPAddress | None:
    """`host` as an IP address when it is one, in any form a resolver would take as one."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Which addresses outbound requests may reach: any public address, and the `allow`
    ranges whatever they are."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        return cls(parse_ranges(settings.egress_allow))

    def _allowed_range(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.allow)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be reached ("a loopback address", "127.0.0.1, a loopback address"
        for an IPv6 form of it), or None when it may."""
        inner = embedded_ipv4(ip)
        if self._allowed_range(ip) or (inner is not None and self._allowed_range(inner)):
            return None
        if inner is not None:
            why = _why_refused(inner)
            return f"{inner}, {why}" if why else None
        return _why_refused(ip)

    def address_allowed(self, ip: IPAddress) -> bool:
        return self.refusal(ip) is None

    async def check_url(self, url: str, *, field: str | None = None) -> None:
        """Raise `UrlNotAllowed` (422, with the reason) when requests to `url` would be
        refused: not http(s), no host, credentials in it, or every address of its host (its
        literal address, or what its name resolves to now) refused. A name that does not
        resolve here is let through: its connections are checked when they are made."""
        problem = await self.url_problem(url)
        if problem is not None:
            raise UrlNotAllowed(problem, field=field)

    async def url_problem(self, url: str) -> str | None:
        """What `check_url` would refuse `url` for, or None."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "The URL is not valid."
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            return f"{scheme or 'A URL without a scheme'}: URLs are not allowed; use https://."
        host = parts.hostname
        if not host:
            return "The URL has no host."
        if parts.username is not None or parts.password is not None:
            return (
                "The URL carries a user name or password (user:password@host); leave them out "
                "(wagate signs what it sends, and would store and show them in clear)."
            )
        return await self.host_problem(host, port or (443 if scheme == "https" else 80))

    async def host_problem(self, host: str, port: int) -> str | None:
        literal = literal_address(host)
        if literal is not None:
            why = self.refusal(literal)
            if why is None:
                return None
            shown = host.strip("[]")
            return f"{shown} is {_as_written(shown, literal, why)}; {ALLOW_HINT}."
        addresses = await _resolve(host, port)
        refusals = [(ip, self.refusal(ip)) for ip in addresses]
        if not refusals or any(why is None for _, why in refusals):
            return None
        ip, why = refusals[0]
        return f"{host} resolves to {ip}, {why}; {ALLOW_HINT}."


def _as_written(host: str, ip: IPAddress, why: str) -> str:
    """`why`, naming the address when `host` writes it in a form people may not read as it
    (2130706433 is 127.0.0.1)."""
    try:
        canonical = ipaddress.ip_address(host) == ip
    except ValueError:
        canonical = False
    return why if canonical else f"{ip}, {why}"


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError, UnicodeError):
        return []
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        try:
            ip = ipaddress.ip_address(str(sockaddr[0]))
        except ValueError:
            continue
        if ip not in found:
            found.append(ip)
    return found


# --------------------------------------------------------------------------- the transport


class _Refused(OSError):
    """Raised by the socket factory; aiohttp wraps it in a ClientConnectorError."""

    MARK = "Refused by the egress policy"

    def __init__(self, text: str) -> None:
        super().__init__(errno.EACCES, f"{self.MARK}: {text}.")


# Set by the session from the decoded body; passing them on would describe the wrong bytes.
_DROPPED_RESPONSE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class EgressTransport(httpx.AsyncBaseTransport):
    """aiohttp's connection pool behind httpx's interface, enforcing an `EgressPolicy`.

    httpx's own pool (httpcore) walks every connection each time a request starts or ends;
    with the dispatcher's hundreds of sends in flight that cost ~2.4 ms of CPU per send, six
    times what the same send costs through aiohttp's pool (benchmarks/README.md). Callers keep
    speaking httpx; failures come back as httpx's exceptions (timeouts as
    `httpx.TimeoutException`, the rest as `httpx.TransportError`).

    `timeout` is the total deadline of a request, from the first connect to the answer's last
    byte; a request may shorten it with the `total_timeout` extension (seconds).
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        max_answer_bytes: int,
        timeout: float,
        max_connections: int = 100,
        keepalive_seconds: float = 60.0,
    ) -> None:
        self.policy = policy
        self.max_answer_bytes = max_answer_bytes
        self.timeout = timeout
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}
        self._literals: dict[str, str | None] = {}
        self._proxied_names: dict[tuple[str, int], tuple[float, str | None]] = {}

    # ------------------------------------------------------------------ set-up

    def _proxy(self, url: httpx.URL) -> str | None:
        """The proxy for `url` from HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as httpx would use."""
        key = (url.scheme, url.host)
        if key not in self._proxies:
            proxy = urllib.request.getproxies().get(url.scheme)
            if proxy and urllib.request.proxy_bypass(url.host):
                proxy = None
            if len(self._proxies) > 10_000:
                self._proxies.clear()
            self._proxies[key] = proxy
        return self._proxies[key]

    def _socket(self, addr_info: Any) -> socket.socket:
        """Every socket the pool opens, checked against the policy before it connects."""
        family, type_, proto, _, sockaddr = addr_info
        try:
            ip = ipaddress.ip_address(str(sockaddr[0]))
        except ValueError:
            raise _Refused(f"{sockaddr[0]} is not an IP address") from None
        why = self.policy.refusal(ip)
        if why is not None:
            raise _Refused(f"{ip} is {why}; {ALLOW_HINT}")
        return socket.socket(family=family, type=type_, proto=proto)

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the event loop that will use it (aiohttp requires it).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    keepalive_timeout=self._keepalive_seconds,
                    # The certificates httpx trusts (certifi, or SSL_CERT_FILE), not only the
                    # system's: a slim container may have none.
                    ssl=httpx.create_ssl_context(),
                    socket_factory=self._socket,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                # aiohttp's own proxy lookup re-reads the environment (and ~/.netrc) for every
                # request, which doubled a send's CPU: `_proxy` looks it up once per host.
                trust_env=False,
            )
        return self._session

    # ------------------------------------------------------------------ checks before sending

    def _literal_refusal(self, host: str) -> str | None:
        if host not in self._literals:
            if len(self._literals) > 10_000:
                self._literals.clear()
            ip = literal_address(host)
            why = self.policy.refusal(ip) if ip is not None else None
            self._literals[host] = (
                f"{host} is {_as_written(host, ip, why)}; {ALLOW_HINT}" if ip and why else None
            )
        return self._literals[host]

    async def _proxied_refusal(self, host: str, port: int) -> str | None:
        """A proxied destination's name, resolved here (see the module docstring)."""
        now = time.monotonic()
        cached = self._proxied_names.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        problem = await self.policy.host_problem(host, port)
        if len(self._proxied_names) > 10_000:
            self._proxied_names.clear()
        self._proxied_names[(host, port)] = (now + PROXIED_NAME_TTL, problem)
        return problem

    # ------------------------------------------------------------------ one request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        total = min(self.timeout, float(request.extensions.get("total_timeout", self.timeout)))
        deadline = loop.time() + total
        url = request.url
        if url.scheme not in ("http", "https"):
            raise EgressRefused(f"{url.scheme}: URLs are not allowed", request=request)
        literal = self._literal_refusal(url.host)
        if literal is not None:
            raise EgressRefused(f"{_Refused.MARK}: {literal}.", request=request)
        proxy = self._proxy(url)
        if proxy is not None and literal_address(url.host) is None:
            port = url.port or (443 if url.scheme == "https" else 80)
            problem = await self._proxied_refusal(url.host, port)
            if problem is not None:
                raise EgressRefused(f"{_Refused.MARK}: {problem}", request=request)
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() != b"accept-encoding"
        ]
        # httpx offers br and zstd when their packages are installed; offer what aiohttp
        # decodes here whatever is installed.
        headers.append(("Accept-Encoding", "gzip, deflate"))
        body = await request.aread()
        connect = request.extensions.get("timeout", {}).get("connect")
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self._open().request(
                    request.method,
                    str(url),
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,
                    proxy=proxy,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect),
                )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(_too_slow(total), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            refusal = _refusal_text(exc.os_error)
            if refusal is not None:
                raise EgressRefused(refusal, request=request) from exc
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise _network_error(exc, request) from exc
        return httpx.Response(
            answer.status,
            headers=[
                (k, v)
                for k, v in answer.raw_headers
                if k.decode("latin-1").lower() not in _DROPPED_RESPONSE_HEADERS
            ],
            stream=_Answer(answer, request, deadline, total, self.max_answer_bytes),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Answer(httpx.AsyncByteStream):
    """An answer's body, read chunk by chunk under the request's deadline and size cap."""

    def __init__(
        self,
        answer: aiohttp.ClientResponse,
        request: httpx.Request,
        deadline: float,
        total: float,
        limit: int,
    ) -> None:
        self._answer = answer
        self._request = request
        self._deadline = deadline
        self._total = total
        self._limit = limit
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        declared = self._answer.content_length
        if declared is not None and declared > self._limit:
            raise AnswerTooLarge(_too_large(self._limit, declared), request=self._request)
        content = self._answer.content
        received = 0
        while True:
            try:
                async with asyncio.timeout_at(self._deadline):
                    chunk = await content.readany()
            except TimeoutError as exc:
                raise httpx.ReadTimeout(_too_slow(self._total), request=self._request) from exc
            except aiohttp.ClientError as exc:
                raise _network_error(exc, self._request) from exc
            if not chunk:
                break
            received += len(chunk)
            if received > self._limit:
                raise AnswerTooLarge(_too_large(self._limit), request=self._request)
            yield chunk
        self._complete = True

    async def aclose(self) -> None:
        if self._complete:
            self._answer.release()  # the connection goes back to the pool
        else:
            self._answer.close()  # unread bytes: the connection cannot be reused


def _too_slow(total: float) -> str:
    return f"No complete answer within {total:g} s."


def _too_large(limit: int, declared: int | None = None) -> str:
    size = f" ({declared:,} bytes declared)" if declared is not None else ""
    return f"The answer is larger than {_size_words(limit)}{size}; the rest was not read."


def _size_words(size: int) -> str:
    return f"{size >> 20} MiB" if size % (1 << 20) == 0 else f"{size:,} bytes"


def _refusal_text(error: OSError | None) -> str | None:
    """The socket factory's refusal(s) inside the error aiohttp raised, or None."""
    text = (error.strerror or str(error)) if error is not None else ""
    if error is None or error.errno != errno.EACCES or _Refused.MARK not in text:
        return None
    return text.removeprefix("Multiple exceptions: ")


def _network_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(text, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(text, request=request)
    return httpx.NetworkError(text, request=request)


CONNECT_TIMEOUT = 5.0
"""Seconds a connection may take to open (within the request's total deadline)."""


def egress_client(
    policy: EgressPolicy,
    *,
    max_answer_bytes: int,
    timeout: float,
    max_connections: int = 100,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An httpx client whose every request obeys `policy` (see `EgressTransport`)."""
    return httpx.AsyncClient(
        transport=EgressTransport(
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


def graph_client(settings: Settings, *, max_connections: int = 200) -> httpx.AsyncClient:
    """A client for Meta's Graph API (sends, template syncs) under the egress policy."""
    return egress_client(
        EgressPolicy.from_settings(settings),
        max_answer_bytes=GRAPH_ANSWER_LIMIT,
        timeout=settings.send_timeout,
        max_connections=max_connections,
    )
