"""The egress policy's address rules as a table: which destinations wagate may reach, and what a
person is told when it may not."""

from __future__ import annotations

import ipaddress

import pytest

from wagate.egress import EgressPolicy, literal_address, parse_ranges

REFUSED = {
    "127.0.0.1": "a loopback address",
    "127.255.255.254": "a loopback address",
    "10.0.0.1": "a private address",
    "172.16.5.4": "a private address",
    "172.31.255.255": "a private address",
    "192.168.1.1": "a private address",
    "169.254.169.254": "a link-local address",
    "100.64.0.1": "a shared (CGNAT) address",
    "100.127.255.254": "a shared (CGNAT) address",
    "0.0.0.0": 'an unspecified ("this network") address',
    "224.0.0.251": "a multicast address",
    "239.255.255.250": "a multicast address",
    "240.0.0.1": "a reserved address",
    "255.255.255.255": "a reserved address",
    "192.0.2.10": "a documentation address",
    "198.18.0.1": "a benchmarking address",
    "::1": "a loopback address",
    "::": "an unspecified address",
    "fd12:3456::1": "an IPv6 unique-local address",
    "fe80::1": "a link-local address",
    "ff02::1": "a multicast address",
    "2001:db8::1": "a documentation address",
    "100::1": "a reserved address (discard-only)",
    "::ffff:127.0.0.1": "127.0.0.1, a loopback address",
    "::ffff:169.254.169.254": "169.254.169.254, a link-local address",
    "::10.0.0.1": "10.0.0.1, a private address",
    "2002:a9fe:a9fe::": "169.254.169.254, a link-local address",
    "64:ff9b::7f00:1": "127.0.0.1, a loopback address",
    "4000::1": "a reserved address (outside IPv6 global unicast)",
}
ALLOWED = [
    "8.8.8.8",
    "157.240.22.35",  # graph.facebook.com
    "172.32.0.1",  # just past 172.16/12
    "100.128.0.1",  # just past 100.64/10
    "2a03:2880:f12f:83:face:b00c:0:25de",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("address", "why"), REFUSED.items())
def test_refused_addresses_say_why(address: str, why: str) -> None:
    policy = EgressPolicy()
    ip = ipaddress.ip_address(address)
    assert policy.refusal(ip) == why
    assert not policy.address_allowed(ip)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert EgressPolicy().address_allowed(ipaddress.ip_address(address))


def test_allowed_ranges_open_exactly_those_addresses() -> None:
    policy = EgressPolicy(parse_ranges(" 127.0.0.0/8, 10.1.0.0/16 ,::1/128,192.168.5.7"))
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "10.1.200.3", "::1", "192.168.5.7"):
        assert policy.address_allowed(ipaddress.ip_address(address)), address
    for address in ("10.2.0.1", "169.254.169.254", "192.168.5.8", "fe80::1"):
        assert not policy.address_allowed(ipaddress.ip_address(address)), address


@pytest.mark.parametrize("text", ["127.0.0.0/33", "localhost", "10.0.0.0/8;192.168.0.0/16"])
def test_a_bad_allowance_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"WAGATE_EGRESS_ALLOW: .* e\.g\. 127\.0\.0\.0/8"):
        parse_ranges(text)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("1e100.net", None),
    ],
)
def test_numeric_hosts_are_read_as_resolvers_read_them(host: str, address: str | None) -> None:
    found = literal_address(host)
    assert (str(found) if found else None) == address


async def test_configured_urls_are_refused_for_their_scheme_credentials_and_host() -> None:
    policy = EgressPolicy()
    assert await policy.url_problem("https://8.8.8.8/hook") is None
    assert await policy.url_problem("gopher://8.8.8.8/") == (
        "gopher: URLs are not allowed; use https://."
    )
    assert await policy.url_problem("https://:pw@8.8.8.8/") is not None
    assert await policy.url_problem("http://[::1") == "The URL is not valid."
    assert await policy.url_problem("https://0x7f.1/x") == (
        "0x7f.1 is 127.0.0.1, a loopback address; WAGATE_EGRESS_ALLOW can allow a range."
    )
