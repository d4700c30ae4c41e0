"""Helpers for the Kubernetes runtime's tests: controller subprocesses, identities, polling.

Controllers run as real subprocesses (``rollouts controller --kubeconfig ...``), each with its own
log file, ports on 127.0.0.1 and, where a test needs to tell them apart in the audit log, its own
ServiceAccount token.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client, KubeConfig
from lightkube.types import PatchType

from harness import support
from harness.k8s_cluster import ControlPlane, tool_path
from harness.support import free_port
from pyrollouts.cli.kube_backend import keep_injected_hash
from pyrollouts.runtimes.kubernetes.resources import RESOURCES

VENV_BIN = Path(sys.executable).parent
ROLLOUTS = str(VENV_BIN / "rollouts")
REPO = Path(__file__).resolve().parents[2]

Obj = dict[str, Any]


#: The least time any wait gives its condition. A test's own limit says how long a step takes on an
#: idle machine; on a loaded 2-core machine (the whole suite, and other work, share it) the control
#: plane can take many times that. A wait returns as soon as its condition holds, so a generous
#: floor costs nothing when things go well (PYROLLOUTS_TEST_MIN_WAIT to change it).
MIN_WAIT = float(os.environ.get("PYROLLOUTS_TEST_MIN_WAIT", "120"))


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns a truthy value (returned); AssertionError naming ``what``.
    The limit is ``timeout`` but at least :data:`MIN_WAIT`; the time taken is printed (shown with
    -s or on a failure), with a note when it went past the test's own ``timeout``."""
    started = time.monotonic()
    limit = max(timeout, MIN_WAIT)
    deadline = started + limit
    last_exc: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                took = time.monotonic() - started
                slow = f" (past the nominal {timeout:g} s)" if took > timeout else ""
                print(f"waited {took:.1f} s for {what.splitlines()[0] if what else '?'}{slow}")
                return value
        except AssertionError:
            raise
        except Exception as exc:  # the object may not exist yet
            last_exc = exc
        if time.monotonic() > deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET a loopback URL; (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def http_post(url: str, body: Obj, timeout: float = 5.0) -> tuple[int, str]:
    """POST JSON to a loopback URL; (status, body)."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


class ControllerProc:
    """One `rollouts controller` subprocess."""

    def __init__(
        self,
        kubeconfig: Path | str,
        namespace: str,
        log_path: Path,
        *,
        leader_elect: bool = False,
        env: dict[str, str] | None = None,
        extra: Sequence[str] = (),
        identity_name: str = "ctrl",
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.namespace = namespace
        self.log_path = log_path
        self.metrics_port = free_port()
        self.healthz_port = free_port()
        self.leader_elect = leader_elect
        self.env = env or {}
        self.extra = list(extra)
        self.name = identity_name
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        return [
            ROLLOUTS,
            "controller",
            "--kubeconfig",
            self.kubeconfig,
            "--namespace",
            self.namespace,
            f"--leader-elect={'true' if self.leader_elect else 'false'}",
            "--metrics-port",
            str(self.metrics_port),
            "--healthz-port",
            str(self.healthz_port),
            "--listen-address",
            "127.0.0.1",
            "--test-clock",
            "--loglevel",
            "info",
            "--rollout-threads",
            "2",
            *self.extra,
        ]

    def start(self, wait_ready: bool = True) -> ControllerProc:
        """Start the process (appending to its log) and wait for /readyz."""
        env = {**os.environ, **self.env}
        env.pop("KUBECONFIG", None)
        log = self.log_path.open("ab")
        log.write(f"\n==== start {' '.join(self.args())} env={self.env}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.args(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        if wait_ready:
            try:
                wait_for(self.ready, 60, f"controller {self.name} /readyz\n{self.log_tail()}")
            except AssertionError:
                # Another process took a port between free_port() and the bind: new ports, once more.
                if "address already in use" not in self.log_tail(5):
                    raise
                self.metrics_port, self.healthz_port = free_port(), free_port()
                return self.start(wait_ready)
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"controller {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
            )
        try:
            if http_get(f"http://127.0.0.1:{self.healthz_port}/readyz", 1.0)[0] != 200:
                return False
            # The metrics port is bound right after the healthz one. Another process that took the
            # healthz port between free_port() and the bind answers /readyz while this one fails
            # to bind and exits (CI saw it): ready only once this one serves its metrics too.
            return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics", 1.0)[0] == 200
        except OSError:
            return False

    def metrics(self) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        assert status == 200, body
        return body

    def advance(self, seconds: float) -> None:
        """Move the controller's clock forward (its --test-clock endpoint)."""
        http_post(f"http://127.0.0.1:{self.healthz_port}/debug/clock", {"advance": seconds})

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


class ChartController(ControllerProc):
    """The controller with the chart Deployment's own arguments, as a local process (kwok runs no
    images): only the kubeconfig, ports, listen address and test clock are added."""

    def __init__(self, chart_args: list[str], pod_namespace: str, **kw: Any) -> None:
        super().__init__(env={"POD_NAMESPACE": pod_namespace}, **kw)
        self.chart_args = [a for a in chart_args if not a.startswith(("--metrics-port", "--healthz-port"))]

    def args(self) -> list[str]:
        return [
            ROLLOUTS,
            *self.chart_args,
            "--kubeconfig",
            self.kubeconfig,
            f"--metrics-port={self.metrics_port}",
            f"--healthz-port={self.healthz_port}",
            "--listen-address=127.0.0.1",
            "--test-clock",
            # Short timings: the first election need not wait for a stale Lease.
            "--leader-election-lease-duration=4s",
            "--leader-election-renew-deadline=3s",
            "--leader-election-retry-period=1s",
        ]


def admin_client(cp: ControlPlane, namespace: str) -> Client:
    """A lightkube client as the admin, defaulting to the namespace."""
    return Client(
        KubeConfig.from_file(str(cp.kubeconfig)), namespace=namespace, field_manager="pyrollouts-tests"
    )


def plain(item: Any) -> Obj:
    return dict(item.to_dict() if hasattr(item, "to_dict") else item)


def get(client: Client, kind: str, name: str, namespace: str) -> Obj:
    return plain(client.get(RESOURCES[kind], name, namespace=namespace))


def list_objs(client: Client, kind: str, namespace: str) -> list[Obj]:
    return [plain(i) for i in client.list(RESOURCES[kind], namespace=namespace)]


def apply(client: Client, obj: Obj, namespace: str, manager: str = "pyrollouts-tests") -> Obj:
    """Server-side apply one object into the namespace."""
    obj = json.loads(json.dumps(obj))
    kind = obj["kind"]
    obj.setdefault("metadata", {})["namespace"] = namespace
    obj.pop("status", None)
    if kind == "Service":
        try:
            keep_injected_hash(obj, get(client, "Service", obj["metadata"]["name"], namespace))
        except ApiError:
            pass  # not there yet
    out = client.patch(
        RESOURCES[kind],
        obj["metadata"]["name"],
        obj,
        namespace=namespace,
        patch_type=PatchType.APPLY,
        field_manager=manager,
        force=True,
    )
    return plain(out)


def merge_patch(client: Client, kind: str, name: str, namespace: str, body: Obj, status: bool = False) -> Obj:
    res = RESOURCES[kind].Status if status else RESOURCES[kind]
    return plain(client.patch(res, name, body, namespace=namespace, patch_type=PatchType.MERGE))


def owned_replicasets(client: Client, rollout: Obj) -> list[Obj]:
    """The Rollout's own ReplicaSets, by name."""
    ns = rollout["metadata"]["namespace"]
    return support.owned_replicasets(rollout, list_objs(client, "ReplicaSet", ns))


def revision(rs: Obj) -> int:
    return int((rs["metadata"].get("annotations") or {}).get("rollout.argoproj.io/revision", "0"))


def by_revision(client: Client, rollout: Obj) -> dict[int, Obj]:
    return {revision(rs): rs for rs in owned_replicasets(client, rollout)}


def rs_hash(rs: Obj) -> str:
    return str(rs["metadata"]["labels"]["rollouts-pod-template-hash"])


def events(client: Client, namespace: str, name: str) -> list[Obj]:
    evs = [
        e
        for e in list_objs(client, "Event", namespace)
        if (e.get("involvedObject") or {}).get("name") == name
        and (e.get("involvedObject") or {}).get("kind") == "Rollout"
    ]
    evs.sort(
        key=lambda e: (e["metadata"].get("creationTimestamp") or "", int(e["metadata"]["resourceVersion"]))
    )
    return evs


def kubectl(
    cp: ControlPlane,
    *args: str,
    kubeconfig: Path | str | None = None,
    timeout: float = 180,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the built kubectl (with the venv first on PATH, so `kubectl rollouts` finds our plugin)."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("KUBECONFIG", None)
    # After the verb: kubectl refuses flags placed before a plugin name.
    cmd = [str(tool_path("kubectl")), *args, "--kubeconfig", str(kubeconfig or cp.kubeconfig)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def service_account_kubeconfig(cp: ControlPlane, client: Client, namespace: str, sa: str, path: Path) -> str:
    """A ServiceAccount with cluster-admin rights and a kubeconfig holding a token for it; returns the
    user name the audit log records (system:serviceaccount:<ns>:<sa>)."""
    core = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}}
    api = cp.api
    status, data = api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", core)
    assert status in (200, 201, 409), data
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{namespace}-{sa}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
    }
    status, data = api.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    assert status in (200, 201, 409), data
    return token_kubeconfig(cp, namespace, sa, path)


