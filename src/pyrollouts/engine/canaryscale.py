"""The canary's replica arithmetic (docs/canary.md "Sizes"): how many pods the canary (new) and
the stable ReplicaSet get for a weight, as Argo computes them.

Without trafficRouting the weight *is* the share of pods: the canary gets about weight% of
spec.replicas and the stable RS the rest, and the pair moves there within maxSurge (never more
than replicas + maxSurge pods requested) and maxUnavailable (never fewer than replicas -
maxUnavailable available), one bounded move per reconcile (``basic``). With trafficRouting the
router carries the weight; the canary is sized for it (or by setCanaryScale) and the stable RS
stays at full size unless dynamicStableScale (``routed``). Pure functions of numbers and
ReplicaSet states.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .types import ReplicaSetState

MAX_WEIGHT = 100


def weight_to_replicas(replicas: int, weight: int, max_weight: int = MAX_WEIGHT) -> int:
    """The pods a weight needs: weight% of replicas, rounded up (Argo's trafficWeightToReplicas)."""
    return math.ceil(weight * replicas / max_weight)


def _tied(weight: int, max_weight: int, total: int) -> bool:
    """total * weight / max_weight is exactly halfway between two integers."""
    return (2 * total * weight) % (2 * max_weight) == max_weight


def _delta(weight: int, max_weight: int, canary: int, total: int) -> float:
    return abs(canary * max_weight / total - weight)


def approximate(replicas: int, weight: int, surge: int, max_weight: int = MAX_WEIGHT) -> tuple[int, int]:
    """(canary, stable) pod counts whose ratio comes closest to ``weight``: the canary count is
    weight% of replicas rounded up or down, the total is replicas or (with surge) replicas + 1.
    A weight strictly between 0 and 100 keeps at least one pod on each side when it can."""
    if replicas == 0:
        return 0, 0
    options = _options(replicas, weight, surge, max_weight)
    if not options:
        return 0, replicas
    best = options[0]
    for option in options[1:]:
        if _delta(weight, max_weight, *option) < _delta(weight, max_weight, *best):
            best = option
    return best[0], best[1] - best[0]


def _options(replicas: int, weight: int, surge: int, max_weight: int) -> list[tuple[int, int]]:
    """The (canary, total) candidates: weight% rounded up or down, of replicas or replicas + 1."""
    ceil_ = math.ceil(replicas * weight / max_weight)
    floor_ = math.floor(replicas * weight / max_weight)
    zero_ok = weight in (0, max_weight) or (replicas == 1 and surge == 0)
    floor_ok = floor_ != 0 or zero_ok
    options: list[tuple[int, int]] = []
    if ceil_ < replicas or zero_ok:
        options.append((ceil_, replicas))
    if floor_ok and not _tied(weight, max_weight, replicas):
        options.append((floor_, replicas))
    if surge > 0:
        options.append((ceil_, replicas + 1))
        if floor_ok and not _tied(weight, max_weight, replicas + 1):
            options.append((floor_, replicas + 1))
    return options


@dataclass(frozen=True)
class Fenceposts:
    """spec.replicas and the resolved maxSurge and maxUnavailable."""

    replicas: int
    surge: int
    unavailable: int

    @property
    def max_total(self) -> int:
        return self.replicas + self.surge

    @property
    def min_available(self) -> int:
        return self.replicas - self.unavailable


def _for_scale_down(rs: ReplicaSetState | None, ignore_availability: bool) -> int:
    """The pods of an RS that count as available for a scale-down decision."""
    if rs is None:
        return 0
    if rs.replicas < rs.available_replicas or ignore_availability:
        return rs.replicas
    return rs.available_replicas


def _drain(rs: ReplicaSetState | None, desired: int, scale_down: int, count: int) -> int:
    """Scale an RS that is above its target down by at most ``scale_down`` pods."""
    if rs is not None and rs.replicas > desired:
        return max(desired, rs.replicas - scale_down)
    return count


def _adjust(
    drain_rs: ReplicaSetState | None,
    adjust_rs: ReplicaSetState | None,
    drain_count: int,
    adjust_count: int,
    f: Fenceposts,
) -> tuple[int, int]:
    """Keep the pair within replicas + maxSurge, and keep enough available pods: the RS being
    adjusted keeps extra available pods while the other is short of them."""
    if adjust_rs is None:
        return drain_count, adjust_count
    over = max(0, adjust_count + drain_count - f.max_total)
    available = min(drain_rs.available_replicas, drain_count) if drain_rs is not None else 0
    adjust_count -= over
    available += min(adjust_rs.available_replicas, adjust_count)
    extra = max(0, adjust_rs.available_replicas - adjust_count)
    adjust_count += min(extra, max(0, f.min_available - available))
    drain_count -= max(0, adjust_count + drain_count - f.max_total)
    return drain_count, adjust_count


def _scale_up(rs: ReplicaSetState | None, count: int, desired: int, room: int) -> tuple[int, int]:
    """Grow an RS towards ``desired`` within ``room`` more pods; returns (count, room left)."""
    if rs is None or rs.replicas >= desired or room <= 0:
        return count, room
    grown = min(rs.replicas + room, desired)
    return grown, room - (grown - rs.replicas)


def basic(
    f: Fenceposts,
    weight: int,
    new: ReplicaSetState | None,
    stable: ReplicaSetState | None,
    old: Sequence[ReplicaSetState],
) -> tuple[int, int]:
    """(new, stable) sizes for this reconcile of a canary without trafficRouting (Argo's
    CalculateReplicaCountsForBasicCanary): the stable RS grows first, then the new one, within
    maxSurge; then the side that shrinks gives up pods within maxUnavailable. While older
    ReplicaSets still have pods, nothing shrinks here (they go first)."""
    desired_new, desired_stable = approximate(f.replicas, weight, f.surge)
    has_stable = stable is not None and (new is None or new.name != stable.name)
    if not has_stable:
        stable, desired_new, desired_stable = None, f.replicas, 0
    new_count = new.replicas if new is not None else 0
    stable_count = stable.replicas if stable is not None else 0
    current = sum(rs.replicas for rs in (*old, new, stable) if rs is not None)
    room = f.max_total - current
    stable_count, room = _scale_up(stable, stable_count, desired_stable, room)
    new_count, room = _scale_up(new, new_count, desired_new, room)
    if sum(rs.replicas for rs in old) > 0:
        return new_count, stable_count
    increasing = new is None or desired_new >= new.replicas
    to_scale_down = _for_scale_down(new, not increasing) + _for_scale_down(stable, increasing)
    if to_scale_down <= f.min_available:
        return new_count, stable_count
    scale_down = to_scale_down - f.min_available
    if not increasing:
        new_count = _drain(new, desired_new, scale_down, new_count)
        return _adjust(new, stable, new_count, stable_count, f)
    if stable is not None:
        stable_count = _drain(stable, desired_stable, scale_down, stable_count)
        stable_count, new_count = _adjust(stable, new, stable_count, new_count, f)
    return new_count, stable_count


def with_min_pods(count: int, min_pods: int | None, replicas: int) -> int:
    """minPodsPerReplicaSet (trafficRouting only): a ReplicaSet that runs at all runs at least
    that many pods (at most spec.replicas)."""
    if count == 0 or min_pods is None:
        return count
    return max(count, min(min_pods, replicas))


@dataclass(frozen=True)
class Routed:
    """The inputs of a traffic-routed canary's sizes besides the weight."""

    replicas: int
    scale_replicas: int | None  # setCanaryScale.replicas in force
    min_pods: int | None
    dynamic: bool  # dynamicStableScale
    stable_weight: int | None = None  # the weights the router was last given (status)
    canary_weight: int | None = None
    aborted: bool = False


def routed(r: Routed, weight: int) -> tuple[int, int]:
    """(new, stable) sizes of a canary with trafficRouting (Argo's
    CalculateReplicaCountsForTrafficRoutedCanary): the canary is sized for its weight (or by
    setCanaryScale); the stable RS keeps every pod unless dynamicStableScale, in which case it
    keeps what its share of traffic (desired, or still routed to it) needs."""
    if r.scale_replicas is not None:
        canary = r.scale_replicas
    else:
        canary = with_min_pods(weight_to_replicas(r.replicas, weight), r.min_pods, r.replicas)
    if not r.dynamic:
        return canary, r.replicas
    stable = weight_to_replicas(r.replicas, MAX_WEIGHT - weight)
    if r.stable_weight is not None:
        stable = max(stable, weight_to_replicas(r.replicas, r.stable_weight))
    if r.aborted and r.canary_weight is not None:
        canary = max(canary, weight_to_replicas(r.replicas, r.canary_weight))
    return (
        with_min_pods(canary, r.min_pods, r.replicas),
        with_min_pods(stable, r.min_pods, r.replicas),
    )
