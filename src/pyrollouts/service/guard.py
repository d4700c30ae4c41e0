"""The request checks shared by every HTTP face of pyrollouts: the local server (its API and the
dashboard on it), the relay of ``rollouts dashboard`` and the standalone dashboard (docs/security.md).

- :func:`host_problem`: on loopback, only a request whose ``Host`` is a loopback name or address
  with the port it arrived on is answered. After DNS rebinding a page of ``evil.example`` reaches
  127.0.0.1 with ``Host: evil.example``; refusing that Host is what keeps the page out (its Origin
  then matches its Host, so an Origin check alone lets it through).
- :func:`write_problem`: a write's ``Origin``, when there is one, must be this server's own
  (``null`` never is), and its body must be JSON: ``text/plain`` and form bodies are what a page may
  send anywhere without a CORS preflight, so none of them reaches an action.
- :func:`peer_problem`: on loopback without a token, only the user who runs the server (or root)
  is answered; other users of the machine reach loopback too (Linux: the connecting socket's owner
  is read from /proc/net/tcp and /proc/net/tcp6).
- :func:`loopback_problem`: the Host and peer checks together, for a server that answers loopback (the
  peer check only when it has no token).
- :func:`token_matches`, :func:`bearer`: the one constant-time token comparison.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import struct
from pathlib import Path
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


def bearer_matches(request: web.Request, token: str | None) -> bool:
    """Whether the request's ``Authorization: Bearer`` header carries ``token`` (never without one)."""
    return token is not None and token_matches(bearer(request), token)


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


#: Where Linux lists TCP sockets with their owners' uids (read when sock_diag is not available).
PROC_NET_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
#: Linux sock_diag (netlink): one exact socket lookup, microseconds (the /proc tables take
#: milliseconds per read on a machine with thousands of sockets).
_NETLINK_INET_DIAG, _SOCK_DIAG_BY_FAMILY, _NLMSG_ERROR, _NLM_F_REQUEST = 4, 20, 2, 1
_NO_COOKIE = 0xFFFFFFFF


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's IPv4 peer: its own end is an IPv4 socket
    return ip


def _diag_uid(peer: tuple[str, int], ours: tuple[str, int]) -> int | None:
    """The owner of the socket ``peer`` -> ``ours`` through sock_diag; None when there is none.
    Raises OSError when sock_diag cannot be used (not Linux, refused)."""
    src, dst = _ip(peer[0]), _ip(ours[0])
    if src is None or dst is None or src.version != dst.version:
        return None
    family = socket.AF_INET if src.version == 4 else socket.AF_INET6
    req = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
    req += struct.pack("!HH", peer[1], ours[1]) + src.packed.ljust(16, b"\0") + dst.packed.ljust(16, b"\0")
    req += struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    msg = struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + req
    netlink = getattr(socket, "AF_NETLINK", None)
    if netlink is None:
        raise OSError("no netlink on this platform")
    with socket.socket(netlink, socket.SOCK_DGRAM, _NETLINK_INET_DIAG) as nl:
        nl.settimeout(2)
        nl.sendto(msg, (0, 0))
        data = nl.recv(65536)
    if len(data) < 16:
        raise OSError("short sock_diag answer")
    (kind,) = struct.unpack_from("=H", data, 4)
    if kind == _NLMSG_ERROR:
        (errno,) = struct.unpack_from("=i", data, 16)
        if errno == -2:  # ENOENT: no such socket (the client is gone)
            return None
        raise OSError(-errno, "sock_diag refused the lookup")
    # inet_diag_msg: family, state, timer, retrans (4 bytes), the socket id (48), expires, rqueue,
    # wqueue (12), then the uid.
    if len(data) < 16 + 68:
        raise OSError("short sock_diag answer")
    (uid,) = struct.unpack_from("=I", data, 16 + 64)
    return int(uid)


def _proc_address(host: str, port: int) -> str | None:
    """An address as /proc/net/tcp{,6} writes it: the address's 32-bit words in the host's byte
    order, in hex, then ':' and the port in hex."""
    ip = _ip(host)
    if ip is None:
        return None
    count = 1 if ip.version == 4 else 4
    words = struct.unpack(f"={count}I", ip.packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def _proc_uid(peer: tuple[str, int], ours: tuple[str, int]) -> int | None:
    local, remote = _proc_address(*peer), _proc_address(*ours)
    if local is None or remote is None:
        return None
    for table in PROC_NET_TCP:
        try:
            text = table.read_text()
        except OSError:
            continue
        at = text.find(f" {local} {remote} ")
        if at < 0:
            continue
        fields = text[at : text.find("\n", at)].split()
        # local, remote, state, tx:rx queues, timer, retransmits, uid
        if len(fields) > 6 and fields[6].isdigit():
            return int(fields[6])
    return None


def peer_uid(sockname: tuple[str, int], peername: tuple[str, int]) -> int | None:
    """The uid owning the client end of a loopback TCP connection (the socket whose local address
    is the peer and remote address is ours): through sock_diag, else /proc/net/tcp{,6}; None when
    not known (not Linux, or the client already gone)."""
    peer, ours = (str(peername[0]), int(peername[1])), (str(sockname[0]), int(sockname[1]))
    try:
        return _diag_uid(peer, ours)
    except OSError:
        return _proc_uid(peer, ours)


def peer_problem(request: web.Request) -> str | None:
    """Why a loopback connection from another user of the machine is refused (None: the user
    running this process, root, a peer beyond loopback, or an owner that cannot be known)."""
    transport = request.transport
    if transport is None:
        return None
    sockname, peername = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
    if not (isinstance(sockname, tuple) and isinstance(peername, tuple)):
        return None  # a Unix socket, or gone
    if not is_loopback(str(peername[0]).removeprefix("::ffff:")):
        return None
    uid = peer_uid(sockname, peername)
    own = os.geteuid()
    if uid is None or uid in (own, 0):
        return None
    return (
        f"this server answers only its own user (uid {own}) on loopback, and this connection "
        f"comes from uid {uid}: another user of the machine. To share it, its owner starts it "
        "with --token-file FILE and gives you the token (docs/security.md)"
    )


def loopback_problem(request: web.Request, token: str | None) -> str | None:
    """Why a server that answers loopback clients refuses this request: a Host that is not a
    loopback name with its port (DNS rebinding), or, when the server has no token, a connection
    from another user of the machine (None: neither)."""
    problem = host_problem(request)
    if problem is None and token is None:
        problem = peer_problem(request)
    return problem


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


def write_problem(request: web.Request, token: str | None = None) -> tuple[int, str] | None:
    """(status, message) when a write must be refused: 403 for a foreign or null Origin (unless
    the request carries ``token`` as its bearer token, which no page can add), 415 for a body that
    is not JSON; None for reads and acceptable writes."""
    if request.method not in WRITES:
        return None
    if not bearer_matches(request, token):
        problem = origin_problem(request)
        if problem is not None:
            return 403, problem
    problem = body_problem(request)
    if problem is not None:
        return 415, problem
    return None
