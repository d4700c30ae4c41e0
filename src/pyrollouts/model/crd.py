"""The CustomResourceDefinitions a cluster needs: Argo's Rollout, the analysis kinds
(AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun), and Experiment, which Argo's kubectl
plugin and dashboard watch (its schema keeps unknown fields: experiments are not built). The
schemas are generated from ``model.rollout`` and ``model.analysis``."""

from __future__ import annotations

from typing import Any

from . import kinds, names
from .analysis import ANALYSIS_KINDS
from .schema import kind_openapi_schema, rollout_openapi_schema

_OPEN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _crd(
    kind: str,
    plural: str,
    short_names: list[str],
    schema: dict[str, Any],
    *,
    scope: str = "Namespaced",
    columns: list[dict[str, Any]] | None = None,
    scale: bool = False,
) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.HPAReplicas",
            "labelSelectorPath": ".status.selector",
        }
    version: dict[str, Any] = {
        "name": names.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": subresources,
    }
    if columns:
        version["additionalPrinterColumns"] = columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{names.GROUP}"},
        "spec": {
            "group": names.GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
            },
            "versions": [version],
        },
    }


def rollout_crd() -> dict[str, Any]:
    """The Rollout CRD: short name ro, status and scale subresources, Argo's printer columns."""
    columns = [
        {
            "name": "Desired",
            "type": "integer",
            "jsonPath": ".spec.replicas",
            "description": "Number of desired pods",
        },
        {
            "name": "Current",
            "type": "integer",
            "jsonPath": ".status.replicas",
            "description": "Pods of every revision of this rollout",
        },
        {
            "name": "Up-to-date",
            "type": "integer",
            "jsonPath": ".status.updatedReplicas",
            "description": "Pods of the newest revision",
        },
        {
            "name": "Available",
            "type": "integer",
            "jsonPath": ".status.availableReplicas",
            "description": "Available pods (ready for at least minReadySeconds)",
        },
        _AGE,
    ]
    schema = rollout_openapi_schema()
    return _crd_of(kinds.ROLLOUT, schema, columns=columns, scale=True)


def crds() -> list[dict[str, Any]]:
    """Every CRD to install: Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun, Experiment."""
    status_columns = [{"name": "Status", "type": "string", "jsonPath": ".status.phase"}, _AGE]
    return [
        rollout_crd(),
        _crd_of(kinds.ANALYSIS_TEMPLATE, _analysis(kinds.ANALYSIS_TEMPLATE), columns=[_AGE]),
        _crd_of(kinds.CLUSTER_ANALYSIS_TEMPLATE, _analysis(kinds.CLUSTER_ANALYSIS_TEMPLATE), columns=[_AGE]),
        _crd_of(kinds.ANALYSIS_RUN, _analysis(kinds.ANALYSIS_RUN), columns=status_columns),
        _crd("Experiment", "experiments", ["exp"], _OPEN_SCHEMA, columns=status_columns),
    ]


def _analysis(kind: kinds.Kind) -> dict[str, Any]:
    return kind_openapi_schema(ANALYSIS_KINDS[kind.name])


def _crd_of(kind: kinds.Kind, schema: dict[str, Any], **options: Any) -> dict[str, Any]:
    """The CRD of a kind of the registry (model/kinds.py): its names and scope from there."""
    scope = "Namespaced" if kind.namespaced else "Cluster"
    return _crd(kind.name, kind.plural, list(kind.short_names), schema, scope=scope, **options)
