"""The request checks shared by every HTTP face of pyrollouts: the local server (its API and the
dashboard on it), the relay of ``rollouts dashboard`` and the standalone dashboard (docs/security.md).

- :func:`host_problem`: on loopback, only a request whose ``Host`` is a loopback name or address
  with the port it arrived on is answered. After DNS rebinding a page of ``evil.example`` reaches
  127.0.0.1 with ``Host: evil.example``; refusing that Host is what keeps the page out (its Origin
  then matches its Host, so an Origin check alone lets it through).
- :func:`write_problem`: a write's ``Origin``, when there is one, must be this server's own
  (``null`` never is), and its body must be JSON: ``text/plain`` and form bodies are what a page may
  send anywhere without a CORS preflight, so none of them reaches an action.
- :func:`token_matches`, :func:`bearer`: the one constant-time token comparison.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Content types a page may send to any address without a CORS preflight (the "simple" ones).
SIMPLE_BODY_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 without brackets) is ``localhost`` or a
    loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(given: str | None, token: str | None) -> bool:
    """Whether ``given`` is ``token`` (constant time); never true without both."""
    if not token or not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def bearer(request: web.Request) -> str:
    """The token of an ``Authorization: Bearer TOKEN`` header ('' without one)."""
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.startswith("Bearer ") else ""


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header's name (IPv6 without brackets) and port (None when absent); None when it is
    not of the form ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``."""
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep:
            return None
    elif value.count(":") > 1:
        return None  # an IPv6 address must be in brackets
    else:
        name, sep, port = value.partition(":")
        rest = f":{port}" if sep else ""
    if not rest:
        return name, None
    digits = rest[1:]
    if not rest.startswith(":") or not (digits.isascii() and digits.isdigit()) or len(digits) > 5:
        return None
    return name, int(digits)


def local_port(request: web.Request) -> int | None:
    """The port the request's connection arrived on (None if unknown)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return int(sockname[1])
    return None


def host_problem(request: web.Request) -> str | None:
    """Why this request's Host is refused (None: it is a loopback name or address with the port
    the request arrived on; a Host without a port means port 80)."""
    value = request.headers.get("Host", "")
    port = local_port(request)
    parts = split_host(value.strip())
    if parts is not None:
        name, given_port = parts
        if is_loopback(name) and (port is None or (given_port or 80) == port):
            return None
    where = f"http://127.0.0.1:{port}/" if port is not None else "http://127.0.0.1:PORT/"
    return (
        f"Host '{value}' is not this server's address: it answers only loopback names "
        f"(127.0.0.1, localhost, [::1]) with its own port, so that a web page of another site "
        f"(DNS rebinding) cannot reach it. Open {where} instead; to serve other names, listen "
        "beyond loopback with --token-file FILE (the token then protects it)"
    )


def same_origin(origin: str, request: web.Request) -> bool:
    """Whether ``origin`` is the origin of the address the request was sent to (scheme, host
    and port, as the browser puts them in Origin)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return (
        parts.scheme == request.scheme
        and parts.netloc.lower() == request.headers.get("Host", "").lower()
        and parts.path in ("", "/")
        and not parts.query
    )


def origin_problem(request: web.Request) -> str | None:
    """Why a write's Origin is refused (None: no Origin, a script's; or this server's own)."""
    origin = request.headers.get("Origin")
    if origin is None or same_origin(origin, request):
        return None
    own = f"{request.scheme}://{request.headers.get('Host', '')}"
    if origin == "null":
        why = "Origin null (a sandboxed frame, a file: or data: page) is never this server's"
    else:
        why = f"Origin {origin} is not this server's ({own})"
    return (
        f"cross-origin request refused: {why}; actions come from this server's own dashboard "
        "page, or from the CLI and scripts (which send no Origin)"
    )


def is_json_type(content_type: str) -> bool:
    """Whether a Content-Type's media type is JSON (``application/json``, ``application/*+json``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def body_problem(request: web.Request) -> str | None:
    """Why a write's body is refused (415): a text/plain or form Content-Type (even with no body),
    or a body that is not declared JSON."""
    content_type = request.headers.get("Content-Type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media in SIMPLE_BODY_TYPES:
        return (
            f"a {media} request body is refused: send JSON with 'Content-Type: application/json' "
            f"(any web page can send {media} to any address; JSON it cannot without our consent)"
        )
    if request.body_exists and not is_json_type(content_type):
        return (
            f"the request has a body with Content-Type '{content_type or '(none)'}': send JSON with "
            "'Content-Type: application/json'"
        )
    return None


def write_problem(request: web.Request, *, check_origin: bool = True) -> tuple[int, str] | None:
    """(status, message) when a write must be refused: 403 for a foreign or null Origin (unless
    ``check_origin`` is false: the request carried the bearer token, which no page can add), 415
    for a body that is not JSON; None for reads and acceptable writes."""
    if request.method not in WRITES:
        return None
    if check_origin:
        problem = origin_problem(request)
        if problem is not None:
            return 403, problem
    problem = body_problem(request)
    if problem is not None:
        return 415, problem
    return None
