"""The scenario corpus: loading, the shared snapshot and checker, and the driver protocol.

A scenario (``tests/scenarios/*.yaml``, format in ``tests/scenarios/README.md``) is a starting
manifest and a list of steps, each with the state expected once the world has settled. The same
files are run by several drivers (the engine on a simulated cluster, the local runtime, the
Kubernetes runtime); only the driver differs.

The driver protocol (``Driver``; every method is async):

``start(objects)``
    Bring the runtime up, ready to run these objects (the scenario's manifest: a Rollout and its
    Services; use them to create namespaces or map images). Nothing is applied yet: the first step
    is normally ``apply``.
``now() -> datetime``
    The controller's clock (UTC). Used to stamp ``restart`` (``spec.restartAt``).
``do(step)``
    Carry out one ``Step``:

    - ``apply``: create or update every object in ``step.objects`` as ``kubectl apply`` does:
      create it the first time; afterwards apply the JSON merge patch from the previously applied
      manifest to this one, so fields written by others survive (spec.paused, the controller's
      spec.replicas, the hash label in a Service selector). A Service named in ``step.deleted``
      is deleted.
    - user actions (``promote``, ``promote-full``, ``abort``, ``retry``, ``pause``, ``resume``,
      ``restart``, ``undo``, ``patch``, ``image``): apply each ``useractions.Patch`` in
      ``step.patches`` to the Rollout, in order: a JSON merge patch on the object, or on its
      ``status`` subresource when ``patch.subresource == "status"``. ``run_scenario`` computes
      them from the current objects just before calling ``do``, with ``pyrollouts.service.verbs``
      (the patches Argo's kubectl plugin sends), so drivers need no logic of their own for them.
    - ``advance``: move the controller's clock forward ``step.seconds`` (every deadline on the way
      fires); real pods need not age.
    - ``pods``: from now on the pods of revision ``step.revision`` (the RS whose revision annotation
      is that number now; a revision not created yet takes the state when it appears) are
      ``step.state``: ``ready`` (they become ready normally), ``unready``
      (they fail readiness, new ones too) or ``crash`` (their processes exit and restart).
    - ``wait``: let ``step.seconds`` of real time pass (a simulated driver advances its clock).
``objects() -> (rollout, replicasets, services, events)``
    The current objects as Kubernetes JSON dicts: the Rollout, its ReplicaSets, its Services, and
    the Events whose involvedObject is the Rollout, oldest first. Raises LookupError while no
    Rollout has been applied yet.
``settle()``
    Return once the controller and pods have had a chance to converge (a simulated driver runs to
    quiescence; a real one may simply return and rely on polling).
``close()``
    Stop everything the driver started.

``run_scenario(scenario, driver, poll_timeout=...)`` runs the steps; after each one it polls
``objects()`` through ``snapshot`` and ``check`` until the expectation holds or ``poll_timeout``
passes, then fails with a ``ScenarioFailure`` naming the file, the step index and every difference.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from harness.support import MetricEndpoint
from pyrollouts.model import names
from pyrollouts.model.useractions import Patch, apply_merge_patch
from pyrollouts.service import verbs

Obj = dict[str, Any]

USER_ACTIONS = (
    "promote",
    "promote-full",
    "abort",
    "retry",
    "pause",
    "resume",
    "restart",
    "undo",
    "patch",
    "image",
)
STEP_KINDS = ("apply", "advance", "pods", "wait", "metric", *USER_ACTIONS)
_STEP_KEYS: dict[str, set[str]] = {
    "apply": {"env", "rollout", "services"},
    "undo": {"toRevision"},
    "patch": {"patch"},
    "image": {"image"},
    "advance": {"seconds"},
    "wait": {"seconds"},
    "pods": {"revision", "state"},
    "metric": {"value"},
}
EXPECT_KEYS = {
    "phase",
    "message",
    "active",
    "preview",
    "stable",
    "current",
    "replicas",
    "available",
    "deadline",
    "pauseConditions",
    "abort",
    "conditions",
    "events",
    "noEvents",
    "status",
    "spec",
    "revisions",
    "templateLabels",
    "rsTemplate",
}
TOP_KEYS = {"description", "manifest", "rollout", "services", "pods", "steps", "analysis"}
#: Stands for the scenario's metric endpoint in the AnalysisTemplates ``analysis:`` makes;
#: ``run_scenario`` puts the real URL in before a step's objects reach the driver.
METRIC_URL = "http://metric-endpoint.invalid"


def analysis_template(name: str, patch: Any, namespace: str | None) -> Obj:
    """The AnalysisTemplate ``analysis: {NAME: PATCH}`` makes: one stock ``web`` metric named
    ``verdict`` against the scenario's metric endpoint, Successful when it answers "pass", Failed
    on "fail", Inconclusive on anything else; ``PATCH`` is a JSON merge patch over it."""
    base: Obj = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "metrics": [
                {
                    "name": "verdict",
                    "successCondition": 'result == "pass"',
                    "failureCondition": 'result == "fail"',
                    "provider": {"web": {"url": f"{METRIC_URL}/{name}", "jsonPath": "{$.value}"}},
                }
            ]
        },
    }
    if namespace:
        base["metadata"]["namespace"] = namespace
    return apply_merge_patch(base, patch or {})


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file, the place and the fix."""


