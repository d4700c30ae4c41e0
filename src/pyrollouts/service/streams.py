"""Event streams (Server-Sent Events) of every HTTP face: the response with its heartbeat
(:class:`EventStream`), and a cap on the streams one face keeps open at once (:func:`limited`).

Each open stream holds a task, a watch on the store and buffers for as long as the client stays,
so a client that opens thousands (a script in a loop, a page that reconnects without closing)
could take the server's memory and event loop with it. Past the cap a new stream is answered
503 with the way out, and the streams already open go on. The cap is counted per application
(the server, the relay and the standalone dashboard each have their own).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

#: Streams one application keeps open at once (env ``PYROLLOUTS_MAX_STREAMS``).
DEFAULT_MAX_STREAMS = 256

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_open: weakref.WeakKeyDictionary[web.Application, int] = weakref.WeakKeyDictionary()


def max_streams() -> int:
    """The cap, from ``PYROLLOUTS_MAX_STREAMS`` (a positive integer), else the default."""
    raw = os.environ.get("PYROLLOUTS_MAX_STREAMS", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_STREAMS


def limited(handler: Handler) -> Handler:
    """Wrap a streaming handler: it runs only while fewer than ``max_streams()`` streams are open
    on its application; otherwise the answer is 503 with a JSON error saying what to do."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        app = request.app
        cap = max_streams()
        if _open.get(app, 0) >= cap:
            return web.json_response(
                {
                    "error": f"too many open event streams ({cap}): close some watches, or raise "
                    "PYROLLOUTS_MAX_STREAMS for the server"
                },
                status=503,
                headers={"Retry-After": "5"},
            )
        _open[app] = _open.get(app, 0) + 1
        try:
            return await handler(request)
        finally:
            _open[app] -= 1

    return wrapper


def open_streams(app: web.Application) -> int:
    """How many streams are open on ``app`` now."""
    return _open.get(app, 0)


_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

#: A stream with nothing to say sends a comment this often, so proxies and clients keep it open.
HEARTBEAT_SECONDS = 15.0


class EventStream:
    """One Server-Sent Events response: messages (named or not) and, when nothing was sent for
    ``HEARTBEAT_SECONDS``, a ``: ping`` comment."""

    def __init__(self, resp: web.StreamResponse) -> None:
        self.resp = resp
        self._last_write = asyncio.get_running_loop().time()

    @classmethod
    async def start(cls, request: web.Request) -> EventStream:
        """Begin the response (headers that keep proxies from buffering it)."""
        resp = web.StreamResponse(headers=_SSE_HEADERS)
        await resp.prepare(request)
        return cls(resp)

    async def send(self, data: Any, event: str | None = None) -> None:
        """One message: ``data`` as compact JSON, under ``event`` when given."""
        payload = json.dumps(data, default=str, separators=(",", ":"))
        head = f"event: {event}\n" if event else ""
        await self.resp.write(f"{head}data: {payload}\n\n".encode())
        self._last_write = asyncio.get_running_loop().time()

    async def ping(self) -> None:
        """The heartbeat comment, now."""
        await self.resp.write(b": ping\n\n")
        self._last_write = asyncio.get_running_loop().time()

    async def ping_if_idle(self) -> None:
        """The heartbeat comment when nothing was written for ``HEARTBEAT_SECONDS``."""
        if asyncio.get_running_loop().time() - self._last_write > HEARTBEAT_SECONDS:
            await self.ping()
