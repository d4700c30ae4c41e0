"""HTTP attacks on the local server (its API, the dashboard's /api/v1 and pages), on the relay of
`rollouts dashboard`, and on the standalone dashboard application: what a web page in the user's
browser can send (a foreign Host after DNS rebinding, a foreign or ``null`` Origin, ``text/plain``
and form bodies, which need no CORS preflight), each with the exact answer it must get, and the
requests of the CLI, scripts and the dashboard page that must keep working (docs/security.md).

Every request goes to 127.0.0.1; the Host header is set by hand, as a browser sets it after DNS
rebinding (the name the page was loaded from, resolved to 127.0.0.1 by the attacker's DNS).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.serverharness import ServerProcess, free_port

WRITES = ("POST", "PUT", "PATCH", "DELETE")
TOKEN = "attack-suite-token"
#: The bodies a page may send cross-origin without a CORS preflight (plus none at all).
SIMPLE_TYPES = (
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
)


def send(
    port: int,
    method: str,
    path: str,
    *,
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, Any]:
    """One request to 127.0.0.1:``port`` with exactly these headers (``host``: the Host header,
    default ``127.0.0.1:port``); the status and the body (JSON when it is JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None or method in WRITES:
            conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
    finally:
        conn.close()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


#: Another user of the machine, and a Python it can run (the test's own lives under /root).
OTHER_UID = 65534
OTHER_PYTHON = "/usr/bin/python3"
_OTHER_CLIENT = """
import http.client, json, sys
port, method, path, headers, body = json.loads(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
conn.request(method, path, body=body.encode() if body is not None else None, headers=headers)
resp = conn.getresponse()
print(json.dumps([resp.status, resp.read().decode(errors="replace")]))
"""


def as_other_user(
    port: int, method: str, path: str, headers: Mapping[str, str] | None = None, body: str | None = None
) -> tuple[int, str]:
    """One request from another user of the machine (uid 65534, ``nobody``); (status, body text).
    Creating that user's process needs root, which the test environment is."""
    assert os.geteuid() == 0, "this test makes a process of another user: run it as root"
    out = subprocess.run(
        [OTHER_PYTHON, "-c", _OTHER_CLIENT, json.dumps([port, method, path, dict(headers or {}), body])],
        user=OTHER_UID,
        group=OTHER_UID,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, text = json.loads(out.stdout)
    return int(status), str(text)


def ns_manifest(ns: str) -> bytes:
    """What a page would post to /api/apply: one Namespace (nothing slow to create)."""
    text = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
    return json.dumps({"text": text, "source": "attack.yaml"}).encode()


def stored_namespace(server: ServerProcess, ns: str) -> bool:
    return server.request("GET", f"/api/namespaces/{ns}").status == 200


def error_text(body: Any) -> str:
    return str(body.get("error") if isinstance(body, dict) else body)


# ---- the server: Host ------------------------------------------------------------------------

#: Reads of every kind the server answers: its API, Argo's /api/v1, pages, static files.
READS = (
    "/api/version",
    "/api/rollouts",
    "/api/namespaces",
    "/api/v1/version",
    "/api/v1/namespace",
    "/api/openapi.json",
    "/rollouts/default",
    "/ui/static/dashboard.js",
)


def test_a_foreign_host_reads_nothing_from_the_server(server: ServerProcess) -> None:
    port = server.port
    foreign = (
        f"evil.example:{port}",  # DNS rebinding: the page's own name, resolved to 127.0.0.1
        "evil.example",
        f"localhost.evil.example:{port}",
        f"127.0.0.1.nip.io:{port}",
        f"10.1.2.3:{port}",
        "127.0.0.1:1",  # a loopback name, but another port: another origin's page
        f"localhost:{port + 1 if port < 65535 else 1}",
        "",
    )
    for path in READS:
        for host in foreign:
            status, body = send(port, "GET", path, host=host)
            assert status == 403, (path, host, status, body)
            assert isinstance(body, dict) and f"Host '{host}'" in body["error"], (path, host, body)
            assert f"http://127.0.0.1:{port}/" in body["error"], body  # says what to use instead
    # Streams too: refused before the first byte.
    for path in (
        "/api/watch",
        "/api/rollouts/default/victim/info/watch",
        "/api/v1/rollouts/default/info/watch",
        "/ui/rollouts/default/stream",
        "/ui/rollouts/default/victim/analysisruns/victim-x-1-pre/stream",
        "/rollouts/default/victim/analysisruns/victim-x-1-pre",
        "/api/pods/default/victim/logs?follow=1",
    ):
        status, body = send(port, "GET", path, host=f"evil.example:{port}")
        assert status == 403 and "Host" in error_text(body), (path, status, body)
    # The loopback names and addresses with the server's port are answered.
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"LocalHost:{port}",
        f"127.0.0.2:{port}",
        f"[::1]:{port}",
    ):
        for path in READS:
            status, body = send(port, "GET", path, host=host)
            assert status == 200, (path, host, status, body)


def test_dns_rebinding_cannot_apply_or_act(server: ServerProcess) -> None:
    """The defect of issue 11: a foreign Host with a matching Origin passed the same-origin check,
    and /api/apply created what the page sent (a container command would run)."""
    port = server.port
    evil = f"evil.example:{port}"
    origin = {"Origin": f"http://{evil}"}
    for ctype in ("text/plain", "application/json"):
        status, body = send(
            port,
            "POST",
            "/api/apply",
            host=evil,
            headers={**origin, "Content-Type": ctype},
            body=ns_manifest("rebound"),
        )
        assert status == 403 and f"Host '{evil}'" in error_text(body), (ctype, status, body)
    assert not stored_namespace(server, "rebound")
    json_type = {**origin, "Content-Type": "application/json"}
    for method, path in (
        ("POST", "/api/rollouts/default/victim/promote"),
        ("POST", "/api/debug/clock"),
        ("PUT", "/api/v1/rollouts/default/victim/promote"),
        ("POST", "/api/v1/rollouts/default/victim/abort"),
        ("DELETE", "/api/namespaces/default"),
        ("POST", "/api/shutdown"),
    ):
        status, body = send(port, method, path, host=evil, headers=json_type, body=b"{}")
        assert status == 403 and "Host" in error_text(body), (method, path, status, body)
    assert server.alive()


# ---- the server: bodies and Origin -----------------------------------------------------------


def test_text_plain_and_form_bodies_never_reach_an_action(server: ServerProcess) -> None:
    port = server.port
    same = {"Origin": server.url}
    for ctype in SIMPLE_TYPES:
        for headers in (same, {}):  # from our own page, or from a script without Origin
            h = {**headers, "Content-Type": ctype}
            status, body = send(port, "POST", "/api/apply", headers=h, body=ns_manifest("plain"))
            assert status == 415, (ctype, headers, status, body)
            assert "application/json" in error_text(body) and ctype.split(";")[0] in error_text(body)
            for method, path, payload in (
                ("POST", "/api/rollouts/default/victim/promote", b"{}"),
                ("POST", "/api/rollouts/default/victim/abort", b""),  # empty body: still refused
                ("PUT", "/api/v1/rollouts/default/victim/promote", b'{"full": true}'),
                ("PUT", "/api/v1/rollouts/default/victim/abort", b""),
                ("POST", "/api/debug/clock", b'{"advance": 1}'),
                ("PATCH", "/api/rollouts/default/victim", b'{"spec": {"paused": true}}'),
                ("POST", "/api/shutdown", b'{"all": true}'),
            ):
                status, body = send(port, method, path, headers=h, body=payload)
                assert status == 415, (ctype, method, path, status, body)
    # A body with no Content-Type at all (fetch with a Blob) is no JSON either.
    status, body = send(port, "POST", "/api/apply", headers=same, body=ns_manifest("plain"))
    assert status == 415 and "Content-Type" in error_text(body), (status, body)
    assert not stored_namespace(server, "plain")
    assert server.alive()


def test_foreign_and_null_origins_cannot_write(server: ServerProcess) -> None:
    port = server.port
    for origin in (
        "null",  # a sandboxed frame, a data: URL, a file:// page
        "http://evil.example",
        f"http://evil.example:{port}",
        f"http://localhost:{port}",  # another loopback name is another origin
        f"https://127.0.0.1:{port}",  # another scheme is another origin
        f"http://127.0.0.1:{port + 1 if port < 65535 else 1}",
    ):
        h = {"Origin": origin, "Content-Type": "application/json"}
        status, body = send(port, "POST", "/api/apply", headers=h, body=ns_manifest("crossed"))
        assert status == 403 and f"Origin {origin}" in error_text(body), (origin, status, body)
        status, body = send(port, "PUT", "/api/v1/rollouts/default/victim/restart", headers=h, body=b"{}")
        assert status == 403 and "Origin" in error_text(body), (origin, status, body)
    assert not stored_namespace(server, "crossed")


def test_the_cli_scripts_and_the_page_still_write(server: ServerProcess) -> None:
    port = server.port
    js = {"Content-Type": "application/json"}
    # A script: JSON, no Origin.
    status, body = send(port, "POST", "/api/apply", headers=js, body=ns_manifest("by-script"))
    assert status == 200, body
    # Our own page: JSON with its own Origin, under either loopback name it was opened with.
    status, body = send(
        port, "POST", "/api/apply", headers={**js, "Origin": server.url}, body=ns_manifest("by-page")
    )
    assert status == 200, body
    host = f"localhost:{port}"
    status, body = send(
        port,
        "POST",
        "/api/apply",
        host=host,
        headers={**js, "Origin": f"http://{host}"},
        body=ns_manifest("by-localhost"),
    )
    assert status == 200, body
    # A body-less write with no Content-Type (DELETE, a verb without options) is a script's.
    status, body = send(port, "DELETE", "/api/services/by-script/nothing")
    assert status == 404 and "nothing" in error_text(body), body  # reached the handler
    status, body = send(port, "POST", "/api/rollouts/default/victim/promote")
    assert status == 404 and "victim" in error_text(body), body  # reached the action
    # JSON with a charset, and a merge-patch type, are JSON.
    status, body = send(
        port,
        "PATCH",
        "/api/rollouts/default/victim",
        headers={"Content-Type": "application/merge-patch+json; charset=utf-8"},
        body=b"{}",
    )
    assert status == 404, body
    # The CLI.
    r = server.cli("version")
    assert r.code == 0, r
    r = server.cli("list", "rollouts", "-n", "by-page")
    assert r.code == 0, r


def test_other_users_of_the_machine_cannot_use_a_server_without_a_token(server: ServerProcess) -> None:
    port = server.port
    for method, path, body in (
        ("GET", "/api/version", None),
        ("GET", "/rollouts/default", None),
        ("GET", "/api/v1/namespace", None),
        ("POST", "/api/apply", ns_manifest("other-user").decode()),
    ):
        status, text = as_other_user(port, method, path, {"Content-Type": "application/json"}, body)
        refused = status == 403 and f"comes from uid {OTHER_UID}" in text and "--token-file" in text
        assert refused, (method, path, status, text)
    assert not stored_namespace(server, "other-user")


# ---- a server with a token, and the relay of `rollouts dashboard` ----------------------------


@pytest.fixture(scope="module")
def tok_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with TOKEN, from a token file other users may read (the server warns about it)."""
    base = tmp_path_factory.mktemp("attacktok")
    token_file = base / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    s = ServerProcess(base / "state", token_file=token_file, retry_on=())
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def relay(tok_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`rollouts dashboard` relaying to ``tok_server`` with the CLI's token; its port."""
    token_file = tmp_path_factory.mktemp("attackcli") / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyrollouts.cli.main",
            "--server",
            tok_server.url,
            "--token-file",
            str(token_file),
            "dashboard",
            "-p",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/version", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(
                        f"rollouts dashboard did not start: {proc.communicate()[0]!r}"
                    ) from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_a_token_on_loopback_does_not_lift_the_host_check(tok_server: ServerProcess) -> None:
    port = tok_server.port
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body = send(port, "GET", "/api/version", host=f"evil.example:{port}", headers=auth)
    assert status == 403 and "Host" in error_text(body), (status, body)
    status, body = send(port, "GET", "/api/version", headers=auth)
    assert status == 200, body
    assert "is readable by other users (mode 644)" in tok_server.log_text(), tok_server.log_tail()
    # With the token a script's write needs no Origin, but still JSON.
    status, body = send(
        port, "POST", "/api/apply", headers={**auth, "Content-Type": "text/plain"}, body=ns_manifest("tp")
    )
    assert status == 415, body


