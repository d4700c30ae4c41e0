"""The local kubelet: runs each Pod's containers as processes and reports their status on the Pod.

Per Pod: initContainers run to completion first (a failure retries with backoff), then every
container is a process (an argument list, never a shell) with the container's env (value and
fieldRef, ``$(VAR)`` expanded), ``PORT``/``PORT_<n>`` and ``HOSTNAME``; its output goes to
``<state-dir>/logs/<ns>/<pod>/<container>.log`` (rotated by size, removed with the Pod: see
logfiles.py). Probes decide readiness and liveness. A crashed process restarts after an exponential
backoff shown as CrashLoopBackOff. Deleting a Pod (or marking it with a deletionTimestamp) sends
SIGTERM to its processes, SIGKILL after the grace period, and then removes the Pod object.

Processes run in their own session so they outlive the server. Each one's pid and start time
(``/proc/<pid>/stat`` field 22) are recorded on its Pod, and its environment carries the state dir,
the Pod's uid and the container's name: a restarted server finds every live process this way,
re-adopts those that belong to a live Pod and stops the rest, so no process is ever duplicated or
orphaned.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...model.cluster import ClusterError, NotFound, Obj
from ...model.events import event
from ...model.timefmt import rfc3339_micro
from . import ports as portmap
from .imagemap import ImageMap
from .logfiles import LogFiles, LogPolicy
from .probes import ProbeWorker, environ_for_exec
from .store import Store, Subscription, now_rfc3339, random_suffix

log = logging.getLogger(__name__)

PROCESSES_ANNOTATION = "local.pyrollouts.io/processes"
ENV_STATE_DIR = "PYROLLOUTS_STATE_DIR"
ENV_POD_UID = "PYROLLOUTS_POD_UID"
ENV_POD = "PYROLLOUTS_POD"
ENV_CONTAINER = "PYROLLOUTS_CONTAINER"
DEFAULT_GRACE = 30.0
#: Pods whose runners start per turn of the event loop: a scale-up of hundreds (or a restart on a
#: store of hundreds) starts them a few at a time, and the API answers in between.
START_BATCH = 5
#: Variables of the server's environment a process inherits (a container gets a clean env; a
#: process still needs a PATH to find its programs).
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SYSTEMROOT",
    "VIRTUAL_ENV",
)
COMPONENT = "local-kubelet"
#: The umask of app processes: Kubernetes' usual 022, not the server's private 077.
APP_UMASK = 0o022


# ---- processes ----------------------------------------------------------------------------------


def spawn(argv: list[str], env: Mapping[str, str], cwd: str | None, out: Any) -> subprocess.Popen[bytes]:
    """Start an app's process as the runtime does for a container (a pod's or a Job's): its own
    session (the runtime stops it as a group), stdin from /dev/null, stdout and stderr into ``out``
    (a file or descriptor), no inherited descriptors, APP_UMASK."""
    return subprocess.Popen(
        argv,
        env=dict(env),
        cwd=cwd or None,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
        umask=APP_UMASK,
    )


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (the state) on, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="latin-1") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return data[data.rfind(")") + 2 :].split()


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None if
    it does not exist or has already exited (a zombie)."""
    rest = _proc_stat(pid)
    if not rest or rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def proc_session(pid: int) -> int | None:
    """The session id of a process (field 6), or None."""
    rest = _proc_stat(pid)
    return int(rest[3]) if rest is not None and len(rest) > 3 else None


def proc_alive(pid: int, start: int) -> bool:
    """True when the process with this pid is the one that started at ``start`` and still runs."""
    return start is not None and proc_start_time(pid) == start


def proc_environ(pid: int) -> dict[str, str] | None:
    """The environment a process was started with, or None if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    out: dict[str, str] = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


@dataclass(frozen=True)
class FoundProcess:
    """A live pod process found in /proc by its environment markers."""

    pid: int
    start: int
    pod_uid: str
    container: str


def find_pod_processes(state_dir: str | Path) -> list[FoundProcess]:
    """Every live process started for a Pod of this state dir (session leaders whose environment
    names the state dir; their own children are left to them)."""
    want = str(Path(state_dir).resolve())
    out: list[FoundProcess] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if proc_session(pid) != pid:
            continue
        env = proc_environ(pid)
        if not env or env.get(ENV_STATE_DIR) != want:
            continue
        start = proc_start_time(pid)
        if start is None:
            continue
        out.append(FoundProcess(pid, start, env.get(ENV_POD_UID, ""), env.get(ENV_CONTAINER, "")))
    return out


def kill_all_pod_processes(state_dir: str | Path) -> int:
    """SIGKILL every process group started for Pods of this state dir; returns how many (tests and
    `rollouts server --stop-all` use it)."""
    found = find_pod_processes(state_dir)
    for p in found:
        signal_group(p.pid, p.start, signal.SIGKILL)
    return len(found)


def signal_group(pid: int, start: int | None, sig: int) -> None:
    """Send a signal to a pod process's group (its session), only if it is still that process."""
    if start is not None and proc_start_time(pid) != start:
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