class ScenarioFailure(AssertionError):
    """A step's expectation did not hold."""


@dataclass(frozen=True)
class Step:
    """One resolved step. ``objects``/``deleted`` are set for ``apply``; ``patches`` is filled in
    by ``run_scenario`` for user actions just before ``Driver.do``."""

    index: int
    do: str
    raw: Mapping[str, Any]
    expect: Mapping[str, Any] | None = None
    objects: tuple[Obj, ...] = ()
    deleted: tuple[str, ...] = ()
    patches: tuple[Patch, ...] = ()
    seconds: float = 0.0
    revision: int | None = None
    state: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Scenario:
    path: Path
    description: str
    manifest: tuple[Obj, ...]  # the starting objects (after the scenario's rollout/services patches)
    ready_after: float
    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        return self.path.stem


# -- loading ------------------------------------------------------------------------------------


def _err(path: Path, where: str, problem: str) -> ScenarioError:
    return ScenarioError(f"{path}: {where}: {problem}")


def _load_manifest(path: Path, name: Any) -> list[Obj]:
    if not isinstance(name, str) or not name:
        raise _err(path, "manifest", "must name a file in manifests/ (e.g. `manifest: super-hello`)")
    mpath = path.parent / "manifests" / f"{name}.yaml"
    if not mpath.is_file():  # a subdirectory of the corpus (proxy-routed/) shares its manifests
        mpath = path.parent.parent / "manifests" / f"{name}.yaml"
    if not mpath.is_file():
        raise _err(path, "manifest", f"{mpath} does not exist; add it or name an existing manifest")
    with mpath.open(encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if not any(isinstance(d, dict) and d.get("kind") == "Rollout" for d in docs):
        raise _err(mpath, "manifest", "has no Rollout document")
    return docs


def _patch_objects(
    path: Path, where: str, objs: list[Obj], rollout: Any, services: Any
) -> tuple[list[Obj], list[str]]:
    """Apply a scenario's ``rollout`` merge patch and ``services`` patches (null: leave it out)."""
    out = copy.deepcopy(objs)
    deleted: list[str] = []
    if rollout is not None:
        if not isinstance(rollout, dict):
            raise _err(path, f"{where}.rollout", "must be a mapping (a JSON merge patch on the Rollout)")
        out = [apply_merge_patch(o, rollout) if o.get("kind") == "Rollout" else o for o in out]
    if services is not None:
        if not isinstance(services, dict):
            raise _err(path, f"{where}.services", "must map Service names to a merge patch or null")
        known = {o["metadata"]["name"] for o in out if o.get("kind") == "Service"}
        for name, patch in services.items():
            if patch is None:
                if name not in known:
                    raise _err(path, f"{where}.services.{name}", "no such Service in the manifest")
                out = [o for o in out if not (o.get("kind") == "Service" and o["metadata"]["name"] == name)]
                deleted.append(name)
            elif not isinstance(patch, dict):
                raise _err(path, f"{where}.services.{name}", "must be a mapping (merge patch) or null")
            elif name in known:
                out = [
                    apply_merge_patch(o, patch)
                    if o.get("kind") == "Service" and o["metadata"]["name"] == name
                    else o
                    for o in out
                ]
            else:
                base = next(o for o in objs if o.get("kind") == "Service")
                new = apply_merge_patch({**copy.deepcopy(base), "metadata": {"name": name}}, patch)
                new["metadata"].setdefault("namespace", base["metadata"].get("namespace"))
                out.append(new)
    return out, deleted


def _set_env(objs: list[Obj], env: Mapping[str, Any]) -> list[Obj]:
    out = copy.deepcopy(objs)
    for o in out:
        # A Rollout with spec.workloadRef has no template: the Deployment's is the one to change.
        if o.get("kind") not in ("Rollout", "Deployment") or not (o.get("spec") or {}).get("template"):
            continue
        container = o["spec"]["template"]["spec"]["containers"][0]
        entries = container.setdefault("env", [])
        for key, value in env.items():
            for e in entries:
                if e.get("name") == key:
                    e.clear()
                    e.update({"name": key, "value": str(value)})
                    break
            else:
                entries.append({"name": key, "value": str(value)})
    return out


def _validate_expect(path: Path, where: str, expect: Any) -> None:
    if expect is None:
        return
    if not isinstance(expect, dict):
        raise _err(path, where, "expect must be a mapping")
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        raise _err(
            path,
            where,
            f"unknown expect key(s) {sorted(unknown)}; known keys: {', '.join(sorted(EXPECT_KEYS))}",
        )
    for key in ("replicas", "available"):
        if key in expect and not isinstance(expect[key], dict):
            raise _err(path, f"{where}.{key}", "must map revision numbers to replica counts")
    for key in ("deadline", "events", "noEvents", "pauseConditions"):
        if key in expect and not isinstance(expect[key], list):
            raise _err(path, f"{where}.{key}", "must be a list")
    for key in ("conditions", "status", "spec", "revisions", "templateLabels", "rsTemplate"):
        if key in expect and not isinstance(expect[key], dict):
            raise _err(path, f"{where}.{key}", "must be a mapping")
    for rev, want in (expect.get("rsTemplate") or {}).items():
        if not isinstance(rev, int) or not isinstance(want, dict):
            raise _err(
                path,
                f"{where}.rsTemplate",
                "must map revision numbers to a subset of that ReplicaSet's spec.template "
                "(e.g. {2: {spec: {affinity: ...}}})",
            )


def load_scenario(path: str | Path) -> Scenario:
    """Read and check one scenario file; raises ScenarioError naming the file and the problem."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise _err(path, "yaml", str(exc)) from exc
    if not isinstance(data, dict):
        raise _err(path, "top level", "must be a mapping with description, manifest and steps")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise _err(
            path, "top level", f"unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(TOP_KEYS))}"
        )
    desc = data.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise _err(path, "description", "required: one line saying what behaviour this proves")
    manifest, _ = _patch_objects(
        path,
        "top level",
        _load_manifest(path, data.get("manifest")),
        data.get("rollout"),
        data.get("services"),
    )
    analysis = data.get("analysis") or {}
    if not isinstance(analysis, dict) or not all(isinstance(v, dict | None) for v in analysis.values()):
        raise _err(path, "analysis", "must map AnalysisTemplate names to a merge patch over the default ({})")
    namespace = next(o for o in manifest if o.get("kind") == "Rollout")["metadata"].get("namespace")
    manifest = [*manifest, *(analysis_template(n, p, namespace) for n, p in analysis.items())]
    pods = data.get("pods") or {}
    if not isinstance(pods, dict) or set(pods) - {"readyAfter"}:
        raise _err(path, "pods", "only `readyAfter: <seconds>` is supported")
    ready_after = float(pods.get("readyAfter", 1))
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _err(path, "steps", "required: a non-empty list of steps")
    current = manifest
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        where = f"steps[{i}]"
        if not isinstance(raw, dict) or "do" not in raw:
            raise _err(path, where, "each step is a mapping with `do:`")
        do = raw["do"]
        if do not in STEP_KINDS:
            raise _err(path, f"{where}.do", f"unknown step {do!r}; use one of {', '.join(STEP_KINDS)}")
        allowed = {"do", "expect"} | _STEP_KEYS.get(do, set())
        extra = set(raw) - allowed
        if extra:
            raise _err(path, where, f"`{do}` takes no {sorted(extra)}; it takes {sorted(allowed)}")
        _validate_expect(path, f"{where}.expect", raw.get("expect"))
        kw: dict[str, Any] = {}
        if do == "apply":
            if raw.get("env") is not None:
                if not isinstance(raw["env"], dict):
                    raise _err(path, f"{where}.env", "must map variable names to values")
                current = _set_env(current, raw["env"])
            current, deleted = _patch_objects(path, where, current, raw.get("rollout"), raw.get("services"))
            kw["objects"] = tuple(copy.deepcopy(current))
            kw["deleted"] = tuple(deleted)
        elif do in ("advance", "wait"):
            secs = raw.get("seconds")
            if not isinstance(secs, int | float) or secs < 0:
                raise _err(path, f"{where}.seconds", "required: a number of seconds >= 0")
            kw["seconds"] = float(secs)
        elif do == "pods":
            if not isinstance(raw.get("revision"), int):
                raise _err(path, f"{where}.revision", "required: the revision number whose pods change")
            if raw.get("state") not in ("ready", "unready", "crash"):
                raise _err(path, f"{where}.state", "required: ready, unready or crash")
            kw["revision"] = raw["revision"]
            kw["state"] = raw["state"]
        elif do == "patch" and not isinstance(raw.get("patch"), dict):
            raise _err(path, f"{where}.patch", "required: a JSON merge patch on the Rollout")
        elif do == "metric":
            if not isinstance(raw.get("value"), str) or not analysis:
                raise _err(
                    path,
                    f"{where}.value",
                    "required: what the metric endpoint answers "
                    "(pass, fail, or anything else for inconclusive), with `analysis:` templates",
                )
            kw["value"] = raw["value"]
        elif do == "image" and not isinstance(raw.get("image"), str):
            raise _err(path, f"{where}.image", "required: the new image for container 0")
        steps.append(Step(index=i, do=do, raw=raw, expect=raw.get("expect"), **kw))
    return Scenario(
        path=path,
        description=desc.strip(),
        manifest=tuple(manifest),
        ready_after=ready_after,
        steps=tuple(steps),
    )


def scenario_files(directory: str | Path, *, proxy_routes_traffic: bool = False) -> list[Path]:
    """Every scenario file in a directory (``*.yaml``, not the manifests), sorted by name. With
    ``proxy_routes_traffic`` (a driver whose runtime's proxy is the canary's traffic router: the
    engine's simulated cluster, the local runtime) also those of ``proxy-routed/``: canaries with
    trafficRouting, which on Kubernetes need the router's own objects (Ingress, HTTPRoute)."""
    files = sorted(p for p in Path(directory).glob("*.yaml") if p.is_file())
    if proxy_routes_traffic:
        files += sorted(p for p in (Path(directory) / "proxy-routed").glob("*.yaml") if p.is_file())
    return files


#: scenario step -> (verb, its fixed arguments) of service/verbs.py
_VERB_OF_STEP: dict[str, tuple[str, dict[str, Any]]] = {
    "promote": ("promote", {}),
    "promote-full": ("promote", {"full": True}),
    "abort": ("abort", {}),
    "retry": ("retry", {}),
    "pause": ("pause", {}),
    "resume": ("resume", {}),
    "restart": ("restart", {}),
    "undo": ("undo", {}),
    "image": ("set-image", {}),
}


def user_patches(step: Step, rollout: Obj, replicasets: Sequence[Obj], now: datetime) -> list[Patch]:
    """The patches a user action sends, computed from the current objects by the verb every client
    calls (``service.verbs``; Argo's plugin computes the same). Raises VerbError."""
    if step.do == "patch":
        return [Patch(dict(step.raw["patch"]))]
    if step.do not in _VERB_OF_STEP:
        raise ValueError(f"{step.do!r} is not a user action")
    verb, args = _VERB_OF_STEP[step.do]
    if step.do == "undo":
        args = {"toRevision": step.raw.get("toRevision")}
    elif step.do == "image":
        container = rollout["spec"]["template"]["spec"]["containers"][0]["name"]
        args = {"container": container, "image": str(step.raw["image"])}
    return verbs.plan(verb, rollout, replicasets, args, now).patches


# -- snapshot and check -------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What a scenario can assert, computed the same way for every driver."""

    phase: str
    message: str
    active: int | str | None  # revision (a bare hash when no RS has it; None: no hash)
    preview: int | str | None
    stable: int | str | None
    current: int | str | None
    replicas: dict[int, int]  # spec.replicas per revision
    available: dict[int, int]
    deadline: list[int]
    pause_conditions: list[str]
    abort: bool
    conditions: dict[str, tuple[str, str]]  # type -> (status, reason)
    events: list[str]  # reasons, oldest first
    event_messages: list[str]
    status: dict[str, Any]
    spec: dict[str, Any]
    revisions: dict[str, int]  # hash -> revision
    template_labels: dict[int, dict[str, str]] = field(default_factory=dict)  # per revision
    rs_templates: dict[int, dict[str, Any]] = field(default_factory=dict)  # spec.template per revision

    def summary(self) -> str:
        return (
            f"phase={self.phase!r} message={self.message!r} active={self.active} preview={self.preview} "
            f"stable={self.stable} current={self.current} replicas={self.replicas} "
            f"available={self.available} deadline={self.deadline} pause={self.pause_conditions} "
            f"abort={self.abort} conditions={self.conditions} events={self.events}"
        )


def _revision(rs: Obj) -> int:
    try:
        return int((rs.get("metadata", {}).get("annotations") or {}).get(names.REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def snapshot(rollout: Obj, replicasets: list[Obj], services: list[Obj], events: list[Obj]) -> Snapshot:
    """The one function every driver's objects go through before ``check``."""
    status = rollout.get("status") or {}
    spec = rollout.get("spec") or {}
    revisions: dict[str, int] = {}
    replicas: dict[int, int] = {}
    available: dict[int, int] = {}
    deadline: list[int] = []
    template_labels: dict[int, dict[str, str]] = {}
    rs_templates: dict[int, dict[str, Any]] = {}
    for rs in replicasets:
        meta = rs.get("metadata", {})
        h = (meta.get("labels") or {}).get(names.POD_TEMPLATE_HASH_LABEL, "")
        rev = _revision(rs)
        revisions[h] = rev
        replicas[rev] = int((rs.get("spec") or {}).get("replicas") or 0)
        available[rev] = int((rs.get("status") or {}).get("availableReplicas") or 0)
        tmeta = ((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}
        template_labels[rev] = dict(tmeta.get("labels") or {})
        rs_templates[rev] = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        if names.SCALE_DOWN_DEADLINE_ANNOTATION in (meta.get("annotations") or {}):
            deadline.append(rev)

    def rev_of(h: str | None) -> int | str | None:
        if not h:
            return None
        return revisions.get(h, h)

    strategy = spec.get("strategy") or {}
    bg = strategy.get("blueGreen") or {}
    if "canary" in strategy and not bg:  # a canary's stable and canary Services stand for them
        canary = strategy.get("canary") or {}
        bg = {"activeService": canary.get("stableService"), "previewService": canary.get("canaryService")}
    by_name = {s.get("metadata", {}).get("name"): s for s in services}

    def svc_hash(name: str | None) -> str | None:
        svc = by_name.get(name)
        if svc is None:
            return None
        return ((svc.get("spec") or {}).get("selector") or {}).get(names.POD_TEMPLATE_HASH_LABEL)

    name = rollout.get("metadata", {}).get("name")
    mine = [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == "Rollout"
        and (e.get("involvedObject") or {}).get("name") == name
    ]
    return Snapshot(
        phase=str(status.get("phase") or ""),
        message=str(status.get("message") or ""),
        active=rev_of(svc_hash(bg.get("activeService"))),
        preview=rev_of(svc_hash(bg.get("previewService"))),
        stable=rev_of(status.get("stableRS")),
        current=rev_of(status.get("currentPodHash")),
        replicas=replicas,
        available=available,
        deadline=sorted(deadline),
        pause_conditions=[str(p.get("reason")) for p in status.get("pauseConditions") or []],
        abort=bool(status.get("abort")),
        conditions={
            str(c.get("type")): (str(c.get("status")), str(c.get("reason") or ""))
            for c in status.get("conditions") or []
        },
        events=[str(e.get("reason")) for e in mine],
        event_messages=[str(e.get("message")) for e in mine],
        status=copy.deepcopy(status),
        spec=copy.deepcopy(spec),
        revisions=revisions,
        template_labels=template_labels,
        rs_templates=rs_templates,
    )


_REV_REF = re.compile(r"\{rev:(\d+)\}")


def _expand(value: Any, snap: Snapshot) -> Any:
    """``{rev:N}`` in an expected string stands for the pod-template hash of revision N."""
    if isinstance(value, str):
        by_rev = {rev: h for h, rev in snap.revisions.items()}
        return _REV_REF.sub(lambda m: by_rev.get(int(m.group(1)), m.group(0)), value)
    if isinstance(value, dict):
        return {k: _expand(v, snap) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, snap) for v in value]
    return value


def _subset_diffs(prefix: str, want: Any, got: Any) -> list[str]:
    if want == "*":
        return [] if got is not None else [f"{prefix}: expected a value, got nothing"]
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{prefix}: expected a mapping {want!r}, got {got!r}"]
        out: list[str] = []
        for k, v in want.items():
            if v is None:
                if got.get(k) is not None:
                    out.append(f"{prefix}.{k}: expected absent, got {got.get(k)!r}")
            else:
                out.extend(_subset_diffs(f"{prefix}.{k}", v, got.get(k)))
        return out
    return [] if want == got else [f"{prefix}: expected {want!r}, got {got!r}"]


def _is_subsequence(want: Sequence[str], got: Sequence[str]) -> bool:
    it = iter(got)
    return all(any(w == g for g in it) for w in want)


def check(expect: Mapping[str, Any] | None, snap: Snapshot) -> list[str]:
    """Differences between an expectation and a snapshot (empty: it holds). Every key is optional."""
    if not expect:
        return []
    expect = _expand(dict(expect), snap)
    diffs: list[str] = []
    for key in ("phase", "message"):
        if key in expect and (expect[key] or "") != getattr(snap, key):
            diffs.append(f"{key}: expected {expect[key]!r}, got {getattr(snap, key)!r}")
    for key in ("active", "preview", "stable", "current"):
        if key in expect and expect[key] != getattr(snap, key):
            diffs.append(f"{key}: expected revision {expect[key]!r}, got {getattr(snap, key)!r}")
    if "replicas" in expect:
        want = {int(k): int(v) for k, v in expect["replicas"].items()}
        if want != snap.replicas:
            diffs.append(f"replicas per revision: expected {want}, got {snap.replicas}")
    if "available" in expect:
        want = {int(k): int(v) for k, v in expect["available"].items()}
        got = {k: snap.available.get(k) for k in want}
        if want != got:
            diffs.append(f"available per revision: expected {want}, got {got}")
    if "deadline" in expect and sorted(int(x) for x in expect["deadline"]) != snap.deadline:
        diffs.append(
            f"scale-down-deadline on revisions: expected {sorted(expect['deadline'])}, got {snap.deadline}"
        )
    if "pauseConditions" in expect and list(expect["pauseConditions"]) != snap.pause_conditions:
        diffs.append(f"pauseConditions: expected {expect['pauseConditions']}, got {snap.pause_conditions}")
    if "abort" in expect and bool(expect["abort"]) != snap.abort:
        diffs.append(f"abort: expected {expect['abort']}, got {snap.abort}")
    for ctype, want in (expect.get("conditions") or {}).items():
        cond = snap.conditions.get(ctype)
        if want is None:
            if cond is not None:
                diffs.append(f"condition {ctype}: expected absent, got {cond}")
        elif cond is None or str(want) not in cond:
            diffs.append(f"condition {ctype}: expected {want!r} (status or reason), got {cond}")
    if "events" in expect and not _is_subsequence([str(e) for e in expect["events"]], snap.events):
        diffs.append(f"events: expected {expect['events']} in this order, got {snap.events}")
    unwanted = [str(e) for e in expect.get("noEvents") or [] if str(e) in snap.events]
    if unwanted:
        diffs.append(f"events: expected none of {unwanted} in this step, got {snap.events}")
    if "status" in expect:
        diffs.extend(_subset_diffs("status", expect["status"], snap.status))
    if "spec" in expect:
        diffs.extend(_subset_diffs("spec", expect["spec"], snap.spec))
    for rev, want_labels in (expect.get("templateLabels") or {}).items():
        diffs.extend(
            _subset_diffs(f"templateLabels[{rev}]", want_labels, snap.template_labels.get(int(rev), {}))
        )
    for rev, want_tmpl in (expect.get("rsTemplate") or {}).items():
        got_tmpl = snap.rs_templates.get(int(rev))
        if got_tmpl is None:
            diffs.append(f"rsTemplate[{rev}]: no ReplicaSet has revision {rev}")
        else:
            diffs.extend(_subset_diffs(f"rsTemplate[{rev}]", want_tmpl, got_tmpl))
    if "revisions" in expect:
        got_revs = sorted(snap.revisions.values())
        want_revs = expect["revisions"]
        if "all" in want_revs and sorted(want_revs["all"]) != got_revs:
            diffs.append(f"revisions: expected {sorted(want_revs['all'])}, got {got_revs}")
    return diffs


# -- drivers ------------------------------------------------------------------------------------


class Driver(Protocol):
    """A runtime under test (see the module docstring for each method's contract)."""

    async def start(self, objects: Sequence[Obj]) -> None: ...

    async def now(self) -> datetime: ...

    async def do(self, step: Step) -> None: ...

    async def objects(self) -> tuple[Obj, list[Obj], list[Obj], list[Obj]]: ...

    async def settle(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class StepResult:
    step: Step
    snapshot: Snapshot
    diffs: list[str] = field(default_factory=list)


async def run_scenario(
    scenario: Scenario, driver: Driver, *, poll_timeout: float = 30.0, poll_interval: float = 0.1
) -> list[StepResult]:
    """Run every step; after each, poll until its expectation holds or ``poll_timeout`` passes.
    Raises ScenarioFailure naming the file, the step and the differences. The driver is not closed."""
    results: list[StepResult] = []
    endpoint = (
        MetricEndpoint() if any(o.get("kind") == "AnalysisTemplate" for o in scenario.manifest) else None
    )
    try:
        return await _run_steps(scenario, driver, endpoint, results, poll_timeout, poll_interval)
    finally:
        if endpoint is not None:
            endpoint.close()


async def _run_steps(
    scenario: Scenario,
    driver: Driver,
    endpoint: MetricEndpoint | None,
    results: list[StepResult],
    poll_timeout: float,
    poll_interval: float,
) -> list[StepResult]:
    if endpoint is not None:
        driver.metric_endpoint = endpoint  # type: ignore[attr-defined]  # the engine driver reads it
    await driver.start([_with_endpoint(o, endpoint) for o in scenario.manifest])
    for step in scenario.steps:
        if step.do == "metric":
            assert endpoint is not None and step.value is not None
            endpoint.value = step.value
            continue
        if step.objects:
            step = dataclasses.replace(step, objects=tuple(_with_endpoint(o, endpoint) for o in step.objects))
        _, _, _, events_before = await _objects_or_empty(driver)
        n_before = len(events_before)
        if step.do in USER_ACTIONS:
            rollout, rss, _, _ = await driver.objects()
            try:
                patches = user_patches(step, rollout, rss, await driver.now())
            except verbs.VerbError as exc:
                raise ScenarioFailure(f"{scenario.path}: step {step.index} ({step.do}): {exc}") from exc
            step = dataclasses.replace(step, patches=tuple(patches))
        await driver.do(step)
        await driver.settle()
        deadline = time.monotonic() + poll_timeout
        while True:
            rollout_or_none, rss, svcs, evs = await _objects_or_empty(driver)
            if rollout_or_none is None:
                if step.expect:
                    raise ScenarioFailure(f"{scenario.path}: step {step.index}: expectations need a Rollout")
                break
            snap = snapshot(rollout_or_none, rss, svcs, evs)
            snap = dataclasses.replace(
                snap, events=snap.events[n_before:], event_messages=snap.event_messages[n_before:]
            )
            diffs = check(step.expect, snap)
            if not diffs or time.monotonic() >= deadline:
                break
            await asyncio.sleep(poll_interval)
        if rollout_or_none is None:
            continue
        results.append(StepResult(step, snap, diffs))
        if diffs:
            lines = "\n  ".join(diffs)
            raise ScenarioFailure(
                f"{scenario.path}: step {step.index} (do: {step.do}) did not reach its expectation "
                f"within {poll_timeout}s:\n  {lines}\nstate: {snap.summary()}"
            )
    return results


def _with_endpoint(obj: Obj, endpoint: MetricEndpoint | None) -> Obj:
    """An AnalysisTemplate with the metric endpoint's real URL in place of METRIC_URL."""
    if endpoint is None or obj.get("kind") != "AnalysisTemplate":
        return obj
    return json.loads(json.dumps(obj).replace(METRIC_URL, endpoint.url))


async def _objects_or_empty(driver: Driver) -> tuple[Obj | None, list[Obj], list[Obj], list[Obj]]:
    try:
        return await driver.objects()
    except LookupError:
        return None, [], [], []  # nothing applied yet