def test_a_shared_token_lets_another_user_in(tok_server: ServerProcess) -> None:
    """With a token the owner may share it: the token, not the user, decides."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, text = as_other_user(tok_server.port, "GET", "/api/version", auth)
    assert status == 200, text
    status, text = as_other_user(tok_server.port, "GET", "/api/version")
    assert status == 401, text


def test_the_relay_serves_only_the_user_who_started_it(relay: int) -> None:
    """The relay adds its user's token: another user of the machine gets nothing through it."""
    for method, path, headers in (
        ("GET", "/api/v1/version", {}),
        ("GET", "/rollouts/default", {}),
        (
            "PUT",
            "/api/v1/rollouts/default/victim/restart",
            {"Origin": f"http://127.0.0.1:{relay}", "Content-Type": "application/json"},
        ),
    ):
        status, text = as_other_user(relay, method, path, headers, "{}" if method == "PUT" else None)
        assert status == 403 and f"comes from uid {OTHER_UID}" in text, (method, path, status, text)


def test_the_relay_answers_only_its_own_host(relay: int, tok_server: ServerProcess) -> None:
    evil = f"evil.example:{relay}"
    for path in ("/api/v1/version", "/api/v1/namespace", "/rollouts/default", "/ui/static/dashboard.js", "/"):
        status, body = send(relay, "GET", path, host=evil)
        assert status == 403 and f"Host '{evil}'" in error_text(body), (path, status, body)
        assert f"http://127.0.0.1:{relay}/" in error_text(body)
    for host in (f"127.0.0.1:{relay}", f"localhost:{relay}"):
        status, body = send(relay, "GET", "/api/v1/version", host=host)
        assert status == 200, (host, status, body)
    # The token the relay adds never reaches a rebound page's write.
    h = {"Origin": f"http://{evil}", "Content-Type": "application/json"}
    for method, path in (
        ("PUT", "/api/v1/rollouts/default/victim/restart"),
        ("POST", "/api/v1/rollouts/default/victim/promote"),
    ):
        status, body = send(relay, method, path, host=evil, headers=h, body=b"{}")
        assert status == 403 and "Host" in error_text(body), (method, path, status, body)