_detached: list[subprocess.Popen[bytes]] = []  # children left running by a stopped runtime


class Proc:
    """A running container process: one we started (``popen``) or one we re-adopted."""

    def __init__(self, pid: int, start: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.start = start
        self.popen = popen
        self.started_at = time.time()

    def alive(self) -> bool:
        return proc_alive(self.pid, self.start)

    async def wait(self) -> int | None:
        """Wait for the process to exit; its exit code (128+signal when killed), None if unknown
        (an adopted process that is not our child)."""
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            fd = -1
        except OSError:
            fd = -2  # no pidfd on this kernel: poll
        if fd >= 0:
            try:
                if self.alive():
                    done: asyncio.Future[None] = loop.create_future()

                    def exited() -> None:
                        if not done.done():
                            done.set_result(None)

                    loop.add_reader(fd, exited)
                    try:
                        await done
                    finally:
                        loop.remove_reader(fd)
            finally:
                os.close(fd)
        elif fd == -2:
            while self.alive():
                await asyncio.sleep(0.2)
        if self.popen is not None:
            # Our child: never block the loop in waitpid, even if the start time was unreadable.
            while self.popen.poll() is None:
                await asyncio.sleep(0.05)
        return self._reap()

    def _reap(self) -> int | None:
        code: int | None = None
        if self.popen is not None:
            code = self.popen.wait()
        else:
            try:
                wpid, status = os.waitpid(self.pid, os.WNOHANG)
                if wpid == self.pid:
                    code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                return None
        if code is not None and code < 0:
            code = 128 - code  # killed by a signal: report it as a shell would (137 for SIGKILL)
        return code

    def signal(self, sig: int) -> None:
        signal_group(self.pid, self.start, sig)

    def detach(self) -> None:
        """Leave the process running without us (the server stops; the app does not)."""
        if self.popen is not None:
            _detached.append(self.popen)


async def stop_process(proc: Proc, grace: float) -> int | None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; the exit code (if known)."""
    proc.signal(signal.SIGTERM)
    waiter = asyncio.ensure_future(proc.wait())
    try:
        return await asyncio.wait_for(asyncio.shield(waiter), timeout=max(0.0, grace))
    except TimeoutError:
        proc.signal(signal.SIGKILL)
        return await waiter


# ---- helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Restart backoff: ``base`` doubling per restart up to ``cap``; reset after a process ran
    ``reset_after`` seconds without crashing (Kubernetes: 10 s, 5 min, 10 min)."""

    base: float = 1.0
    cap: float = 300.0
    reset_after: float = 600.0

    def delay(self, crashes: int) -> float:
        """The wait before the restart that follows the n-th crash in a row (n >= 1)."""
        return float(min(self.cap, self.base * (2 ** max(0, crashes - 1))))


def precise_now() -> str:
    """RFC 3339 with microseconds (condition transition times; minReadySeconds needs better than
    whole seconds when it is short)."""
    return rfc3339_micro(datetime.now(UTC))


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp, or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables are replaced, ``$$`` is a literal ``$``,
    unknown references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_RE.sub(sub, value)


def field_ref(pod: Mapping[str, Any], path: str) -> str:
    """The value of a fieldRef fieldPath on the local runtime."""
    meta = pod.get("metadata") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "status.podIP": portmap.POD_IP,
        "status.hostIP": portmap.POD_IP,
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName", "local"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
    }
    return str(simple.get(path, ""))


