"""Every user verb, once: what it takes, the patches it sends, the message it answers, its errors.

The HTTP API (server/api.py), the dashboard API (web/api.py), the CLI's Kubernetes backend
(cli/kube_backend.py) and the scenario runner are adapters: they read their own input (a JSON
body, a URL, command-line options, a scenario step) into ``args`` and call :func:`plan` (pure:
a Rollout in, patches and a message out) or :func:`run` (over any ``Cluster``: read, plan,
write). The patches are those of ``model.useractions``, the ones Argo's kubectl plugin sends
(docs/argo-compat.md, "User actions"), so the controller needs no API of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..model import owners, useractions
from ..model.cluster import Cluster, NotFound, Obj
from ..model.timefmt import rfc3339
from ..model.useractions import Patch

#: Every verb, in the order the docs list them.
VERBS = ("promote", "abort", "retry", "pause", "resume", "restart", "undo", "set-image", "set-env")

#: The verbs on an AnalysisRun (Argo's `terminate analysisrun`).
RUN_VERBS = ("terminate",)


class VerbError(Exception):
    """A verb refused: ``code`` is 400 (bad arguments, or a container or revision the Rollout
    does not have), 404 (no such Rollout) or 409 (not possible in the Rollout's state)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Plan:
    """What a verb does to one Rollout: the patches, in order, and the one-line message."""

    patches: list[Patch]
    message: str


def needs_replicasets(verb: str) -> bool:
    """Whether :func:`plan` needs the Rollout's ReplicaSets (undo reads their templates)."""
    return verb == "undo"


def _str_arg(args: Mapping[str, Any], key: str, usage: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise VerbError(400, usage)
    return value


def _promote(ro: Obj, rss: Sequence[Obj], args: Mapping[str, Any], now: datetime) -> list[Patch]:
    full = args.get("full", False)
    if not isinstance(full, bool):
        raise VerbError(400, f"'full' must be true or false, not {full!r}")
    return useractions.promote(ro, full=full)


def _undo(ro: Obj, rss: Sequence[Obj], args: Mapping[str, Any], now: datetime) -> list[Patch]:
    to = args.get("toRevision")
    if to is not None and (not isinstance(to, int) or isinstance(to, bool) or to < 0):
        raise VerbError(400, f"toRevision must be a non-negative integer, not {to!r}")
    return useractions.undo(ro, list(rss), to)


def _set_image(ro: Obj, rss: Sequence[Obj], args: Mapping[str, Any], now: datetime) -> list[Patch]:
    usage = 'set-image needs {"container": NAME or "*", "image": IMAGE}'
    return useractions.set_image(ro, _str_arg(args, "container", usage), _str_arg(args, "image", usage))


def _set_env(ro: Obj, rss: Sequence[Obj], args: Mapping[str, Any], now: datetime) -> list[Patch]:
    usage = 'set-env needs {"container": NAME or "*", "name": KEY, "value": VALUE}'
    value = args.get("value")
    if not isinstance(value, str):
        raise VerbError(400, usage)
    return useractions.set_env(ro, _str_arg(args, "container", usage), _str_arg(args, "name", usage), value)


_Patcher = Callable[[Obj, Sequence[Obj], Mapping[str, Any], datetime], list[Patch]]

#: verb -> (patches, message after the rollout's name: Argo's plugin's wording; restart has no
#: delay of its own, so "in 0s")
_VERBS: dict[str, tuple[_Patcher, str]] = {
    "promote": (_promote, "promoted"),
    "abort": (lambda ro, rss, a, now: useractions.abort(ro), "aborted"),
    "retry": (lambda ro, rss, a, now: useractions.retry(ro), "retried"),
    "pause": (lambda ro, rss, a, now: useractions.pause(ro), "paused"),
    "resume": (lambda ro, rss, a, now: useractions.resume(ro), "resumed"),
    "restart": (lambda ro, rss, a, now: useractions.restart(ro, rfc3339(now)), "restarts in 0s"),
    "undo": (_undo, "undo"),
    "set-image": (_set_image, "image updated"),  # worded as Argo's plugin: the name in double quotes
    "set-env": (_set_env, "env updated"),
}


def plan(verb: str, rollout: Obj, replicasets: Sequence[Obj], args: Mapping[str, Any], now: datetime) -> Plan:
    """The patches and message of ``verb`` on ``rollout`` (pure). ``replicasets``: the Rollout's
    (see :func:`needs_replicasets`; others in the list are ignored). ``args``: promote ``full``;
    undo ``toRevision``; set-image ``container``, ``image``; set-env ``container``, ``name``,
    ``value``. ``now``: the restart time. Raises VerbError."""
    entry = _VERBS.get(verb)
    if entry is None:
        raise VerbError(404, f"unknown action '{verb}' (known: {', '.join(VERBS)})")
    patcher, done = entry
    name = rollout.get("metadata", {}).get("name", "")
    try:
        patches = patcher(rollout, owners.owned(replicasets, {"kind": "Rollout", **rollout}), args, now)
    except useractions.UnknownTarget as exc:
        raise VerbError(400, str(exc)) from None
    except useractions.ActionError as exc:
        raise VerbError(409, str(exc)) from None
    if verb == "promote" and args.get("full"):
        done = "fully promoted"
    if verb == "set-image":
        return Plan(patches, f'rollout "{name}" {done}')
    return Plan(patches, f"rollout '{name}' {done}")


async def get_rollout(cluster: Cluster, namespace: str, name: str) -> Obj:
    """The Rollout; VerbError 404 naming it and its namespace when there is none."""
    try:
        return await cluster.get("Rollout", namespace, name)
    except NotFound:
        raise VerbError(404, f"rollout '{name}' not found in namespace '{namespace}'") from None


async def run(
    cluster: Cluster, namespace: str, name: str, verb: str, args: Mapping[str, Any], now: datetime
) -> Obj:
    """Do ``verb`` on the Rollout: read it (and its ReplicaSets when needed), :func:`plan`, apply
    the patches in order. Returns ``{"message": ..., "rollout": the Rollout after}``."""
    if verb not in _VERBS:
        raise VerbError(404, f"unknown action '{verb}' (known: {', '.join(VERBS)})")
    ro = await get_rollout(cluster, namespace, name)
    rss = await cluster.list("ReplicaSet", namespace) if needs_replicasets(verb) else []
    p = plan(verb, ro, rss, args, now)
    for patch in p.patches:
        ro = await cluster.patch("Rollout", namespace, name, patch.body, subresource=patch.subresource)
    return {"message": p.message, "rollout": ro}


# ---------------------------------------------------------------------------------------------
# verbs on an AnalysisRun


def plan_run(verb: str, run: Obj) -> Plan:
    """The patches and message of ``verb`` on an AnalysisRun (pure). terminate: Argo's patch
    (``spec.terminate: true``) and its message; a run that already ended is patched all the same
    (as Argo's plugin does: the controller ignores it). Raises VerbError 404 for an unknown verb."""
    if verb != "terminate":
        raise VerbError(404, f"unknown action '{verb}' on an analysisrun (known: {', '.join(RUN_VERBS)})")
    name = run.get("metadata", {}).get("name", "")
    return Plan(useractions.terminate_analysis_run(run), f"analysisRun '{name}' terminated")


async def get_analysis_run(cluster: Cluster, namespace: str, name: str) -> Obj:
    """The AnalysisRun; VerbError 404 naming it and its namespace when there is none."""
    try:
        return await cluster.get("AnalysisRun", namespace, name)
    except NotFound:
        raise VerbError(404, f"analysisrun '{name}' not found in namespace '{namespace}'") from None


async def run_on_analysis_run(cluster: Cluster, namespace: str, name: str, verb: str) -> Obj:
    """Do ``verb`` on the AnalysisRun: read it, :func:`plan_run`, apply the patches. Returns
    ``{"message": ..., "analysisRun": the run after}``."""
    if verb not in RUN_VERBS:
        raise VerbError(404, f"unknown action '{verb}' on an analysisrun (known: {', '.join(RUN_VERBS)})")
    run = await get_analysis_run(cluster, namespace, name)
    p = plan_run(verb, run)
    for patch in p.patches:
        run = await cluster.patch("AnalysisRun", namespace, name, patch.body, subresource=patch.subresource)
    return {"message": p.message, "analysisRun": run}