def test_the_relay_refuses_null_foreign_origins_and_simple_bodies(relay: int) -> None:
    path = "/api/v1/rollouts/default/victim/restart"
    own = f"http://127.0.0.1:{relay}"
    for origin in ("null", "http://evil.example", f"http://localhost:{relay}", f"https://127.0.0.1:{relay}"):
        h = {"Origin": origin, "Content-Type": "application/json"}
        status, body = send(relay, "PUT", path, headers=h, body=b"{}")
        assert status == 403 and "Origin" in error_text(body), (origin, status, body)
    for ctype in SIMPLE_TYPES:
        for payload in (b"{}", b""):
            h = {"Origin": own, "Content-Type": ctype}
            status, body = send(relay, "PUT", path, headers=h, body=payload)
            assert status == 415 and "application/json" in error_text(body), (ctype, status, body)
    # The dashboard page's own write goes through (to the server, which says the rollout is not there).
    status, body = send(
        relay, "PUT", path, headers={"Origin": own, "Content-Type": "application/json"}, body=b"{}"
    )
    assert status == 404 and "victim" in error_text(body), (status, body)


# ---- the standalone dashboard application (`rollouts dashboard` on Kubernetes) ----------------


async def _standalone(tmp_path: Path, *, host_check: bool, token: str | None) -> tuple[Any, int]:
    from aiohttp import web

    from pyrollouts.controller.clock import Clock
    from pyrollouts.runtimes.local.cluster import LocalCluster
    from pyrollouts.runtimes.local.store import Store
    from pyrollouts.service.info import rollout_info
    from pyrollouts.web import dashboard_context, make_dashboard_app

    cluster = LocalCluster(Store(tmp_path / "state.db"))
    app = make_dashboard_app(
        dashboard_context(cluster, clock=Clock(), info=rollout_info, token=token), host_check=host_check
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def test_the_standalone_dashboard_checks_host_origin_and_bodies(tmp_path: Path) -> None:
    runner, port = await _standalone(tmp_path, host_check=True, token=None)
    try:
        evil = f"evil.example:{port}"
        status, body = await asyncio.to_thread(send, port, "GET", "/api/v1/version", host=evil)
        assert status == 403 and f"Host '{evil}'" in error_text(body), (status, body)
        status, body = await asyncio.to_thread(send, port, "GET", "/api/v1/version")
        assert status == 200, body
        path = "/api/v1/rollouts/default/victim/restart"
        h = {"Origin": f"http://{evil}", "Content-Type": "application/json"}
        status, body = await asyncio.to_thread(send, port, "PUT", path, host=evil, headers=h, body=b"{}")
        assert status == 403, body
        h = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "text/plain"}
        status, body = await asyncio.to_thread(send, port, "PUT", path, headers=h, body=b"{}")
        assert status == 415, body
        h = {"Origin": "null", "Content-Type": "application/json"}
        status, body = await asyncio.to_thread(send, port, "PUT", path, headers=h, body=b"{}")
        assert status == 403, body
        # It acts with its user's credentials (the kubeconfig's): another user gets nothing.
        status, text = await asyncio.to_thread(as_other_user, port, "GET", "/api/v1/version")
        assert status == 403 and f"comes from uid {OTHER_UID}" in text, (status, text)
    finally:
        await runner.cleanup()


