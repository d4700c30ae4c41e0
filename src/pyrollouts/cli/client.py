"""The CLI's view of a server: the ``Backend`` seam and its HTTP implementation.

Every verb talks to a ``Backend`` only, so a Kubernetes backend (talking to the API server the way
``kubectl argo rollouts`` does) can be added beside ``HttpBackend`` without touching the verbs.
Only the standard library is used for HTTP: the CLI stays quick to start.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from ..model import kinds

DEFAULT_SERVER = "http://127.0.0.1:7390"

Obj = dict[str, Any]


def kind_of(word: str) -> kinds.Kind:
    """The kind the user named (``ro``, ``rollout``, ``rollouts``...); CliError listing them."""
    kind = kinds.client_kind(word)
    if kind is None:
        known = ", ".join(k.name.lower() for k in kinds.CLIENT_KINDS)
        raise CliError(f"unknown kind {word!r}: use one of {known}")
    return kind


def plural_of(word: str) -> str:
    """The API's plural for a kind the user named."""
    return kind_of(word).plural


@dataclass(frozen=True)
class LogRequest:
    """Which log of a pod ``Backend.logs`` reads: ``container`` (None: the only one), ``follow``
    (keep streaming), ``tail`` (the last lines only, None: all), ``previous`` (the run before the
    last restart)."""

    container: str | None
    follow: bool
    tail: int | None
    previous: bool = False


