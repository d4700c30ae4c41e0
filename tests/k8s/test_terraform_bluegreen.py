"""The Terraform path: deploy/terraform/modules/pyrollouts (a helm_release, as the guide's module)
and deploy/terraform/examples/bluegreen (the guide's main.tf), with OpenTofu and the hashicorp/helm
(2.x) and hashicorp/kubernetes providers from the filesystem mirror `make tools` builds.

`tofu fmt -check`; offline `tofu init` and `tofu validate`; then against the control plane the
two-step apply (the module first, with the chart from a loopback chart repository built by `make
chart`: kubernetes_manifest needs the Rollout CRD when it plans), the controller running with the
chart Deployment's own arguments and ServiceAccount (a local process: kwok runs no images, as in
test_helm_install.py) makes the Rollout Healthy, welcome="VERSION V3" and apply again gives a paused
second revision on the preview Service, `kubectl rollouts promote` finishes it, and `tofu destroy`
removes what it created. It keeps what `helm uninstall` keeps: the chart's CRDs, the release's
namespace and the dashboard token Secret the chart marks `helm.sh/resource-policy: keep`. Service
type ClusterIP there (kwok gives no LoadBalancer an address).

The seed's own module (tests/data/seed-terraform: its argo_rollouts.tf and variables.tf, verbatim)
is applied with only the chart swapped for ours, and our module takes a variable of the seed's shape
(``values`` a set of strings); both are destroyed the same way.

PYROLLOUTS_TERRAFORM_TRANSCRIPT=file writes the commands and their output of the two-step test there
(docs/install.md shows one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kube_helpers
import pytest
from kube_helpers import REPO, ControllerProc, by_revision, get, kubectl, rs_hash, wait_for

from harness.k8s_cluster import ControlPlane

sys.path.insert(0, str(REPO / "tests" / "deploy"))
from deploy_helpers import TERRAFORM, terraform_providers, tofu

_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_chart_repo = pytest.fixture(name="chart_repo", scope="module")(kube_helpers.chart_repo_fixture)
NAME = "super-hello"
APP_NS = "my-app"
HASH = "rollouts-pod-template-hash"
CHART_VERSION = kube_helpers.chart_version()
SEED = REPO / "tests" / "data" / "seed-terraform"
# What `tofu destroy` (helm uninstall underneath) leaves: Helm never deletes the CRDs of a chart's
# crds/ folder (deleting them would delete every Rollout in the cluster), nor the namespace
# create_namespace made, nor the dashboard token Secret the chart marks `keep`. docs/install.md
# says so.
KEPT_CRDS = ("rollouts.argoproj.io", "analysistemplates.argoproj.io")


def test_tofu_fmt_check(tmp_path: Path) -> None:
    res = tofu(tmp_path, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM), check=False)
    assert res.returncode == 0, (
        f"tofu fmt -check found unformatted files (run tofu fmt -recursive):\n{res.stdout}"
    )


def _workspace(tmp_path: Path) -> Path:
    """A copy of deploy/ (the Terraform files and the chart the module installs from a checkout), so
    state and .terraform stay out of the tree; returns the example's folder."""
    dest = tmp_path / "deploy"
    ignore = shutil.ignore_patterns(".terraform*", "*.tfstate*")
    shutil.copytree(TERRAFORM, dest / "terraform", ignore=ignore)
    shutil.copytree(REPO / "deploy" / "helm", dest / "helm", ignore=ignore)
    return dest / "terraform" / "examples" / "bluegreen"


@pytest.mark.terraform
def test_offline_init_and_validate(tmp_path: Path) -> None:
    terraform_providers()
    work = _workspace(tmp_path)
    out = tofu(work, "init", "-backend=false")
    assert "has been successfully initialized" in out.stdout, out.stdout
    assert "hashicorp/helm v2.17.0" in out.stdout and "hashicorp/kubernetes v2.38.0" in out.stdout, out.stdout
    res = tofu(work, "validate", "-json")
    assert json.loads(res.stdout)["valid"] is True, res.stdout
    module = tmp_path / "deploy" / "terraform" / "modules" / "pyrollouts"
    tofu(module, "init", "-backend=false")
    assert json.loads(tofu(module, "validate", "-json").stdout)["valid"] is True


