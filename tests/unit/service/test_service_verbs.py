"""service/verbs.py: each verb's arguments, patches, message and refusals, without a client (the
clients themselves: tests/web/test_verbs_every_client.py, tests/k8s/test_verbs_kube.py)."""

from __future__ import annotations

import pytest

from harness import verbcases
from pyrollouts.service.verbs import VERBS, VerbError, plan

NS = "ns"


def _objects(paused: bool = True) -> tuple[dict[str, object], list[dict[str, object]]]:
    ro = verbcases.rollout(NS, paused=paused)
    ro["metadata"]["uid"] = "uid-1"  # type: ignore[index]
    return ro, [verbcases.replicaset(NS, ro, 1), verbcases.replicaset(NS, ro, 2)]


@pytest.mark.parametrize("case", verbcases.CASES, ids=[c.id for c in verbcases.CASES])
def test_plan_of_every_case(case: verbcases.Case) -> None:
    ro, rss = _objects(case.paused)
    if case.error is not None:
        with pytest.raises(VerbError) as refused:
            plan(case.verb, ro, rss, case.args, verbcases.NOW)
        assert (refused.value.code, refused.value.message) == case.error
        return
    p = plan(case.verb, ro, rss, case.args, verbcases.NOW)
    assert p.patches and p.message.startswith(("rollout 'web' ", 'rollout "web" '))


def test_messages_and_restart_time() -> None:
    ro, rss = _objects()
    assert plan("promote", ro, rss, {"full": True}, verbcases.NOW).message == "rollout 'web' fully promoted"
    restart = plan("restart", ro, rss, {}, verbcases.NOW)
    assert restart.patches[0].body == {"spec": {"restartAt": "2026-01-02T03:04:05Z"}}
    assert restart.message == "rollout 'web' restarts in 0s"  # Argo's plugin's wording
    image = plan("set-image", ro, rss, {"container": "app", "image": "app:3"}, verbcases.NOW)
    assert image.message == 'rollout "web" image updated'


@pytest.mark.parametrize(
    ("verb", "args", "message"),
    [
        ("promote", {"full": "yes"}, "'full' must be true or false, not 'yes'"),
        ("undo", {"toRevision": -1}, "toRevision must be a non-negative integer, not -1"),
        ("undo", {"toRevision": True}, "toRevision must be a non-negative integer, not True"),
        ("set-image", {"container": "app"}, 'set-image needs {"container": NAME or "*", "image": IMAGE}'),
        ("set-env", {"container": "app", "name": "K"}, "set-env needs"),
        ("explode", {}, "unknown action 'explode' (known: " + ", ".join(VERBS) + ")"),
    ],
)
def test_bad_arguments(verb: str, args: dict[str, object], message: str) -> None:
    ro, rss = _objects()
    with pytest.raises(VerbError) as refused:
        plan(verb, ro, rss, args, verbcases.NOW)
    assert refused.value.code in (400, 404) and refused.value.message.startswith(message)


def test_undo_reads_only_the_rollouts_own_replicasets() -> None:
    ro, rss = _objects()
    other = verbcases.replicaset(NS, {"metadata": {"name": "other", "uid": "uid-2"}}, 5)
    with pytest.raises(VerbError, match=r"has no revision 5 \(revisions: 1, 2\)"):
        plan("undo", ro, [*rss, other], {"toRevision": 5}, verbcases.NOW)
