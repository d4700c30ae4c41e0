"""An httpx transport over aiohttp's client: the operator's requests without httpcore's pure-Python HTTP.

lightkube speaks httpx, and its requests (auth, URLs, decoding, watches) stay as they are; only the
wire under them changes. httpx's own transport parses HTTP/1.1 with h11 in pure Python, and at 1,000
Rollouts that parse and httpcore's pool were a fifth of the controller's CPU (docs/benchmarks.md);
aiohttp, already a dependency for the servers, parses with its C parser (llhttp). No library offers
this adapter (httpx has no aiohttp transport), so it is written here: a small mapping of one request,
its timeouts, its streamed answer and its errors onto httpx's types.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2

#: The headers aiohttp would otherwise add on its own: httpx's request already carries what it sends.
_SKIP_AUTO = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


def user_agent() -> str:
    """What the operator's requests name as their client (audit logs, API priority and fairness)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pyrollouts/{version('pyrollouts')}"
    except PackageNotFoundError:  # running from a source tree without an install
        return "pyrollouts/dev"


def _timeout(request: httpx2.Request) -> aiohttp.ClientTimeout:
    t: dict[str, Any] = request.extensions.get("timeout") or {}
    connect = t.get("connect")
    pool = t.get("pool")
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if connect is None and pool is None else (connect or 0) + (pool or 0),
        sock_connect=connect,
        sock_read=t.get("read"),
    )


def mapped_error(exc: BaseException, request: httpx2.Request | None) -> httpx2.TransportError:
    """The httpx error callers expect for an aiohttp or socket error (ConnectError, ReadTimeout, ...)."""
    msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(msg, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(msg, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx2.ReadTimeout(msg, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx2.RemoteProtocolError(msg, request=request)
    return httpx2.ReadError(msg, request=request)


class _Body(httpx2.AsyncByteStream):
    """A response body read as aiohttp receives it (watches stream for minutes)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise mapped_error(exc, self._request) from exc

    async def aclose(self) -> None:
        # A body read to its end gives the connection back to the pool; one cut short closes it.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """httpx's ``AsyncBaseTransport`` over one ``aiohttp.ClientSession`` (created in the running loop
    on first use, as aiohttp requires), verifying the server with ``ssl_context``. With ``agent``,
    every request names it as its User-Agent (in place of httpx's, which names httpx)."""

    def __init__(self, ssl_context: ssl.SSLContext | None, agent: str | None = None) -> None:
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self.agent = agent

    def session(self) -> aiohttp.ClientSession:
        """The session (and so the connection pool) every request over this transport shares."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=100),
                auto_decompress=False,  # httpx decodes by the Content-Encoding it is given
                skip_auto_headers=_SKIP_AUTO,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if self.agent is None or k.lower() != b"user-agent"
        ]
        if self.agent is not None:
            headers.append(("User-Agent", self.agent))
        try:
            response = await self.session().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                timeout=_timeout(request),
                allow_redirects=False,
                compress=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise mapped_error(exc, request) from exc
        return httpx2.Response(
            status_code=response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
