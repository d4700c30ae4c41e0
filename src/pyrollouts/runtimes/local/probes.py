"""Container probes (startup, readiness, liveness) with Kubernetes' handlers and timing.

Handlers: httpGet (success is a status in [200, 400)), tcpSocket (a connection opens) and exec (the
command exits 0), each bounded by timeoutSeconds. Timing: the first check runs initialDelaySeconds
after the container started, then one every periodSeconds; the result flips to success after
successThreshold consecutive successes and to failure after failureThreshold consecutive failures.
Defaults are Kubernetes': period 10 s, timeout 1 s, success 1, failure 3, delay 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .ports import POD_IP


@dataclass(frozen=True)
class ProbeTiming:
    """A probe's timing fields with Kubernetes' defaults applied."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Mapping[str, Any]) -> ProbeTiming:
        """The timing of a probe spec (Kubernetes' defaults for what it leaves out)."""

        def num(key: str, default: float, minimum: float) -> float:
            value = probe.get(key)
            return max(minimum, float(value)) if isinstance(value, int | float) else default

        return cls(
            initial_delay=num("initialDelaySeconds", 0.0, 0.0),
            period=num("periodSeconds", 10.0, 1.0),
            timeout=num("timeoutSeconds", 1.0, 1.0),
            success_threshold=int(num("successThreshold", 1, 1)),
            failure_threshold=int(num("failureThreshold", 3, 1)),
        )


def _port(value: Any, ports: Mapping[int | str, int]) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if value in ports:
        return ports[value]
    if isinstance(value, int):
        return value
    raise ValueError(f"port {value!r} is not a port of this pod")


async def check_http(get: Mapping[str, Any], port: int, timeout: float) -> tuple[bool, str]:
    """One httpGet check against 127.0.0.1 at ``port`` (the container port's host port)."""
    path = str(get.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    scheme = str(get.get("scheme") or "HTTP").upper()
    url = f"{scheme.lower()}://{POD_IP}:{port}{path}"
    ctx: ssl.SSLContext | None = None
    if scheme == "HTTPS":
        # Like the kubelet: HTTPS probes do not verify the certificate.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    headers = {
        "Host": f"{POD_IP}:{port}",
        "User-Agent": "pyrollouts-probe/1.0",
        "Accept": "*/*",
        "Connection": "close",
    }
    for h in get.get("httpHeaders") or []:
        if h.get("name"):
            headers[str(h["name"])] = str(h.get("value", ""))
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(POD_IP, port, ssl=ctx)
            writer.write(request.encode("latin-1"))
            await writer.drain()
            line = await reader.readline()
        parts = line.decode("latin-1").split(" ", 2)
        code = int(parts[1])
    except TimeoutError:
        return False, f'Get "{url}": context deadline exceeded (timeout {timeout:g}s)'
    except (OSError, ValueError, IndexError) as e:
        return False, f'Get "{url}": {e}'
    finally:
        if writer is not None:
            writer.close()
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def check_tcp(port: int, timeout: float) -> tuple[bool, str]:
    """One tcpSocket check: a connection to 127.0.0.1 at ``port`` (the container port's host port)
    opens."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(POD_IP, port)
        writer.close()
        return True, ""
    except TimeoutError:
        return False, f"dial tcp {POD_IP}:{port}: i/o timeout"
    except OSError as e:
        return False, f"dial tcp {POD_IP}:{port}: {e.strerror or e}"


async def check_exec(
    ex: Mapping[str, Any], env: Mapping[str, str], cwd: str | None, timeout: float
) -> tuple[bool, str]:
    """One exec check: the command (an argument list, no shell) exits 0 within the timeout."""
    argv = [str(w) for w in ex.get("command") or []]
    if not argv:
        return False, "exec probe has no command"
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as e:
        return False, f"exec {argv[0]}: {e.strerror or e}"
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return False, f"command timed out after {timeout:g}s"
    if proc.returncode == 0:
        return True, ""
    text = out.decode(errors="replace").strip()[-200:]
    return False, f"command exited {proc.returncode}" + (f": {text}" if text else "")


async def check(
    probe: Mapping[str, Any], ports: Mapping[int | str, int], env: Mapping[str, str], cwd: str | None = None
) -> tuple[bool, str]:
    """Run a probe's handler once: (success, message on failure)."""
    timeout = ProbeTiming.of(probe).timeout
    for key in ("httpGet", "tcpSocket"):
        handler = probe.get(key)
        if not isinstance(handler, dict):
            continue
        try:
            port = _port(handler.get("port"), ports)
        except ValueError as e:
            return False, str(e)
        if key == "httpGet":
            return await check_http(handler, port, timeout)
        return await check_tcp(port, timeout)
    if isinstance(probe.get("exec"), dict):
        return await check_exec(probe["exec"], env, cwd, timeout)
    return False, "probe has no httpGet, tcpSocket or exec handler"


class ProbeWorker:
    """Runs one probe of one container from its start, reporting each change of its result.

    ``result`` starts as ``initial`` (Kubernetes: failure for readiness, success for liveness and
    startup) and changes only when a threshold is met; ``on_change(result, message)`` is awaited on
    every change."""

    def __init__(
        self,
        kind: str,
        probe: Mapping[str, Any],
        ports: Mapping[int | str, int],
        env: Mapping[str, str],
        on_change: Callable[[bool, str], Awaitable[None]],
        *,
        initial: bool,
        cwd: str | None = None,
        skip_delay: bool = False,
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.timing = ProbeTiming.of(probe)
        self.ports = ports
        self.env = env
        self.cwd = cwd
        self.on_change = on_change
        self.result = initial
        self.skip_delay = skip_delay
        self.successes = 0
        self.failures = 0

    async def run(self) -> None:
        """Probe until cancelled."""
        loop = asyncio.get_running_loop()
        if not self.skip_delay and self.timing.initial_delay:
            await asyncio.sleep(self.timing.initial_delay)
        next_at = loop.time()
        while True:
            ok, message = await check(self.probe, self.ports, self.env, self.cwd)
            if ok:
                self.successes += 1
                self.failures = 0
                if (
                    not self.result or self.kind == "Startup"
                ) and self.successes >= self.timing.success_threshold:
                    self.result = True
                    await self.on_change(True, "")
                    if self.kind == "Startup":
                        return  # a startup probe stops once it succeeded
            else:
                self.failures += 1
                self.successes = 0
                failed = f"{self.kind} probe failed: {message}"
                if self.kind == "Startup":
                    if self.failures >= self.timing.failure_threshold:
                        self.result = False
                        await self.on_change(False, failed)
                        return
                elif self.result and self.failures >= self.timing.failure_threshold:
                    self.result = False
                    await self.on_change(False, failed)
                elif not self.result and self.failures == 1 and self.kind == "Readiness":
                    # Not ready yet: say why (once per failing streak).
                    await self.on_change(False, failed)
            next_at += self.timing.period
            # Like a ticker: periods missed while the loop was busy are skipped, never bunched up
            # (two quick failures must not count as two periods).
            while next_at <= loop.time():
                next_at += self.timing.period
            await asyncio.sleep(next_at - loop.time())


def environ_for_exec(env: Mapping[str, str]) -> dict[str, str]:
    """The environment an exec probe runs with: the container's, plus PATH when it has none."""
    out = dict(env)
    out.setdefault("PATH", os.environ.get("PATH", os.defpath))
    return out
