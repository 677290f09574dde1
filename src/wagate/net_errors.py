"""What a failed outbound request means, in words a person can act on ("connection refused by
127.0.0.1:9"), whichever layer raised it: the egress policy, httpx, aiohttp under the egress
transport (whose own text says `ssl:default` even for an http URL), or the operating system.
The URL is never repeated: it may carry credentials."""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator

import httpx

from wagate.egress.transport import AnswerTooLarge, EgressRefused

_BY_ERRNO = {
    errno.ECONNREFUSED: "connection refused{at} (nothing accepts connections on that port)",
    errno.ECONNRESET: "the connection{at} was reset",
    errno.ECONNABORTED: "the connection{at} was aborted",
    errno.EHOSTUNREACH: "host{at} unreachable",
    errno.ENETUNREACH: "network unreachable{at}",
    errno.ETIMEDOUT: "connecting{at} timed out",
    errno.EPIPE: "the connection{at} was closed while sending",
}
_AIOHTTP_NOISE = re.compile(r" ssl:(default|False|True|<[^>]*>)")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__, getattr(current, "os_error", None)]


def _where(exc: BaseException) -> str:
    for cause in _causes(exc):
        host, port = getattr(cause, "host", None), getattr(cause, "port", None)
        if isinstance(host, str) and isinstance(port, int):
            return f" by {host}:{port}" if ":" not in host else f" by [{host}]:{port}"
    return ""


def describe_failure(exc: BaseException) -> str:
    """One sentence saying why a request got no answer."""
    reason = _reason(exc)
    return reason[0].upper() + reason[1:]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EgressRefused | AnswerTooLarge):  # already said in words
        return str(exc)
    at = _where(exc)
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return "the host name could not be resolved (DNS)."
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the TLS certificate was refused: {cause.verify_message}."
        if isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None):
            return f"the TLS handshake failed ({cause.reason})."
        if isinstance(cause, OSError) and cause.errno in _BY_ERRNO:
            return _BY_ERRNO[cause.errno].format(at=at) + "."
    if any(isinstance(cause, ssl.SSLError) for cause in _causes(exc)):
        return "the TLS handshake failed."
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time."
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection without a complete answer."
    text = _AIOHTTP_NOISE.sub("", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
