"""The single-object requests of ``KubeCluster`` (get, create, merge patch, delete), sent straight
over the operator's aiohttp session.

Why not lightkube's verbs: each of its requests wraps the body in a resource class, builds an httpx
request (httpx parses the URL in pure Python, twice: the path, then its merge with the base URL),
runs httpx's send machinery and wraps the answer again: about 0.2 ms of CPU per request more than
aiohttp alone. At 1,000 Rollouts (about 29 requests each) sending them here took a quarter off the
controller's CPU (docs/benchmarks.md). Here each request is a URL built from the kind's registry
entry and a JSON body encoded and decoded by msgspec. lightkube still lists, watches (the
informers), and serves the CLI's other calls and the leader election.

Authentication is lightkube's own (``user_auth``: a token, a token file, an exec plugin or basic
auth), driven through httpx's auth-flow protocol, so a token file re-read or an exec plugin run
again after a 401 works as it does under lightkube. Client certificates are in the session's TLS
context. Transport failures raise the same httpx errors as lightkube's requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import httpx2
import msgspec

from ...model.cluster import ClusterError, Conflict, Invalid, NotFound, Obj
from .resources import kind_of
from .transport import AiohttpTransport, mapped_error, user_agent

_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder().decode

#: lightkube's default (httpx.Timeout(10)): connecting and each read wait at most this long.
TIMEOUT_SECONDS = 10.0


def error_for(code: int, message: str, what: str) -> ClusterError:
    """The ``Cluster`` protocol's error for an API server's refusal, keeping its message."""
    if code == 404:
        return NotFound(f"{what}: {message}")
    if code == 409:
        return Conflict(f"{what}: {message}")
    if code in (400, 422):
        return Invalid(message)
    return ClusterError(f"{what}: HTTP {code}: {message}")


def path_of(kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
    """The API path of a kind's collection (``name`` None), one object, or its subresource."""
    k = kind_of(kind)
    parts = ["/api/v1"] if not k.group else [f"/apis/{k.group}/{k.version}"]
    if k.namespaced:
        parts.append(f"/namespaces/{quote(namespace or 'default', safe='')}")
    parts.append(f"/{k.plural}")
    if name is not None:
        parts.append(f"/{quote(name, safe='')}")
        if subresource is not None:
            parts.append(f"/{subresource}")
    return "".join(parts)


class _Flowing:
    """What httpx's auth flows touch of a request: its headers (they set Authorization)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _Answer:
    """What httpx's auth flows read of a response: its status (a 401 makes them authenticate again)."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.body = body


class RestClient:
    """Single-object requests to the API server at ``server`` over ``transport``'s session."""

    def __init__(
        self, server: str, transport: AiohttpTransport, auth: httpx2.Auth | None, field_manager: str | None
    ) -> None:
        self.server = server.rstrip("/")
        self.transport = transport
        self.auth = auth
        self.field_manager = field_manager
        self._agent = transport.agent or user_agent()
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=TIMEOUT_SECONDS, sock_connect=TIMEOUT_SECONDS, sock_read=TIMEOUT_SECONDS
        )

    async def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Obj:
        """Send one request and return the object it answers; the API server's refusal raises the
        protocol's error (``error_for``) for ``what`` (e.g. "ReplicaSet ns/name")."""
        query = dict(params or {})
        if self.field_manager and method in ("POST", "PATCH", "PUT"):
            query["fieldManager"] = self.field_manager
        url = self.server + path + ("?" + urlencode(query) if query else "")
        data = None if body is None else _ENCODE(body)
        headers = {"Accept": "application/json", "User-Agent": self._agent}
        if data is not None:
            headers["Content-Type"] = content_type
        answer = await self._authenticated(method, url, headers, data)
        if answer.status_code >= 400:
            raise error_for(answer.status_code, _message(answer), what)
        out = _DECODE(answer.body) if answer.body else {}
        if not isinstance(out, dict):
            raise ClusterError(f"{what}: the API server answered with a JSON {type(out).__name__}")
        return out

    async def _authenticated(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None
    ) -> _Answer:
        # httpx's auth-flow protocol (what its client does in _send_handling_auth): the flow sets
        # the headers, sees each answer, and may ask to send again (a 401 after a token rotated).
        if self.auth is None:
            return await self._send(method, url, headers, data)
        flow = self.auth.async_auth_flow(_Flowing(headers))  # type: ignore[arg-type]
        request: Any = await flow.__anext__()
        while True:
            answer = await self._send(method, url, request.headers, data)
            try:
                request = await flow.asend(answer)  # type: ignore[arg-type]
            except StopAsyncIteration:
                return answer

    async def _send(self, method: str, url: str, headers: Mapping[str, str], data: bytes | None) -> _Answer:
        try:
            async with self.transport.session().request(
                method,
                url,
                headers=headers,
                data=data,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                return _Answer(response.status, await response.read())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise mapped_error(exc, None) from exc


def _message(answer: _Answer) -> str:
    """The message of the API server's Status answer (or its body as text when it is not one)."""
    try:
        status = _DECODE(answer.body)
    except msgspec.DecodeError:
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    text = answer.body.decode("utf-8", "replace").strip()
    return text[:500] or f"HTTP {answer.status_code}"
