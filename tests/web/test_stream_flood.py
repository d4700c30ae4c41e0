"""An SSE flood: a client that opens event streams without end gets 503 past the cap, the streams
already open go on, the server answers everything else, and a closed stream frees its place."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from harness.serverharness import ServerProcess

CAP = 5


def open_stream(port: int, path: str) -> tuple[socket.socket, int, bytes]:
    """Open a GET stream and read its head: (the socket, the status, what came after the head)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"{path}: closed before a head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, int(head.split()[1]), rest


def test_a_stream_flood_is_capped_and_the_server_keeps_answering(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "state", env={"PYROLLOUTS_MAX_STREAMS": str(CAP)})
    streams: list[socket.socket] = []
    try:
        paths = ["/api/watch", "/api/v1/rollouts/default/info/watch"]
        for i in range(CAP):
            s, status, _ = open_stream(srv.port, paths[i % 2])
            assert status == 200, (i, status)
            streams.append(s)
        # Past the cap, on either face of the server: 503, with the way out.
        for path in paths:
            s, status, rest = open_stream(srv.port, path)
            body = rest
            while len(body) < 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
            s.close()
            assert status == 503, (path, status)
            assert "PYROLLOUTS_MAX_STREAMS" in body.decode(errors="replace"), body
        # Everything else still answers.
        assert srv.http("GET", "/api/version")
        # A closed stream frees its place (the server notices the close on its next write or
        # keep-alive tick, so wait for it with a generous limit).
        streams.pop().close()
        deadline = time.monotonic() + 60
        while True:
            s, status, _ = open_stream(srv.port, "/api/watch")
            if status == 200:
                streams.append(s)
                break
            s.close()
            assert time.monotonic() < deadline, "a closed stream never freed its place"
            time.sleep(0.5)
        print(f"stream cap {CAP}: the next was refused 503; a closed stream freed its place")
    finally:
        for s in streams:
            s.close()
        srv.stop()
