"""The Helm chart without a cluster: its CRDs are current, `helm lint --strict` passes, the rendered
manifests match the golden files (default, non-default, dashboard and namespaced dashboard values),
values.schema.json refuses bad values with a message naming the value, and in namespaced mode the
dashboard serves the release namespace alone with a Role there.

After an intended change of the chart: UPDATE_GOLDEN=1 pytest tests/deploy/test_helm_chart.py, then
read the diff of tests/deploy/golden/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import CHART, GOLDEN, REPO, helm

# Non-default values: namespaced mode, a ServiceMonitor, two replicas, an instance id, JSON logs, a
# pinned image.
NON_DEFAULT = {
    "namespaced": True,
    "image": {"repository": "registry.example/pyrollouts", "tag": "9.9.9", "pullPolicy": "Always"},
    "controller": {
        "replicas": 2,
        "instanceID": "team-a",
        "logFormat": "json",
        "logLevel": "debug",
        "extraArgs": ["--leader-election-lease-duration=30s"],
        "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": None},
    },
    "metrics": {"serviceMonitor": {"enabled": True, "additionalLabels": {"release": "prom"}}},
}

# The dashboard (cluster-wide: it watches every namespace) on a NodePort with a token Secret you name.
DASHBOARD: dict[str, object] = {
    "dashboard": {
        "enabled": True,
        "service": {"type": "NodePort", "nodePort": 30100},
        "token": {"existingSecret": "my-dashboard-token", "key": "token"},
    },
}
# The dashboard in namespaced mode: `dashboard --namespace` with a Role in the release namespace (a
# Secret you name, as a created one holds a random token that no golden file can match).
NAMESPACED_DASHBOARD: dict[str, object] = {
    "namespaced": True,
    "dashboard": {"enabled": True, "token": {"existingSecret": "my-dashboard-token"}},
}
CASES: dict[str, dict[str, object] | None] = {
    "default": None,
    "non-default": NON_DEFAULT,
    "dashboard": DASHBOARD,
    "namespaced-dashboard": NAMESPACED_DASHBOARD,
}


def test_chart_crds_are_generated_from_the_model() -> None:
    res = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "helm" / "gen_crds.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, f"deploy/helm/pyrollouts/crds/ is stale:\n{res.stderr}"
    names = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert "rollouts.yaml" in names, names


def test_helm_lint_strict(tmp_path: Path) -> None:
    out = helm(tmp_path, "lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout
    for case in (NON_DEFAULT, DASHBOARD, NAMESPACED_DASHBOARD):
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump(case))
        helm(tmp_path, "lint", "--strict", str(CHART), "-f", str(values))


def _render(tmp_path: Path, values: dict[str, object] | None) -> str:
    args = ["template", "rel", str(CHART), "--namespace", "pyrollouts", "--kube-version", "1.37.0"]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    return helm(tmp_path, *args).stdout


def test_helm_template_without_kube_version(tmp_path: Path) -> None:
    """The built helm assumes the Kubernetes version of its own client-go (make tools sets the linker
    flags helm's Makefile sets), so the chart's `kubeVersion: >=1.27` holds with no --kube-version."""
    version = helm(tmp_path, "version", "--template", "{{.Version}} {{.GitTreeState}}").stdout
    assert version.strip() == f"{_helm_version()} clean", version
    res = helm(tmp_path, "template", "rel", str(CHART), "--namespace", "pyrollouts", check=False)
    assert res.returncode == 0, f"helm template without --kube-version failed:\n{res.stderr}"
    kinds = {d["kind"] for d in yaml.safe_load_all(res.stdout) if d}
    assert {"Deployment", "ClusterRole", "ServiceAccount"} <= kinds, kinds


def _helm_version() -> str:
    for line in (REPO / "tools" / "versions.env").read_text().splitlines():
        if line.startswith("HELM_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("HELM_VERSION is not in tools/versions.env")


@pytest.mark.parametrize("case", list(CASES))
def test_helm_template_golden(tmp_path: Path, case: str) -> None:
    text = _render(tmp_path, CASES[case])
    golden = GOLDEN / f"helm-{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.is_file(), f"{golden} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert text == golden.read_text(), (
        f"helm template output differs from {golden} (UPDATE_GOLDEN=1 to accept)"
    )


def _kinds(text: str) -> dict[str, dict[str, object]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text) if d}


def test_rendered_controller_is_locked_down(tmp_path: Path) -> None:
    objs = _kinds(_render(tmp_path, None))
    dep = objs["Deployment/rel-pyrollouts"]
    pod = dep["spec"]["template"]["spec"]  # type: ignore[index]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--leader-elect=true" in c["args"] and c["args"][0] == "controller"
    assert c["resources"]["requests"]
    # Least privilege: no Secrets, no wildcards, no cluster-scoped Lease grant.
    role = objs["ClusterRole/rel-pyrollouts"]
    for rule in role["rules"]:  # type: ignore[index]
        assert "secrets" not in rule["resources"] and "*" not in rule["resources"] + rule["verbs"], rule
    assert not any("leases" in r["resources"] for r in role["rules"])  # type: ignore[index]
    assert "Role/rel-pyrollouts-leader-election" in objs
    assert "PodDisruptionBudget/rel-pyrollouts" in objs
    assert "Service/rel-pyrollouts-metrics" in objs
    assert not any(k.startswith("ServiceMonitor/") or "dashboard" in k for k in objs)


def test_namespaced_mode_uses_a_role(tmp_path: Path) -> None:
    objs = _kinds(_render(tmp_path, NON_DEFAULT))
    assert "Role/rel-pyrollouts" in objs and "RoleBinding/rel-pyrollouts" in objs
    assert not any(k.startswith(("ClusterRole/", "ClusterRoleBinding/")) for k in objs)
    args = objs["Deployment/rel-pyrollouts"]["spec"]["template"]["spec"]["containers"][0]["args"]  # type: ignore[index]
    assert "--namespace=pyrollouts" in args and "--instance-id=team-a" in args


def test_dashboard_has_its_own_least_privilege_cluster_role(tmp_path: Path) -> None:
    objs = _kinds(_render(tmp_path, DASHBOARD))
    svc = objs["Service/rel-pyrollouts-dashboard"]
    assert svc["spec"]["type"] == "NodePort"  # type: ignore[index]
    assert not any(k.startswith("Secret/") for k in objs), "an existing Secret is named: none created"
    pod = objs["Deployment/rel-pyrollouts-dashboard"]["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["serviceAccountName"] == "rel-pyrollouts-dashboard"
    binding = objs["ClusterRoleBinding/rel-pyrollouts-dashboard"]
    assert binding["subjects"] == [  # type: ignore[index]
        {"kind": "ServiceAccount", "name": "rel-pyrollouts-dashboard", "namespace": "pyrollouts"}
    ]
    # Reads and the Rollout patches of its buttons: no Secrets, no writes beyond Rollouts, no
    # wildcards (tests/k8s/test_helm_dashboard_rbac.py proves the exact set on a cluster).
    for rule in objs["ClusterRole/rel-pyrollouts-dashboard"]["rules"]:  # type: ignore[index]
        assert "secrets" not in rule["resources"] and "*" not in rule["resources"] + rule["verbs"], rule
        if set(rule["verbs"]) - {"get", "list", "watch"}:
            assert rule["apiGroups"] == ["argoproj.io"] and rule["verbs"] in (
                ["get", "list", "watch", "patch"],
                ["patch"],
            ), rule


def test_namespaced_dashboard_serves_the_release_namespace_with_a_role(tmp_path: Path) -> None:
    objs: dict[str, Any] = _kinds(_render(tmp_path, NAMESPACED_DASHBOARD))
    assert not any(k.startswith(("ClusterRole/", "ClusterRoleBinding/")) for k in objs), sorted(objs)
    args = objs["Deployment/rel-pyrollouts-dashboard"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "--backend=kubernetes" and "dashboard" in args, args
    assert args[args.index("dashboard") + 1 :].count("--namespace=pyrollouts") == 1, args
    role, binding = objs["Role/rel-pyrollouts-dashboard"], objs["RoleBinding/rel-pyrollouts-dashboard"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "pyrollouts"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "rel-pyrollouts-dashboard",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-pyrollouts-dashboard", "namespace": "pyrollouts"}
    ]
    # The cluster mode's rules, less the Namespace list (the scoped dashboard makes none).
    cluster: dict[str, Any] = _kinds(_render(tmp_path, DASHBOARD))
    cluster_rules = cluster["ClusterRole/rel-pyrollouts-dashboard"]["rules"]
    assert any("namespaces" in r["resources"] for r in cluster_rules), cluster_rules
    for rule in cluster_rules:
        rule["resources"] = [r for r in rule["resources"] if r != "namespaces"]
    assert role["rules"] == cluster_rules
    # Cluster mode is unchanged by this: no --namespace on the dashboard.
    cluster_args = cluster["Deployment/rel-pyrollouts-dashboard"]["spec"]["template"]["spec"]["containers"][
        0
    ]["args"]
    assert not any(str(a).startswith(("--namespace", "-n")) for a in cluster_args), cluster_args


def test_dashboard_token_secret_is_created_when_none_is_named(tmp_path: Path) -> None:
    objs = _kinds(_render(tmp_path, {"dashboard": {"enabled": True, "service": {"type": "LoadBalancer"}}}))
    secret = objs["Secret/rel-pyrollouts-dashboard-token"]
    assert len(secret["data"]["token"]) >= 40  # type: ignore[index]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # type: ignore[index]
    assert objs["Service/rel-pyrollouts-dashboard"]["spec"]["type"] == "LoadBalancer"  # type: ignore[index]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"dashboard": {"service": {"type": "Loadbalancer"}}},
            "/dashboard/service/type': value must be one of",
        ),
        ({"controller": {"replicas": "two"}}, "/controller/replicas'"),
        ({"controller": {"logFormat": "xml"}}, "/controller/logFormat': value must be one of"),
        ({"controller": {"replicaCount": 2}}, "replicaCount"),
        ({"controller": {"extraArgs": ["leader-elect=false"]}}, "/controller/extraArgs/0'"),
        ({"controller": {"metricsPort": 70000}}, "/controller/metricsPort'"),
    ],
)
def test_bad_values_fail_with_a_clear_message(
    tmp_path: Path, values: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    res = helm(
        tmp_path, "template", "rel", str(CHART), "--kube-version", "1.37.0", "-f", str(path), check=False
    )
    assert res.returncode != 0, res.stdout
    assert "values don't meet the specifications of the schema" in res.stderr, res.stderr
    assert message in res.stderr, res.stderr


def test_both_pdb_fields_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"controller": {"podDisruptionBudget": {"minAvailable": 1}}}))
    res = helm(
        tmp_path, "template", "rel", str(CHART), "--kube-version", "1.37.0", "-f", str(path), check=False
    )
    assert res.returncode != 0
    assert "give minAvailable or maxUnavailable, not both" in res.stderr, res.stderr