async def test_beyond_loopback_the_token_guards_instead_of_the_host(tmp_path: Path) -> None:
    """Bound beyond loopback (the caller passes host_check=False, and a token is then required):
    any Host name reaches the app, and without the token nothing is answered."""
    runner, port = await _standalone(tmp_path, host_check=False, token=TOKEN)
    try:
        host = f"rollouts.internal.example:{port}"
        status, body = await asyncio.to_thread(send, port, "GET", "/api/v1/version", host=host)
        assert status == 401, body
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, body = await asyncio.to_thread(send, port, "GET", "/api/v1/version", host=host, headers=auth)
        assert status == 200, body
        h = {**auth, "Content-Type": "text/plain"}
        status, body = await asyncio.to_thread(
            send, port, "PUT", "/api/v1/rollouts/default/victim/restart", host=host, headers=h, body=b"{}"
        )
        assert status == 415, body
    finally:
        await runner.cleanup()


async def test_beyond_loopback_the_server_api_answers_any_host_with_the_token(tmp_path: Path) -> None:
    """The server's own API as LocalServer builds it when listening beyond loopback
    (host_check=False, token required): the token, not the Host, keeps others out."""
    from aiohttp import web

    from pyrollouts.controller.clock import Clock
    from pyrollouts.runtimes.local.cluster import LocalCluster
    from pyrollouts.runtimes.local.store import Store
    from pyrollouts.server.api import make_app

    cluster = LocalCluster(Store(tmp_path / "state.db"))
    app = make_app(cluster, admission=lambda objs: [], clock=Clock(), token=TOKEN, host_check=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        host = f"rollouts.internal.example:{port}"
        status, body = await asyncio.to_thread(send, port, "GET", "/api/version", host=host)
        assert status == 401, body
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, body = await asyncio.to_thread(send, port, "GET", "/api/version", host=host, headers=auth)
        assert status == 200, body
        h = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
        status, body = await asyncio.to_thread(
            send, port, "POST", "/api/apply", host=host, headers=h, body=ns_manifest("form")
        )
        assert status == 415, body
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("value", "port", "answered"),
    [
        ("127.0.0.1:7390", 7390, True),
        ("localhost:7390", 7390, True),
        ("LOCALHOST:7390", 7390, True),
        ("127.9.9.9:7390", 7390, True),
        ("[::1]:7390", 7390, True),
        ("localhost", 80, True),  # no port: 80
        ("localhost", 7390, False),
        ("[::1]", 7390, False),
        ("::1:7390", 7390, False),  # IPv6 without brackets is no Host
        ("127.0.0.1:7390:7390", 7390, False),
        ("127.0.0.1:+7390", 7390, False),
        ("127.0.0.1:\u0667390", 7390, False),  # a non-ASCII digit
        ("127.0.0.1 :7390", 7390, False),
        ("localhost.:7390", 7390, False),
        ("0x7f.1:7390", 7390, False),
        ("2130706433:7390", 7390, False),
        ("evil.example:7390", 7390, False),
        ("", 7390, False),
    ],
)
def test_which_hosts_are_loopback(value: str, port: int, answered: bool) -> None:
    from pyrollouts.service import guard

    parts = guard.split_host(value)
    ok = parts is not None and guard.is_loopback(parts[0]) and (parts[1] or 80) == port
    assert ok is answered, (value, parts)


