"""Per-run summary metrics straight from the kernel's arrays (the batch runner's fast path).

``summarise(world, result, n_replicates, hr_threshold)`` gives, for the replicates of one
:class:`~diffusion_sim.kernel.KernelResult`, exactly the metric columns and values of
:func:`diffusion_sim.analysis.summarise_runs` (which rebuilds them from the events table with
pandas and is about a hundred times slower). The series arrays give the curves (``region ==
-1`` rows: all states); the events arrays give what only events know (chain depth, the
partner's human rights at conclusion). ``tests/test_summary.py`` checks the equality.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from .world import ADOPT, World

if TYPE_CHECKING:
    from .kernel import KernelResult

# The tolerance summarise_runs uses when comparing a share with a threshold.
_EPS = 1e-12


def metric_names(world: World) -> list[str]:
    """The metric columns, in the order of ``analysis.summarise_runs``."""
    names: list[str] = []
    for m in world.mechanisms:
        names.append(f"{m.id}:final_share")
        if m.bilateral:
            names.append(f"{m.id}:final_agreements")
        names += [
            f"{m.id}:final_beyond_sponsor",
            f"{m.id}:t10",
            f"{m.id}:t50",
            f"{m.id}:auc",
            f"{m.id}:spillover_ratio",
        ]
    return [*names, "max_depth", "spillover_ratio", "hr_exposed_share"]


def metric_schema(world: World) -> list[pa.Field]:
    """Arrow fields of the metric columns (counts are int64, the rest float64)."""
    return [
        pa.field(
            name, pa.int64() if name.endswith(("_agreements", "_beyond_sponsor")) else pa.float64()
        )
        for name in metric_names(world)
    ]


def _cube(series: dict[str, np.ndarray], column: str, r: int, m: int, t: int) -> np.ndarray:
    """(replicates, mechanisms, steps) of a series column over all states (region -1)."""
    out = np.zeros((r, m, t), dtype=np.int64)
    rows = series["region"] == -1
    out[series["replicate"][rows], series["mechanism"][rows], series["step"][rows]] = series[
        column
    ][rows]
    return out


def _first_date(share: np.ndarray, threshold: float, start: float) -> np.ndarray:
    """First date (``start + step``) at which ``share`` (R, T) reaches ``threshold``, or NaN."""
    reached = share >= threshold - _EPS
    first = reached.argmax(axis=1).astype(np.float64)
    return np.where(reached.any(axis=1), float(start) + first, np.nan)


def _row_sums(values: np.ndarray) -> np.ndarray:
    """Row sums of (R, T) as pandas' groupby ``sum`` computes them for sorted groups
    (``np.add.reduceat`` over consecutive segments), so the values match to the last bit."""
    r, t = values.shape
    if r == 0 or t == 0:
        return np.zeros(r)
    return np.add.reduceat(np.ascontiguousarray(values).ravel(), np.arange(0, r * t, t))


def _hr_exposed(
    world: World, events: dict[str, np.ndarray], r: int, threshold: float
) -> np.ndarray:
    """Share of bilateral agreements in force after the last step with a party whose human
    rights (at conclusion) are below ``threshold``; a revocation counts with the parties of the
    adoption it cancels (as ``analysis`` does)."""
    bilateral = np.array([m.bilateral for m in world.mechanisms], dtype=bool)
    if not events or not bilateral.any():
        return np.full(r, np.nan)
    keep = bilateral[events["mechanism"]]
    rep = events["replicate"][keep].astype(np.int64)
    mech = events["mechanism"][keep].astype(np.int64)
    state, partner = events["state"][keep], events["partner"][keep]
    lo, hi = np.minimum(state, partner), np.maximum(state, partner)
    step, action = events["step"][keep], events["action"][keep]
    # Exposed when either party protects rights poorly (returns run both ways).
    hr = np.fmin(events["state_human_rights"][keep], events["partner_human_rights"][keep])
    hr = hr.astype(np.float64)
    sign = np.where(action == ADOPT, 1, -1)
    agreements = np.bincount(rep, weights=sign, minlength=r)
    if (sign < 0).any():
        order = np.lexsort((action, step, hi, lo, mech, rep))
        rep, mech, lo, hi, hr, sign = (x[order] for x in (rep, mech, lo, hi, hr, sign))
        # Forward-fill the latest adoption of the same unit onto each revocation.
        pos = np.arange(len(rep))
        last_adopt = np.maximum.accumulate(np.where(sign > 0, pos, -1))
        src = np.maximum(last_adopt, 0)
        same = (
            (last_adopt >= 0)
            & (rep[src] == rep)
            & (mech[src] == mech)
            & (lo[src] == lo)
            & (hi[src] == hi)
        )
        hr = np.where(same, hr[src], hr)
    exposed = np.bincount(rep, weights=sign * (hr < threshold), minlength=r)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(agreements > 0, exposed / np.where(agreements > 0, agreements, 1), np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den as floats, NaN where den is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def summarise(
    world: World, result: KernelResult, n_replicates: int, hr_threshold: float
) -> dict[str, np.ndarray]:
    """Metric columns (see :func:`metric_names`) for replicates ``0 .. n_replicates - 1``."""
    r, mechs, t = n_replicates, world.mechanisms, world.steps
    nm = len(mechs)
    se, ev = result.series, result.events
    if se:
        adopters = _cube(se, "adopters", r, nm, t)
        agreements = _cube(se, "agreements", r, nm, t)
        beyond = _cube(se, "beyond_sponsor", r, nm, t)
    else:
        adopters = agreements = beyond = np.zeros((r, nm, max(t, 1)), dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    n = world.n
    for k, m in enumerate(mechs):
        share = adopters[:, k, :] / n
        out[f"{m.id}:final_share"] = share[:, -1]
        if m.bilateral:
            out[f"{m.id}:final_agreements"] = agreements[:, k, -1].copy()
        out[f"{m.id}:final_beyond_sponsor"] = beyond[:, k, -1].copy()
        out[f"{m.id}:t10"] = _first_date(share, 0.1, world.start)
        out[f"{m.id}:t50"] = _first_date(share, 0.5, world.start)
        out[f"{m.id}:auc"] = _row_sums(share)
        out[f"{m.id}:spillover_ratio"] = _ratio(beyond[:, k, -1], agreements[:, k, -1])
    if ev:
        adopt = (ev["action"] == ADOPT) & (ev["depth"] >= 0)
        depth = np.full(r, -1, dtype=np.int64)
        np.maximum.at(depth, ev["replicate"][adopt], ev["depth"][adopt].astype(np.int64))
        out["max_depth"] = np.where(depth >= 0, depth.astype(np.float64), np.nan)
    else:
        out["max_depth"] = np.full(r, np.nan)
    # Pooled over the bilateral mechanisms (agreements) when there are any, else over all.
    pooled = np.array([m.bilateral for m in mechs], dtype=bool)
    if not pooled.any():
        pooled[:] = True
    total = agreements[:, pooled, -1].sum(axis=1)
    spill = beyond[:, pooled, -1].sum(axis=1)
    out["spillover_ratio"] = _ratio(spill, total)
    out["hr_exposed_share"] = _hr_exposed(world, ev, r, hr_threshold)
    return out


def take(columns: dict[str, np.ndarray], rows: Sequence[int] | np.ndarray) -> dict:
    """The same columns restricted to ``rows``."""
    idx = np.asarray(rows, dtype=np.int64)
    return {k: v[idx] for k, v in columns.items()}
