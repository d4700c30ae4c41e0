"""Attacks on the proxy process, each with the answer it must get (issue 11, item 4).

The proxy runs as its own process (started by ProxyManager, as the server starts it); its limits are
set through the PYROLLOUTS_PROXY_* environment it inherits, small here so that each attack takes
seconds. Traffic goes to 127.0.0.1 only and every attack is bounded in connections, bytes and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from test_proxy import Backend, free_port, table

from pyrollouts.runtimes.local.proxymanager import ProxyError, ProxyManager

pytestmark = pytest.mark.timeout(180)

# Small limits, so that each attack is quick; the defaults are in docs/local-runtime.md.
LIMITS = {
    "PYROLLOUTS_PROXY_MAX_HEAD_BYTES": "16384",
    "PYROLLOUTS_PROXY_MAX_HEADERS": "50",
    "PYROLLOUTS_PROXY_HEADER_TIMEOUT": "1",
    "PYROLLOUTS_PROXY_IDLE_TIMEOUT": "1",
    "PYROLLOUTS_PROXY_UPSTREAM_TIMEOUT": "1",
    "PYROLLOUTS_PROXY_MAX_CONNECTIONS": "60",
}


@pytest.fixture
def state_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="pxl", dir="/tmp"))
    yield d
    ProxyManager(d).stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def limited(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ProxyManager, int]]:
    """The proxy process with LIMITS, routing one port to a Backend; yields (manager, port)."""
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)
    backend = await Backend("A").start()
    m = ProxyManager(state_dir)
    await m.ensure_running()
    port = free_port()
    await m.push(table(1, port, [("a-1", "aaa", backend.port, True)]))
    yield m, port
    await m.aclose()
    m.stop()
    await backend.stop()


async def exchange(port: int, data: bytes, *, idle: float = 10.0, more: bytes = b"") -> tuple[bytes, bool]:
    """Send bytes (and ``more`` bytes 0.3 s later, if given; read from 0.6 s on then), then read
    until the proxy closes or is silent for ``idle`` seconds. Returns (what came back, whether
    the proxy closed the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = b""
    closed = False
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        if more:
            await asyncio.sleep(0.3)
            writer.write(more)
            await asyncio.sleep(0.3)
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), idle)
            if not chunk:
                closed = True
                break
            out += chunk
    except TimeoutError:
        pass
    except ConnectionError:
        closed = True
    finally:
        writer.close()
    return out, closed


async def ok(port: int) -> bool:
    """A plain request still gets its 200 (the proxy is not stuck)."""
    out, _ = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    return out.startswith(b"HTTP/1.1 200 ") and b"A GET" in out


async def test_oversized_head_is_431_and_closed(limited: tuple[ProxyManager, int]) -> None:
    _, port = limited
    # One header larger than the whole head may be, complete ...
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n"
    out, closed = await exchange(port, big)
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), out[:200]
    assert closed and b"16384 bytes" in out
    # ... never finished (the head keeps coming: the proxy must not keep buffering it) ...
    out, closed = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 40_000)
    assert out.startswith(b"HTTP/1.1 431 "), out[:200]
    assert closed
    # ... a long URL ...
    out, closed = await exchange(port, b"GET /" + b"u" * 20_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ") and closed, out[:200]
    # ... and an oversized head pipelined behind a good request: the good one is answered first.
    out, closed = await exchange(port, b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + big)
    assert out.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 431 " in out and closed, out[:400]
    # A client still sending after the proxy has answered (and reading only then) gets the answers:
    # the proxy must not close with the client's bytes unread, which resets the connection, and a
    # reset overtakes the answers not yet read (asyncio's reader raises instead; CI lost a 431 so).
    for data in (big, b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + big):
        out, closed = await exchange(port, data, more=b"x" * 10_000)
        assert b"HTTP/1.1 431 " in out and out.count(b"HTTP/1.1 ") == data.count(b"HTTP/1.1"), out
        assert closed
    # A head under the limit (aiohttp, the endpoint, takes 8 KiB), a body larger than the head
    # limit, then a second request in the same writes: fine (a body does not count as head).
    near = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\nX-Near: " + b"n" * 6_000 + b"\r\n\r\n"
    out, _ = await exchange(
        port, near + b"x" * 100_000 + b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 200 ") and b"A POST len=100000" in out, out[:300]
    assert out.count(b"HTTP/1.1 200 ") == 2
    assert await ok(port)


async def test_too_many_headers_is_431(limited: tuple[ProxyManager, int]) -> None:
    _, port = limited
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    out, closed = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), out[:200]
    assert closed and b"61 header fields, more than 50" in out
    fine = b"".join(b"X-H%d: v\r\n" % i for i in range(40))
    out, _ = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + fine + b"\r\n")
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]