def audit_writes(cp: ControlPlane, user: str, namespace: str) -> list[Obj]:
    """The audit events of mutating requests by ``user`` on objects in ``namespace``."""
    out = []
    for line in Path(cp.audit_log).read_text(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if (ev.get("user") or {}).get("username") != user:
            continue
        if ev.get("verb") not in ("create", "update", "patch", "delete", "deletecollection"):
            continue
        if (ev.get("objectRef") or {}).get("namespace") != namespace:
            continue
        out.append(ev)
    return out


# -- fixtures: the test modules register them with pytest.fixture(name=...)(...)
_crds_done: set[str] = set()


def crds_fixture(control_plane: ControlPlane) -> None:
    """The CRDs, installed once per control plane with `rollouts install-crds`."""
    if str(control_plane.kubeconfig) in _crds_done:
        return
    res = subprocess.run(
        [ROLLOUTS, "install-crds", "--kubeconfig", str(control_plane.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, f"install-crds failed:\n{res.stdout}\n{res.stderr}"
    assert "rollouts.argoproj.io" in res.stdout
    _crds_done.add(str(control_plane.kubeconfig))


def client_fixture(control_plane: ControlPlane, namespace: str, crds: None) -> Iterator[Client]:
    """A lightkube client as the admin in the test's namespace, the CRDs installed."""
    c = admin_client(control_plane, namespace)
    yield c
    c.close()


def controllers_fixture(tmp_path: Path) -> Iterator[list[ControllerProc]]:
    """Controller processes started by a test; all stopped afterwards (their logs shown on failure)."""
    procs: list[ControllerProc] = []
    yield procs
    for p in procs:
        p.kill()


def ensure_nodes(cp: ControlPlane, count: int, timeout: float = 30.0) -> list[str]:
    """At least ``count`` fake (kwok) nodes, Ready; returns the names it added. Scenarios with required
    pod anti-affinity need more nodes than the stable revision has pods, as on a real cluster."""
    status, data = cp.api.request("GET", "/api/v1/nodes")
    assert status == 200, data
    have = {n["metadata"]["name"] for n in data["items"]}
    added = []
    for i in range(count):
        name = f"kwok-node-{i}"
        if name in have:
            continue
        added.append(name)
        cp.create_node(name)

    def ready() -> bool:
        items = cp.api.get("/api/v1/nodes")["items"]
        ok = [
            n
            for n in items
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        ]
        return len(ok) >= count

    wait_for(ready, timeout, f"{count} Ready nodes")
    return added


def remove_nodes(cp: ControlPlane, names: Sequence[str]) -> None:
    """Delete nodes ensure_nodes added (their pods are gone with the test namespaces)."""
    for name in names:
        cp.api.request("DELETE", f"/api/v1/nodes/{name}")


# -- the Helm chart on the control plane (tests/k8s/test_helm_install.py, test_helm_dashboard_rbac.py)


def _deploy_helpers() -> Any:
    """tests/deploy/deploy_helpers.py (the built helm, the chart's path), imported on first use."""
    folder = str(REPO / "tests" / "deploy")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import deploy_helpers

    return deploy_helpers


def chart_version() -> str:
    """The version in deploy/helm/pyrollouts/Chart.yaml."""
    import yaml

    return str(yaml.safe_load((_deploy_helpers().CHART / "Chart.yaml").read_text())["version"])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def chart_repo_fixture(tmp_path_factory: Any) -> Iterator[str]:
    """`make chart` into a temporary folder, served over HTTP on 127.0.0.1; yields the URL.
    Register it with ``pytest.fixture(name="chart_repo", scope="module")``."""
    import yaml

    out = tmp_path_factory.mktemp("chart-repo")
    res = subprocess.run(
        ["make", "-s", "chart", f"CHART_OUT={out}"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, f"make chart failed:\n{res.stdout}\n{res.stderr}"
    version = chart_version()
    index = yaml.safe_load((out / "index.yaml").read_text())
    assert [e["version"] for e in index["entries"]["pyrollouts"]] == [version]
    assert (out / f"pyrollouts-{version}.tgz").is_file()

    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def helm_install(
    cp: ControlPlane, home: Path, release: str, ns: str, repo: str, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`helm install RELEASE pyrollouts --repo REPO --version V` into ``ns`` (metrics on ClusterIP)."""
    return _deploy_helpers().helm(  # type: ignore[no-any-return]
        home,
        "install",
        release,
        "pyrollouts",
        "--repo",
        repo,
        "--version",
        chart_version(),
        "--namespace",
        ns,
        "--kubeconfig",
        str(cp.kubeconfig),
        "--set",
        "metrics.service.type=ClusterIP",
        *extra,
        check=check,
        timeout=180,
    )


def helm_uninstall(cp: ControlPlane, home: Path, release: str, ns: str) -> None:
    """`helm uninstall --wait`, errors ignored (cleanup)."""
    _deploy_helpers().helm(
        home, "uninstall", release, "-n", ns, "--kubeconfig", str(cp.kubeconfig), "--wait", check=False
    )


def granted_pairs(cp: ControlPlane, role_paths: Sequence[str]) -> set[tuple[str, str]]:
    """(verb, group/resource) pairs granted by the (Cluster)Roles at these API paths."""
    rules: list[Obj] = []
    for path in role_paths:
        status, body = cp.api.request("GET", path)
        assert status == 200, (path, body)
        rules += body["rules"]
    out = set()
    for rule in rules:
        assert not rule.get("resourceNames"), f"a rule limited to names is not compared here: {rule}"
        for group in rule.get("apiGroups") or [""]:
            for res in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((verb, f"{group}/{res}" if group else res))
    return out


def audit_events(cp: ControlPlane, user: str) -> Iterator[Obj]:
    """The audit log's events of ``user``'s requests on objects (those with an objectRef)."""
    for line in Path(cp.audit_log).read_text(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if (ev.get("user") or {}).get("username") == user and "objectRef" in ev:
            yield ev


def _pair(ev: Obj) -> tuple[str, str]:
    ref = ev["objectRef"]
    res = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return str(ev["verb"]), f"{ref['apiGroup']}/{res}" if ref.get("apiGroup") else res


def used_pairs(cp: ControlPlane, user: str) -> set[tuple[str, str]]:
    """(verb, group/resource[/subresource]) pairs of the requests ``user`` made, from the audit log."""
    return {_pair(ev) for ev in audit_events(cp, user)}


def refused_requests(cp: ControlPlane, user: str) -> list[str]:
    """The requests of ``user`` the API server answered 403 Forbidden, as "verb resource URI"."""
    return [
        f"{_pair(ev)[0]} {_pair(ev)[1]} {ev.get('requestURI', '')}"
        for ev in audit_events(cp, user)
        if (ev.get("responseStatus") or {}).get("code") == 403
    ]


def token_kubeconfig(cp: ControlPlane, ns: str, sa: str, path: Path, namespace: str | None = None) -> str:
    """A kubeconfig with a TokenRequest token of an existing ServiceAccount (its context's namespace
    ``namespace``, as a pod's in-cluster config has its own); returns its audit user name."""
    status, data = cp.api.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    assert status in (200, 201), data
    conf = json.loads(Path(cp.kubeconfig).read_text())
    conf["users"] = [{"name": sa, "user": {"token": data["status"]["token"]}}]
    context: Obj = {"cluster": conf["clusters"][0]["name"], "user": sa}
    if namespace:
        context["namespace"] = namespace
    conf["contexts"] = [{"name": sa, "context": context}]
    conf["current-context"] = sa
    path.write_text(json.dumps(conf))
    path.chmod(0o600)
    return f"system:serviceaccount:{ns}:{sa}"


def seed_objects(
    *,
    service_type: str = "ClusterIP",
    welcome: str | None = None,
    services_first: bool = False,
    **blue_green: Any,
) -> list[dict[str, Any]]:
    """examples/super-hello.yaml (the corrected seed manifest) without its Namespace or namespaces:
    Services of ``service_type`` (no cloud load balancer on the test cluster), WELCOME=``welcome``
    when given, ``blue_green`` over strategy.blueGreen fields; Services before the Rollout with
    ``services_first``."""
    import yaml

    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "super-hello.yaml").read_text()) if d]
    out = [d for d in docs if d["kind"] != "Namespace"]
    for d in out:
        d["metadata"].pop("namespace", None)
        if d["kind"] == "Rollout":
            d["spec"]["strategy"]["blueGreen"].update(blue_green)
            if welcome is not None:
                container = d["spec"]["template"]["spec"]["containers"][0]
                container["env"] = [{"name": "WELCOME", "value": welcome}]
        if d["kind"] == "Service":
            d["spec"]["type"] = service_type
    if services_first:
        out.sort(key=lambda o: 0 if o["kind"] == "Service" else 1)
    return out