def test_both_ways_of_finding_a_connections_user_agree() -> None:
    """sock_diag (netlink) and the /proc/net/tcp fallback name the same owner of a client socket:
    another user's, and this process's own."""
    from pyrollouts.service import guard

    assert os.geteuid() == 0, "this test makes a process of another user: run it as root"
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        client = f"import socket, sys; s = socket.create_connection(('127.0.0.1', {port})); sys.stdin.read()"
        proc = subprocess.Popen(
            [OTHER_PYTHON, "-c", client],
            user=OTHER_UID,
            group=OTHER_UID,
            extra_groups=[],
            cwd="/",
            stdin=subprocess.PIPE,
        )
        try:
            srv.settimeout(30)
            conn, peer = srv.accept()
            ours = conn.getsockname()
            assert guard._diag_uid(peer, ours) == OTHER_UID
            assert guard._proc_uid(peer, ours) == OTHER_UID
            assert guard.peer_uid(ours, peer) == OTHER_UID
            conn.close()
            with socket.create_connection(("127.0.0.1", port)) as mine:
                conn, peer = srv.accept()
                assert guard._diag_uid(peer, conn.getsockname()) == os.geteuid()
                assert guard._proc_uid(peer, conn.getsockname()) == os.geteuid()
                conn.close()
                assert mine
            # A connection that is not there has no owner.
            assert guard.peer_uid(("127.0.0.1", port), ("127.0.0.1", 1)) is None
        finally:
            proc.communicate(b"", timeout=30)
