"""aiohttp's connection pool behind httpx's interface, enforcing an `EgressPolicy` on every
request: the address of each socket it opens, the request's total deadline, the answer's size,
no redirects (see the package's docstring)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx

from wagate.egress.policy import ALLOW_HINT, EgressPolicy, as_written, literal_address

PROXIED_NAME_TTL = 10.0
"""Seconds a proxied destination's DNS check is reused (aiohttp's own DNS cache lasts 10 s)."""


class EgressRefused(httpx.ConnectError):
    """The egress policy refused the destination; the text says why."""


class AnswerTooLarge(httpx.RemoteProtocolError):
    """The answer is larger than the client reads; the rest was not read."""


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
                f"{host} is {as_written(host, ip, why)}; {ALLOW_HINT}" if ip and why else None
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
        body: Any
        if isinstance(request.stream, httpx.ByteStream):
            body = await request.aread() or None
        else:  # a streamed body (a media upload): passed on chunk by chunk, never whole
            body = _chunks(request.stream)
        connect = request.extensions.get("timeout", {}).get("connect")
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self._open().request(
                    request.method,
                    str(url),
                    headers=headers,
                    data=body,
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


async def _chunks(stream: Any) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk


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