def _svc_hash(admin: object, name: str) -> str | None:
    return (get(admin, "Service", name, APP_NS)["spec"].get("selector") or {}).get(HASH)  # type: ignore[arg-type]


def _chart_controller(
    cp: ControlPlane, release: str, ns: str, tmp_path: Path
) -> kube_helpers.ChartController:
    """The controller as the chart's Deployment runs it: its arguments, its ServiceAccount's token."""
    status, dep = cp.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{release}-pyrollouts")
    assert status == 200, dep
    chart_args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert chart_args[0] == "controller", chart_args
    kube_helpers.token_kubeconfig(cp, ns, f"{release}-pyrollouts", tmp_path / "sa.kubeconfig")
    return kube_helpers.ChartController(
        chart_args,
        ns,
        kubeconfig=tmp_path / "sa.kubeconfig",
        namespace=ns,
        log_path=tmp_path / "controller.log",
        identity_name="tf-chart-sa",
    )


def _names(cp: ControlPlane, path: str) -> set[str]:
    status, body = cp.api.request("GET", path)
    assert status == 200, (path, body)
    return {item["metadata"]["name"] for item in body["items"]}


def _assert_release_gone(cp: ControlPlane, ns: str, release: str) -> None:
    """Everything of the release is gone but what Helm keeps: the chart's CRDs (KEPT_CRDS), the
    namespace, and the dashboard's token Secret (the chart marks it helm.sh/resource-policy: keep,
    so a reinstall serves the same token)."""
    for path in (
        f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-pyrollouts",
        f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{release}-pyrollouts",
    ):
        assert cp.api.request("GET", path)[0] == 404, f"{path} is still there after tofu destroy"
    left = {
        "deployments": _names(cp, f"/apis/apps/v1/namespaces/{ns}/deployments"),
        "services": _names(cp, f"/api/v1/namespaces/{ns}/services"),
        "serviceaccounts": _names(cp, f"/api/v1/namespaces/{ns}/serviceaccounts") - {"default"},
        "roles": _names(cp, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
        "rolebindings": _names(cp, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
        "configmaps": _names(cp, f"/api/v1/namespaces/{ns}/configmaps"),
        "poddisruptionbudgets": _names(cp, f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
        "secrets": _names(cp, f"/api/v1/namespaces/{ns}/secrets"),
    }
    ours = {
        kind: {n for n in names if n.startswith(f"{release}-") or f".{release}." in n}
        for kind, names in left.items()
    }
    expected: dict[str, set[str]] = {kind: set() for kind in left}
    expected["secrets"] = {f"{release}-pyrollouts-dashboard-token"}
    assert ours == expected, f"left after tofu destroy in {ns}: {ours}"
    for crd in KEPT_CRDS:
        status, _ = cp.api.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
        assert status == 200, f"CRD {crd} is gone: Helm keeps a chart's CRDs on uninstall"
    assert cp.api.request("GET", f"/api/v1/namespaces/{ns}")[0] == 200, "Helm keeps the namespace"


class _Transcript:
    """The tofu commands of a test and their output, for docs/install.md."""

    def __init__(self) -> None:
        self.path = os.environ.get("PYROLLOUTS_TERRAFORM_TRANSCRIPT")
        self.parts: list[str] = []

    def add(self, shown: str, res: subprocess.CompletedProcess[str]) -> None:
        text = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout).rstrip()
        self.parts.append(f"$ {shown}\n{text}\n")

    def write(self) -> None:
        if self.path:
            Path(self.path).write_text("\n".join(self.parts))


@pytest.mark.terraform
def test_two_step_apply_update_promote_destroy(
    control_plane: ControlPlane, chart_repo: str, controllers: list[ControllerProc], tmp_path: Path
) -> None:
    terraform_providers()
    cp = control_plane
    work = _workspace(tmp_path)
    tfvars = {
        "kubeconfig": str(cp.kubeconfig),
        "service_type": "ClusterIP",
        "chart_repository": chart_repo,
        "chart_version": CHART_VERSION,
    }
    (work / "terraform.tfvars.json").write_text(json.dumps(tfvars))
    transcript = _Transcript()
    transcript.add("tofu init", tofu(work, "init"))
    admin = kube_helpers.admin_client(cp, APP_NS)
    try:
        # Step 1: the module alone (the chart from the repository, with its CRDs).
        res = tofu(work, "apply", "-auto-approve", "-target=module.pyrollouts", timeout=400)
        transcript.add("tofu apply -target=module.pyrollouts", res)
        kubectl(cp, "get", "crd", "rollouts.argoproj.io")
        status, dep = cp.api.request(
            "GET", "/apis/apps/v1/namespaces/pyrollouts/deployments/lupass-pyrollouts"
        )
        assert status == 200, dep
        chart = dep["metadata"]["labels"]["helm.sh/chart"]
        assert chart == f"pyrollouts-{CHART_VERSION}", chart
        # Step 2: everything else.
        transcript.add("tofu apply", tofu(work, "apply", "-auto-approve", timeout=300))
        for svc in ("super-hello-prod", "super-hello-preview"):
            assert get(admin, "Service", svc, APP_NS)["spec"]["type"] == "ClusterIP"

        ctrl = _chart_controller(cp, "lupass", "pyrollouts", tmp_path)
        controllers.append(ctrl)
        ctrl.start()
        kubectl(cp, "wait", "-n", APP_NS, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=120s")
        h1 = _svc_hash(admin, "super-hello-prod")
        assert h1, "the controller put the active Service on revision 1"
        # The controller's additions to the Services are what ignore_changes leaves alone.
        plan = tofu(work, "plan", "-detailed-exitcode", check=False)
        assert plan.returncode == 0, f"a plan after the controller's changes is not empty:\n{plan.stdout}"

        res = tofu(work, "apply", "-auto-approve", "-var", "welcome=VERSION V3")
        transcript.add("tofu apply -var 'welcome=VERSION V3'", res)
        assert "1 changed" in res.stdout, res.stdout

        def paused() -> bool:
            r = get(admin, "Rollout", NAME, APP_NS)
            rss = by_revision(admin, r)
            return (
                (r.get("status") or {}).get("phase") == "Paused"
                and 2 in rss
                and _svc_hash(admin, "super-hello-preview") == rs_hash(rss[2])
            )

        wait_for(paused, 60, f"Paused on revision 2\n{ctrl.log_tail()}")
        assert _svc_hash(admin, "super-hello-prod") == h1, "the active Service stays on revision 1"
        assert "promoted" in kubectl(cp, "rollouts", "promote", NAME, "-n", APP_NS).stdout
        h2 = rs_hash(by_revision(admin, get(admin, "Rollout", NAME, APP_NS))[2])
        wait_for(lambda: _svc_hash(admin, "super-hello-prod") == h2, 30, f"switch\n{ctrl.log_tail()}")
        kubectl(cp, "wait", "-n", APP_NS, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=120s")
        assert "Forbidden" not in (tmp_path / "controller.log").read_text(), ctrl.log_tail(80)
        ctrl.stop()

        res = tofu(work, "destroy", "-auto-approve", timeout=300)
        transcript.add("tofu destroy", res)
        state = tofu(work, "state", "list", check=False)
        assert state.stdout.strip() == "", state.stdout
        wait_for(
            lambda: cp.api.request("GET", f"/api/v1/namespaces/{APP_NS}")[0] == 404,
            90,
            "namespace my-app deleted (with the Rollout, its ReplicaSets and Pods)",
        )
        _assert_release_gone(cp, "pyrollouts", "lupass")
        transcript.write()
    finally:
        admin.close()
        tofu(work, "destroy", "-auto-approve", check=False, timeout=300)


def _seed_module(dest: Path, chart_repo: str) -> None:
    """The seed's module text, the chart swapped for ours (repository and chart name only)."""
    dest.mkdir(parents=True)
    text = (SEED / "argo_rollouts.tf").read_text()
    swaps = {
        'repository = "https://argoproj.github.io/argo-helm"': f'repository = "{chart_repo}"',
        'chart      = "argo-rollouts"': 'chart      = "pyrollouts"',
    }
    for old, new in swaps.items():
        assert text.count(old) == 1, f"{old!r} is not once in the seed's argo_rollouts.tf"
        text = text.replace(old, new)
    (dest / "argo_rollouts.tf").write_text(text)
    shutil.copy(SEED / "variables.tf", dest / "variables.tf")


# The seed's variable type, as its variables.tf declares it, for our module's input.
SEED_TYPE = """object({
    name    = string
    sets    = optional(map(string), {})
    values  = optional(set(string), [])
    version = optional(string)
  })"""

SEED_ROOT = """terraform {
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
  }
}

provider "helm" {
  kubernetes {
    config_path = var.kubeconfig
  }
}

variable "kubeconfig" {
  type = string
}

variable "chart_version" {
  type = string
}

# Given to our module: a value of the seed's variable type.
variable "seed_shaped" {
  type    = %(seed_type)s
  default = null
}

# The seed's examples/bluegreen/main.tf, with a Service type kwok can serve and a `set`.
module "argo" {
  source = "./modules/argo"

  argo_rollouts = {
    name    = "lupass"
    version = var.chart_version
    sets = {
      "controller.logLevel" = "debug"
    }

    values = [
      yamlencode(
        {
          dashboard = {
            enabled = true
            service = {
              type = "NodePort"
            }
          }
        }
      )
    ]
  }
}

module "pyrollouts" {
  source = "./deploy/terraform/modules/pyrollouts"

  pyrollouts = var.seed_shaped
}
"""


@pytest.mark.terraform
def test_seed_module_text_and_the_seed_variable_shape(
    control_plane: ControlPlane, chart_repo: str, tmp_path: Path
) -> None:
    terraform_providers()
    cp = control_plane
    root = tmp_path / "seed"
    _seed_module(root / "modules" / "argo", chart_repo)
    _workspace(root)
    (root / "main.tf").write_text(SEED_ROOT % {"seed_type": SEED_TYPE})
    values = [
        "dashboard:\n  enabled: true\n  service:\n    type: ClusterIP\n",
        "controller:\n  logFormat: json\n",
    ]
    tfvars = {
        "kubeconfig": str(cp.kubeconfig),
        "chart_version": CHART_VERSION,
        "seed_shaped": {
            "name": "ours",
            "version": CHART_VERSION,
            "sets": {"controller.logLevel": "debug"},
            "values": values,
        },
    }
    (root / "terraform.tfvars.json").write_text(json.dumps(tfvars))
    tofu(root, "init")
    try:
        res = tofu(root, "apply", "-auto-approve", timeout=400)
        assert "2 added" in res.stdout, res.stdout
        for ns, release, svc_type in (
            ("argo-rollouts", "lupass", "NodePort"),
            ("pyrollouts", "ours", "ClusterIP"),
        ):
            status, dep = cp.api.request(
                "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{release}-pyrollouts"
            )
            assert status == 200, (ns, release, dep)
            args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
            assert "--loglevel=debug" in args, args
            status, svc = cp.api.request(
                "GET", f"/api/v1/namespaces/{ns}/services/{release}-pyrollouts-dashboard"
            )
            assert status == 200 and svc["spec"]["type"] == svc_type, svc
        dep = cp.api.request("GET", "/apis/apps/v1/namespaces/pyrollouts/deployments/ours-pyrollouts")[1]
        assert "--logformat=json" in dep["spec"]["template"]["spec"]["containers"][0]["args"], dep
        state = tofu(root, "state", "list").stdout.split()
        assert sorted(state) == [
            'module.argo.helm_release.argo_rollouts["devops"]',
            'module.pyrollouts.helm_release.pyrollouts["pyrollouts"]',
        ], state
        plan = tofu(root, "plan", "-detailed-exitcode", check=False)
        assert plan.returncode == 0, f"a plan right after the apply is not empty:\n{plan.stdout}"

        res = tofu(root, "destroy", "-auto-approve", timeout=300)
        assert "2 destroyed" in res.stdout, res.stdout
        assert tofu(root, "state", "list", check=False).stdout.strip() == ""
        _assert_release_gone(cp, "argo-rollouts", "lupass")
        _assert_release_gone(cp, "pyrollouts", "ours")
    finally:
        tofu(root, "destroy", "-auto-approve", check=False, timeout=300)