def container_env(
    obj: Mapping[str, Any],
    c: Mapping[str, Any],
    state_dir: Path,
    runtime: Mapping[str, str],
    *,
    ns: str,
    name: str,
    uid: str,
) -> dict[str, str]:
    """The process environment of container ``c`` of ``obj`` (a Pod, or a Job run as one): the
    inherited variables, HOSTNAME, the ``runtime``'s own (ports, volumes), the container's ``env``
    in order (``$(VAR)`` expanded, fieldRefs read from ``obj``), then the PYROLLOUTS_* variables."""
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env["HOSTNAME"] = name
    env.update(runtime)
    for e in c.get("env") or []:
        var = str(e.get("name", ""))
        if not var:
            continue
        if "value" in e:
            env[var] = expand(str(e.get("value") if e.get("value") is not None else ""), env)
        elif isinstance((e.get("valueFrom") or {}).get("fieldRef"), dict):
            env[var] = field_ref(obj, str(e["valueFrom"]["fieldRef"].get("fieldPath", "")))
        else:
            env.setdefault(var, "")
    env[ENV_STATE_DIR] = str(state_dir.resolve())
    env[ENV_POD_UID] = uid
    env[ENV_POD] = f"{ns}/{name}"
    env[ENV_CONTAINER] = str(c.get("name"))
    return env


def record_event(
    store: Store, obj: Mapping[str, Any], type_: str, reason: str, message: str, component: str = COMPONENT
) -> None:
    """Store a Kubernetes Event about an object (errors are logged, never raised: an event must
    not stop the work it describes)."""
    meta = obj.get("metadata") or {}
    now = store.clock()
    ev = event(obj, type_, reason, message, component=component, now=now, name_suffix=random_suffix(10))
    try:
        store.create("Event", ev)
    except ClusterError as e:
        log.warning("could not record event %s on %s: %s", reason, meta.get("name"), e)


