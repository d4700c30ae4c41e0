"""A real Kubernetes control plane on loopback for tests and manual use.

Starts etcd, kube-apiserver (secure port on 127.0.0.1, RBAC, audit log, service-account keys, a
generated CA), kube-controller-manager (all default controllers), kube-scheduler and kwok (fake nodes
whose pods are driven by the Stages in :mod:`harness.kwok_stages`). The binaries are the
ones ``make tools`` builds into ``~/.cache/pyrollouts/tools`` from the versions in
``tools/versions.env``.

Use it as a context manager::

    with ControlPlane() as cp:
        ns = cp.create_namespace()
        subprocess.run([tool_path("kubectl"), "--kubeconfig", cp.kubeconfig, "-n", ns, "get", "pods"])

or from a shell (tests/ on PYTHONPATH): ``python -m harness.k8s_cluster up`` / ``down``
(``make cluster-up``).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import datetime
import http.client
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import kwok_stages
from harness.support import free_port

TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
    "tofu",
    "kubectl-argo-rollouts",
    "rollouts-controller",
)
_VERSION_KEYS = {
    "etcd": "ETCD_VERSION",
    "kwok": "KWOK_VERSION",
    "helm": "HELM_VERSION",
    "tofu": "OPENTOFU_VERSION",
    "kubectl-argo-rollouts": "ARGO_ROLLOUTS_VERSION",
    "rollouts-controller": "ARGO_ROLLOUTS_VERSION",
}
#: Client tools: built by `make tools`, but not needed to start the control plane.
_CLIENT_TOOLS = ("kubectl", "helm", "tofu", "kubectl-argo-rollouts", "rollouts-controller")

# Cluster-internal ranges: they only ever appear inside API objects. Nothing dials them (there is no
# kube-proxy and no container runtime); kwok's nodes report 127.0.0.1 as their own address.
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
NODE_IP = "127.0.0.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached; the message says why and what to do."""


# --------------------------------------------------------------------------------------------------
# The built tools


def _tests_path() -> str:
    """PYTHONPATH for a child that imports ``harness`` (tests/ of this checkout, then the caller's)."""
    tests = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return f"{tests}{os.pathsep}{rest}" if rest else tests


def _versions_file() -> Path:
    """Find tools/versions.env: $PYROLLOUTS_REPO, else the checkout this module was imported from."""
    candidates = []
    if os.environ.get("PYROLLOUTS_REPO"):
        candidates.append(Path(os.environ["PYROLLOUTS_REPO"]))
    candidates.extend(Path(__file__).resolve().parents)
    for root in candidates:
        path = root / "tools" / "versions.env"
        if path.is_file():
            return path
    raise ControlPlaneError(
        "tools/versions.env not found above "
        f"{Path(__file__).resolve()}: run from a pyrollouts checkout or set PYROLLOUTS_REPO to one"
    )


def tool_versions() -> dict[str, str]:
    """Return the pinned version of each tool in :data:`TOOLS`, as read from tools/versions.env."""
    path = _versions_file()
    pins: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not value.strip():
            raise ControlPlaneError(f"{path}:{lineno}: expected NAME=version, got {line!r}")
        pins[key.strip()] = value.strip().strip('"')
    versions = {}
    for tool in TOOLS:
        key = _VERSION_KEYS.get(tool, "KUBERNETES_VERSION")
        if key not in pins:
            raise ControlPlaneError(f"{path}: {key} is not set; add a line {key}=vX.Y.Z")
        versions[tool] = pins[key]
    return versions


