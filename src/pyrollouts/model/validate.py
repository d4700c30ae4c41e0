"""The rules Argo Rollouts and Kubernetes enforce on a blue-green Rollout, its pod template and its
Services, as findings. Works on the JSON form, so ill-typed input gives findings, never exceptions.

``validate`` checks what one manifest can show; ``validate_references`` checks a Rollout against the
Services a cluster actually holds (the runtimes call it on every reconcile, as Argo does);
``pod_template_errors`` and ``rollout_spec_errors`` give the same checks as plain messages for an
InvalidSpec condition.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from lightkube.models.core_v1 import PodTemplateSpec

from . import names
from .analysis import ANALYSIS_KINDS
from .analysisrules import analysis_rules, rollout_analysis_rules
from .canaryrules import canary_rules
from .findings import ERROR, WARNING, Finding, Severity, format_path
from .parse import CLUSTER_SCOPED, Parsed
from .rollout import Rollout
from .schema import object_type
from .schemawalk import is_rfc3339, walk
from .yamlsafe import FieldPath, LineMap

Report = Callable[[FieldPath, str, str, Severity], None]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")
#: The longest Rollout name whose derived names fit 253 characters: a ReplicaSet adds "-" and a
#: pod-template hash of up to 10 characters, its pods "-" and 5 more (events add 17 as well).
MAX_ROLLOUT_NAME = 253 - 11 - 6
#: Kubernetes refuses an object whose annotations (keys and values) total more than 256 KiB.
MAX_ANNOTATIONS_BYTES = 256 * 1024
#: etcd, Kubernetes' store, refuses a request over 1.5 MiB: the largest object a cluster can hold.
MAX_OBJECT_BYTES = 1536 * 1024


# --- public API ------------------------------------------------------------------------------------


def validate(objects: Sequence[Parsed]) -> list[Finding]:
    """Every Argo and Kubernetes rule that the objects of one manifest can show.

    References are checked against the Services in the same list: a referenced Service that is in
    the list must match; one that is missing is a warning when the list holds other Services in that
    namespace (the file looks self-contained) and is not reported otherwise (it may be in the cluster).
    """
    out: list[Finding] = []
    services: dict[tuple[str | None, str], Mapping[str, Any]] = {
        (o.namespace, o.name): o.obj for o in objects if o.kind == "Service"
    }
    for o in objects:
        report = _reporter(out, o.source, o.lines)
        _size_rules(o.kind, o.obj, report)
        _metadata_rules(o.kind, o.obj, report)
        if o.kind == "Rollout":
            rollout_rules(o.obj, report)
            in_ns = {name: svc for (ns, name), svc in services.items() if ns == o.namespace}
            _reference_rules(o.obj, in_ns, report, missing_severity=WARNING if in_ns else None)
        elif o.kind == "Service":
            _service_rules(o.obj, report)
        elif o.kind == "Deployment":
            _deployment_rules(o.obj, report)
        elif o.kind in ANALYSIS_KINDS:
            analysis_rules(o.obj, report)
    _shared_service_rules(objects, out)
    out.extend(rollout_analysis_rules(objects))
    return out


def _shared_service_rules(objects: Sequence[Parsed], out: list[Finding]) -> None:
    """Two Rollouts of one manifest may not drive the same Service (each would switch its selector;
    Argo refuses the second at run time: 'managed by another Rollout')."""
    owner: dict[tuple[str | None, str], tuple[str, str]] = {}
    for o in objects:
        bg = _get(o.obj, "spec", "strategy", "blueGreen")
        if o.kind != "Rollout" or not isinstance(bg, Mapping):
            continue
        for key in ("activeService", "previewService"):
            svc = bg.get(key)
            if not isinstance(svc, str) or not svc:
                continue
            first = owner.setdefault((o.namespace, svc), (o.name, key))
            if first[0] != o.name:
                _reporter(out, o.source, o.lines)(
                    ("spec", "strategy", "blueGreen", key),
                    f'Service "{svc}" is already the {first[1]} of the Rollout "{first[0]}" in this manifest',
                    "give each Rollout its own Services",
                    ERROR,
                )


def _deployment_rules(obj: Mapping[str, Any], report: Report) -> None:
    """A Deployment is read only as a Rollout's spec.workloadRef: its pod template must be one a
    ReplicaSet could run (the Rollout's ReplicaSets are made from it)."""
    template = _get(obj, "spec", "template")
    if not isinstance(template, Mapping):
        report(
            ("spec", "template"),
            "the Deployment has no spec.template",
            "add the pod template the Rollout referencing it (spec.workloadRef) should run",
            ERROR,
        )
        return
    pod_template_rules(template, ("spec", "template"), report)


def validate_references(
    rollout: Rollout | Mapping[str, Any],
    services_by_name: Mapping[str, Mapping[str, Any]],
    *,
    source: str = "",
) -> list[Finding]:
    """Argo's reference checks: the active (and preview) Service exist, their selectors match the
    pod template's labels (``rollouts-pod-template-hash`` aside), and no other Rollout manages them.
    ``services_by_name`` holds the Services of the Rollout's namespace in their JSON form."""
    obj = rollout.wire() if isinstance(rollout, Rollout) else rollout
    out: list[Finding] = []
    _reference_rules(obj, services_by_name, _reporter(out, source, None), missing_severity=ERROR)
    return out


def pod_template_errors(template: Mapping[str, Any] | None) -> list[str]:
    """What Kubernetes would refuse in a Rollout's spec.template, as ``path: problem`` messages."""
    out: list[Finding] = []
    report = _reporter(out, "", None)
    base: FieldPath = ("spec", "template")
    if template is None:
        report(base, "the pod template is missing", "set spec.template", ERROR)
    else:
        out.extend(
            walk(template, object_type(PodTemplateSpec), "", LineMap(), base=base, unknown_fields=False)
        )
        pod_template_rules(template, base, report)
    return _messages(out)


def rollout_spec_errors(obj: Mapping[str, Any]) -> list[str]:
    """Every error ``validate`` would find in one Rollout (JSON form), as ``path: problem`` messages,
    for an InvalidSpec condition. Types are checked too; unknown fields are not (the API server
    prunes them)."""
    out: list[Finding] = []
    report = _reporter(out, "", None)
    from .schema import kind_type

    root = kind_type("Rollout")
    assert root is not None
    out.extend(walk(obj, root, "", LineMap(), unknown_fields=False))
    _metadata_rules("Rollout", obj, report)
    rollout_rules(obj, report)
    return _messages(out)


# --- plumbing --------------------------------------------------------------------------------------


def _reporter(out: list[Finding], source: str, lines: LineMap | None) -> Report:
    def report(path: FieldPath, problem: str, fix: str, severity: Severity = ERROR) -> None:
        line = lines.line(path) if lines is not None else None
        out.append(Finding(source, line, format_path(path), severity, problem, fix))

    return report


def _messages(findings: Sequence[Finding]) -> list[str]:
    seen: set[str] = set()
    msgs: list[str] = []
    for f in findings:
        if f.severity != ERROR:
            continue
        msg = f"{f.path}: {f.problem}" if f.path else f.problem
        if msg not in seen:
            seen.add(msg)
            msgs.append(msg)
    return msgs


def _get(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(k)
    return obj


def _int(v: Any) -> int | None:
    """The value as an int when it is one (booleans are not); None otherwise."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _non_negative(obj: Any, key: str, path: FieldPath, report: Report) -> None:
    v = _int(_get(obj, key))
    if v is not None and v < 0:
        report((*path, key), f"{key} is {v}; it must not be negative", f"set {key} to 0 or more", ERROR)


# --- metadata and labels ---------------------------------------------------------------------------


def _size_rules(kind: str, obj: Mapping[str, Any], report: Report) -> None:
    """What Kubernetes refuses for size: annotations over 256 KiB, an object over 1.5 MiB."""
    annotations = _get(obj, "metadata", "annotations")
    if isinstance(annotations, Mapping):
        total = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
        if total > MAX_ANNOTATIONS_BYTES:
            report(
                ("metadata", "annotations"),
                f"the annotations hold {total} bytes; Kubernetes allows at most 256 KiB "
                f"({MAX_ANNOTATIONS_BYTES} bytes) in all",
                "keep large data out of annotations (in a ConfigMap or a file)",
                ERROR,
            )
    size = len(json.dumps(obj, separators=(",", ":"), default=str).encode())
    if size > MAX_OBJECT_BYTES:
        report(
            (),
            f"the {kind} is {size} bytes as JSON; Kubernetes stores objects of at most 1.5 MiB "
            f"({MAX_OBJECT_BYTES} bytes)",
            "make it smaller: move large values (env, command, annotations) to a ConfigMap or a file",
            ERROR,
        )


def _metadata_rules(kind: str, obj: Mapping[str, Any], report: Report) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return
    name = meta.get("name")
    if isinstance(name, str) and name:
        if kind == "Service":
            ok, rule = (
                bool(_DNS1035_LABEL.match(name)) and len(name) <= 63,
                "a DNS-1035 label (lower case "
                "letters, digits and '-', starting with a letter, at most 63 characters)",
            )
        elif kind == "Namespace":
            ok, rule = (
                bool(_DNS1123_LABEL.match(name)) and len(name) <= 63,
                "a DNS-1123 label (lower case letters, digits and '-', at most 63 characters)",
            )
        else:
            ok, rule = (
                bool(_DNS1123_SUBDOMAIN.match(name)) and len(name) <= 253,
                "a DNS-1123 subdomain (lower case letters, digits, '-' and '.')",
            )
        if not ok:
            report(("metadata", "name"), f"the name {name!r} is not {rule}", "choose a valid name", ERROR)
        elif kind == "Rollout" and len(name) > MAX_ROLLOUT_NAME:
            report(
                ("metadata", "name"),
                f"the Rollout's name is {len(name)} characters: its ReplicaSets (NAME-HASH), their pods "
                f"(NAME-HASH-xxxxx) and its events would be named beyond Kubernetes' 253",
                f"use a name of at most {MAX_ROLLOUT_NAME} characters",
                ERROR,
            )
    ns = meta.get("namespace")
    if (
        kind not in CLUSTER_SCOPED
        and isinstance(ns, str)
        and ns
        and not (_DNS1123_LABEL.match(ns) and len(ns) <= 63)
    ):
        report(
            ("metadata", "namespace"),
            f"the namespace {ns!r} is not a DNS-1123 label",
            "use lower case letters, digits and '-'",
            ERROR,
        )
    label_rules(meta.get("labels"), ("metadata", "labels"), report)
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping):
        for key in annotations:
            _qualified_key(key, ("metadata", "annotations", key), "annotation", report)


def label_rules(labels: Any, path: FieldPath, report: Report) -> None:
    """Label keys are qualified names, values at most 63 characters of [A-Za-z0-9-_.]."""
    if not isinstance(labels, Mapping):
        return
    for key, value in labels.items():
        _qualified_key(key, (*path, key), "label", report)
        if isinstance(value, str) and value and not (_QUALIFIED_NAME.match(value) and len(value) <= 63):
            report(
                (*path, key),
                f"the label value {value!r} is not valid",
                "use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
                ERROR,
            )


def _qualified_key(key: Any, path: FieldPath, what: str, report: Report) -> None:
    if not isinstance(key, str):
        return
    prefix, _, name = key.rpartition("/")
    ok = bool(_QUALIFIED_NAME.match(name)) and len(name) <= 63
    if prefix:
        ok = ok and bool(_DNS1123_SUBDOMAIN.match(prefix)) and len(prefix) <= 253
    if not ok:
        report(
            path,
            f"the {what} key {key!r} is not a valid qualified name",
            "use an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'",
            ERROR,
        )


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    match_labels = selector.get("matchLabels") or {}
    if isinstance(match_labels, Mapping):
        for k, v in match_labels.items():
            if labels.get(k) != v:
                return False
    exprs = selector.get("matchExpressions") or []
    for e in exprs if isinstance(exprs, list) else []:
        if not isinstance(e, Mapping):
            continue
        key, op, values = str(e.get("key")), e.get("operator"), e.get("values") or []
        present = key in labels
        if (
            (op == "In" and (not present or labels[key] not in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _selector_rules(selector: Any, path: FieldPath, report: Report) -> None:
    if not isinstance(selector, Mapping):
        return
    label_rules(selector.get("matchLabels"), (*path, "matchLabels"), report)
    exprs = selector.get("matchExpressions")
    for i, e in enumerate(exprs if isinstance(exprs, list) else []):
        if not isinstance(e, Mapping):
            continue
        op, values = e.get("operator"), e.get("values")
        p = (*path, "matchExpressions", i)
        if op in ("In", "NotIn") and not values:
            report((*p, "values"), f"operator {op} needs at least one value", "list the values", ERROR)
        elif op in ("Exists", "DoesNotExist") and values:
            report((*p, "values"), f"operator {op} takes no values", "remove values", ERROR)
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            report(
                (*p, "operator"), f"unknown operator {op!r}", "use In, NotIn, Exists or DoesNotExist", ERROR
            )


# --- the Rollout -----------------------------------------------------------------------------------


def rollout_rules(obj: Mapping[str, Any], report: Report) -> None:
    """Argo's ValidateRolloutSpec for a blue-green Rollout, on its JSON form."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        report(("spec",), "the Rollout has no spec", "add spec with selector, template and strategy", ERROR)
        return
    _non_negative(spec, "replicas", ("spec",), report)

    selector, template, workload_ref = spec.get("selector"), spec.get("template"), spec.get("workloadRef")
    if workload_ref is None:
        if selector is None:
            report(
                ("spec", "selector"),
                "Rollout has missing field '.spec.selector'",
                "add spec.selector.matchLabels matching the pod template's labels",
                ERROR,
            )
        elif isinstance(selector, Mapping):
            _selector_rules(selector, ("spec", "selector"), report)
            if not (selector.get("matchLabels") or selector.get("matchExpressions")):
                report(
                    ("spec", "selector"),
                    "the selector is empty; an empty selector is invalid",
                    "add matchLabels matching the pod template's labels",
                    ERROR,
                )
        if template is None:
            report(
                ("spec", "template"),
                "Rollout has missing field '.spec.template'",
                "add the pod template (or a workloadRef)",
                ERROR,
            )
    elif template:
        report(
            ("spec", "template"),
            "template must be empty for a workload reference rollout",
            "remove spec.template or spec.workloadRef",
            ERROR,
        )
    if isinstance(workload_ref, Mapping):
        _workload_ref_rules(workload_ref, report)

    if isinstance(template, Mapping):
        pod_template_rules(template, ("spec", "template"), report)
        labels = _get(template, "metadata", "labels")
        if (
            isinstance(selector, Mapping)
            and (selector.get("matchLabels") or selector.get("matchExpressions"))
            and not _selector_matches(selector, labels if isinstance(labels, Mapping) else {})
        ):
            report(
                ("spec", "template", "metadata", "labels"),
                "`selector` does not match template `labels`",
                "give the pod template every label that spec.selector.matchLabels asks for",
                ERROR,
            )

    for key in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        _non_negative(spec, key, ("spec",), report)
    min_ready = _int(spec.get("minReadySeconds")) or 0
    pds = _int(spec.get("progressDeadlineSeconds"))
    effective_pds = names.DEFAULT_PROGRESS_DEADLINE_SECONDS if pds is None else pds
    if effective_pds <= min_ready:
        report(
            ("spec", "progressDeadlineSeconds"),
            f"progressDeadlineSeconds ({effective_pds}{'' if pds is not None else ', the default'}) "
            f"must be greater than minReadySeconds ({min_ready})",
            f"set progressDeadlineSeconds above {min_ready}",
            ERROR,
        )
    _non_negative(spec.get("rollbackWindow"), "revisions", ("spec", "rollbackWindow"), report)
    restart_at = spec.get("restartAt")
    if isinstance(restart_at, str) and restart_at and not is_rfc3339(restart_at):
        report(
            ("spec", "restartAt"),
            f"restartAt {restart_at[:60]!r} is not an RFC 3339 time",
            "write a time such as 2024-05-01T12:00:00Z",
            ERROR,
        )

    _strategy_rules(spec, report)


def _workload_ref_rules(ref: Mapping[str, Any], report: Report) -> None:
    path: FieldPath = ("spec", "workloadRef")
    kind, api_version, name = ref.get("kind"), ref.get("apiVersion"), ref.get("name")
    if kind not in (None, "Deployment") or api_version not in (None, "apps/v1"):
        report(
            path,
            f"workloadRef names {api_version}/{kind}; pyrollouts reads a Deployment (apps/v1) only",
            "refer to a Deployment: apiVersion: apps/v1, kind: Deployment",
            ERROR,
        )
    if not isinstance(name, str) or not name:
        report((*path, "name"), "workloadRef has no name", "name the Deployment", ERROR)
    elif not (_DNS1123_SUBDOMAIN.match(name) and len(name) <= 253):
        report(
            (*path, "name"),
            f"workloadRef.name {name!r} is not a valid Deployment name (a DNS-1123 subdomain)",
            "use lower case letters, digits, '-' and '.'",
            ERROR,
        )


def _strategy_rules(spec: Mapping[str, Any], report: Report) -> None:
    strategy = spec.get("strategy")
    bg = _get(strategy, "blueGreen")
    canary = _get(strategy, "canary")
    path: FieldPath = ("spec", "strategy")
    if bg is None and canary is None:
        report(
            path,
            "Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'",
            "add strategy.blueGreen with activeService",
            ERROR,
        )
        return
    if bg is not None and canary is not None:
        report(path, "Multiple Strategies can not be listed", "keep blueGreen or canary, not both", ERROR)
        return
    if canary is not None:
        if isinstance(canary, Mapping):
            rhl = _int(spec.get("revisionHistoryLimit"))
            effective = names.DEFAULT_REVISION_HISTORY_LIMIT if rhl is None else rhl
            canary_rules(canary, (*path, "canary"), effective, report)
            for key in ("canaryService", "stableService"):
                ref = canary.get(key)
                if isinstance(ref, str) and ref and not (_DNS1035_LABEL.match(ref) and len(ref) <= 63):
                    report(
                        (*path, "canary", key),
                        f"{key} {ref!r} is not a valid Service name (a DNS-1035 label)",
                        "name the Service: lower case letters, digits and '-', starting with a letter",
                        ERROR,
                    )
            for key in ("canaryMetadata", "stableMetadata"):
                label_rules(_get(canary, key, "labels"), (*path, "canary", key, "labels"), report)
        return
    if not isinstance(bg, Mapping):
        return
    bpath: FieldPath = (*path, "blueGreen")
    active, preview = bg.get("activeService"), bg.get("previewService")
    if not active:
        report(
            (*bpath, "activeService"),
            "Rollout has missing field '.spec.strategy.blueGreen.activeService'",
            "name the Service that carries production traffic",
            ERROR,
        )
    elif active == preview:
        report(
            (*bpath, "activeService"),
            "This rollout uses the same service for the active and preview services, but two different "
            "services are required.",
            "use two different Services",
            ERROR,
        )
    for key in ("activeService", "previewService"):
        ref = bg.get(key)
        if isinstance(ref, str) and ref and not (_DNS1035_LABEL.match(ref) and len(ref) <= 63):
            report(
                (*bpath, key),
                f"{key} {ref!r} is not a valid Service name (a DNS-1035 label), so no Service can have it",
                "name the Service: lower case letters, digits and '-', starting with a letter, "
                "at most 63 characters",
                ERROR,
            )
    for key in (
        "previewReplicaCount",
        "autoPromotionSeconds",
        "scaleDownDelaySeconds",
        "scaleDownDelayRevisionLimit",
        "abortScaleDownDelaySeconds",
    ):
        _non_negative(bg, key, bpath, report)
    limit = _int(bg.get("scaleDownDelayRevisionLimit"))
    rhl = _int(spec.get("revisionHistoryLimit"))
    effective_rhl = names.DEFAULT_REVISION_HISTORY_LIMIT if rhl is None else rhl
    if limit is not None and limit > effective_rhl:
        report(
            (*bpath, "scaleDownDelayRevisionLimit"),
            f"scaleDownDelayRevisionLimit ({limit}) is larger than revisionHistoryLimit ({effective_rhl}"
            f"{'' if rhl is not None else ', the default'}): this rollout's revision history limit can "
            "not be smaller than its scale down limit",
            "lower scaleDownDelayRevisionLimit or raise revisionHistoryLimit",
            ERROR,
        )
    if bg.get("autoPromotionEnabled") is False and _int(bg.get("autoPromotionSeconds")):
        report(
            (*bpath, "autoPromotionSeconds"),
            "autoPromotionSeconds is ignored while autoPromotionEnabled is false",
            "remove one of them",
            WARNING,
        )
    for key in ("previewMetadata", "activeMetadata"):
        label_rules(_get(bg, key, "labels"), (*bpath, key, "labels"), report)
    anti = bg.get("antiAffinity")
    if isinstance(anti, Mapping):
        apath = (*bpath, "antiAffinity")
        preferred = anti.get("preferredDuringSchedulingIgnoredDuringExecution")
        required = anti.get("requiredDuringSchedulingIgnoredDuringExecution")
        if (preferred is None) == (required is None):
            report(
                apath,
                "AntiAffinity must have exactly one strategy listed",
                "set either preferredDuringSchedulingIgnoredDuringExecution or "
                "requiredDuringSchedulingIgnoredDuringExecution",
                ERROR,
            )
        if isinstance(preferred, Mapping):
            weight = _int(preferred.get("weight"))
            if weight is not None and not 1 <= weight <= 100:
                report(
                    (*apath, "preferredDuringSchedulingIgnoredDuringExecution", "weight"),
                    f"AntiAffinity weight must be between 1-100 (it is {weight})",
                    "set a weight from 1 to 100",
                    ERROR,
                )


# --- the pod template ------------------------------------------------------------------------------


def pod_template_rules(template: Mapping[str, Any], base: FieldPath, report: Report) -> None:
    """What Kubernetes' ValidatePodTemplateSpecForReplicaSet refuses (the parts that matter here)."""
    if not isinstance(template, Mapping):
        return
    label_rules(_get(template, "metadata", "labels"), (*base, "metadata", "labels"), report)
    spec = template.get("spec")
    spath: FieldPath = (*base, "spec")
    if not isinstance(spec, Mapping):
        report(spath, "the pod template has no spec", "add spec.containers", ERROR)
        return
    restart = spec.get("restartPolicy")
    if restart is not None and restart != "Always":
        report(
            (*spath, "restartPolicy"),
            f"restartPolicy {restart!r} is not allowed: a ReplicaSet's pods must restart Always",
            "remove restartPolicy or set it to Always",
            ERROR,
        )
    if spec.get("activeDeadlineSeconds") is not None:
        report(
            (*spath, "activeDeadlineSeconds"),
            "activeDeadlineSeconds is not supported for a ReplicaSet's pods",
            "remove it",
            ERROR,
        )
    _non_negative(spec, "terminationGracePeriodSeconds", spath, report)
    if spec.get("ephemeralContainers"):
        report(
            (*spath, "ephemeralContainers"),
            "ephemeral containers cannot be set when a pod is created (Kubernetes refuses them here)",
            "remove ephemeralContainers; add debugging containers to a running pod instead",
            ERROR,
        )

    volumes: set[str] = set()
    vols = spec.get("volumes")
    for i, v in enumerate(vols if isinstance(vols, list) else []):
        vname = _get(v, "name")
        if isinstance(vname, str):
            if vname in volumes:
                report(
                    (*spath, "volumes", i, "name"),
                    f"the volume name {vname!r} is used twice",
                    "give each volume its own name",
                    ERROR,
                )
            volumes.add(vname)
            _dns_label(vname, (*spath, "volumes", i, "name"), "volume name", report)

    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        report(
            (*spath, "containers"), "the pod template has no containers", "add at least one container", ERROR
        )
        containers = []
    inits = spec.get("initContainers")
    seen: set[str] = set()
    for key, group in (
        ("initContainers", inits if isinstance(inits, list) else []),
        ("containers", containers),
    ):
        for i, c in enumerate(group):
            if isinstance(c, Mapping):
                _container_rules(c, (*spath, key, i), seen, volumes, report, init=key == "initContainers")


def _dns_label(value: str, path: FieldPath, what: str, report: Report) -> None:
    if not (_DNS1123_LABEL.match(value) and len(value) <= 63):
        report(
            path,
            f"the {what} {value!r} is not a DNS-1123 label",
            "use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit",
            ERROR,
        )


def _unique_name(name: Any, path: FieldPath, what: str, seen: set[str], report: Report) -> bool:
    """Check ``name`` (at ``path``.name) as a DNS label not yet in ``seen``, and add it there; False
    when there is no name to check (absent, empty or not text)."""
    if not (isinstance(name, str) and name):
        return False
    _dns_label(name, (*path, "name"), f"{what} name", report)
    if name in seen:
        report(
            (*path, "name"),
            f"the {what} name {name!r} is used twice",
            f"give each {what} its own name",
            ERROR,
        )
    seen.add(name)
    return True


def _container_rules(
    c: Mapping[str, Any], path: FieldPath, seen: set[str], volumes: set[str], report: Report, *, init: bool
) -> None:
    name = c.get("name")
    if not _unique_name(name, path, "container", seen, report) and (name is None or name == ""):
        report(path, "the container has no name", "set name", ERROR)

    image = c.get("image")
    if not image:
        if c.get("command"):
            report(
                (*path, "image"),
                "the container has no image: Kubernetes requires one; only the local runtime can run a "
                "command-only container",
                "set image to run this on Kubernetes",
                WARNING,
            )
        else:
            report(
                (*path, "image"),
                "the container has no image (and no command)",
                "set image (or, for the local runtime only, command)",
                ERROR,
            )
    if isinstance(image, str) and image and image != image.strip():
        report(
            (*path, "image"),
            f"the image {image[:60]!r} has leading or trailing whitespace (Kubernetes refuses it)",
            "remove the spaces around the image name",
            ERROR,
        )
    policy = c.get("imagePullPolicy")
    if isinstance(policy, str) and policy not in _PULL_POLICIES:
        report(
            (*path, "imagePullPolicy"),
            f"imagePullPolicy {policy!r} is not supported",
            "use Always, IfNotPresent or Never",
            ERROR,
        )

    _resources_rules(c.get("resources"), (*path, "resources"), report)
    _no_nul(c, path, report)
    port_names: set[str] = set()
    ports = c.get("ports")
    for i, p in enumerate(ports if isinstance(ports, list) else []):
        if isinstance(p, Mapping):
            _container_port_rules(p, (*path, "ports", i), port_names, report)

    env = c.get("env")
    env_names: set[str] = set()
    for i, e in enumerate(env if isinstance(env, list) else []):
        if isinstance(e, Mapping):
            _env_rules(e, (*path, "env", i), env_names, report)

    mounts = c.get("volumeMounts")
    for i, m in enumerate(mounts if isinstance(mounts, list) else []):
        mname = _get(m, "name")
        if isinstance(mname, str) and mname not in volumes:
            report(
                (*path, "volumeMounts", i, "name"),
                f"no volume named {mname!r} in the pod template",
                "add it to spec.volumes or fix the name",
                ERROR,
            )

    for probe_key in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = c.get(probe_key)
        if isinstance(probe, Mapping):
            if init and c.get("restartPolicy") != "Always":
                report(
                    (*path, probe_key),
                    f"an init container may not have a {probe_key}",
                    "remove it, or make the init container a sidecar (restartPolicy: Always)",
                    ERROR,
                )
                continue
            _probe_rules(probe, probe_key, (*path, probe_key), port_names, report)


def _no_nul(c: Mapping[str, Any], path: FieldPath, report: Report) -> None:
    """A process's arguments, environment and working directory are C strings: no NUL in them."""
    places: list[tuple[FieldPath, Any]] = [((*path, "workingDir"), c.get("workingDir"))]
    for key in ("command", "args"):
        items = c.get(key)
        places += [((*path, key, i), v) for i, v in enumerate(items if isinstance(items, list) else [])]
    env = c.get("env")
    for i, e in enumerate(env if isinstance(env, list) else []):
        if isinstance(e, Mapping):
            places.append(((*path, "env", i, "value"), e.get("value")))
    for where, value in places:
        if isinstance(value, str) and "\x00" in value:
            report(
                where,
                "the value holds a NUL character, which no process argument or environment value can",
                "remove the NUL (\\0) from it",
                ERROR,
            )


_QUANTITY_SUFFIX = {
    **{"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)},
    **{"k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12)},
    **{"P": Decimal(10**15), "E": Decimal(10**18)},
    **{s: Decimal(2 ** (10 * (i + 1))) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}
_QUANTITY_PARTS = re.compile(
    r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


def quantity_value(q: Any) -> Decimal | None:
    """A resource quantity (``500m``, ``128Mi``, ``2``) as a number; None when it is not one."""
    if isinstance(q, bool) or not isinstance(q, int | float | str):
        return None
    if isinstance(q, float) and not math.isfinite(q):
        return None
    m = _QUANTITY_PARTS.match(str(q).strip()) if isinstance(q, str) else None
    try:
        if m is None:
            return Decimal(q) if not isinstance(q, str) else None
        return Decimal(m.group(1)) * _QUANTITY_SUFFIX[m.group(2) or ""]
    except ArithmeticError:  # InvalidOperation, or Overflow for an exponent such as 1e999999999Ki
        return None


def _resources_rules(resources: Any, path: FieldPath, report: Report) -> None:
    """Kubernetes: no negative quantity, and a request at most its limit."""
    if not isinstance(resources, Mapping):
        return
    values: dict[str, dict[str, Decimal]] = {}
    for part in ("requests", "limits"):
        given = resources.get(part)
        values[part] = {}
        for name, q in given.items() if isinstance(given, Mapping) else []:
            v = quantity_value(q)
            if v is None:
                continue
            values[part][name] = v
            if v < 0:
                report(
                    (*path, part, name),
                    f"{part}.{name} is {q}; a resource quantity must not be negative",
                    f"set {name} to 0 or more",
                    ERROR,
                )
    for name, request in values["requests"].items():
        limit = values["limits"].get(name)
        if limit is not None and request > limit >= 0:
            report(
                (*path, "requests", name),
                f"the {name} request ({resources['requests'][name]}) is more than its limit "
                f"({resources['limits'][name]})",
                f"lower the request or raise the limit of {name}",
                ERROR,
            )


def _container_port_rules(
    p: Mapping[str, Any], path: FieldPath, names_seen: set[str], report: Report
) -> None:
    cp = _int(p.get("containerPort"))
    if cp is not None and not 1 <= cp <= 65535:
        report(
            (*path, "containerPort"),
            f"containerPort {cp} is out of range",
            "use a port from 1 to 65535",
            ERROR,
        )
    hp = _int(p.get("hostPort"))
    if hp is not None and hp != 0 and not 1 <= hp <= 65535:
        report((*path, "hostPort"), f"hostPort {hp} is out of range", "use a port from 1 to 65535", ERROR)
    pname = p.get("name")
    if isinstance(pname, str) and pname:
        _port_name(pname, (*path, "name"), report)
        if pname in names_seen:
            report(
                (*path, "name"),
                f"the port name {pname!r} is used twice in this container",
                "give each port its own name",
                ERROR,
            )
        names_seen.add(pname)
    proto = p.get("protocol")
    if isinstance(proto, str) and proto not in _PROTOCOLS:
        report((*path, "protocol"), f"protocol {proto!r} is not supported", "use TCP, UDP or SCTP", ERROR)


def _port_name(name: str, path: FieldPath, report: Report) -> None:
    if re.fullmatch(r"[0-9]+", name):
        report(
            path,
            f'"{name}" is a string, and Kubernetes rejects a numeric string as a port name',
            f"write {name}, a number without quotes",
            ERROR,
        )
    elif not (
        _IANA_SVC_NAME.match(name) and len(name) <= 15 and "--" not in name and re.search("[a-z]", name)
    ):
        report(
            path,
            f"the port name {name!r} is not an IANA_SVC_NAME",
            "use at most 15 lower case letters, digits and '-', with at least one letter",
            ERROR,
        )


def _port_ref(port: Any, path: FieldPath, report: Report) -> None:
    """A port given as a number (1-65535) or as the name of a container port."""
    if isinstance(port, bool):
        return
    n = _int(port)
    if n is not None:
        if not 1 <= n <= 65535:
            report(path, f"port {n} is out of range", "use a port from 1 to 65535", ERROR)
    elif isinstance(port, str):
        _port_name(port, path, report)


def _env_rules(e: Mapping[str, Any], path: FieldPath, seen: set[str], report: Report) -> None:
    name = e.get("name")
    if isinstance(name, str) and name:
        if not _ENV_NAME.match(name):
            report(
                (*path, "name"),
                f"the environment variable name {name!r} is not valid",
                "use letters, digits, '_', '-' and '.', not starting with a digit",
                ERROR,
            )
        if name in seen:
            report(
                (*path, "name"),
                f"the environment variable {name!r} is set twice; the last one wins",
                "remove the duplicate",
                WARNING,
            )
        seen.add(name)
    value_from = e.get("valueFrom")
    if value_from is not None and e.get("value") not in (None, ""):
        report(path, "an environment variable may have value or valueFrom, not both", "remove one", ERROR)
    if isinstance(value_from, Mapping):
        given = [k for k in _ENV_SOURCES if value_from.get(k) is not None]
        if len(given) != 1:
            report(
                (*path, "valueFrom"),
                "valueFrom must name exactly one source",
                f"use one of {', '.join(_ENV_SOURCES)}",
                ERROR,
            )


def _probe_rules(
    probe: Mapping[str, Any], kind: str, path: FieldPath, port_names: set[str], report: Report
) -> None:
    handlers = [h for h in _PROBE_HANDLERS if probe.get(h) is not None]
    if not handlers:
        report(path, f"the {kind} has no handler", "set one of exec, httpGet, tcpSocket or grpc", ERROR)
    elif len(handlers) > 1:
        report(
            path,
            f"the {kind} has more than one handler ({', '.join(handlers)})",
            "keep exactly one of exec, httpGet, tcpSocket or grpc",
            ERROR,
        )
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        _non_negative(probe, key, path, report)
    success = _int(probe.get("successThreshold"))
    if kind in ("livenessProbe", "startupProbe") and success not in (None, 0, 1):
        report((*path, "successThreshold"), f"successThreshold of a {kind} must be 1", "set it to 1", ERROR)
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is not None:
        if kind == "readinessProbe":
            report(
                (*path, "terminationGracePeriodSeconds"),
                "a readinessProbe may not set terminationGracePeriodSeconds",
                "remove it",
                ERROR,
            )
        elif (_int(grace) or 0) < 1:
            report(
                (*path, "terminationGracePeriodSeconds"),
                "terminationGracePeriodSeconds must be positive",
                "set it to 1 or more",
                ERROR,
            )
    http = probe.get("httpGet")
    if isinstance(http, Mapping):
        port = http.get("port")
        if port is None:
            report((*path, "httpGet"), "httpGet has no port", "set httpGet.port", ERROR)
        _port_ref(port, (*path, "httpGet", "port"), report)
        _named_port_declared(port, port_names, (*path, "httpGet", "port"), report)
        scheme = http.get("scheme")
        if isinstance(scheme, str) and scheme not in ("HTTP", "HTTPS"):
            report(
                (*path, "httpGet", "scheme"),
                f"scheme {scheme!r} is not supported",
                "use HTTP or HTTPS",
                ERROR,
            )
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, Mapping):
        _port_ref(tcp.get("port"), (*path, "tcpSocket", "port"), report)
        _named_port_declared(tcp.get("port"), port_names, (*path, "tcpSocket", "port"), report)
    grpc = probe.get("grpc")
    if isinstance(grpc, Mapping):
        _port_ref(grpc.get("port"), (*path, "grpc", "port"), report)
    exe = probe.get("exec")
    if isinstance(exe, Mapping) and not exe.get("command"):
        report(
            (*path, "exec", "command"), "exec has no command", "set exec.command to an argument list", ERROR
        )


def _named_port_declared(port: Any, port_names: set[str], path: FieldPath, report: Report) -> None:
    if (
        isinstance(port, str)
        and _IANA_SVC_NAME.match(port)
        and re.search("[a-z]", port)
        and port not in port_names
    ):
        report(
            path,
            f"no port named {port!r} is declared in this container, so the probe cannot reach it",
            "add it to the container's ports, or use the port number",
            WARNING,
        )


# --- Services and references -----------------------------------------------------------------------


def _service_rules(obj: Mapping[str, Any], report: Report) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        report(("spec",), "the Service has no spec", "add spec.selector and spec.ports", ERROR)
        return
    stype = spec.get("type")
    if isinstance(stype, str) and stype not in _SERVICE_TYPES:
        report(
            ("spec", "type"),
            f"Service type {stype!r} is not supported",
            "use ClusterIP, NodePort, LoadBalancer or ExternalName",
            ERROR,
        )
    if stype == "ExternalName" and not spec.get("externalName"):
        report(
            ("spec", "externalName"),
            "a Service of type ExternalName needs spec.externalName",
            "set externalName to a DNS name, or use type ClusterIP",
            ERROR,
        )
    label_rules(spec.get("selector"), ("spec", "selector"), report)
    ports = spec.get("ports")
    if not isinstance(ports, list) or not ports:
        if stype != "ExternalName":
            report(("spec", "ports"), "the Service has no ports", "add at least one port", ERROR)
        return
    port_names: set[str] = set()
    numbers: dict[tuple[int, str], int] = {}
    for i, p in enumerate(ports):
        if not isinstance(p, Mapping):
            continue
        path: FieldPath = ("spec", "ports", i)
        n = _int(p.get("port"))
        if n is not None and not 1 <= n <= 65535:
            report((*path, "port"), f"port {n} is out of range", "use a port from 1 to 65535", ERROR)
        elif n is not None:
            key = (n, str(p.get("protocol") or "TCP"))
            if key in numbers:
                report(
                    (*path, "port"),
                    f"port {n}/{key[1]} is already spec.ports[{numbers[key]}]",
                    "give each port of a Service its own number",
                    ERROR,
                )
            numbers.setdefault(key, i)
        if p.get("targetPort") is not None:
            _port_ref(p.get("targetPort"), (*path, "targetPort"), report)
        if not _unique_name(p.get("name"), path, "port", port_names, report) and len(ports) > 1:
            report(path, "a Service with more than one port must name each port", "set name", ERROR)
        proto = p.get("protocol")
        if isinstance(proto, str) and proto not in _PROTOCOLS:
            report((*path, "protocol"), f"protocol {proto!r} is not supported", "use TCP, UDP or SCTP", ERROR)


def _reference_rules(
    obj: Mapping[str, Any],
    services: Mapping[str, Mapping[str, Any]],
    report: Report,
    *,
    missing_severity: Severity | None,
) -> None:
    bg = _get(obj, "spec", "strategy", "blueGreen")
    strategy, keys = "blueGreen", ("activeService", "previewService")
    if not isinstance(bg, Mapping):
        bg = _get(obj, "spec", "strategy", "canary")
        strategy, keys = "canary", ("stableService", "canaryService")
    if not isinstance(bg, Mapping):
        return
    rollout_name = _get(obj, "metadata", "name")
    # With a workloadRef the labels come from the Deployment, which a manifest alone cannot show.
    check_labels = isinstance(_get(obj, "spec", "template"), Mapping)
    labels = _get(obj, "spec", "template", "metadata", "labels")
    labels = labels if isinstance(labels, Mapping) else {}
    for key in keys:
        svc_name = bg.get(key)
        if not isinstance(svc_name, str) or not svc_name:
            continue
        path: FieldPath = ("spec", "strategy", strategy, key)
        svc = services.get(svc_name)
        if svc is None:
            if missing_severity is not None:
                report(
                    path,
                    f'service "{svc_name}" not found',
                    "create the Service (in the Rollout's namespace) or fix the name",
                    missing_severity,
                )
            continue
        selector = _get(svc, "spec", "selector")
        for k, v in selector.items() if check_labels and isinstance(selector, Mapping) else []:
            if k == names.POD_TEMPLATE_HASH_LABEL:
                continue
            if labels.get(k) != v:
                report(
                    path,
                    f'Service "{svc_name}" has unmatch label "{k}" in rollout: its selector wants '
                    f"{k}={v}, the pod template has {k}={labels.get(k)}",
                    "make the Service's selector and the pod template's labels agree",
                    ERROR,
                )
        manager = _get(svc, "metadata", "annotations", names.MANAGED_BY_ANNOTATION)
        if isinstance(manager, str) and manager and isinstance(rollout_name, str) and manager != rollout_name:
            report(
                path,
                f'Service "{svc_name}" is managed by the Rollout "{manager}"',
                "give each Rollout its own Services",
                ERROR,
            )
