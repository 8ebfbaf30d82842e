"""The exact likelihood of a fully observed adoption timeline.

Every hazard depends only on the history so far, the scheduled events and the covariates, so
a fully observed timeline has an exact discrete-time event-history likelihood (Berry & Berry
1990): at each step every unit at risk (a state that has not adopted a unilateral mechanism,
an open candidate dyad of a bilateral one) contributes ``log p`` if the observed history has it
adopt, ``log(1 - p)`` if not. The kernel replays the observed adoptions instead of drawing
them and adds up these terms (``Kernel(world, [seed], history=...)``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .kernel import History, Kernel
from .world import World


class HistoryError(ValueError):
    """Observed records that do not fit the scenario (unknown ids, dates outside the window,
    pairs that are not candidate dyads)."""


def history_from_records(
    world: World, records: Iterable[Mapping[str, Any]], until: float | None = None
) -> tuple[History, int]:
    """Build a replayable :class:`History` from observed records.

    Each record has ``mechanism``, ``state``, ``partner`` (None/empty for unilateral) and
    ``date`` (a calendar year, fractional allowed). Records that coincide with a scheduled
    (exogenous) adoption of the same step are part of the scenario's events, not of the
    history, and are skipped. ``until`` ends the likelihood at the start of the step that
    contains it: only steps ``0 .. floor(until - start) - 1`` and their records are kept (the
    returned step count says how many steps the likelihood covers).

    Returns the history and the number of steps to replay.
    """
    mech = {m.id: m for m in world.mechanisms}
    uni_pos = {m.index: k for k, m in enumerate(world.unilateral)}
    bil_pos = {m.index: k for k, m in enumerate(world.bilateral)}
    scheduled = {
        (s.step, s.mechanism, min(s.state, s.partner), max(s.state, s.partner))
        if s.partner >= 0
        else (s.step, s.mechanism, s.state, -1)
        for events in world.adoptions.values()
        for s in events
    }
    steps = world.steps
    if until is not None:
        steps = max(0, min(steps, math.floor(until - world.start)))
    uni: dict[int, list[tuple[int, int]]] = defaultdict(list)
    bil: dict[int, list[tuple[int, int]]] = defaultdict(list)
    problems = []
    for n, rec in enumerate(records, start=1):
        where = f"observed row {n}"
        m = mech.get(str(rec["mechanism"]))
        state = world.index.get(str(rec["state"]))
        partner_id = rec.get("partner")
        partner_id = None if partner_id in (None, "") or _is_nan(partner_id) else str(partner_id)
        if m is None:
            problems.append(f"{where}: mechanism: unknown mechanism {rec['mechanism']!r}")
            continue
        if state is None:
            problems.append(f"{where}: state: unknown state {rec['state']!r}")
            continue
        step = math.floor(float(rec["date"]) - world.start)
        if not 0 <= step < world.steps:
            problems.append(
                f"{where}: date: {rec['date']} is outside the window "
                f"{world.start}-{world.start + world.steps - 1}"
            )
            continue
        if step >= steps:
            continue
        if m.bilateral:
            partner = world.index.get(partner_id) if partner_id is not None else None
            if partner is None:
                problems.append(f"{where}: partner: unknown or missing partner {partner_id!r}")
                continue
            a, b = min(state, partner), max(state, partner)
            if (step, m.index, a, b) in scheduled:
                continue
            dyad = world.dyads.index.get((a, b))
            if dyad is None:
                problems.append(
                    f"{where}: {m.id} {rec['state']}-{partner_id} is not a candidate dyad "
                    "(no tie on the candidate layer): the model gives it probability 0"
                )
                continue
            bil[step].append((dyad, bil_pos[m.index]))
        else:
            if partner_id is not None:
                problems.append(f"{where}: partner: {m.id} is unilateral, partner must be empty")
                continue
            if (step, m.index, state, -1) in scheduled:
                continue
            uni[step].append((state, uni_pos[m.index]))
    if problems:
        raise HistoryError("\n".join(problems))
    return History(dict(uni), dict(bil)), steps


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and np.isnan(x)


def log_likelihood(world: World, history: History, steps: int) -> float:
    """Log-likelihood of the history under the world's parameters (replayed for ``steps``)."""
    kernel = Kernel(world, [np.random.SeedSequence(0)], history=history, record=False)
    for _ in range(steps):
        kernel.step()
    return kernel.loglik