async def test_slow_head_is_closed_by_the_deadline(limited: tuple[ProxyManager, int]) -> None:
    """Slowloris: a head dripped a few bytes at a time never completes; the deadline for the whole
    head (1 s here) ends it with a 408, although bytes keep arriving."""
    _, port = limited
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
    closed_after = None
    out = b""
    try:
        for i in range(300):  # at most 60 s of dripping
            writer.write(b"X-%d: y\r\n" % i)
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.2)
            except TimeoutError:
                continue
            out += chunk
            if not chunk:
                closed_after = time.monotonic() - t0
                break
    except ConnectionError:
        closed_after = time.monotonic() - t0
    finally:
        writer.close()
    print(f"\nslow head closed after {closed_after} s (deadline 1 s)")
    assert closed_after is not None, "the proxy kept a dripping head open for 60 s"
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), out
    assert await ok(port)


async def test_idle_keepalive_connection_is_closed(limited: tuple[ProxyManager, int]) -> None:
    _, port = limited
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200 ")
    t0 = time.monotonic()
    with contextlib.suppress(ConnectionError):
        rest = await asyncio.wait_for(reader.read(), 30)  # the body, then EOF when closed
    idle = time.monotonic() - t0
    writer.close()
    print(f"\nidle keep-alive connection closed after {idle:.2f} s (timeout 1 s)")
    assert rest.startswith(b"A GET")
    # And a connection that never sends anything is idle too.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 30) == b""
    writer.close()


