"""The kinds pyrollouts knows, once: name, API group and version, plural, kubectl's short names,
and whether the kind lives in a namespace. Every layer reads this registry (the manifest parser,
both runtimes, the CRD, the HTTP API's URLs, the CLI's kind arguments)."""

from __future__ import annotations

from dataclasses import dataclass

from . import names


@dataclass(frozen=True)
class Kind:
    """One kind of the Kubernetes API."""

    name: str
    group: str  # "" for the core group
    version: str
    plural: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``group/version`` (``version`` alone for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version


ROLLOUT = Kind("Rollout", names.GROUP, names.VERSION, "rollouts", ("ro",))
ANALYSIS_TEMPLATE = Kind("AnalysisTemplate", names.GROUP, names.VERSION, "analysistemplates", ("at",))
CLUSTER_ANALYSIS_TEMPLATE = Kind(
    "ClusterAnalysisTemplate",
    names.GROUP,
    names.VERSION,
    "clusteranalysistemplates",
    ("cat",),
    namespaced=False,
)
ANALYSIS_RUN = Kind("AnalysisRun", names.GROUP, names.VERSION, "analysisruns", ("ar",))
REPLICASET = Kind("ReplicaSet", "apps", "v1", "replicasets", ("rs",))
DEPLOYMENT = Kind("Deployment", "apps", "v1", "deployments", ("deploy",))
POD = Kind("Pod", "", "v1", "pods", ("po",))
SERVICE = Kind("Service", "", "v1", "services", ("svc",))
EVENT = Kind("Event", "", "v1", "events", ("ev",))
NAMESPACE = Kind("Namespace", "", "v1", "namespaces", ("ns",), namespaced=False)
#: What a ``job`` metric provider creates (its pod template runs to completion).
JOB = Kind("Job", "batch", "v1", "jobs")
#: The objects a canary's Kubernetes traffic routers write (controller/routers): the Gateway API's
#: HTTPRoute (its backendRef weights and header rules) and the NGINX canary Ingress.
HTTPROUTE = Kind("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes")
INGRESS = Kind("Ingress", "networking.k8s.io", "v1", "ingresses", ("ing",))

#: kind name -> Kind, for every kind the object model stores (a Deployment is stored only as a
#: Rollout's spec.workloadRef; a Job is what a ``job`` metric creates, run to completion).
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        ROLLOUT,
        REPLICASET,
        DEPLOYMENT,
        POD,
        SERVICE,
        EVENT,
        NAMESPACE,
        ANALYSIS_TEMPLATE,
        CLUSTER_ANALYSIS_TEMPLATE,
        ANALYSIS_RUN,
        JOB,
    )
}

#: The kinds only the Kubernetes runtime's Cluster carries, for the traffic routers (not stored by
#: the local runtime, not in manifests: a user applies them with kubectl, as for Argo Rollouts).
TRAFFIC_KINDS: tuple[Kind, ...] = (HTTPROUTE, INGRESS)

#: The kinds clients name (the CLI's kind arguments, the HTTP API's URLs), in listing order.
CLIENT_KINDS: tuple[Kind, ...] = (
    ROLLOUT,
    REPLICASET,
    POD,
    SERVICE,
    EVENT,
    NAMESPACE,
    ANALYSIS_RUN,
    ANALYSIS_TEMPLATE,
    CLUSTER_ANALYSIS_TEMPLATE,
)

#: The kinds a manifest may hold (model/parse.py), in the order its messages list them.
MANIFEST_KINDS: tuple[Kind, ...] = (
    ROLLOUT,
    SERVICE,
    NAMESPACE,
    DEPLOYMENT,
    ANALYSIS_TEMPLATE,
    CLUSTER_ANALYSIS_TEMPLATE,
    ANALYSIS_RUN,
)

#: Stored kinds that live in a namespace.
NAMESPACED = frozenset(k.name for k in (*KINDS.values(), *TRAFFIC_KINDS) if k.namespaced)
#: Every known kind that lives outside namespaces.
CLUSTER_SCOPED = frozenset(k.name for k in (*KINDS.values(), *MANIFEST_KINDS) if not k.namespaced)


def by_plural(plural: str) -> Kind | None:
    """The client kind whose plural this is (``rollouts``), else None."""
    return next((k for k in CLIENT_KINDS if k.plural == plural), None)


def client_kind(word: str) -> Kind | None:
    """The client kind a user means by ``word``: its name, plural or a short name, any case
    (``rollout``, ``Rollouts``, ``ro``), else None."""
    w = word.lower()
    return next((k for k in CLIENT_KINDS if w in (k.name.lower(), k.plural, *k.short_names)), None)
