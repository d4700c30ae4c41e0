"""The Kubernetes runtime end to end: the operator as a subprocess against the real control plane.

The seed's story (with kubectl and the kubectl plugin), an API-server refusal as InvalidSpec, a user's
abort racing the controller, adoption of Argo's objects, leader election checked in the audit log,
every fault-injection kill point, and live metrics.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from typing import Any

import kube_helpers
import pytest
import runtime_support
import yaml
from kube_helpers import (
    REPO,
    admin_client,
    apply,
    audit_writes,
    get,
    http_get,
    kubectl,
    list_objs,
    merge_patch,
    owned_replicasets,
    plain,
    rs_hash,
    service_account_kubeconfig,
    wait_for,
)
from runtime_support import ACTIVE, HASH, NAME, PREVIEW, RuntimeEnv, manifest, rollout_of, with_env

from pyrollouts.controller.faults import POINTS
from pyrollouts.runtimes.kubernetes.resources import RESOURCES

Obj = dict[str, Any]

# The shared fixtures live in kube_helpers and runtime_support (this folder's conftest belongs to the
# harness); ``rt`` bundles the control plane, namespace, client, controllers and tmp_path.
_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_rt = pytest.fixture(name="rt")(runtime_support.runtime_env_fixture)


def metric(text: str, metric_name: str, /, **labels: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line.startswith(metric_name + "{") and not line.startswith(metric_name + " "):
            continue
        m = re.match(r"^([a-zA-Z_:]+)(\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != metric_name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            out.append((got, float(m.group(4))))
    return out


# -- the seed's story -------------------------------------------------------------------------------
def test_seed_story(rt: RuntimeEnv) -> None:
    ns = rt.ns
    # A scale-down delay the test passes on the controller's test clock: with a real 2 s delay the
    # deadline annotation lived only ~2 s (the full scale-down removes it), and a poll on a loaded
    # machine could miss it and time out (issue 11).
    objs = manifest(scale_down_delay=600)
    path = rt.tmp_path / "super-hello.yaml"
    path.write_text(yaml.safe_dump_all(objs))
    kubectl(rt.cp, "apply", "-n", ns, "-f", str(path))
    ctrl = rt.start_controller()

    rt.wait_healthy(1, 40, f"Healthy on revision 1\n{ctrl.log_tail()}")
    r = rt.rollout()
    rs1 = rt.revisions()[1]
    assert rs1["metadata"]["ownerReferences"][0]["uid"] == r["metadata"]["uid"]
    assert rs1["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
    assert rs1["metadata"]["ownerReferences"][0].get("controller") is True
    kubectl(rt.cp, "wait", "-n", ns, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=120s")
    m1 = ctrl.metrics()
    assert metric(m1, "rollout_info", namespace=ns, name=NAME, strategy="blueGreen", phase="Healthy"), m1
    assert metric(m1, "rollout_info_replicas_available", namespace=ns, name=NAME)[0][1] == 3

    # WELCOME=V3: a second ReplicaSet, the preview Service on it, paused; active unchanged.
    path.write_text(yaml.safe_dump_all(with_env(objs, "VERSION V3")))
    kubectl(rt.cp, "apply", "-n", ns, "-f", str(path))

    def paused() -> bool:
        st = rt.status()
        rss = rt.revisions()
        if 2 not in rss:
            return False
        h1, h2 = rs_hash(rss[1]), rs_hash(rss[2])
        return (
            st.get("phase") == "Paused"
            and st.get("message") == "BlueGreenPause"
            and [c.get("reason") for c in st.get("pauseConditions") or []] == ["BlueGreenPause"]
            and rt.svc_hash(PREVIEW) == h2
            and rt.svc_hash(ACTIVE) == h1
            and (rss[2].get("status") or {}).get("availableReplicas") == 3
        )

    wait_for(paused, 40, f"Paused (BlueGreenPause) with preview on revision 2\n{ctrl.log_tail()}")
    m2 = ctrl.metrics()
    assert metric(m2, "rollout_info", namespace=ns, name=NAME, phase="Paused"), m2
    assert metric(m2, "rollout_info_replicas_unavailable", namespace=ns, name=NAME)[0][1] == 3

    # kubectl runs our plugin for `kubectl rollouts ...`.
    out = kubectl(rt.cp, "rollouts", "promote", NAME, "-n", ns)
    assert "promoted" in out.stdout
    h2 = rs_hash(rt.revisions()[2])
    wait_for(lambda: rt.svc_hash(ACTIVE) == h2, 30, f"active switch\n{ctrl.log_tail()}")
    deadline = wait_for(
        lambda: (rt.revisions()[1]["metadata"].get("annotations") or {}).get("scale-down-deadline"),
        20,
        "the old RS's scale-down-deadline",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", deadline), deadline
    assert rt.revisions()[1]["spec"]["replicas"] == 3, "the old RS waits for its deadline"
    ctrl.advance(660)
    wait_for(
        lambda: rt.revisions()[1]["spec"]["replicas"] == 0,
        30,
        f"the old RS scaled to 0 after its deadline\n{ctrl.log_tail()}",
    )
    rt.wait_healthy(2, 30, "Healthy on revision 2")
    kubectl(rt.cp, "wait", "-n", ns, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=120s")
    m3 = ctrl.metrics()
    assert metric(m3, "rollout_info", namespace=ns, name=NAME, phase="Healthy"), m3
    assert not metric(m3, "rollout_info", namespace=ns, name=NAME, phase="Paused")
    wait_for(
        lambda: (
            metric(ctrl.metrics(), "rollout_info_replicas_unavailable", namespace=ns, name=NAME)[0][1] == 0
        ),
        10,
        "unavailable replicas back to 0 in /metrics",
    )
    assert metric(m3, "rollout_reconcile_count", namespace=ns, name=NAME)[0][1] > 0
    reasons = {lbl["reason"] for lbl, v in metric(m3, "rollout_events_total") if v > 0}
    assert {"RolloutPaused", "SwitchService"} <= reasons, reasons
    # Events are Kubernetes Events with Argo's reasons.
    ev_reasons = [
        e["reason"]
        for e in list_objs(rt.client, "Event", ns)
        if (e.get("involvedObject") or {}).get("name") == NAME
    ]
    for reason in ("NewReplicaSetCreated", "RolloutPaused", "SwitchService", "RolloutCompleted"):
        assert reason in ev_reasons, ev_reasons
    # `kubectl rollouts get rollout` renders the tree through the plugin.
    tree = kubectl(rt.cp, "rollouts", "get", "rollout", NAME, "-n", ns).stdout
    assert "revision:2" in tree and "active" in tree, tree
    # /healthz answers.
    assert http_get(f"http://127.0.0.1:{ctrl.healthz_port}/healthz")[0] == 200


# -- InvalidSpec from the API server's refusal --------------------------------------------------------
def test_refused_pod_template_is_invalid_spec(rt: RuntimeEnv) -> None:
    objs = manifest()
    # The seed's mistake: the probe port as the string "8080" (a port *name*, which must contain a letter).
    rollout_of(objs)["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = (
        "8080"
    )
    ctrl = rt.deploy(objs)

    def invalid() -> Obj | None:
        st = rt.status()
        cond = next((c for c in st.get("conditions") or [] if c.get("type") == "InvalidSpec"), None)
        return cond if st.get("phase") == "Degraded" and cond and cond.get("status") == "True" else None

    cond = wait_for(invalid, 30, f"an InvalidSpec condition\n{ctrl.log_tail()}")
    assert "8080" in cond["message"] and "port" in cond["message"], cond
    assert (rt.rollout()["status"]["message"]).startswith("InvalidSpec: ")
    assert owned_replicasets(rt.client, rt.rollout()) == []
    # Not a loop of failed creates: a few attempts while its own writes settle, then none until the
    # 20 s retry.
    time.sleep(1.5)
    settled = len(rt.replicaset_writes("create"))
    assert 1 <= settled <= 5, f"{settled} ReplicaSet creates"
    time.sleep(4)
    assert len(rt.replicaset_writes("create")) == settled, "the controller keeps retrying the refused create"
    # Fixing the manifest recovers.
    rt.apply_all(manifest())
    rt.wait_healthy(1, 40, f"Healthy after the fix\n{ctrl.log_tail()}")
    conds = rt.rollout()["status"].get("conditions") or []
    assert not [c for c in conds if c.get("type") == "InvalidSpec" and c.get("status") == "True"]


# -- a user's abort racing the controller ----------------------------------------------------------
def test_abort_is_never_lost(rt: RuntimeEnv) -> None:
    _abort_race(rt, attempts=4)


@pytest.mark.soak
@pytest.mark.timeout(7200)  # many rounds: far past the suite's 300 s per test
def test_abort_is_never_lost_soak(rt: RuntimeEnv) -> None:
    """The same race, SOAK_ABORT_ATTEMPTS times (default 40)."""
    import os

    _abort_race(rt, attempts=int(os.environ.get("SOAK_ABORT_ATTEMPTS", "40")))


def _abort_race(rt: RuntimeEnv, attempts: int) -> None:
    """A user's abort written while the controller reconciles without pause (a Service churned
    under it), ``attempts`` times, each followed by a retry: every later version keeps abort."""
    ns = rt.ns
    objs = manifest()
    ctrl = rt.deploy(objs)
    rt.wait_healthy(1, 40, f"Healthy\n{ctrl.log_tail()}")
    rt.apply_all(with_env(objs, "VERSION V3"))
    rt.wait_phase("Paused", 40, "Paused")

    def churn(stop: threading.Event) -> None:
        # Keep the controller reconciling: every Service change queues the Rollout. Each attempt
        # has its own stop event, so a churn thread that outlives its join never runs on.
        c = admin_client(rt.cp, ns)
        i = 0
        try:
            while not stop.is_set():
                i += 1
                merge_patch(c, "Service", PREVIEW, ns, {"metadata": {"annotations": {"churn": str(i)}}})
        finally:
            c.close()

    for attempt in range(attempts):
        stop = threading.Event()
        t = threading.Thread(target=churn, args=(stop,), daemon=True)
        t.start()
        time.sleep(0.3)
        written = merge_patch(rt.client, "Rollout", NAME, ns, {"status": {"abort": True}}, status=True)
        rv = written["metadata"]["resourceVersion"]
        # From our write on, every version of the Rollout keeps abort=true (a watch sees each one).
        seen: list[Any] = []

        def follow(rv: str = rv, seen: list[Any] = seen) -> None:
            c = admin_client(rt.cp, ns)
            try:
                for _, item in c.watch(
                    RESOURCES["Rollout"], namespace=ns, resource_version=rv, server_timeout=5
                ):
                    seen.append((plain(item).get("status") or {}).get("abort"))
            except Exception:
                pass

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(2.5)
        assert seen, "the controller wrote nothing while racing (the race did not happen)"
        assert all(v is True for v in seen), (
            f"attempt {attempt}: the abort was overwritten: {seen}\n{ctrl.log_tail()}"
        )
        stop.set()
        t.join(30)
        st = wait_for(
            lambda: (s := rt.status()).get("phase") == "Degraded" and s,
            20,
            "Degraded after abort",
        )
        assert st["abort"] is True and st["message"].startswith("RolloutAborted"), st
        assert rt.svc_hash(ACTIVE) == rs_hash(rt.revisions()[1])
        # retry: back to the pause, for the next attempt
        merge_patch(rt.client, "Rollout", NAME, ns, {"status": {"abort": False}}, status=True)
        rt.wait_phase("Paused", 30, f"Paused after retry\n{ctrl.log_tail()}")


# -- spec.workloadRef: the Deployment is watched --------------------------------------------------------
def test_workload_ref_deployment_change_alone_is_a_new_revision(rt: RuntimeEnv) -> None:
    """A change to the referenced Deployment, with no other write, reaches the controller through its
    watch: a new revision, paused on the preview Service. (The operator once cached no Deployments,
    so such a change waited for the 15-minute resync unless some other event came by; a CI run of
    the workload-ref scenario lost that race.)"""
    objs = list(
        yaml.safe_load_all((REPO / "tests/scenarios/manifests/super-hello-workload.yaml").read_text())
    )
    rt.apply_all(objs)
    ctrl = rt.start_controller()
    rt.wait_healthy(1, 60, f"Healthy on revision 1\n{ctrl.log_tail()}")
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    body = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            **deploy["spec"]["template"]["spec"]["containers"][0],
                            "env": [{"name": "WELCOME", "value": "V3"}],
                        }
                    ]
                }
            }
        }
    }
    merge_patch(rt.client, "Deployment", deploy["metadata"]["name"], rt.ns, body)

    def paused_on_2() -> bool:
        st, rss = rt.status(), rt.revisions()
        return st.get("phase") == "Paused" and 2 in rss and rt.svc_hash(PREVIEW) == rs_hash(rss[2])

    # Generous for a loaded machine, and far below the resync (900 s) that was the only other path.
    wait_for(paused_on_2, 90, f"Paused on revision 2 after the Deployment changed\n{ctrl.log_tail()}")
    assert rt.svc_hash(ACTIVE) == rs_hash(rt.revisions()[1])


# -- adoption of what Argo left -----------------------------------------------------------------------
def test_adopts_argo_objects_without_a_new_revision(rt: RuntimeEnv) -> None:
    ns, client = rt.ns, rt.client
    objs = manifest()
    argo_hash = "6d8f7b9c4d"  # what Argo's Go hash gave: not ours
    rollout = rollout_of(objs)
    for o in objs:
        if o["kind"] == "Service":
            o["spec"]["selector"][HASH] = argo_hash
            o["metadata"]["annotations"] = {"argo-rollouts.argoproj.io/managed-by-rollouts": NAME}
    rt.apply_all([o for o in objs if o["kind"] == "Service"])
    created = apply(client, rollout, ns)
    template = copy.deepcopy(rollout["spec"]["template"])
    template["metadata"]["labels"][HASH] = argo_hash
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{NAME}-{argo_hash}",
            "namespace": ns,
            "labels": {"app": NAME, HASH: argo_hash},
            "annotations": {"rollout.argoproj.io/revision": "1", "rollout.argoproj.io/desired-replicas": "3"},
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": NAME,
                    "uid": created["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": NAME, HASH: argo_hash}},
            "template": template,
        },
    }
    client.create(RESOURCES["ReplicaSet"](rs), namespace=ns)
    merge_patch(
        client, "Rollout", NAME, ns, {"metadata": {"annotations": {"rollout.argoproj.io/revision": "1"}}}
    )
    merge_patch(
        client,
        "Rollout",
        NAME,
        ns,
        {
            "status": {
                "phase": "Healthy",
                "currentPodHash": argo_hash,
                "stableRS": argo_hash,
                "observedGeneration": "1",
                "blueGreen": {"activeSelector": argo_hash, "previewSelector": argo_hash},
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
            }
        },
        status=True,
    )

    def pods_ready() -> list[Obj] | None:
        pods = [
            p
            for p in list_objs(client, "Pod", ns)
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]
        return pods if len(pods) == 3 else None

    pods = wait_for(pods_ready, 30, "Argo's 3 pods ready")
    rs_uid = get(client, "ReplicaSet", f"{NAME}-{argo_hash}", ns)["metadata"]["uid"]
    pod_uids = sorted(p["metadata"]["uid"] for p in pods)

    ctrl = rt.start_controller()
    wait_for(
        lambda: (
            len([e for e in list_objs(client, "Event", ns) if e.get("reason") == "RolloutAddedToInformer"])
            >= 1
        ),
        20,
        f"the controller saw the Rollout\n{ctrl.log_tail()}",
    )
    time.sleep(3)  # give it time to do anything it would wrongly do
    r = rt.rollout()
    rss = owned_replicasets(client, r)
    assert [x["metadata"]["name"] for x in rss] == [f"{NAME}-{argo_hash}"], (
        f"a new RS appeared\n{ctrl.log_tail()}"
    )
    assert rss[0]["metadata"]["uid"] == rs_uid
    assert (rss[0]["metadata"]["annotations"] or {}).get("rollout.argoproj.io/revision") == "1"
    assert rss[0]["spec"]["replicas"] == 3
    assert sorted(p["metadata"]["uid"] for p in list_objs(client, "Pod", ns)) == pod_uids
    st = r.get("status") or {}
    assert st.get("phase") == "Healthy", st
    assert st.get("currentPodHash") == argo_hash and st.get("stableRS") == argo_hash
    assert rt.svc_hash(ACTIVE) == argo_hash
    assert rt.svc_hash(PREVIEW) == argo_hash
    assert len(rt.replicaset_writes("create")) == 1, "only the test's own create of Argo's RS"


# -- leader election --------------------------------------------------------------------------------
def test_only_the_leader_writes_and_a_follower_takes_over(rt: RuntimeEnv) -> None:
    ns = rt.ns
    lease = [
        "--leader-election-lease-duration",
        "4s",
        "--leader-election-renew-deadline",
        "3s",
        "--leader-election-retry-period",
        "1s",
    ]
    users = {}
    procs = {}
    for who in ("ctrl-a", "ctrl-b"):
        kc = rt.tmp_path / f"{who}.kubeconfig"
        users[who] = service_account_kubeconfig(rt.cp, rt.client, ns, who, kc)
        procs[who] = rt.start_controller(name=who, kubeconfig=kc, leader_elect=True, extra=lease)
    objs = manifest()
    rt.apply_all(objs)
    rt.wait_healthy(1, 40, "Healthy under two replicas")

    def leader() -> str | None:
        lead = [
            w
            for w, p in procs.items()
            if p.alive() and "leader: True" in http_get(f"http://127.0.0.1:{p.healthz_port}/readyz")[1]
        ]
        return lead[0] if len(lead) == 1 else None

    first = wait_for(leader, 10, "exactly one leader")
    follower = next(w for w in procs if w != first)
    time.sleep(1.5)  # let the audit log catch up
    assert audit_writes(rt.cp, users[first], ns), "the leader wrote nothing"
    wrote = [(e["verb"], e["objectRef"].get("resource")) for e in audit_writes(rt.cp, users[follower], ns)]
    assert wrote == [], f"the follower wrote: {wrote}"

    procs[first].kill()
    killed_at = time.monotonic()
    wait_for(lambda: leader() == follower, 10, "the follower to take over")
    took = time.monotonic() - killed_at
    print(f"leader hand-over took {took:.1f} s (lease 4 s, retry 1 s)")
    # Nominally lease + retry (+ the polls); the bound is generous for a loaded machine, yet far
    # below what a follower that never takes over (or waits for a second lease) would show.
    assert took <= 30, f"hand-over took {took:.1f}s (lease 4s, retry 1s)"
    before = len(audit_writes(rt.cp, users[follower], ns))
    rt.apply_all(with_env(objs, "VERSION V3"))
    rt.wait_phase("Paused", 30, f"the new leader reconciles\n{procs[follower].log_tail()}")
    assert len(audit_writes(rt.cp, users[follower], ns)) > before


# -- kill points -----------------------------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
def test_kill_point_then_restart_converges(point: str, rt: RuntimeEnv) -> None:
    objs = manifest(scale_down_delay=1)
    # Start (and see ready) the controller before there is anything to do: with the objects already
    # there, its first reconcile could reach the kill point before start() saw /readyz.
    ctrl = rt.start_controller(env={"PYROLLOUTS_KILL_AT": point})
    rt.apply_all(objs)
    deaths: list[int] = []

    def supervised(check: Any) -> Any:
        def run() -> Any:
            if not ctrl.alive():
                code = ctrl.proc.returncode if ctrl.proc else None
                deaths.append(int(code or 0))
                ctrl.env = {}
                ctrl.start()
            return check()

        return run

    wait_for(supervised(lambda: rt.healthy_on(1)), 60, f"Healthy on 1\n{ctrl.log_tail()}")
    rt.apply_all(with_env(objs, "VERSION V3"))
    wait_for(supervised(lambda: rt.phase() == "Paused"), 60, f"Paused\n{ctrl.log_tail()}")
    merge_patch(rt.client, "Rollout", NAME, rt.ns, {"status": {"pauseConditions": None}}, status=True)

    def done() -> bool:
        rss = rt.revisions()
        return rt.healthy_on(2) and sorted(rss) == [1, 2] and rss[1]["spec"]["replicas"] == 0

    wait_for(supervised(done), 60, f"the end state\n{ctrl.log_tail()}")
    assert deaths == [137], f"expected one death at {point}, got {deaths}\n{ctrl.log_tail()}"
    # The same end state as an uninterrupted run: two revisions, no duplicates, everything on 2.
    r = rt.rollout()
    rss = owned_replicasets(rt.client, r)
    assert len(rss) == 2
    revs = rt.revisions()
    assert revs[2]["spec"]["replicas"] == 3 and revs[1]["spec"]["replicas"] == 0
    st = r["status"]
    assert st["stableRS"] == st["currentPodHash"] == rs_hash(revs[2])
    assert not st.get("pauseConditions") and not st.get("abort")


def test_plugin_apply_crds_and_printer_columns(rt: RuntimeEnv) -> None:
    ns = rt.ns
    path = rt.tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump_all(manifest()))
    # `kubectl rollouts apply` (the CLI's Kubernetes backend: lint, then server-side apply)
    out = kubectl(rt.cp, "rollouts", "apply", "-f", str(path), "-n", ns).stdout
    assert "rollout.argoproj.io/super-hello created" in out, out
    rt.start_controller()
    rt.wait_healthy(1, 40, "Healthy")
    # re-applying the same manifest changes nothing: the Services keep the injected hash
    kubectl(rt.cp, "rollouts", "apply", "-f", str(path), "-n", ns)
    time.sleep(1)
    assert rt.healthy_on(1)
    listing = kubectl(rt.cp, "rollouts", "list", "rollouts", "-n", ns).stdout
    assert "super-hello" in listing and "Healthy" in listing, listing
    out = kubectl(rt.cp, "get", "ro", "-n", ns).stdout
    header = out.splitlines()[0].split()
    assert header[:5] == ["NAME", "DESIRED", "CURRENT", "UP-TO-DATE", "AVAILABLE"], out
    row = out.splitlines()[1].split()
    assert row[:5] == [NAME, "3", "3", "3", "3"], out
    # the scale subresource works (kubectl scale goes through it)
    kubectl(rt.cp, "scale", "-n", ns, f"rollout/{NAME}", "--replicas=2")
    wait_for(
        lambda: rt.status().get("availableReplicas") == 2 and rt.healthy_on(1),
        30,
        "scaled to 2",
    )
    crds = json.loads(kubectl(rt.cp, "get", "crd", "-o", "json").stdout)
    names = {c["metadata"]["name"] for c in crds["items"]}
    assert {
        "rollouts.argoproj.io",
        "analysistemplates.argoproj.io",
        "clusteranalysistemplates.argoproj.io",
        "analysisruns.argoproj.io",
        "experiments.argoproj.io",
    } <= names
