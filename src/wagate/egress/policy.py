"""The egress policy's rules: which addresses wagate may connect to (IANA's special-purpose
ranges as a table, IPv6 forms of IPv4 addresses, the operator's `WAGATE_EGRESS_ALLOW`), and
whether a URL someone configures leads anywhere else (`EgressPolicy.check_url`)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wagate.domain.errors import UrlNotAllowed

if TYPE_CHECKING:
    from wagate.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RESOLVE_TIMEOUT = 5.0
"""Seconds `check_url` waits for DNS; a name that does not resolve is checked when used."""
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
            return f"{shown} is {as_written(shown, literal, why)}; {ALLOW_HINT}."
        addresses = await _resolve(host, port)
        refusals = [(ip, self.refusal(ip)) for ip in addresses]
        if not refusals or any(why is None for _, why in refusals):
            return None
        ip, why = refusals[0]
        return f"{host} resolves to {ip}, {why}; {ALLOW_HINT}."


def as_written(host: str, ip: IPAddress, why: str) -> str:
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
