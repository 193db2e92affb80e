"""The order in which a request tries a router's targets: priority groups in turn (the
fallbacks), each ordered by the router's strategy; targets cooling down after a failure wait."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

from budapp.gateway.routing import RouterConfig, TargetState
from budapp.routers.models import Strategy

_random = random.Random()  # noqa: S311 - load balancing, not security


def candidates(router: RouterConfig) -> Iterator[TargetState]:
    now = time.monotonic()
    cooling: list[TargetState] = []
    for group in router.groups:
        live = [t for t in group if t.cooldown_until <= now and not t.broken]
        cooling += [t for t in group if t.cooldown_until > now and not t.broken]
        yield from _ordered(router, live)
    # Every other target failed too: a cooling target beats refusing the call (a router with
    # one target must not stay down for a whole cooldown after one error).
    yield from sorted(cooling, key=lambda t: t.cooldown_until)


def _ordered(router: RouterConfig, targets: list[TargetState]) -> list[TargetState]:
    if len(targets) <= 1:
        return targets
    strategy = router.strategy
    if strategy is Strategy.ROUND_ROBIN:
        start = router.turn % len(targets)
        router.turn += 1
        return targets[start:] + targets[:start]
    if strategy is Strategy.LEAST_IN_FLIGHT:
        # Random tie-break, so equal loads spread instead of piling onto the first target.
        return sorted(targets, key=lambda t: (t.in_flight, _random.random()))
    if strategy is Strategy.LOWEST_LATENCY:
        # Targets never measured go first: each gets measured once.
        return sorted(
            targets, key=lambda t: (t.latency is not None, t.latency or 0.0, _random.random())
        )
    return _weighted_order(targets)


def _weighted_order(targets: list[TargetState]) -> list[TargetState]:
    """A weighted draw without replacement: the first is drawn in proportion to weight, the
    fallbacks of the same priority likewise among the rest."""
    pool = list(targets)
    order: list[TargetState] = []
    while pool:
        pick = _random.random() * sum(t.weight for t in pool)
        for index, target in enumerate(pool):
            pick -= target.weight
            if pick <= 0 or index == len(pool) - 1:
                order.append(pool.pop(index))
                break
    return order


def cool_down(router: RouterConfig, target: TargetState) -> None:
    if router.cooldown_seconds > 0:
        target.cooldown_until = time.monotonic() + router.cooldown_seconds
