"""The CLI's Kubernetes backend: the same verbs, straight against the API server.

Used by ``kubectl rollouts ...`` (the plugin, ``kubectl_main``) and ``rollouts --backend kubernetes``.
It finds the cluster as kubectl does (``--kubeconfig``, ``--context``, ``$KUBECONFIG``,
``~/.kube/config``). User actions are ``service.verbs`` plans, whose patches (Argo's plugin's) go
to the Rollout or to its ``/status`` subresource, so they drive Argo's own controller too.
Apply is server-side apply (field manager ``kubectl-rollouts``): fields dropped from a manifest
are dropped from the object, and fields the controller owns are never touched.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from lightkube import ApiError as KubeApiError
from lightkube import Client
from lightkube.types import CascadeType, OnErrorAction, OnErrorResult, PatchType

from .. import __version__
from ..model import names, owners
from ..model.cluster import ClusterError
from ..model.selectors import parse_label_selector
from ..model.timefmt import rfc3339
from ..runtimes.kubernetes.cluster import load_config
from ..runtimes.kubernetes.resources import NAMESPACED, RESOURCES
from ..service import verbs
from .client import ApiError, CliError, LogRequest, Obj, kind_of

FIELD_MANAGER = "kubectl-rollouts"

#: The order objects of one manifest are written in: what others refer to first (analysis
#: templates, at 2 with everything not listed, come before the Rollouts that name them).
_ORDER = {"Namespace": 0, "Service": 1, "Rollout": 3}


def _kind(kind: str) -> str:
    if kind in RESOURCES:
        return kind
    return kind_of(kind).name


def _plain(item: Any) -> Obj:
    return dict(item.to_dict() if hasattr(item, "to_dict") else item)


def _selector(labels: str | None) -> dict[str, str] | None:
    try:
        return parse_label_selector(labels)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _api_error(exc: KubeApiError, what: str) -> ApiError:
    status = exc.status
    code = int(getattr(status, "code", 0) or 0)
    message = str(getattr(status, "message", "") or exc)
    if code == 404:
        message = f"{what} not found"
    return ApiError(code, message, [])


class KubeBackend:
    """The ``Backend`` of the CLI over a kubeconfig (see the module docstring)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        try:
            self.config = load_config(kubeconfig, context)
        except ClusterError as exc:
            raise CliError(str(exc)) from None
        self.client = Client(self.config, field_manager=FIELD_MANAGER)

    @property
    def default_namespace(self) -> str:
        """The context's namespace (kubectl's default for -n), else ``default``."""
        return str(getattr(self.config, "namespace", None) or "default")

    # -- reading -----------------------------------------------------------------------------
    def version(self) -> Obj:
        """The CLI version, the runtime and the time now (for ages)."""
        return {
            "version": __version__,
            "runtime": "kubernetes",
            "server": self.config.cluster.server,
            "now": rfc3339(datetime.now(UTC)),
        }

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        """One object; ApiError 404 when missing."""
        k = _kind(kind)
        try:
            obj = _plain(
                self.client.get(RESOURCES[k], name, namespace=namespace if k in NAMESPACED else None)
            )
        except KubeApiError as exc:
            raise _api_error(exc, f"{k.lower()} '{name}'") from None
        obj.setdefault("kind", k)
        return obj

    def list(self, kind: str, namespace: str | None, labels: str | None = None) -> list[Obj]:
        """Objects of a kind in a namespace (None: every namespace)."""
        k = _kind(kind)
        ns: str | None = None
        if k in NAMESPACED:
            ns = namespace if namespace is not None else "*"
        try:
            items = [
                _plain(i) for i in self.client.list(RESOURCES[k], namespace=ns, labels=_selector(labels))
            ]
        except KubeApiError as exc:
            raise _api_error(exc, f"{k.lower()}s") from None
        for i in items:
            i.setdefault("kind", k)
        return items

    def _owned(self, rollout: Obj) -> list[Obj]:
        """The Rollout's ReplicaSets."""
        ns = rollout["metadata"].get("namespace", "default")
        return owners.owned(self.list("replicaset", ns), {"kind": "Rollout", **rollout})

    def info(self, namespace: str, name: str) -> Obj:
        """The info view of a rollout (the same shape the local server returns)."""
        from ..service.info import rollout_info  # the one pure function every client shares

        ro = self.get("rollout", namespace, name)
        rss = self._owned(ro)
        pods = self.list("pod", namespace)  # the view keeps those of the Rollout's ReplicaSets
        try:
            runs = self.list("analysisrun", namespace)  # and the runs the Rollout owns
        except ApiError as exc:
            # 404: a cluster without the AnalysisRun CRD has no runs; 403: credentials that may
            # not list them still get the rest of the tree.
            if exc.status not in (403, 404):
                raise
            runs = []
        return rollout_info(ro, rss, pods, datetime.now(UTC), runs)

    def watch_info(self, namespace: str, name: str) -> Iterator[Obj]:
        """The info view now and after every change of the rollout, its ReplicaSets or its Pods."""
        changed: queue.Queue[str] = queue.Queue()
        stop = threading.Event()

        def retry(_: Exception, count: int) -> OnErrorResult:
            return OnErrorResult(OnErrorAction.RETRY, sleep=min(5.0, 0.2 * count))

        def follow(kind: str) -> None:
            client = Client(self.config, field_manager=FIELD_MANAGER)
            try:
                for _ in client.watch(RESOURCES[kind], namespace=namespace, on_error=retry):
                    if stop.is_set():
                        return
                    changed.put(kind)
            except Exception as exc:  # the main loop notices through the periodic refresh
                changed.put(f"error: {exc}")

        for kind in ("Rollout", "ReplicaSet", "Pod", "AnalysisRun"):
            threading.Thread(target=follow, args=(kind,), daemon=True, name=f"watch-{kind}").start()
        last: Obj | None = None
        try:
            while True:
                try:
                    view = self.info(namespace, name)
                except ApiError as exc:
                    if exc.status == 404 and last is not None:
                        raise CliError(f"rollout '{name}' was deleted from namespace '{namespace}'") from None
                    raise
                comparable = {k: v for k, v in view.items() if k not in ("now", "rollout")}
                if comparable != last:
                    last = comparable
                    yield view
                try:
                    changed.get(timeout=5.0)
                    # Coalesce a burst of changes (a reconcile writes several objects) into one redraw.
                    deadline = threading.Event()
                    deadline.wait(0.1)
                    while not changed.empty():
                        changed.get_nowait()
                except queue.Empty:
                    pass
        finally:
            stop.set()

    def logs(self, namespace: str, pod: str, want: LogRequest) -> Iterator[bytes]:
        """A pod's log, as the kubelet serves it (kwok's fake pods have none)."""
        if want.previous:
            raise CliError("--previous works with the local server only; use `kubectl logs --previous`")
        try:
            for line in self.client.log(
                pod,
                namespace=namespace,
                container=want.container,
                follow=want.follow,
                tail_lines=want.tail,
                newlines=True,
            ):
                yield line.encode()
        except KubeApiError as exc:
            raise _api_error(exc, f"pod '{pod}'") from None

    # -- writing -----------------------------------------------------------------------------
    def apply(self, text: str, source: str, namespace: str, *, create_only: bool) -> Obj:
        """Check the manifest (refusing it on any error), then create or server-side apply each object."""
        from ..model.lint import check_manifests

        parsed, findings = check_manifests(text, source, default_namespace=namespace)
        errors = [str(f) for f in findings if f.severity == "error"]
        if errors:
            raise CliError(f"{source}: the manifest has errors; nothing was applied", errors)
        warnings = [{"text": str(f)} for f in findings if f.severity != "error"]
        objects: list[Obj] = []
        for p in parsed:
            if p.kind not in RESOURCES:
                warnings.append(
                    {"text": f"{source}: {p.kind} '{p.name}' is not handled by this CLI; skipped"}
                )
                continue
            objects.append(dict(p.obj))
        objects.sort(key=lambda o: _ORDER.get(str(o.get("kind")), 2))
        results = []
        for obj in objects:
            results.append(self._apply_one(obj, namespace, create_only))
        return {"results": results, "warnings": warnings}

    def _apply_one(self, obj: Obj, namespace: str, create_only: bool) -> Obj:
        kind = str(obj["kind"])
        res = RESOURCES[kind]
        meta = obj.setdefault("metadata", {})
        name = str(meta.get("name", ""))
        ns = (meta.get("namespace") or namespace) if kind in NAMESPACED else None
        if ns:
            meta["namespace"] = ns
        obj.pop("status", None)
        before: Obj | None
        try:
            before = _plain(self.client.get(res, name, namespace=ns))
        except KubeApiError as exc:
            if getattr(exc.status, "code", None) != 404:
                raise _api_error(exc, f"{kind.lower()} '{name}'") from None
            before = None
        if create_only:
            if before is not None:
                raise CliError(
                    f"{kind.lower()} '{name}' already exists in namespace '{ns}'", ["use apply to update it"]
                )
            try:
                self.client.create(res(obj), namespace=ns)
            except KubeApiError as exc:
                raise CliError(f"{kind.lower()} '{name}': {exc.status.message}") from None
            return {"kind": kind, "name": name, "result": "created"}
        if kind == "Service" and before is not None:
            keep_injected_hash(obj, before)
        try:
            after = _plain(
                self.client.patch(
                    res,
                    name,
                    obj,
                    namespace=ns,
                    patch_type=PatchType.APPLY,
                    field_manager=FIELD_MANAGER,
                    force=True,
                )
            )
        except KubeApiError as exc:
            raise CliError(f"{kind.lower()} '{name}': {exc.status.message}") from None
        if before is None:
            result = "created"
        elif before["metadata"].get("resourceVersion") == after["metadata"].get("resourceVersion"):
            result = "unchanged"
        else:
            result = "configured"
        return {"kind": kind, "name": name, "result": result}

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete an object (its dependents go with it)."""
        k = _kind(kind)
        try:
            self.client.delete(
                RESOURCES[k],
                name,
                namespace=namespace if k in NAMESPACED else None,
                cascade=CascadeType.BACKGROUND,
            )
        except KubeApiError as exc:
            raise _api_error(exc, f"{k.lower()} '{name}'") from None

    def action(self, namespace: str, name: str, verb: str, body: Obj | None = None) -> Obj:
        """Do a user action (service/verbs.py): its patches go to the Rollout (spec) or to its
        /status subresource."""
        ro = self.get("rollout", namespace, name)
        rss = self._owned(ro) if verbs.needs_replicasets(verb) else []
        try:
            plan = verbs.plan(verb, ro, rss, body or {}, datetime.now(UTC))
        except verbs.VerbError as exc:
            raise CliError(exc.message) from None
        ro = self._patch_all("Rollout", namespace, name, plan.patches) or ro
        return {"message": plan.message, "rollout": ro}

    def create(self, kind: str, namespace: str, obj: Obj) -> Obj:
        """Create one object after the linter passed it (the API server completes a
        ``metadata.generateName``); the created object. ApiError 409 when the name is taken."""
        import json

        from ..model.lint import check_manifests

        k = _kind(kind)
        meta = obj.get("metadata") or {}
        checked = obj
        if not meta.get("name") and meta.get("generateName"):
            # The API server picks the name: lint the object as it will be named.
            checked = {**obj, "metadata": {**meta, "name": f"{meta['generateName']}xxxxx"}}
        _, findings = check_manifests(json.dumps(checked), "<request>", default_namespace=namespace)
        errors = [str(f) for f in findings if f.severity == "error"]
        if errors:
            raise CliError(f"the {k} is not valid; nothing was created", errors)
        try:
            created = self.client.create(RESOURCES[k](obj), namespace=namespace if k in NAMESPACED else None)
        except KubeApiError as exc:
            raise _api_error(exc, f"{k.lower()} '{obj.get('metadata', {}).get('name', '')}'") from None
        return _plain(created)

    def run_action(self, namespace: str, name: str, verb: str) -> Obj:
        """A verb on an AnalysisRun (service/verbs.py ``plan_run``): its patches go to the run."""
        run = self.get("analysisrun", namespace, name)
        try:
            plan = verbs.plan_run(verb, run)
        except verbs.VerbError as exc:
            raise CliError(exc.message) from None
        run = self._patch_all("AnalysisRun", namespace, name, plan.patches) or run
        return {"message": plan.message, "analysisRun": run}

    def _patch_all(self, kind: str, namespace: str, name: str, patches: Any) -> Obj | None:
        """A verb's merge patches in order (on the status subresource where the patch says);
        returns the object as the last one left it (None: no patch)."""
        res = RESOURCES[kind]
        obj: Obj | None = None
        for p in patches:
            target = res.Status if p.subresource == "status" else res
            try:
                obj = _plain(
                    self.client.patch(target, name, p.body, namespace=namespace, patch_type=PatchType.MERGE)
                )
            except KubeApiError as exc:
                raise _api_error(exc, f"{kind.lower()} '{name}'") from None
        return obj


def keep_injected_hash(service: Obj, live: Obj) -> None:
    """Carry the pod-template hash the controller put in a live Service's selector into the Service
    about to be applied. A Service's selector is an atomic map, so a server-side apply of the
    manifest's selector would drop the hash and send traffic to every revision at once; kubectl's
    client-side apply keeps it, and so does this."""
    live_sel = (live.get("spec") or {}).get("selector") or {}
    h = live_sel.get(names.POD_TEMPLATE_HASH_LABEL)
    spec = service.setdefault("spec", {})
    sel = spec.get("selector")
    if h and isinstance(sel, dict) and names.POD_TEMPLATE_HASH_LABEL not in sel:
        spec["selector"] = {**sel, names.POD_TEMPLATE_HASH_LABEL: h}


def kubectl_args(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split kubectl's connection flags (``--kubeconfig``, ``--context``, anywhere on the line, as
    kubectl passes them to a plugin) from the rest: (remaining args, {flag: value})."""
    rest: list[str] = []
    found: dict[str, str] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        for flag in ("--kubeconfig", "--context"):
            if a == flag and i + 1 < len(args):
                found[flag] = args[i + 1]
                i += 2
                break
            if a.startswith(flag + "="):
                found[flag] = a.split("=", 1)[1]
                i += 1
                break
        else:
            rest.append(a)
            i += 1
    return rest, found


def kubectl_argv(argv: Sequence[str]) -> list[str]:
    """The argv for the CLI when run as the kubectl plugin: connection flags moved to the front as
    global options, and the context's namespace as the default for -n (as kubectl has it)."""
    rest, found = kubectl_args(argv)
    front: list[str] = []
    for flag, value in found.items():
        front += [flag, value]
    has_ns = any(
        a in ("-n", "--namespace") or a.startswith("--namespace=") or (a.startswith("-n") and len(a) > 2)
        for a in rest
    )
    if not has_ns and "ROLLOUTS_NAMESPACE" not in os.environ:
        try:
            ns = load_config(found.get("--kubeconfig"), found.get("--context")).namespace
        except ClusterError:
            ns = None  # the verb reports the kubeconfig problem itself
        if ns:
            os.environ["ROLLOUTS_NAMESPACE"] = ns
    return [*front, *rest]
