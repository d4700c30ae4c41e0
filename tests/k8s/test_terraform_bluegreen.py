"""The Terraform path: deploy/terraform/modules/pyrollouts (a helm_release, as the guide's module)
and deploy/terraform/examples/bluegreen (the guide's main.tf), with OpenTofu and the hashicorp/helm
(2.x) and hashicorp/kubernetes providers from the filesystem mirror `make tools` builds.

`tofu fmt -check`; offline `tofu init` and `tofu validate`; then against the control plane the
two-step apply (the module first: kubernetes_manifest needs the Rollout CRD when it plans), the
controller (a local process) makes the Rollout Healthy, welcome="VERSION V3" and apply again gives a
paused second revision, `kubectl rollouts promote` finishes it, and `tofu destroy` removes it all.
Service type ClusterIP there (kwok gives no LoadBalancer an address).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import kube_helpers
import pytest
from kube_helpers import REPO, ControllerProc, by_revision, get, kubectl, rs_hash, wait_for

from harness.k8s_cluster import ControlPlane

sys.path.insert(0, str(REPO / "tests" / "deploy"))
from deploy_helpers import TERRAFORM, terraform_providers, tofu

_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
NAME = "super-hello"
APP_NS = "my-app"
HASH = "rollouts-pod-template-hash"


def test_tofu_fmt_check(tmp_path: Path) -> None:
    res = tofu(tmp_path, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM), check=False)
    assert res.returncode == 0, (
        f"tofu fmt -check found unformatted files (run tofu fmt -recursive):\n{res.stdout}"
    )


def _workspace(tmp_path: Path) -> Path:
    """A copy of deploy/terraform (module and example), so state and .terraform stay out of the tree."""
    dest = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, dest, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    return dest / "examples" / "bluegreen"


@pytest.mark.terraform
def test_offline_init_and_validate(tmp_path: Path) -> None:
    terraform_providers()
    work = _workspace(tmp_path)
    out = tofu(work, "init", "-backend=false")
    assert "has been successfully initialized" in out.stdout, out.stdout
    assert "hashicorp/helm v2." in out.stdout, out.stdout
    res = tofu(work, "validate", "-json")
    assert json.loads(res.stdout)["valid"] is True, res.stdout
    module = tmp_path / "terraform" / "modules" / "pyrollouts"
    tofu(module, "init", "-backend=false")
    assert json.loads(tofu(module, "validate", "-json").stdout)["valid"] is True


def _svc_hash(admin: object, name: str) -> str | None:
    return (get(admin, "Service", name, APP_NS)["spec"].get("selector") or {}).get(HASH)  # type: ignore[arg-type]


@pytest.mark.terraform
def test_two_step_apply_update_promote_destroy(
    control_plane: ControlPlane, controllers: list[ControllerProc], tmp_path: Path
) -> None:
    terraform_providers()
    cp = control_plane
    work = _workspace(tmp_path)
    tfvars = {"kubeconfig": str(cp.kubeconfig), "service_type": "ClusterIP"}
    var_args = [a for k, v in tfvars.items() for a in ("-var", f"{k}={v}")]
    tofu(work, "init")
    admin = kube_helpers.admin_client(cp, APP_NS)
    try:
        # Step 1: the module alone (the chart and its CRDs).
        tofu(work, "apply", "-auto-approve", "-target=module.pyrollouts", *var_args, timeout=400)
        kubectl(cp, "get", "crd", "rollouts.argoproj.io")
        # Step 2: everything else.
        tofu(work, "apply", "-auto-approve", *var_args, timeout=300)
        for svc in ("super-hello-prod", "super-hello-preview"):
            assert get(admin, "Service", svc, APP_NS)["spec"]["type"] == "ClusterIP"

        ctrl = ControllerProc(cp.kubeconfig, APP_NS, tmp_path / "controller.log", identity_name="tf")
        controllers.append(ctrl)
        ctrl.start()
        kubectl(cp, "wait", "-n", APP_NS, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=120s")
        # The controller's additions to the Services are what ignore_changes leaves alone.
        plan = tofu(work, "plan", "-detailed-exitcode", *var_args, check=False)
        assert plan.returncode == 0, f"a plan after the controller's changes is not empty:\n{plan.stdout}"

        tofu(work, "apply", "-auto-approve", *var_args, "-var", "welcome=VERSION V3")

        def paused() -> bool:
            r = get(admin, "Rollout", NAME, APP_NS)
            rss = by_revision(admin, r)
            return (
                (r.get("status") or {}).get("phase") == "Paused"
                and 2 in rss
                and _svc_hash(admin, "super-hello-preview") == rs_hash(rss[2])
                and _svc_hash(admin, "super-hello-prod") == rs_hash(rss[1])
            )

        wait_for(paused, 60, f"Paused on revision 2\n{ctrl.log_tail()}")
        assert "promoted" in kubectl(cp, "rollouts", "promote", NAME, "-n", APP_NS).stdout
        h2 = rs_hash(by_revision(admin, get(admin, "Rollout", NAME, APP_NS))[2])
        wait_for(lambda: _svc_hash(admin, "super-hello-prod") == h2, 30, f"switch\n{ctrl.log_tail()}")
        kubectl(cp, "wait", "-n", APP_NS, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=120s")
        ctrl.stop()

        tofu(work, "destroy", "-auto-approve", *var_args, timeout=300)
        state = tofu(work, "state", "list", check=False)
        assert state.stdout.strip() == "", state.stdout
        wait_for(
            lambda: kubectl(cp, "get", "namespace", APP_NS, check=False).returncode != 0,
            90,
            "namespace my-app deleted",
        )
        releases = kubectl(cp, "get", "deployments", "-n", "pyrollouts", "-o", "name", check=False).stdout
        assert "pyrollouts" not in releases, releases
    finally:
        admin.close()
        tofu(work, "destroy", "-auto-approve", *var_args, check=False, timeout=300)