def _proc_records(pod: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PROCESSES_ANNOTATION)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        return {str(k): {"pid": int(v["pid"]), "start": int(v["start"])} for k, v in data.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


# ---- one container ------------------------------------------------------------------------------


@dataclass
class ContainerState:
    """What the Pod's containerStatuses say about one container."""

    name: str
    image: str
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    pid: int | None = None
    ever_started: bool = False

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.pid is not None:
            out["containerID"] = f"local://{self.pid}"
        return out


class PodRunner:
    """Runs one Pod: init containers, then the containers with their probes, restarts and status."""

    def __init__(self, sup: Supervisor, pod: Obj, adopted: dict[str, Proc]) -> None:
        self.sup = sup
        self.pod = pod
        meta = pod["metadata"]
        self.ns: str = meta.get("namespace") or "default"
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.spec: dict[str, Any] = pod.get("spec") or {}
        self.adopted = adopted
        self.procs: dict[str, Proc] = {}
        self.grace = float(self.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE))
        old = pod.get("status") or {}
        old_by_name = {s.get("name"): s for s in (old.get("containerStatuses") or [])}
        old_init = {s.get("name"): s for s in (old.get("initContainerStatuses") or [])}
        self.init_states = [
            self._state_from(c, old_init.get(c.get("name"))) for c in self.spec.get("initContainers") or []
        ]
        self.states = [
            self._state_from(c, old_by_name.get(c.get("name"))) for c in self.spec.get("containers") or []
        ]
        self.initialized = (
            any(
                c.get("type") == "Initialized" and c.get("status") == "True"
                for c in old.get("conditions") or []
            )
            or not self.init_states
            or any(c["name"] in adopted for c in self.spec.get("containers") or [])
        )
        self.conditions: dict[str, dict[str, Any]] = {
            c["type"]: c for c in old.get("conditions") or [] if isinstance(c, dict) and c.get("type")
        }
        self.start_time = old.get("startTime") or now_rfc3339()
        self.terminating = False
        self.deleted = False
        self.task: asyncio.Task[None] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.last_status: dict[str, Any] | None = old or None
        self.messages: dict[str, str] = {}

    @staticmethod
    def _state_from(c: Mapping[str, Any], old: Mapping[str, Any] | None) -> ContainerState:
        st = ContainerState(name=str(c.get("name")), image=str(c.get("image") or ""))
        if old:
            st.restart_count = int(old.get("restartCount") or 0)
            st.last_state = dict(old.get("lastState") or {})
            # Keep the last known readiness of a re-adopted process until its probes say otherwise,
            # so a server restart does not flap the endpoints.
            st.ready = bool(old.get("ready"))
            st.started = bool(old.get("started"))
            st.state = dict(old.get("state") or st.state)
            st.ever_started = "running" in st.state or st.restart_count > 0
        return st

    # -- paths and environment

    @property
    def log_dir(self) -> Path:
        return self.sup.state_dir / "logs" / self.ns / self.name

    @property
    def volume_dir(self) -> Path:
        return self.sup.state_dir / "volumes" / self.ns / self.name

    def env_for(self, c: Mapping[str, Any]) -> dict[str, str]:
        """The process environment of a container."""
        runtime = portmap.port_env(self.spec, c, portmap.recorded_ports(self.pod))
        for vm in c.get("volumeMounts") or []:
            runtime[f"VOLUME_{_env_name(str(vm.get('name')))}"] = str(self.volume_dir / str(vm.get("name")))
        return container_env(
            self.pod, c, self.sup.state_dir, runtime, ns=self.ns, name=self.name, uid=self.uid
        )

    def argv_for(self, c: Mapping[str, Any], env: Mapping[str, str]) -> list[str] | None:
        argv = self.sup.imagemap.argv(c)
        return None if argv is None else [expand(a, env) for a in argv]

    def spawn(self, c: Mapping[str, Any], *, rotate: bool) -> Proc:
        """Start a container's process; OSError/ValueError when it cannot start."""
        env = self.env_for(c)
        argv = self.argv_for(c, env)
        if argv is None:
            raise ValueError(
                f"image {c.get('image')} has no command: add `command:` to the container or "
                f"map the image in {self.sup.imagemap.where_to_map()}"
            )
        logfiles = self.sup.logfiles
        if rotate:
            # The previous run's output stays readable (`logs --previous`).
            logfiles.new_run(self.log_dir, str(c.get("name")))
        for vm in c.get("volumeMounts") or []:
            (self.volume_dir / str(vm.get("name"))).mkdir(parents=True, exist_ok=True)
        # The process writes to the file itself (O_APPEND: it goes on at the end after a
        # rotation's truncate), so it keeps logging while no server runs.
        out = logfiles.open_live(self.log_dir, str(c.get("name")))
        try:
            popen = spawn(argv, env, c.get("workingDir"), out)
        finally:
            os.close(out)
        start = proc_start_time(popen.pid)
        proc = Proc(popen.pid, start if start is not None else -1, popen)
        self.procs[str(c.get("name"))] = proc
        self.record_processes()
        return proc

    def record_processes(self) -> None:
        data = {name: {"pid": p.pid, "start": p.start} for name, p in self.procs.items()}
        if self.deleted:
            return
        try:
            self.pod = self.sup.store.patch(
                "Pod",
                self.ns,
                self.name,
                {
                    "metadata": {
                        "annotations": {PROCESSES_ANNOTATION: json.dumps(data, separators=(",", ":"))}
                    }
                },
            )
        except NotFound:
            pass

    # -- status

    def _condition(self, type_: str, ok: bool, reason: str | None = None, message: str | None = None) -> None:
        status = "True" if ok else "False"
        old = self.conditions.get(type_)
        cond: dict[str, Any] = {
            "type": type_,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": precise_now(),
        }
        if old and old.get("status") == status:
            cond["lastTransitionTime"] = old.get("lastTransitionTime")
        if reason and not ok:
            cond["reason"] = reason
        if message and not ok:
            cond["message"] = message
        self.conditions[type_] = cond

    def write_status(self) -> None:
        """Compute the Pod's status from its containers and write it if it changed."""
        if self.deleted:
            return
        containers_ready = all(s.ready for s in self.states) and bool(self.states)
        not_ready = [s.name for s in self.states if not s.ready]
        self._condition("PodScheduled", True)
        self._condition(
            "Initialized",
            self.initialized,
            "ContainersNotInitialized",
            "containers with incomplete status: "
            f"[{' '.join(s.name for s in self.init_states if 'terminated' not in s.state)}]",
        )
        msg = f"containers with unready status: [{' '.join(not_ready)}]"
        self._condition("ContainersReady", containers_ready, "ContainersNotReady", msg)
        if self.terminating:
            self._condition("Ready", False, "Terminating", "the pod is being deleted")
        else:
            self._condition("Ready", containers_ready and self.initialized, "ContainersNotReady", msg)
        phase = "Running" if self.initialized and all(s.ever_started for s in self.states) else "Pending"
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                self.conditions[t] for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "hostIP": portmap.POD_IP,
            "podIP": portmap.POD_IP,
            "podIPs": [{"ip": portmap.POD_IP}],
            "startTime": self.start_time,
            "containerStatuses": [s.wire() for s in self.states],
        }
        if self.init_states:
            status["initContainerStatuses"] = [s.wire() for s in self.init_states]
        if status == self.last_status:
            return
        try:
            self.pod = self.sup.store.update(
                "Pod",
                {"metadata": {"name": self.name, "namespace": self.ns}, "status": status},
                subresource="status",
            )
            self.last_status = status
        except NotFound:
            self.deleted = True

    def event(self, type_: str, reason: str, message: str) -> None:
        if not self.deleted:
            record_event(self.sup.store, self.pod, type_, reason, message)

    # -- lifecycle

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod {self.ns}/{self.name}")

    def ensure_ports(self) -> None:
        """Give a Pod created without host ports (not by the ReplicaSet controller) its ports."""
        annotations = (self.pod.get("metadata") or {}).get("annotations") or {}
        if portmap.PORTS_ANNOTATION in annotations:
            return
        labels = (self.pod.get("metadata") or {}).get("labels") or {}
        wanted = portmap.wanted_ports(self.spec, labels, self.sup.store.list("Service", self.ns))
        taken = portmap.used_host_ports(self.sup.store.list("Pod"))
        value = portmap.encode_ports(portmap.allocate(wanted, taken))
        with contextlib.suppress(NotFound):
            self.pod = self.sup.store.patch(
                "Pod", self.ns, self.name, {"metadata": {"annotations": {portmap.PORTS_ANNOTATION: value}}}
            )

    async def run(self) -> None:
        try:
            self.ensure_ports()
            self.write_status()
            if not self.initialized:
                for name, proc in list(self.adopted.items()):
                    if name in {c.get("name") for c in self.spec.get("initContainers") or []}:
                        # An init container caught mid-run by a server crash: its exit code is lost,
                        # so run it again (init containers must be idempotent, as on Kubernetes).
                        await stop_process(proc, 0)
                        del self.adopted[name]
                for i, c in enumerate(self.spec.get("initContainers") or []):
                    await self.run_init(c, self.init_states[i])
                self.initialized = True
                self.write_status()
            for i, c in enumerate(self.spec.get("containers") or []):
                self.tasks.append(asyncio.create_task(self.run_container(c, self.states[i])))
            await asyncio.gather(*self.tasks)
        except asyncio.CancelledError:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            raise
        except Exception:  # a bug must not kill the supervisor: say so on the Pod and in the log
            log.exception("pod %s/%s: runner failed", self.ns, self.name)
            raise

    async def run_init(self, c: Mapping[str, Any], st: ContainerState) -> None:
        crashes = 0
        code: int | None
        while True:
            st.state = {"waiting": {"reason": "PodInitializing"}}
            self.write_status()
            try:
                proc = self.spawn(c, rotate=st.restart_count > 0)
            except (OSError, ValueError) as e:
                code, reason, msg = 128, "StartError", str(e)
            else:
                st.pid = proc.pid
                st.state = {"running": {"startedAt": now_rfc3339()}}
                self.write_status()
                code = await proc.wait()
                self.procs.pop(str(c.get("name")), None)
                reason = "Completed" if code == 0 else "Error"
                msg = ""
                if code == 0:
                    st.state = {
                        "terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now_rfc3339()}
                    }
                    st.ready = True
                    self.write_status()
                    return
            crashes += 1
            st.restart_count += 1
            st.last_state = {
                "terminated": {
                    "exitCode": code if code is not None else -1,
                    "reason": reason,
                    "message": msg,
                    "finishedAt": now_rfc3339(),
                }
            }
            await self.back_off(c, st, crashes)

    async def back_off(self, c: Mapping[str, Any], st: ContainerState, crashes: int) -> None:
        delay = self.sup.backoff.delay(crashes)
        message = (
            f"back-off {delay:g}s restarting failed container={st.name} pod={self.name}_{self.ns}({self.uid})"
        )
        st.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        st.ready = False
        st.started = False
        st.pid = None
        self.write_status()
        self.event("Warning", "BackOff", f"Back-off restarting failed container {st.name} in pod {self.name}")
        await asyncio.sleep(delay)

    async def run_container(self, c: Mapping[str, Any], st: ContainerState) -> None:
        name = str(c.get("name"))
        crashes = 0
        adopted = self.adopted.pop(name, None)
        if adopted is None and st.state.get("running") is not None:
            # It ran when the server died and is gone now: that is a crash we did not see.
            st.restart_count += 1
            st.last_state = {
                "terminated": {
                    "exitCode": -1,
                    "reason": "Unknown",
                    "message": "the process exited while the server was down",
                    "finishedAt": now_rfc3339(),
                }
            }
            st.ready = False
        while True:
            if adopted is not None:
                proc, adopted = adopted, None
                self.procs[name] = proc
                self.record_processes()  # a no-op unless it was found by its environment only
                resumed = True
            else:
                resumed = False
                try:
                    proc = self.spawn(c, rotate=st.ever_started)
                except (OSError, ValueError) as e:
                    crashes += 1
                    st.ever_started = True
                    st.restart_count += 1
                    st.last_state = {
                        "terminated": {
                            "exitCode": 128,
                            "reason": "StartError",
                            "message": str(e),
                            "finishedAt": now_rfc3339(),
                        }
                    }
                    self.event("Warning", "Failed", f"Error: {e}")
                    await self.back_off(c, st, crashes)
                    continue
                st.ready = False
                st.started = False
                self.event("Normal", "Started", f"Started container {name}")
            st.ever_started = True
            st.pid = proc.pid
            if not resumed or "running" not in st.state:
                st.state = {"running": {"startedAt": now_rfc3339()}}
            env = self.env_for(c)
            kill = asyncio.Event()
            kill_reason: list[str] = []
            probes = self.start_probes(c, st, env, kill, kill_reason, resumed)
            self.write_status()
            waiter = asyncio.ensure_future(proc.wait())
            code: int | None
            killer = asyncio.ensure_future(kill.wait())
            try:
                await asyncio.wait({waiter, killer}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    grace = float(self.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE))
                    self.event("Normal", "Killing", f"Container {name} {kill_reason[0]}, will be restarted")
                    code = await stop_process(proc, grace)
                else:
                    code = waiter.result()
            finally:
                killer.cancel()
                for p in probes:
                    p.cancel()
                if not waiter.done():
                    waiter.cancel()
            self.procs.pop(name, None)
            ran = time.time() - proc.started_at
            crashes = 1 if ran >= self.sup.backoff.reset_after else crashes + 1
            st.restart_count += 1
            reason = "Completed" if code == 0 else ("Unknown" if code is None else "Error")
            st.last_state = {
                "terminated": {
                    "exitCode": code if code is not None else -1,
                    "reason": reason,
                    "startedAt": (st.state.get("running") or {}).get("startedAt"),
                    "finishedAt": now_rfc3339(),
                    "containerID": f"local://{proc.pid}",
                }
            }
            await self.back_off(c, st, crashes)

    def start_probes(
        self,
        c: Mapping[str, Any],
        st: ContainerState,
        env: Mapping[str, str],
        kill: asyncio.Event,
        kill_reason: list[str],
        resumed: bool,
    ) -> list[asyncio.Task[None]]:
        ports = portmap.pod_ports(self.pod)
        tasks: list[asyncio.Task[None]] = []
        exec_env = environ_for_exec(env)
        readiness = c.get("readinessProbe")
        liveness = c.get("livenessProbe")
        startup = c.get("startupProbe")

        async def on_ready(ok: bool, message: str) -> None:
            if ok != st.ready:
                st.ready = ok
                if not ok and message:
                    self.event("Warning", "Unhealthy", message)
                self.write_status()

        async def on_live(ok: bool, message: str) -> None:
            if not ok:
                self.event("Warning", "Unhealthy", message)
                kill_reason.append("failed liveness probe")
                kill.set()

        def after_startup() -> None:
            if readiness:
                tasks.append(
                    asyncio.create_task(
                        ProbeWorker(
                            "Readiness",
                            readiness,
                            ports,
                            exec_env,
                            on_ready,
                            initial=st.ready and resumed,
                            skip_delay=resumed,
                        ).run()
                    )
                )
            elif not st.ready:
                st.ready = True
            if liveness:
                tasks.append(
                    asyncio.create_task(
                        ProbeWorker(
                            "Liveness", liveness, ports, exec_env, on_live, initial=True, skip_delay=resumed
                        ).run()
                    )
                )

        if startup and not (resumed and st.started):
            st.started = False

            async def on_started(ok: bool, message: str) -> None:
                if ok:
                    st.started = True
                    after_startup()
                    self.write_status()
                else:
                    self.event("Warning", "Unhealthy", message)
                    kill_reason.append("failed startup probe")
                    kill.set()

            tasks.append(
                asyncio.create_task(
                    ProbeWorker("Startup", startup, ports, exec_env, on_started, initial=False).run()
                )
            )
        else:
            st.started = True
            after_startup()
        return tasks

    async def terminate(
        self, *, grace: float | None = None, delete_object: bool = True, force: bool = False
    ) -> None:
        """Stop the Pod: mark it not ready, SIGTERM its processes, SIGKILL after the grace period,
        then delete the Pod object (``delete_object``) and its emptyDir volumes. A second call is a
        no-op unless ``force`` (the server stopping takes over a termination it interrupted)."""
        if self.terminating and not force:
            return
        self.terminating = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        for st in self.states:
            st.ready = False
        self.write_status()
        limit = self.grace if grace is None else grace
        deadline = parse_time((self.pod.get("metadata") or {}).get("deletionTimestamp"))
        if grace is None and deadline is not None:
            limit = max(0.0, deadline - time.time())
        procs = list(self.procs.values()) + list(self.adopted.values())
        if procs and self.sup.drain_delay:
            # Give the proxy a moment to take the endpoint out before the app stops listening.
            await asyncio.sleep(min(self.sup.drain_delay, limit))
            limit = max(0.0, limit - self.sup.drain_delay)
        if procs:
            for st in self.states:
                if st.pid is not None:
                    self.event("Normal", "Killing", f"Stopping container {st.name}")
            await asyncio.gather(*(stop_process(p, limit) for p in procs))
        self.procs.clear()
        self.adopted.clear()
        if delete_object:
            shutil.rmtree(self.volume_dir, ignore_errors=True)
            # Its logs go with it, unless a new Pod of the same name runs already.
            if not any(
                r.uid != self.uid and (r.ns, r.name) == (self.ns, self.name)
                for r in self.sup.runners.values()
            ):
                self.sup.logfiles.remove_pod(self.ns, self.name)
            if not self.deleted:
                with contextlib.suppress(NotFound):
                    self.sup.store.delete("Pod", self.ns, self.name)
                self.deleted = True

    async def detach(self) -> None:
        """Stop supervising without touching the processes (the server is going away)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        for p in list(self.procs.values()) + list(self.adopted.values()):
            p.detach()


# ---- the supervisor -----------------------------------------------------------------------------


class Supervisor:
    """Follows the Pods in the store and keeps each one's processes running (the local kubelet)."""

    def __init__(
        self,
        store: Store,
        state_dir: str | Path,
        imagemap: ImageMap,
        *,
        backoff: Backoff | None = None,
        drain_delay: float = 1.0,
        orphan_grace: float = 10.0,
        log_policy: LogPolicy | None = None,
    ) -> None:
        self.store = store
        self.state_dir = Path(state_dir)
        self.imagemap = imagemap
        self.backoff = backoff or Backoff()
        self.drain_delay = drain_delay
        self.orphan_grace = orphan_grace
        self.runners: dict[str, PodRunner] = {}
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.logfiles = LogFiles(self.state_dir / "logs", log_policy)
        self._rotator: asyncio.Task[None] | None = None
        self._pending: collections.deque[PodRunner] = collections.deque()
        self._starter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Re-adopt live processes, stop orphans, start a runner per Pod, then follow Pod changes."""
        self._sub = self.store.subscribe(["Pod"])
        found = {(f.pod_uid, f.container): f for f in find_pod_processes(self.state_dir)}
        claimed: set[int] = set()
        pods = self.store.list("Pod")
        # Logs of pods deleted while no server ran.
        gone = self.logfiles.sweep(
            {(p["metadata"].get("namespace") or "default", p["metadata"]["name"]) for p in pods}
        )
        if gone:
            log.info("removed the logs of %d deleted pod(s): %s", len(gone), ", ".join(gone[:10]))
        for pod in pods:
            uid = pod["metadata"]["uid"]
            adopted: dict[str, Proc] = {}
            records = _proc_records(pod)
            names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("initContainers") or []] + [
                str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []
            ]
            for name in names:
                rec = records.get(name)
                if rec and proc_alive(rec["pid"], rec["start"]):
                    adopted[name] = Proc(rec["pid"], rec["start"])
                elif (uid, name) in found:
                    # Started but not yet recorded when the server died: still ours, never a duplicate.
                    f = found[(uid, name)]
                    adopted[name] = Proc(f.pid, f.start)
                if name in adopted:
                    claimed.add(adopted[name].pid)
            self._add(pod, adopted)
        for f in found.values():
            if f.pid not in claimed:
                log.info(
                    "stopping orphan process %s (pod uid %s, container %s)", f.pid, f.pod_uid, f.container
                )
                self._spawn_bg(stop_process(Proc(f.pid, f.start), self.orphan_grace))
        self._task = asyncio.create_task(self._follow(), name="local supervisor")
        self._rotator = asyncio.create_task(self._rotate_logs(), name="log rotation")

    def _live_logs(self) -> list[Path]:
        out = []
        for r in self.runners.values():
            for c in [*(r.spec.get("initContainers") or []), *(r.spec.get("containers") or [])]:
                out.append(r.log_dir / f"{c.get('name')}.log")
        return out

    async def _rotate_logs(self) -> None:
        """Every ``check_interval`` seconds (1), rotate the live log files that grew over the
        size (in a thread: a copy may take a moment)."""
        while True:
            await asyncio.sleep(self.logfiles.policy.check_interval)
            try:
                await asyncio.to_thread(self.logfiles.rotate_all, self._live_logs())
            except Exception:  # never stop rotating over one bad file
                log.exception("log rotation failed")

    def _spawn_bg(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    def _add(self, pod: Obj, adopted: dict[str, Proc]) -> None:
        runner = PodRunner(self, pod, adopted)
        self.runners[runner.uid] = runner
        if pod["metadata"].get("deletionTimestamp"):
            self._spawn_bg(self._terminate(runner))
        else:
            self._pending.append(runner)
            if self._starter is None or self._starter.done():
                self._starter = asyncio.create_task(self._start_pending(), name="local supervisor starter")

    async def _start_pending(self) -> None:
        """Start waiting runners START_BATCH at a time, yielding to the event loop in between."""
        while self._pending:
            for _ in range(min(START_BATCH, len(self._pending))):
                runner = self._pending.popleft()
                if not runner.terminating and self.runners.get(runner.uid) is runner:
                    runner.start()
            await asyncio.sleep(0)

    async def _terminate(self, runner: PodRunner, *, deleted: bool = False) -> None:
        runner.deleted = runner.deleted or deleted
        try:
            await runner.terminate()
        finally:
            self.runners.pop(runner.uid, None)

    async def _follow(self) -> None:
        assert self._sub is not None
        async for ev in self._sub:
            pod = ev.obj
            uid = pod["metadata"]["uid"]
            runner = self.runners.get(uid)
            if ev.type == "DELETED":
                if runner is not None and not runner.terminating:
                    self._spawn_bg(self._terminate(runner, deleted=True))
                continue
            if runner is None:
                if ev.type == "ADDED":
                    self._add(pod, {})
                continue
            # Keep the runner's view (labels, annotations) current; its own writes come back too.
            runner.pod = pod
            if pod["metadata"].get("deletionTimestamp") and not runner.terminating:
                self._spawn_bg(self._terminate(runner))

    async def stop(self, *, terminate_pods: bool = False, grace: float | None = None) -> None:
        """Stop supervising. By default the app processes keep running (a restarted server
        re-adopts them); with ``terminate_pods`` they are stopped (SIGTERM, then SIGKILL after
        ``grace`` or each Pod's grace period) and the Pod objects stay for the next start."""
        if self._sub is not None:
            self._sub.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._rotator is not None:
            self._rotator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rotator
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        self._pending.clear()
        runners = list(self.runners.values())
        # Terminations under way stop here; with terminate_pods they are finished below.
        for t in list(self._background):
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if terminate_pods:
            await asyncio.gather(
                *(r.terminate(grace=grace, delete_object=r.terminating, force=True) for r in runners),
                return_exceptions=True,
            )
            # Whatever else this state dir still runs (orphans being stopped) goes too.
            leftover = [Proc(f.pid, f.start) for f in find_pod_processes(self.state_dir)]
            limit = self.orphan_grace if grace is None else grace
            await asyncio.gather(*(stop_process(p, limit) for p in leftover), return_exceptions=True)
        else:
            for r in runners:
                await r.detach()
        self.runners.clear()


__all__ = [
    "Backoff",
    "FoundProcess",
    "PodRunner",
    "Proc",
    "Supervisor",
    "expand",
    "field_ref",
    "find_pod_processes",
    "kill_all_pod_processes",
    "parse_time",
    "precise_now",
    "proc_alive",
    "proc_start_time",
    "record_event",
]
