"""Helpers of the web tests: the seed's rollout deployed on a real `rollouts server` (which serves
the dashboard), and the dashboard's SSE streams.

The server is harness.serverharness.ServerProcess, started by :func:`web_server`; each
test deploys the seed's manifest (examples/super-hello.yaml) in a namespace of its own on free
Service ports, so tests do not collide.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.serverharness import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "super-hello.yaml"


def web_server(state_dir: Path, *, token: str | None = None) -> ServerProcess:
    """A started server for the web tests (``token``: the API and pages require it). A
    ``wait_for`` predicate that raises fails the test at once: the web tests' polls expect no
    error (an HTTP error from a Service port is a failure, not "not yet")."""
    return ServerProcess(state_dir, token=token, retry_on=())


@dataclass
class Deployed:
    """The seed's rollout in a namespace of its own, on its own Service ports."""

    server: ServerProcess
    ns: str
    prod: int
    preview: int
    name: str = "super-hello"

    @property
    def api(self) -> str:
        return f"/api/v1/rollouts/{self.ns}/{self.name}"

    @property
    def page(self) -> str:
        return f"{self.server.url}/rollouts/{self.ns}/{self.name}"

    def info(self) -> dict[str, Any]:
        return dict(self.server.ok("GET", self.api + "/info"))

    def revision_roles(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for rs in self.info()["replicaSets"]:
            roles = {r for r in ("stable", "active", "preview") if rs[r]}
            out.setdefault(rs["revision"], set()).update(roles)
        return out

    def wait_phase(self, phase: str, timeout: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            info = self.info()
            return info if info["status"] == phase else None

        return dict(self.server.wait_for(f"{self.ns}/{self.name} {phase}", check, timeout))

    def set_welcome(self, value: str) -> None:
        """A new revision: WELCOME=value (through the server's generic API, as the CLI does)."""
        self.server.ok(
            "POST",
            f"/api/rollouts/{self.ns}/{self.name}/set-env",
            {"container": "super-hello", "name": "WELCOME", "value": value},
        )

    def wait_paused_with_preview(self, revision: int) -> dict[str, Any]:
        """Wait for the blue-green pause with ``revision`` as preview (its pods ready)."""

        def check() -> dict[str, Any] | None:
            info = self.info()
            roles = {rs["revision"]: rs for rs in info["replicaSets"]}
            rs = roles.get(revision)
            if info["status"] == "Paused" and rs and rs["preview"] and rs["available"] == rs["replicas"]:
                return info
            return None

        return dict(self.server.wait_for(f"revision {revision} as preview", check))

    def prod_says(self) -> str:
        return get_text(self.prod)


def get_text(port: int) -> str:
    """GET / on a proxy port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return resp.read().decode().strip()


def deploy(
    server: ServerProcess, ns: str, *, replicas: int = 2, edit: Callable[[str], str] | None = None
) -> Deployed:
    """Apply the seed's manifest in ``ns`` on free ports and wait until it is Healthy. ``edit``:
    changes the manifest's text first (adds documents, fields of the Rollout)."""
    prod, preview = free_port(), free_port()
    text = EXAMPLE.read_text(encoding="utf-8").replace("my-app", ns)
    text = re.sub(r"(\bport:\s*)8088\b", rf"\g<1>{prod}", text)
    text = re.sub(r"(\bport:\s*)8089\b", rf"\g<1>{preview}", text)
    text = text.replace("replicas: 3", f"replicas: {replicas}")
    if edit is not None:
        text = edit(text)
    server.ok("POST", "/api/apply", {"text": text, "source": f"super-hello-{ns}.yaml"})
    dep = Deployed(server, ns, prod, preview)
    dep.wait_phase("Healthy")
    server.wait_for("prod answers V2", lambda: _try_text(prod) == "VERSION V2")
    return dep


def _try_text(port: int) -> str | None:
    try:
        return get_text(port)
    except OSError:
        return None


def sse_messages(
    url: str, headers: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[tuple[str, Any]]:
    """(event name, parsed data) of each message of an SSE stream, until ``timeout`` passes."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", u.path, headers=headers or {})
    resp = conn.getresponse()
    assert resp.status == 200, (resp.status, resp.read())
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    deadline = time.monotonic() + timeout
    event, data = "message", ""
    try:
        while time.monotonic() < deadline:
            line = resp.readline().decode()
            if not line:
                return
            line = line.rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if data:
                    yield event, json.loads(data)
                event, data = "message", ""
    finally:
        conn.close()