async def test_slow_upstream_is_504_and_the_connection_goes_on(limited: tuple[ProxyManager, int]) -> None:
    _, port = limited
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    writer.write(b"GET /slow?s=4 HTTP/1.1\r\nHost: a\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    took = time.monotonic() - t0
    print(f"\nslow upstream answered 504 after {took:.2f} s (timeout 1 s)")
    assert head.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n"), head
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    assert b"did not answer within 1" in body and b"my-app/super-hello-prod" in body, body
    # The client's connection is still usable.
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    rest = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert rest.startswith(b"HTTP/1.1 200 ") and b"A GET" in rest
    # Bytes that do not parse behind the slow request: its 504 still comes, then the 400.
    out, closed = await exchange(
        port, b"GET /slow?s=4 HTTP/1.1\r\nHost: a\r\n\r\n\x01garbage\r\n\r\n", idle=20
    )
    assert out.startswith(b"HTTP/1.1 504 ") and b"HTTP/1.1 400 Bad Request" in out and closed, out


P = b"POST / HTTP/1.1\r\nHost: a\r\n"
# Each is refused with a 400 and never reaches the endpoint (the Backend would answer "A ...").
SMUGGLING = {
    "CL.TE": P + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "TE.CL": P + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    "duplicate CL, different": P + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "duplicate CL, same": P + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "CL list": P + b"Content-Length: 5, 5\r\n\r\nhello",
    "CL sign": P + b"Content-Length: +5\r\n\r\nhello",
    "TE xchunked": P + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "TE chunked not last": P + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "TE twice": P + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    "TE space before colon": P + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "TE folded": P + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "TE vertical tab": P + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
    "TE NUL": P + b"Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n",
    "bare LF in head": b"POST / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\nhello",
    "bare LF after chunk size": P + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    "chunk size overflow": P + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n",
}


async def test_smuggling_variants_are_refused(limited: tuple[ProxyManager, int]) -> None:
    manager, port = limited
    for name, attack in SMUGGLING.items():
        out, closed = await exchange(port, attack, idle=5.0)
        assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (name, out[:300])
        assert out.count(b"HTTP/1.1 ") == 1 and b"A POST" not in out and closed, (name, out[:300])
    stats = await manager.stats()
    assert "my-app/super-hello-prod" not in stats["services"], stats  # nothing was forwarded
    # Accepted by the parser, and forwarded with one framing only (re-chunked): the endpoint reads
    # exactly the body the proxy read, and no second request.
    out, _ = await exchange(
        port,
        P + b"Transfer-Encoding: identity, chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    assert out.count(b"HTTP/1.1 200 ") == 2 and b"A POST len=5" in out and b"A GET" in out, out


async def test_forwarded_headers_are_set_by_the_proxy(limited: tuple[ProxyManager, int]) -> None:
    """A client cannot choose what the endpoint reads as its address, scheme or host."""
    manager, _ = limited
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    endpoint = await asyncio.start_server(handle, "127.0.0.1", 0)
    port2 = free_port()
    await manager.push(table(2, port2, [("e-1", "eee", endpoint.sockets[0].getsockname()[1], True)]))
    spoof = (
        b"GET / HTTP/1.1\r\nHost: shop.example:8080\r\nX-Forwarded-For: 6.6.6.6\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nx-forwarded-for: 7.7.7.7\r\n"
        b"Forwarded: for=1.2.3.4;proto=https\r\nConnection: close\r\n\r\n"
    )
    out, _ = await exchange(port2, spoof)
    endpoint.close()
    assert out.startswith(b"HTTP/1.1 200 "), out
    head = seen[0].lower()
    assert b"6.6.6.6" not in head and b"7.7.7.7" not in head and b"evil" not in head, head
    assert b"forwarded: for=1.2.3.4" not in head and b"https" not in head, head
    lines = seen[0].split(b"\r\n")
    assert b"X-Forwarded-For: 127.0.0.1" in lines, lines
    assert b"X-Forwarded-Proto: http" in lines, lines
    assert b"X-Forwarded-Host: shop.example:8080" in lines, lines
    assert b"Host: shop.example:8080" in lines, lines


async def test_connection_cap_answers_503_beyond_it(limited: tuple[ProxyManager, int]) -> None:
    manager, port = limited
    cap = int(LIMITS["PYROLLOUTS_PROXY_MAX_CONNECTIONS"])
    held: list[socket.socket] = []
    try:
        for _ in range(cap):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            # Keep each busy with an unfinished head (the idle timeout would close quiet ones).
            s.sendall(b"GET / HTTP/1.1\r\n")
            held.append(s)
        await asyncio.sleep(0.3)
        out, closed = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), out[:200]
        assert closed and b"connections" in out
        stats = await manager.stats()
        assert stats["refusedConnections"] >= 1, stats
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 30
    while not await ok(port):
        assert time.monotonic() < deadline, "the proxy did not serve again below its cap"
        await asyncio.sleep(0.1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def big_head_attack(port: int, connections: int, per_connection: int) -> int:
    """``connections`` connections each send ``per_connection`` bytes of one never-finished header
    (in 64 KiB writes, as fast as the proxy reads); returns how many were cut off by the proxy."""

    async def one() -> bool:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: ")
        piece = b"c" * 65536
        sent = 0
        try:
            while sent < per_connection:
                writer.write(piece)
                await asyncio.wait_for(writer.drain(), 30)
                sent += len(piece)
        except (ConnectionError, TimeoutError):
            return True
        finally:
            writer.close()
        return False

    return sum(await asyncio.gather(*(one() for _ in range(connections))))


async def attack_memory(
    manager: ProxyManager, port: int, connections: int, per_connection: int
) -> dict[str, float]:
    pid = manager.pid
    assert pid is not None
    assert await ok(port)
    before = rss_mb(pid)
    peak = before
    attack = asyncio.create_task(big_head_attack(port, connections, per_connection))
    while not attack.done():
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.05)
    cut = attack.result()
    # Wait (generously) until the proxy has let go of the attack's connections.
    deadline = time.monotonic() + 30
    while (await manager.stats())["activeConnections"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    after = rss_mb(pid)
    assert await ok(port)
    return {"before": before, "peak": peak, "after": after, "cut": cut}


async def test_memory_returns_after_a_big_head_attack(limited: tuple[ProxyManager, int]) -> None:
    """40 connections, 1 MiB of unfinished header each (40 MiB in all): each is cut off at the head
    limit, the proxy's memory stays bounded during the attack and returns near where it was."""
    manager, port = limited
    m = await attack_memory(manager, port, 40, 2**20)
    print(
        f"\nRSS before {m['before']:.1f} MB, peak {m['peak']:.1f} MB, after {m['after']:.1f} MB; "
        f"{m['cut']:.0f} of 40 connections cut off"
    )
    assert m["cut"] == 40
    assert m["peak"] < m["before"] + 40, m
    assert m["after"] < m["before"] + 10, m


@pytest.mark.soak
async def test_soak_repeated_big_head_attacks_stay_bounded(limited: tuple[ProxyManager, int]) -> None:
    """Ten rounds of 50 connections x 4 MiB (2 GB in all): memory stays bounded round after round."""
    manager, port = limited
    first = None
    for i in range(10):
        m = await attack_memory(manager, port, 50, 4 * 2**20)
        first = first or m["before"]
        print(f"\nround {i}: RSS before {m['before']:.1f} peak {m['peak']:.1f} after {m['after']:.1f} MB")
        assert m["cut"] == 50 and m["peak"] < first + 50 and m["after"] < first + 10, m


async def test_a_bad_limit_stops_the_proxy_with_a_message(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYROLLOUTS_PROXY_MAX_HEADERS", "lots")
    m = ProxyManager(state_dir)
    try:
        with pytest.raises(ProxyError, match=r"PYROLLOUTS_PROXY_MAX_HEADERS='lots' is not an integer"):
            await m.ensure_running()
    finally:
        await m.aclose()
    monkeypatch.setenv("PYROLLOUTS_PROXY_MAX_HEADERS", "0")
    m = ProxyManager(state_dir)
    try:
        with pytest.raises(ProxyError, match=r"PYROLLOUTS_PROXY_MAX_HEADERS='0' must be greater than 0"):
            await m.ensure_running()
    finally:
        await m.aclose()
