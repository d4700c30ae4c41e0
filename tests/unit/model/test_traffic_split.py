"""The traffic split's JSON form (the local proxy's annotation) round-trips and refuses bad input."""

from __future__ import annotations

import pytest

from pyrollouts.model.traffic import (
    HeaderMatch,
    HeaderRoute,
    MirrorRoute,
    RequestMatch,
    StringMatch,
    TrafficSplit,
)


def test_round_trip_keeps_every_route() -> None:
    split = TrafficSplit(
        "app-stable",
        "app-canary",
        "aaa",
        "bbb",
        20,
        (HeaderRoute("by-header", (HeaderMatch("X-Canary", StringMatch(exact="yes")),)),),
        (
            MirrorRoute(
                "mirror",
                50,
                (
                    RequestMatch(
                        method=StringMatch(exact="GET"), headers=(("agent", StringMatch(prefix="z")),)
                    ),
                ),
            ),
        ),
    )
    assert TrafficSplit.loads(split.dumps()) == split
    assert split.to_json()["canaryWeight"] == 20


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{}",
        '{"stableService": "a"}',
        '{"stableService":"a","canaryService":"b","canaryWeight":101}',
    ],
)
def test_malformed_annotation_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        TrafficSplit.loads(text)
