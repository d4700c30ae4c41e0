"""`create analysisrun --from TEMPLATE`: an AnalysisRun made from one template, as Argo's plugin
makes it (``kubectl argo rollouts create analysisrun``). Pure: a template and the user's options in,
the run to create out; every client (the CLI's local and Kubernetes backends) creates what this
returns, so the run is built once.

As Argo: the run takes the template's spec (metrics, args, dryRun, measurementRetention) and its
labels and annotations; the user's ``-a NAME=VALUE`` values are laid over the template's args by
name (``model.analysisargs.merge_args``), and every arg must end with a value or a valueFrom; the
name is ``--name``, else ``--generate-name``, else the template's name and ``-`` as a generateName.
Stricter than Argo, because a typo would otherwise surface only as an unresolved arg: an ``-a`` the
template does not declare is refused, naming the args it has.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ..model import kinds, names
from ..model.analysisargs import ArgsError, merge_args
from .verbs import VerbError

Obj = dict[str, Any]

#: kubectl's copy of the applied manifest: not the run's to carry.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def parse_arg_flags(flags: Sequence[str]) -> list[Obj]:
    """``-a NAME=VALUE`` options as args (``[{name, value}]``); VerbError 400 for one without
    ``=`` or with an empty name."""
    out: list[Obj] = []
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep or not name:
            raise VerbError(
                400, f"-a {flag!r}: arguments must be in the form NAME=VALUE (e.g. -a service=web)"
            )
        out.append({"name": name, "value": value})
    return out


def _describe(template: Mapping[str, Any]) -> str:
    kind = str(template.get("kind") or "AnalysisTemplate")
    return f"{kind.lower()} '{(template.get('metadata') or {}).get('name', '')}'"


def _args(template: Mapping[str, Any], supplied: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """The run's args: the template's with the supplied values laid over them (VerbError 400
    naming an unknown or an unresolved arg and the fix)."""
    declared = [dict(a) for a in (template.get("spec") or {}).get("args") or []]
    known = [str(a.get("name")) for a in declared]
    for arg in supplied:
        if arg["name"] not in known:
            have = ", ".join(known) if known else "none"
            raise VerbError(
                400,
                f"-a {arg['name']}=...: {_describe(template)} declares no arg '{arg['name']}' "
                f"(its args: {have}); check the name",
            )
    try:
        return merge_args(declared, supplied)
    except ArgsError as exc:
        missing = [a["name"] for a in declared if a.get("value") is None and a.get("valueFrom") is None]
        missing = [m for m in missing if m not in {s["name"] for s in supplied}]
        fix = " ".join(f"-a {m}=VALUE" for m in missing)
        raise VerbError(
            400, f"{_describe(template)}: {exc}; supply it with {fix or '-a NAME=VALUE'}; nothing was created"
        ) from None


def run_from_template(
    template: Mapping[str, Any],
    supplied: Sequence[Mapping[str, Any]],
    *,
    namespace: str,
    name: str | None = None,
    generate_name: str | None = None,
    instance_id: str | None = None,
) -> Obj:
    """The AnalysisRun to create from ``template`` (an AnalysisTemplate or a
    ClusterAnalysisTemplate as stored) with the ``supplied`` args, in ``namespace`` (see the
    module docstring). Raises VerbError 400 naming what is wrong and the fix."""
    kind = template.get("kind")
    if kind not in (kinds.ANALYSIS_TEMPLATE.name, kinds.CLUSTER_ANALYSIS_TEMPLATE.name):
        raise VerbError(
            400, f"--from: expected an AnalysisTemplate or a ClusterAnalysisTemplate, not {kind!r}"
        )
    spec = copy.deepcopy(dict(template.get("spec") or {}))
    if spec.get("templates"):
        raise VerbError(
            400,
            f"{_describe(template)} includes other templates (spec.templates); create a run from a "
            "template that lists its metrics itself",
        )
    spec.pop("templates", None)
    args = _args(template, supplied)
    if args:
        spec["args"] = args
    tmeta = template.get("metadata") or {}
    meta: Obj = {"namespace": namespace}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name or f"{tmeta.get('name', '')}-"
    labels = dict(tmeta.get("labels") or {})
    if instance_id:
        labels[names.INSTANCE_ID_LABEL] = instance_id
    if labels:
        meta["labels"] = labels
    annotations = {k: v for k, v in (tmeta.get("annotations") or {}).items() if k != _LAST_APPLIED}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": names.API_VERSION, "kind": kinds.ANALYSIS_RUN.name, "metadata": meta, "spec": spec}
