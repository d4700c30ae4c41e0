"""The proxy's limits on what clients and endpoints may cost it, read from its environment.

Each is a ``PYROLLOUTS_PROXY_<NAME>`` environment variable of the proxy process (the server starts
the proxy with its own environment, so setting one where the server runs sets it for the proxy).
The defaults follow nginx's where nginx has one (docs/local-runtime.md lists them with nginx's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

ENV_PREFIX = "PYROLLOUTS_PROXY_"


class LimitsError(ValueError):
    """A limit in the environment is not a usable number (the message names the variable)."""


@dataclass(frozen=True)
class Limits:
    """What one client connection and one request may cost the proxy."""

    #: Bytes of one request head (request line and headers); larger: 431, then the connection is
    #: closed. nginx: 4 buffers of 8 KiB, each header line at most 8 KiB.
    max_head_bytes: int = 65536
    #: Header fields in one request head; more: 431. (Apache's LimitRequestFields is 100.)
    max_headers: int = 100
    #: Seconds for a whole request head, from its first byte; slower: 408, then closed
    #: (slowloris). nginx's client_header_timeout: 60 s.
    header_timeout: float = 60.0
    #: Seconds a keep-alive connection may wait for its next request (or a new connection for its
    #: first); then it is closed. nginx's keepalive_timeout: 75 s.
    idle_timeout: float = 75.0
    #: Seconds an endpoint has to start its response once the request is sent whole; then the
    #: client gets a 504 and the endpoint connection is closed. nginx's proxy_read_timeout: 60 s.
    upstream_timeout: float = 60.0
    #: Client connections open at once on all listeners (HTTP and L4); beyond it a new HTTP
    #: connection is answered 503 and closed, a new L4 connection is closed.
    max_connections: int = 4096

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Limits:
        """The limits given by ``PYROLLOUTS_PROXY_*`` variables, defaults for the others. Raises
        LimitsError naming the variable when a value is not a positive number."""
        values: dict[str, int | float] = {}
        for field in dataclasses.fields(cls):
            var = ENV_PREFIX + field.name.upper()
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            kind = int if field.type in (int, "int") else float
            try:
                value = kind(raw)
            except ValueError:
                raise LimitsError(
                    f"{var}={raw!r} is not {'an integer' if kind is int else 'a number'}; "
                    f"set it to a positive {'integer' if kind is int else 'number of seconds'} "
                    f"or unset it for the default ({field.default})"
                ) from None
            if not value > 0:
                raise LimitsError(
                    f"{var}={raw!r} must be greater than 0; unset it for the default ({field.default})"
                )
            values[field.name] = value
        return cls(**values)  # type: ignore[arg-type]

    def sweep_interval(self) -> float:
        """How often the timeouts are checked: each fires between its value and its value plus
        this interval."""
        return max(0.05, min(1.0, self.header_timeout / 4, self.idle_timeout / 4, self.upstream_timeout / 4))