class CliError(Exception):
    """An error the CLI prints (``message``, then ``details``) before exiting with ``exit_code``."""

    def __init__(self, message: str, details: list[str] | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.exit_code = exit_code


class ServerUnreachable(CliError):
    """Nothing answers at the server address."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach a pyrollouts server at {url} ({reason})",
            [
                "start one with:  rollouts server --state-dir ~/.local/state/pyrollouts",
                "or point the CLI at a running one with --server URL (or ROLLOUTS_SERVER)",
            ],
        )


class ApiError(CliError):
    """The server answered with an error."""

    def __init__(self, status: int, message: str, details: list[str]) -> None:
        super().__init__(message, details)
        self.status = status


def _detail_text(d: Any) -> str:
    if isinstance(d, dict):
        return str(d.get("text") or d.get("problem") or json.dumps(d))
    return str(d)


class Backend(Protocol):
    """What the verbs need from wherever the rollouts live."""

    def version(self) -> Obj: ...

    def get(self, kind: str, namespace: str, name: str) -> Obj: ...

    def list(self, kind: str, namespace: str | None, labels: str | None = None) -> list[Obj]: ...

    def apply(self, text: str, source: str, namespace: str, *, create_only: bool) -> Obj: ...

    def delete(self, kind: str, namespace: str, name: str) -> None: ...

    def action(self, namespace: str, name: str, verb: str, body: Obj | None = None) -> Obj: ...

    def create(self, kind: str, namespace: str, obj: Obj) -> Obj: ...

    def run_action(self, namespace: str, name: str, verb: str) -> Obj: ...

    def info(self, namespace: str, name: str) -> Obj: ...

    def watch_info(self, namespace: str, name: str) -> Iterator[Obj]: ...

    def logs(self, namespace: str, pod: str, want: LogRequest) -> Iterator[bytes]: ...


@dataclass
class HttpBackend:
    """A pyrollouts server's HTTP API (docs/api.md)."""

    server: str = DEFAULT_SERVER
    token: str | None = None
    timeout: float = 30.0
    _parts: Any = field(init=False, repr=False)
    _streams: set[http.client.HTTPConnection] = field(init=False, repr=False, default_factory=set)

    def __post_init__(self) -> None:
        url = self.server if "://" in self.server else f"http://{self.server}"
        self._parts = urlsplit(url)
        if self._parts.scheme not in ("http", "https") or not self._parts.hostname:
            raise CliError(f"--server {self.server!r}: expected a URL such as {DEFAULT_SERVER}")
        self.server = url.rstrip("/")

    # -- plumbing --------------------------------------------------------------------------
    def _conn(self, timeout: float | None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        return cls(self._parts.hostname, self._parts.port, timeout=timeout)

    def _headers(self, body: bytes | None) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if body is not None:
            h["Content-Type"] = "application/json"
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def _open(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        target = path + (f"?{urlencode(q)}" if q else "")
        data = json.dumps(body).encode() if body is not None else None
        conn = self._conn(timeout)
        try:
            conn.request(method, target, body=data, headers=self._headers(data))
            resp = conn.getresponse()
        except (ConnectionRefusedError, socket.gaierror, TimeoutError, OSError) as exc:
            conn.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ServerUnreachable(self.server, reason) from None
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            try:
                payload = json.loads(raw)
                message = str(payload.get("error") or raw.decode(errors="replace"))
                details = [_detail_text(d) for d in payload.get("details") or []]
            except (json.JSONDecodeError, AttributeError):
                message, details = f"HTTP {resp.status}: {raw.decode(errors='replace')[:300]}", []
            raise ApiError(resp.status, message, details)
        return conn, resp

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        """One JSON request; raises ServerUnreachable or ApiError."""
        conn, resp = self._open(method, path, body, query, self.timeout)
        try:
            raw = resp.read()
        finally:
            conn.close()
        return json.loads(raw) if raw else None

    def sse(self, path: str, query: dict[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
        """Server-Sent Events from a stream route, as (event, data) until the server ends it."""
        conn, resp = self._open("GET", path, None, query, None)
        self._streams.add(conn)
        try:
            event, data_lines = "message", list[str]()
            while True:
                line = resp.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                if not text:
                    if data_lines:
                        yield event, json.loads("\n".join(data_lines))
                    event, data_lines = "message", []
                elif text.startswith(":"):
                    continue
                elif text.startswith("event:"):
                    event = text[6:].strip()
                elif text.startswith("data:"):
                    data_lines.append(text[5:].lstrip())
        except (OSError, ValueError, AttributeError):
            # close() from another thread ends the stream; a dropped server does too.
            return
        finally:
            self._streams.discard(conn)
            conn.close()

    def close(self) -> None:
        """End every open stream (watches), e.g. from the thread that started them."""
        for conn in list(self._streams):
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    # -- the Backend -----------------------------------------------------------------------
    def version(self) -> Obj:
        return dict(self.request("GET", "/api/version"))

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        plural = plural_of(kind)
        if plural == "namespaces":
            return dict(self.request("GET", f"/api/namespaces/{quote(name)}"))
        return dict(self.request("GET", f"/api/{plural}/{quote(namespace)}/{quote(name)}"))

    def list(self, kind: str, namespace: str | None, labels: str | None = None) -> list[Obj]:
        plural = plural_of(kind)
        out = self.request("GET", f"/api/{plural}", query={"namespace": namespace, "labelSelector": labels})
        return list(out.get("items") or [])

    def apply(self, text: str, source: str, namespace: str, *, create_only: bool) -> Obj:
        body = {"text": text, "source": source, "namespace": namespace, "createOnly": create_only}
        return dict(self.request("POST", "/api/apply", body))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        plural = plural_of(kind)
        self.request("DELETE", f"/api/{plural}/{quote(namespace)}/{quote(name)}")

    def action(self, namespace: str, name: str, verb: str, body: Obj | None = None) -> Obj:
        return dict(
            self.request("POST", f"/api/rollouts/{quote(namespace)}/{quote(name)}/{verb}", body or {})
        )

    def create(self, kind: str, namespace: str, obj: Obj) -> Obj:
        """Create one object (a ``metadata.generateName`` is completed by the server); the stored
        object. ApiError 409 when the name is taken, 422 when lint refuses it."""
        plural = plural_of(kind)
        return dict(self.request("POST", f"/api/{plural}", obj, query={"namespace": namespace}))

    def run_action(self, namespace: str, name: str, verb: str) -> Obj:
        """A verb on an AnalysisRun (terminate): {message, analysisRun}."""
        return dict(self.request("POST", f"/api/analysisruns/{quote(namespace)}/{quote(name)}/{verb}", {}))

    def info(self, namespace: str, name: str) -> Obj:
        return dict(self.request("GET", f"/api/rollouts/{quote(namespace)}/{quote(name)}/info"))

    def watch_info(self, namespace: str, name: str) -> Iterator[Obj]:
        for event, data in self.sse(f"/api/rollouts/{quote(namespace)}/{quote(name)}/info/watch"):
            if event == "info":
                yield data
            elif event == "deleted":
                raise CliError(f"rollout '{name}' was deleted from namespace '{namespace}'")

    def logs(self, namespace: str, pod: str, want: LogRequest) -> Iterator[bytes]:
        conn, resp = self._open(
            "GET",
            f"/api/pods/{quote(namespace)}/{quote(pod)}/logs",
            None,
            {
                "container": want.container,
                "follow": "1" if want.follow else None,
                "tail": want.tail,
                "previous": "1" if want.previous else None,
            },
            None if want.follow else self.timeout,
        )
        try:
            while True:
                chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                if not chunk:
                    return
                yield chunk
        finally:
            conn.close()

    def debug_clock(self, seconds: float) -> Obj:
        """Advance a --test-clock server's clock."""
        return dict(self.request("POST", "/api/debug/clock", {"advance": seconds}))

    def shutdown(self, everything: bool) -> None:
        """Ask the server to stop (with ``everything``, also its pods and proxy)."""
        self.request("POST", "/api/shutdown", {"all": everything})


def read_token(token_file: str | None) -> str | None:
    """The bearer token: --token-file's content, else ROLLOUTS_TOKEN, else none."""
    if token_file:
        try:
            tok = Path(token_file).expanduser().read_text().strip()
        except OSError as exc:
            raise CliError(f"--token-file {token_file}: cannot read it ({exc.strerror})") from None
        if not tok:
            raise CliError(f"--token-file {token_file}: the file is empty")
        return tok
    return os.environ.get("ROLLOUTS_TOKEN") or None
