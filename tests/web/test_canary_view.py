"""The canary panel of the dashboard, pure: Argo's RolloutInfo fields of a canary, its steps with
the current one marked, the split from the status (all there is on Kubernetes) and the split the
proxy measured (the local runtime), and the sampler's shares."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cli_canary_objects import canary_paused, canary_traffic

from pyrollouts.service.info import rollout_info
from pyrollouts.web import argo_info, render
from pyrollouts.web.canaryview import canary_panel
from pyrollouts.web.traffic import TrafficSampler


def _info(state: object) -> dict:
    ro, rss, pods, now = state()  # type: ignore[operator]
    return argo_info(rollout_info(ro, rss, pods, now))


def test_argo_fields_of_a_canary() -> None:
    info = _info(canary_traffic)
    assert (info["strategy"], info["step"], info["setWeight"], info["actualWeight"]) == (
        "Canary",
        "3/5",
        "50",
        "50",
    )
    assert info["steps"][0] == {"setWeight": 20}
    assert [(rs["revision"], rs["canary"], rs["stable"]) for rs in info["replicaSets"]] == [
        (2, True, False),
        (1, False, True),
    ]


def test_steps_with_the_current_one_marked() -> None:
    html = canary_panel(_info(canary_paused), None)
    states = re.findall(r'data-step="(\d)" data-state="(\w+)"', html)
    assert states == [("0", "done"), ("1", "current"), ("2", "pending"), ("3", "pending"), ("4", "pending")]
    assert html.count('aria-current="step"') == 1
    assert 'id="canary-step">1/5<' in html and 'id="set-weight">20<' in html


def test_split_from_the_status_on_kubernetes() -> None:
    # with trafficRouting: the weights the router was given; no measured split without the proxy
    html = canary_panel(_info(canary_traffic), None)
    assert 'data-source="proxy"' not in html
    assert "status.canary.weights" in html
    assert re.findall(r'data-revision="(\d)" data-role="(\w+)" data-percent="([\d.]+)"', html) == [
        ("2", "canary", "50.0"),
        ("1", "stable", "50.0"),
    ]
    # without: each ReplicaSet's share of the available pods (1 of 5 is the canary's)
    html = canary_panel(_info(canary_paused), None)
    assert "available pods per ReplicaSet" in html
    assert re.findall(r'data-revision="(\d)" data-role="(\w+)" data-percent="([\d.]+)"', html) == [
        ("2", "canary", "20.0"),
        ("1", "stable", "80.0"),
    ]


def test_measured_split_comes_first() -> None:
    measured = {
        "window": 10.0,
        "requests": 200,
        "revisions": [
            {"hash": "7d4f6c9b8", "revision": 2, "requests": 41, "share": 0.205},
            {"hash": "6b9c8d7f5", "revision": 1, "requests": 159, "share": 0.795},
        ],
    }
    html = canary_panel(_info(canary_traffic), measured)
    assert html.index('data-source="proxy"') < html.index('data-source="status"')
    assert 'data-requests="200"' in html and "200 requests through the stable Service" in html
    assert 'data-revision="2" data-role="canary" data-percent="20.5"' in html
    quiet = canary_panel(_info(canary_traffic), {"window": 10.0, "requests": 0, "revisions": []})
    assert "no requests in the last 10 s" in quiet


def test_list_row_shows_step_and_weight() -> None:
    row = render.list_rows([_info(canary_paused)])
    assert '<div class="step-badge" title="step / set weight">step 1/5 · weight 20</div>' in row


def test_page_has_the_canary_panel_only_for_a_canary() -> None:
    parts = render.rollout_fragments(_info(canary_paused), [], None)
    assert "canary" in parts and "Promote: go on to the next step?" in parts["actions"]
    page = render.rollout_page(_info(canary_paused), [], None, None)
    assert '<section class="panel" id="canary">' in page


def test_sampler_shares_over_a_window() -> None:
    import asyncio

    totals = {"ns/stable": {"h1": 0, "h2": 0}, "ns/canary": {"h2": 0}}

    async def stats() -> dict:
        return {
            "services": {
                svc: {"revisions": {h: {"requests": n, "errors": 0} for h, n in revs.items()}}
                for svc, revs in totals.items()
            }
        }

    async def run() -> None:
        sampler = TrafficSampler(stats)
        await sampler.sample()
        totals["ns/stable"] = {"h1": 80, "h2": 20}
        totals["ns/canary"] = {"h2": 500}  # the canary's own port is not part of the split
        await sampler.sample()
        got = sampler.shares(["ns/stable"], {"h1": 1, "h2": 2}, 10.0)
        assert got["requests"] == 100
        assert [(r["revision"], r["requests"], r["share"]) for r in got["revisions"]] == [
            (2, 20, 0.2),
            (1, 80, 0.8),
        ]
        assert sampler.services_in("ns") == ["ns/canary", "ns/stable"]
        assert sampler.shares(["ns/stable"], {"h1": 1, "h2": 2}, 0.0)["requests"] == 0
        # a revision first counted after the sampler started: its first requests count
        totals["ns/stable"] = {"h1": 80, "h2": 20, "h3": 7}
        await sampler.sample()
        got = sampler.shares(["ns/stable"], {"h1": 1, "h2": 2, "h3": 3}, 10.0)
        assert [(r["revision"], r["requests"]) for r in got["revisions"]] == [(3, 7), (2, 20), (1, 80)]

    asyncio.run(run())
