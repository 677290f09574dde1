"""The network under the Cloud API client: aiohttp's connection pool behind httpx's interface.

httpx's own pool (httpcore) walks every connection each time a request starts or ends; with
the dispatcher's hundreds of sends in flight that cost ~2.4 ms of CPU per send, six times what
the same send costs through aiohttp's pool (measured in benchmarks/README.md). `CloudClient`
keeps speaking httpx (requests, responses, timeouts, exceptions), so only the transport
changes: each request goes out through one shared `aiohttp.ClientSession`, and its failures
come back as the httpx exceptions the client already classifies (timeouts as
`httpx.TimeoutException`, everything else as `httpx.TransportError`).
"""

from __future__ import annotations

import urllib.request

import aiohttp
import httpx

# Set by the session from the decoded body; passing them on would describe the wrong bytes.
_DROPPED_RESPONSE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int = 200, keepalive_seconds: float = 60.0) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _proxy(self, url: httpx.URL) -> str | None:
        """The proxy for `url` from HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as httpx would use."""
        key = (url.scheme, url.host)
        if key not in self._proxies:
            proxy = urllib.request.getproxies().get(url.scheme)
            if proxy and urllib.request.proxy_bypass(url.host):
                proxy = None
            self._proxies[key] = proxy
        return self._proxies[key]

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
                ),
                cookie_jar=aiohttp.DummyCookieJar(),  # Meta sets none
                # aiohttp's own proxy lookup re-reads the environment (and ~/.netrc) for every
                # request, which doubled a send's CPU: `_proxy` looks it up once per host.
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() != b"accept-encoding"
        ]
        # httpx offers br and zstd when their packages are installed; offer what aiohttp
        # decodes here whatever is installed.
        headers.append(("Accept-Encoding", "gzip, deflate"))
        body = await request.aread()
        try:
            async with self._open().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                proxy=self._proxy(request.url),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            ) as answer:
                content = await answer.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(
                str(exc) or "the server closed the connection", request=request
            ) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(
            answer.status,
            headers=[
                (k, v)
                for k, v in answer.raw_headers
                if k.decode("latin-1").lower() not in _DROPPED_RESPONSE_HEADERS
            ],
            content=content,
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