def tools_dir() -> Path:
    """Return the cache the tools are built into (the rule tools/build-tools.sh follows too)."""
    if os.environ.get("PYROLLOUTS_TOOLS_DIR"):
        return Path(os.environ["PYROLLOUTS_TOOLS_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pyrollouts" / "tools"


def tool_path(name: str) -> Path:
    """Return the path of a built tool (kubectl, helm, ...); raise if `make tools` did not build it."""
    if name not in TOOLS:
        raise ControlPlaneError(f"unknown tool {name!r}: expected one of {', '.join(TOOLS)}")
    version = tool_versions()[name]
    path = tools_dir() / f"{name}-{version}" / name
    if not os.access(path, os.X_OK):
        raise ControlPlaneError(f"{name} {version} is not built ({path} is missing): run `make tools`")
    return path


def _pin(key: str) -> str:
    """One pin of tools/versions.env (``GATEWAY_API_VERSION``, ...)."""
    for line in _versions_file().read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() == key:
            return value.strip().strip('"')
    raise ControlPlaneError(f"{_versions_file()}: {key} is not set; add a line {key}=vX.Y.Z")


def gateway_api_crds() -> list[Path]:
    """The Gateway API CRD files `make tools` fetched (sigs.k8s.io/gateway-api's standard channel);
    raise if it did not."""
    version = _pin("GATEWAY_API_VERSION")
    folder = tools_dir() / f"gateway-api-{version}" / "crds"
    if not (folder / ".complete").is_file():
        raise ControlPlaneError(
            f"the Gateway API CRDs {version} are not fetched ({folder}): run `make tools`"
        )
    return sorted(folder.glob("*.yaml"))


# --------------------------------------------------------------------------------------------------
# Certificates and keys


@dataclass(frozen=True)
class _Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _make_pki(directory: Path) -> _Pki:
    # Imported here: only the control plane needs it, not whoever imports tool_path.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    # EC keys: generating RSA keys takes noticeable time on a loaded 2-core machine.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyrollouts-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        common_name: str, org: str | None, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    service_ip = next(iter(ipaddress.ip_network(SERVICE_CIDR).hosts()))
    serving = leaf(
        "kube-apiserver",
        None,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.DNSName("kubernetes.default.svc.cluster.local"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(service_ip),
        ],
    )
    # system:masters: the group RBAC always allows, as kubeadm's admin.conf has.
    admin = leaf("pyrollouts-admin", "system:masters", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    sa_key = ec.generate_private_key(ec.SECP256R1())

    pki = _Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.ca_key.write_bytes(_pem_key(ca_key))
    pki.serving_cert.write_bytes(serving[0])
    pki.serving_key.write_bytes(serving[1])
    pki.admin_cert.write_bytes(admin[0])
    pki.admin_key.write_bytes(admin[1])
    pki.sa_key.write_bytes(_pem_key(sa_key))
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for key_file in (pki.ca_key, pki.serving_key, pki.admin_key, pki.sa_key):
        key_file.chmod(0o600)
    return pki


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_kubeconfig(path: Path, server: str, pki: _Pki) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pyrollouts-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "pyrollouts-admin",
                "user": {
                    "client-certificate-data": _b64(pki.admin_cert),
                    "client-key-data": _b64(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {"name": "pyrollouts-test", "context": {"cluster": "pyrollouts-test", "user": "pyrollouts-admin"}}
        ],
        "current-context": "pyrollouts-test",
    }
    # JSON is YAML: every kubeconfig reader accepts it.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


# Logs who did what to which object (request metadata, no bodies): enough for tests that check which
# identity wrote which resource, and small enough to keep on for every test.
_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
- RequestReceived
rules:
- level: Metadata
"""


# --------------------------------------------------------------------------------------------------
# A minimal API client for the harness itself (tests use lightkube or kubectl)


class KubeApi:
    """A small JSON-over-HTTPS client for the control plane, authenticated as the admin."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        """Create a client for https://host:port using the TLS context (CA and client cert loaded)."""
        self._host = host
        self._port = port
        self._context = context

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> tuple[int, Any]:
        """Send one request; return (status, decoded JSON body or text). Does not raise on HTTP errors.

        A GET lost on the wire (a reset, a TLS record error) is sent again, up to 3 times: CI once saw
        ``ssl.SSLError: WRONG_VERSION_NUMBER`` on one of 14 namespace polls sent at once under load,
        which ended a whole module's fixture. Writes are never repeated."""
        for attempt in range(3):
            try:
                return self._request_once(method, path, body, timeout)
            except (ssl.SSLError, ConnectionError, http.client.HTTPException) as exc:
                if method != "GET" or attempt == 2:
                    raise
                print(f"{method} {path}: {type(exc).__name__}: {exc}; sending it again", file=sys.stderr)
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def _request_once(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float
    ) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(self._host, self._port, context=self._context, timeout=timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                return resp.status, raw
        finally:
            conn.close()

    def get(self, path: str) -> Any:
        """GET a path and return its JSON; raise ControlPlaneError on any non-200 status."""
        status, data = self.request("GET", path)
        if status != 200:
            raise ControlPlaneError(f"GET {path}: HTTP {status}: {data}")
        return data

    def create(self, path: str, body: dict[str, Any]) -> Any:
        """POST an object to a collection path; raise ControlPlaneError unless it was created."""
        status, data = self.request("POST", path, body)
        if status not in (200, 201):
            raise ControlPlaneError(f"POST {path}: HTTP {status}: {data}")
        return data


# --------------------------------------------------------------------------------------------------
# Processes


@dataclass
class _Process:
    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        with self.log.open("ab") as out:
            out.write(f"$ {' '.join(self.args)}\n".encode())
            out.flush()
            # A session of its own: stop() signals the whole group, and a Ctrl-C in the terminal that
            # runs pytest does not reach the components before the harness tears them down in order.
            self.popen = subprocess.Popen(
                self.args,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def stop(self, timeout: float) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 200 * lines))
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------------
# The control plane


@dataclass
class StartupTimes:
    """Seconds from start() to each milestone (reported by `make cluster-up` and in docs)."""

    etcd: float = 0.0
    readyz: float = 0.0
    nodes_ready: float = 0.0
    total: float = 0.0


@dataclass
class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1.

    ``start()`` returns once /readyz answers ok, every fake node is Ready and the ``default``
    ServiceAccount exists; ``stop()`` ends every process and removes the working directory (kept when
    ``keep_workdir``). Both are safe to call more than once; the context manager calls them.
    """

    nodes: int = 3
    workdir: Path | None = None
    keep_workdir: bool = False
    start_timeout: float = 120.0
    times: StartupTimes = field(default_factory=StartupTimes)
    _procs: list[_Process] = field(default_factory=list, init=False, repr=False)
    _owns_workdir: bool = field(default=False, init=False, repr=False)
    _api: KubeApi | None = field(default=None, init=False, repr=False)
    _port: int = field(default=0, init=False, repr=False)
    _etcd_port: int = field(default=0, init=False, repr=False)

    # ---- paths -----------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The working directory: pki/, logs/, etcd data, kubeconfig, audit log."""
        if self.workdir is None:
            raise ControlPlaneError("the control plane is not started")
        return self.workdir

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in group system:masters)."""
        return self.root / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The kube-apiserver audit log (JSON lines, one event per request, level Metadata)."""
        return self.root / "logs" / "audit.log"

    @property
    def log_dir(self) -> Path:
        """The directory with one log file per component."""
        return self.root / "logs"

    @property
    def server(self) -> str:
        """The API server URL, https://127.0.0.1:<port>."""
        return f"https://127.0.0.1:{self._port}"

    @property
    def api(self) -> KubeApi:
        """A minimal admin client (see :class:`KubeApi`)."""
        if self._api is None:
            raise ControlPlaneError("the control plane is not started")
        return self._api

    # ---- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component and wait until the cluster is usable; raise ControlPlaneError if not."""
        if self._procs:
            return
        started = time.monotonic()
        deadline = started + self.start_timeout
        binaries = {name: tool_path(name) for name in TOOLS if name not in _CLIENT_TOOLS}
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pyrollouts-k8s-"))
            self._owns_workdir = True
        else:
            # A given directory is ours to fill: what an earlier, killed run left there (etcd data for
            # other certificates) would only get in the way.
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir.mkdir(parents=True)
            self._owns_workdir = True
        atexit.register(self.stop)
        try:
            self._start(binaries, started, deadline)
        except BaseException as exc:
            message = f"control plane failed to start: {exc}\n{self.logs_tail()}"
            self.stop()
            if isinstance(exc, ControlPlaneError | TimeoutError | OSError):
                raise ControlPlaneError(message) from exc
            raise
        self.times.total = time.monotonic() - started

    def _start(self, binaries: dict[str, Path], started: float, deadline: float) -> None:
        root = self.root
        (root / "logs").mkdir(exist_ok=True)
        pki = _make_pki(root / "pki")
        etcd_port, etcd_peer, self._port = free_port(), free_port(), free_port()
        self._etcd_port = etcd_port
        kcm_port, sched_port = free_port(), free_port()
        _write_kubeconfig(self.kubeconfig, self.server, pki)
        (root / "audit-policy.yaml").write_text(_AUDIT_POLICY)
        (root / "kwok.yaml").write_text(kwok_stages.stages_yaml())

        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._api = KubeApi("127.0.0.1", self._port, context)
        kubeconfig = str(self.kubeconfig)

        self._launch(
            "etcd",
            [
                str(binaries["etcd"]),
                "--name=pyrollouts",
                f"--data-dir={root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=pyrollouts=http://127.0.0.1:{etcd_peer}",
                # Test data is thrown away: skipping fsync makes every write much cheaper.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait("etcd /health", deadline, lambda: self._etcd_healthy(etcd_port))
        self.times.etcd = time.monotonic() - started

        self._launch(
            "kube-apiserver",
            [
                str(binaries["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # The endpoint reconciler refuses a loopback address for the `kubernetes` Service; nothing
                # in the tests reaches the apiserver through that Service anyway.
                "--endpoint-reconciler-type=none",
                f"--secure-port={self._port}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                # Without a front-proxy CA the controller-manager and scheduler log an error every few
                # seconds; no front-proxy client certificate is ever issued, so this admits nobody.
                f"--requestheader-client-ca-file={pki.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--audit-policy-file={root / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--allow-privileged=true",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver /readyz", deadline, self._readyz)
        self.times.readyz = time.monotonic() - started

        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
        self._launch(
            "kube-controller-manager",
            [
                str(binaries["kube-controller-manager"]),
                *common,
                f"--secure-port={kcm_port}",
                "--controllers=*",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--v=1",
            ],
        )
        self._launch(
            "kube-scheduler",
            [
                str(binaries["kube-scheduler"]),
                *common,
                f"--secure-port={sched_port}",
                "--v=1",
            ],
        )
        self._launch(
            "kwok",
            [
                str(binaries["kwok"]),
                f"--config={root / 'kwok.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--manage-nodes-with-annotation-selector="
                f"{kwok_stages.NODE_ANNOTATION}={kwok_stages.NODE_ANNOTATION_VALUE}",
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                f"--node-ip={NODE_IP}",
            ],
        )
        for i in range(self.nodes):
            self.create_node(f"kwok-node-{i}")
        self._wait("fake nodes Ready", deadline, self._nodes_ready)
        self.times.nodes_ready = time.monotonic() - started
        self._wait("kube-controller-manager /healthz", deadline, lambda: self._component_healthy(kcm_port))
        self._wait("kube-scheduler /healthz", deadline, lambda: self._component_healthy(sched_port))
        # The ServiceAccount controller runs: pods can be created in the default namespace.
        self._wait(
            "ServiceAccount default/default",
            deadline,
            lambda: self.api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
        )

    def _launch(self, name: str, args: list[str]) -> None:
        proc = _Process(name, args, self.log_dir / f"{name}.log")
        self._procs.append(proc)
        proc.start(self.root)

    def _wait(self, what: str, deadline: float, check: Callable[[], bool]) -> None:
        last_error = ""
        while True:
            for proc in self._procs:
                code = proc.exited()
                if code is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with code {code} while waiting for {what} (log: {proc.log})"
                    )
            try:
                if check():
                    return
            except (OSError, ControlPlaneError, http.client.HTTPException) as exc:
                last_error = str(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"timed out after {self.start_timeout:.0f}s waiting for {what}"
                    + (f" (last error: {last_error})" if last_error else "")
                )
            time.sleep(0.2)

    def _etcd_healthy(self, port: int) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            return resp.status == 200 and b"true" in resp.read()
        finally:
            conn.close()

    def _readyz(self) -> bool:
        status, _ = self.api.request("GET", "/readyz", timeout=3)
        return status == 200

    def _component_healthy(self, port: int) -> bool:
        # /healthz on the controller-manager and scheduler is open to anyone; their serving certs are
        # self-signed, generated at start, so there is nothing to verify them against.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def create_node(self, name: str) -> None:
        """Register one fake node that kwok runs (its Stages make it Ready and run its pods)."""
        self.api.create(
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {kwok_stages.NODE_ANNOTATION: kwok_stages.NODE_ANNOTATION_VALUE},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
            },
        )

    def _nodes_ready(self) -> bool:
        items = self.api.get("/api/v1/nodes")["items"]
        ready = 0
        for node in items:
            conditions = node.get("status", {}).get("conditions", [])
            taints = node.get("spec", {}).get("taints", [])
            # The not-ready taint goes only once the node lifecycle controller saw the node Ready.
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) and not any(
                t.get("key") == "node.kubernetes.io/not-ready" for t in taints
            ):
                ready += 1
        return ready >= self.nodes

    def stop(self) -> None:
        """Stop every component (newest first) and remove the working directory unless kept."""
        for proc in reversed(self._procs):
            proc.stop(timeout=15)
        self._procs.clear()
        self._api = None
        if self.workdir is not None and self._owns_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._owns_workdir = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    # ---- for tests -------------------------------------------------------------------------------

    def _component(self, name: str) -> _Process:
        for proc in self._procs:
            if proc.name == name:
                return proc
        raise ControlPlaneError(f"no component {name!r} (the control plane is not started?)")

    def stop_component(self, name: str, *, kill: bool = False) -> None:
        """Stop one component (``kube-apiserver``, say) and wait until it has exited: SIGTERM, or
        SIGKILL with ``kill`` (a crash). Its log and data stay; :meth:`start_component` brings it
        back with the same arguments (the same port, certificates and etcd)."""
        proc = self._component(name)
        if proc.popen is None or proc.popen.poll() is not None:
            return
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(15)
        else:
            proc.stop(timeout=15)

    def start_component(self, name: str, timeout: float = 120.0) -> float:
        """Start a stopped component again with its arguments; for kube-apiserver, wait until
        /readyz answers ok. Returns the seconds it took."""
        proc = self._component(name)
        if proc.exited() is None and proc.popen is not None:
            raise ControlPlaneError(f"{name} is still running (pid {proc.popen.pid})")
        started = time.monotonic()
        proc.start(self.root)
        if name == "kube-apiserver":
            self._wait("kube-apiserver /readyz after a restart", started + timeout, self._readyz)
        return time.monotonic() - started

    def check_alive(self) -> None:
        """Raise ControlPlaneError naming any component that has exited (with its log's tail)."""
        dead = [(p.name, p.exited()) for p in self._procs if p.exited() is not None]
        if dead:
            names = ", ".join(f"{n} (exit code {c})" for n, c in dead)
            raise ControlPlaneError(f"control plane component(s) exited: {names}\n{self.logs_tail()}")

    def logs_tail(self, lines: int = 20) -> str:
        """Return the last lines of each component's log, one titled block per component."""
        blocks = []
        for proc in self._procs or self._logs_on_disk():
            blocks.append(f"---- {proc.name} ({proc.log}) ----\n{_tail(proc.log, lines)}")
        return "\n".join(blocks)

    def _logs_on_disk(self) -> list[_Process]:
        if self.workdir is None or not (self.workdir / "logs").is_dir():
            return []
        return [
            _Process(p.stem, [], p)
            for p in sorted((self.workdir / "logs").glob("*.log"))
            if p.name != "audit.log"
        ]

    def _etcd_post(self, path: str, body: dict[str, Any]) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self._etcd_port, timeout=30)
        try:
            conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status != 200:
            raise ControlPlaneError(f"etcd POST {path}: HTTP {resp.status}: {raw}")
        return json.loads(raw)

    def etcd_revision(self) -> int:
        """etcd's current revision (what every resourceVersion the API server hands out is drawn from)."""
        if not self._etcd_port:
            raise ControlPlaneError("the control plane is not started")
        # Any range answer carries the store's revision in its header; one key is enough.
        data = self._etcd_post("/v3/kv/range", {"key": base64.b64encode(b"/").decode(), "limit": 1})
        return int(data["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision (physically) and return that revision.

        Afterwards a watch from an older resourceVersion that the API server serves from etcd (not
        from its watch cache, e.g. Events, whose watch cache is off by default) ends with 410 Gone,
        as it does in a real cluster after the API server's own periodic compaction.
        """
        revision = self.etcd_revision()
        self._etcd_post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def create_namespace(self, prefix: str = "test", wait: float = 30.0) -> str:
        """Create a namespace with a fresh name and wait for its default ServiceAccount; return the name.

        Pods can be created only once the ServiceAccount controller made ``default`` in the namespace.
        """
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.api.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        deadline = time.monotonic() + wait
        while self.api.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] != 200:
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"namespace {name}: ServiceAccount 'default' did not appear within {wait:.0f}s "
                    "(is kube-controller-manager running?)"
                )
            time.sleep(0.1)
        return name

    def delete_namespace(self, name: str) -> None:
        """Ask for a namespace's deletion (the namespace controller finishes it in the background)."""
        status, data = self.api.request("DELETE", f"/api/v1/namespaces/{name}")
        if status not in (200, 202, 404):
            raise ControlPlaneError(f"DELETE namespace {name}: HTTP {status}: {data}")

    def describe(self) -> str:
        """A few lines for a human: server, kubeconfig, logs, start-up times."""
        t = self.times
        return (
            f"server:     {self.server}\n"
            f"kubeconfig: {self.kubeconfig}\n"
            f"logs:       {self.log_dir} (audit: {self.audit_log})\n"
            f"started:    etcd {t.etcd:.1f}s, /readyz {t.readyz:.1f}s, nodes Ready {t.nodes_ready:.1f}s, "
            f"all {t.total:.1f}s"
        )


@contextlib.contextmanager
def control_plane(nodes: int = 3) -> Iterator[ControlPlane]:
    """Start a ControlPlane for the duration of a with-block."""
    with ControlPlane(nodes=nodes) as cp:
        yield cp


# --------------------------------------------------------------------------------------------------
# CLI: python -m harness.k8s_cluster up|down|status


def _state_dir() -> Path:
    if os.environ.get("PYROLLOUTS_CLUSTER_DIR"):
        return Path(os.environ["PYROLLOUTS_CLUSTER_DIR"])
    return tools_dir().parent / "cluster"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _print_exports(info: dict[str, Any]) -> None:
    print(info["describe"])
    print()
    print(f"export KUBECONFIG={info['kubeconfig']}")
    print(f"export PATH={info['path']}:$PATH")


def _cmd_up(timeout: float) -> int:
    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    pid_file, ready_file = state / "serve.pid", state / "ready.json"
    if pid_file.exists() and _alive(int(pid_file.read_text())) and ready_file.exists():
        print(f"the cluster is already up (pid {pid_file.read_text().strip()})")
        _print_exports(json.loads(ready_file.read_text()))
        return 0
    ready_file.unlink(missing_ok=True)
    # Check before forking, so a missing build is reported here and not in a log file.
    # The control plane, and the two clients the printed PATH points at.
    for name in TOOLS:
        if name not in _CLIENT_TOOLS or name in ("kubectl", "helm"):
            tool_path(name)
    log = state / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.k8s_cluster", "serve"],
            # The harness lives in tests/, outside the installed package.
            env={**os.environ, "PYTHONPATH": _tests_path()},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            print(f"the cluster did not start; {log}:\n{_tail(log, 80)}", file=sys.stderr)
            pid_file.unlink(missing_ok=True)
            return 1
        time.sleep(0.2)
    _print_exports(json.loads(ready_file.read_text()))
    return 0


def _cmd_serve() -> int:
    state = _state_dir()
    cp = ControlPlane(workdir=state / "cp")
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cp.start()
        path = os.pathsep.join(sorted({str(tool_path(t).parent) for t in ("kubectl", "helm")}))
        info = {
            "kubeconfig": str(cp.kubeconfig),
            "path": path,
            "server": cp.server,
            "describe": cp.describe(),
            "pid": os.getpid(),
        }
        tmp = state / "ready.json.tmp"
        tmp.write_text(json.dumps(info))
        tmp.rename(state / "ready.json")
        print(cp.describe(), flush=True)
        while not stop:
            cp.check_alive()
            time.sleep(1)
    finally:
        cp.stop()
        (state / "ready.json").unlink(missing_ok=True)
    return 0


def _cmd_down() -> int:
    state = _state_dir()
    pid_file = state / "serve.pid"
    if not pid_file.exists():
        print("the cluster is not up")
        return 0
    pid = int(pid_file.read_text())
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            print(f"pid {pid} did not stop within 60s; see {state / 'serve.log'}", file=sys.stderr)
            return 1
    pid_file.unlink(missing_ok=True)
    (state / "ready.json").unlink(missing_ok=True)
    print("the cluster is down")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``up`` starts a control plane in the background, ``down`` stops it."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.k8s_cluster",
        description="A local Kubernetes control plane for development.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start in the background; print the KUBECONFIG export once ready")
    up.add_argument("--timeout", type=float, default=180.0)
    sub.add_parser("down", help="stop it and remove its state")
    sub.add_parser("serve", help="(internal) run in the foreground until SIGTERM")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return _cmd_up(args.timeout)
        if args.command == "down":
            return _cmd_down()
        return _cmd_serve()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
