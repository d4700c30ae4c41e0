"""A cap on the event streams (SSE watches) one HTTP face keeps open at once.

Each open stream holds a task, a watch on the store and buffers for as long as the client stays,
so a client that opens thousands (a script in a loop, a page that reconnects without closing)
could take the server's memory and event loop with it. Past the cap a new stream is answered
503 with the way out, and the streams already open go on. The cap is counted per application
(the server, the relay and the standalone dashboard each have their own).
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Awaitable, Callable

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
