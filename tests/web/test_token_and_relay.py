"""A server with a token (as when bound beyond loopback), and `rollouts dashboard` relaying to it."""

from __future__ import annotations

import http.cookiejar
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from webharness import deploy, web_server

from harness.serverharness import ServerProcess, free_port

TOKEN = "s3cret-dashboard-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A local server that requires TOKEN (overrides the plain one of conftest)."""
    s = web_server(tmp_path_factory.mktemp("webtok") / "state", token=TOKEN)
    try:
        yield s
    finally:
        s.stop()


def test_the_api_and_pages_need_the_token(server: ServerProcess) -> None:
    dep = deploy(server, "tok-a")
    r = server.request("GET", dep.api + "/info", auth=False)
    assert r.status == 401 and "token" in r.body["error"]
    r = server.request("PUT", dep.api + "/restart", {}, auth=False, headers={"Origin": server.url})
    assert r.status == 401
    # With the bearer token a write needs no Origin (a script, not a browser).
    r = server.request("PUT", dep.api + "/restart", {})
    assert r.status == 200, r.body
    # Pages: refused without the token; ?token= once sets a cookie that then opens every page.
    r = server.request("GET", f"/rollouts/{dep.ns}/{dep.name}", auth=False)
    assert r.status == 401 and "?token=" in str(r.body)
    run = f"{dep.ns}/{dep.name}/analysisruns/{dep.name}-x-2-pre"
    for path in (f"/rollouts/{run}", f"/ui/rollouts/{run}/stream"):
        r = server.request("GET", path, auth=False)
        assert r.status == 401 and "?token=" in str(r.body), (path, r.status)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{server.url}/rollouts/{dep.ns}/{dep.name}?token={TOKEN}", timeout=10) as resp:
        assert resp.status == 200 and resp.url.endswith(f"/rollouts/{dep.ns}/{dep.name}")
        html = resp.read().decode()
    assert 'id="phase"' in html and f'data-token="{TOKEN}"' in html
    with opener.open(f"{server.url}/rollouts/{dep.ns}", timeout=10) as resp:
        assert resp.status == 200
    try:  # with the cookie the run's page is reached: this run does not exist
        opener.open(f"{server.url}/rollouts/{run}", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404 and "not found" in exc.read().decode()
    else:
        raise AssertionError("a run that does not exist was found")
    try:
        urllib.request.urlopen(f"{server.url}/rollouts/{dep.ns}?token=wrong", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    else:
        raise AssertionError("a wrong token opened the page")


def _start_dashboard(server: ServerProcess, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    token_file = tmp_path / "cli-token"
    token_file.write_text(TOKEN)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyrollouts.cli.main",
            "--server",
            server.url,
            "--token-file",
            str(token_file),
            "dashboard",
            "-p",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/version", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"rollouts dashboard did not start: {proc.communicate()[0].decode()}")


def test_rollouts_dashboard_relays_with_the_clis_token(server: ServerProcess, tmp_path: Path) -> None:
    dep = deploy(server, "tok-relay")
    port = free_port()
    proc = _start_dashboard(server, tmp_path, port)
    relay = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(f"{relay}/rollouts/{dep.ns}/{dep.name}", timeout=10) as resp:
            html = resp.read().decode()
        # The page works without the token, and the relay does not reveal it.
        assert 'id="phase"' in html and TOKEN not in html
        with urllib.request.urlopen(f"{relay}/", timeout=10) as resp:
            assert resp.url == f"{relay}/rollouts/default"
        # A run's page is relayed too (this run does not exist: the server's 404 comes back).
        try:
            urllib.request.urlopen(f"{relay}/rollouts/{dep.ns}/{dep.name}/analysisruns/nope", timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404 and "analysisrun &#x27;nope&#x27;" in exc.read().decode()
        else:
            raise AssertionError("a run that does not exist was found")
        req = urllib.request.Request(f"{relay}{dep.api}/restart", data=b"{}", method="PUT")
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
        else:
            raise AssertionError("a write without Origin went through the relay")
        req = urllib.request.Request(
            f"{relay}{dep.api}/restart",
            data=b"{}",
            method="PUT",
            headers={"Origin": relay, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        # Only the dashboard is relayed: not the server's own API.
        for path in ("/api/shutdown", f"/api/rollouts/{dep.ns}/{dep.name}/info"):
            try:
                urllib.request.urlopen(urllib.request.Request(f"{relay}{path}", data=b"{}"), timeout=10)
            except urllib.error.HTTPError as exc:
                assert exc.code in (403, 404), path
            else:
                raise AssertionError(f"{path} was relayed")
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert f"http://127.0.0.1:{port}/" in out
