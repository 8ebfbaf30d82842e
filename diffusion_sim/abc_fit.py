"""Approximate Bayesian computation for partly observed timelines (``calibrate --method abc``).

When only some units are observed (the scenario's ``observed:`` list names a few of Russia's
agreements, and nothing is known about the other candidate dyads), the exact likelihood does
not apply: it would count every unlisted agreement as one that did not happen. ABC needs only
simulations (Beaumont, Zhang & Balding 2002; Sisson, Fan & Beaumont 2018):

1. draw ``draws`` parameter vectors from a uniform prior over the given ranges;
2. for each, run ``replicates`` replicates in one batched kernel call;
3. summarise each replicate as the cumulative number of adoptions of the *observed units* per
   year and mechanism (all endogenous adoptions when the timeline is complete), and measure
   its distance to the observed summary: the root-mean-square difference over years and
   mechanisms, in adoptions;
4. accept the replicates whose distance is within ``epsilon``, the ``accept`` quantile of all
   distances; a draw's weight is the share of its replicates accepted (an unbiased estimate of
   the ABC likelihood, so the weighted draws sample the ABC posterior).

Estimates are the weighted posterior mean, standard deviation and 2.5 % / 97.5 % quantiles.
With few observed units the posterior stays close to the prior: compare each posterior sd with
its prior sd (``sd_ratio`` in the output).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .calibrate import (
    CalibrationError,
    CalibrationResult,
    Estimate,
    Model,
    Observation,
    Tracked,
    history_steps,
    observed_units,
    parameter_bounds,
    simulate_counts,
)
from .config import Range, Scenario

#: Prior half-width around the scenario's value when no range is given (coefficients).
DEFAULT_HALF_WIDTH = 2.0
#: Spawn-key prefix of the ABC streams (the world uses (0,), runs (1, ...), sweeps (2,)).
ABC_KEY = 3


def prior_ranges(
    scenario: Scenario,
    paths: Sequence[str],
    start: np.ndarray,
    ranges: Mapping[str, tuple[float, float]] | None,
) -> tuple[np.ndarray, list[str]]:
    """Uniform prior bounds per parameter and where each came from: ``--range``, else the
    scenario's ``sweep:`` range for that path, else the scenario's value +- 2 (clipped to the
    schema bounds; the whole schema range for shares in [0, 1])."""
    ranges = dict(ranges or {})
    extra = [p for p in ranges if p not in paths]
    if extra:
        raise CalibrationError(f"--range: {', '.join(extra)} not among --params")
    sweep = scenario.sweep.parameters if scenario.sweep is not None else {}
    out, origin = [], []
    for p, x in zip(paths, start, strict=True):
        lo, hi = parameter_bounds(p)
        spec = sweep.get(p)
        if p in ranges:
            bounds, where = ranges[p], "--range"
        elif isinstance(spec, Range):
            bounds, where = (float(spec.low), float(spec.high)), "sweep"
        elif hi - lo <= 1.0:
            bounds, where = (lo, hi), "schema range"
        else:
            bounds, where = (x - DEFAULT_HALF_WIDTH, x + DEFAULT_HALF_WIDTH), "value +- 2"
        b_lo, b_hi = max(lo, bounds[0]), min(hi, bounds[1])
        if not b_lo < b_hi:
            raise CalibrationError(f"prior range of {p} is empty: {bounds[0]:g}:{bounds[1]:g}")
        out.append((b_lo, b_hi))
        origin.append(where)
    return np.asarray(out, dtype=float), origin


@dataclass(frozen=True)
class DrawTask:
    """A block of prior draws to simulate (picklable, for any executor)."""

    scenario: Scenario
    paths: list[str]
    first: int
    theta: np.ndarray
    replicates: int
    tracked: Tracked
    target: np.ndarray  # observed cumulative counts (M, steps)


def simulate_draws(task: DrawTask) -> np.ndarray:
    """Distances (draws, replicates) of a block of draws; draw ``i`` uses the streams
    ``SeedSequence(root, spawn_key=(3, i, k))``, so results do not depend on the blocks."""
    model = Model(task.scenario, task.paths)
    root = task.scenario.runs.seed
    steps = task.target.shape[1]
    out = np.empty((len(task.theta), task.replicates))
    for j, theta in enumerate(task.theta):
        i = task.first + j
        seeds = [
            np.random.SeedSequence(root, spawn_key=(ABC_KEY, i, k)) for k in range(task.replicates)
        ]
        sims = simulate_counts(model.world_at(theta), task.tracked, seeds)[:, :, :steps]
        out[j] = np.sqrt(((sims - task.target) ** 2).mean(axis=(1, 2)))
    return out


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Quantiles of ``x`` under weights ``w`` (inverse of the weighted empirical cdf, with
    mid-point plotting positions)."""
    order = np.argsort(x)
    x, w = x[order], w[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(q, cdf, x)


def fit_abc(
    scenario: Scenario,
    observation: Observation,
    paths: Sequence[str],
    *,
    until: float | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    draws: int = 1000,
    replicates: int = 10,
    accept: float = 0.05,
    figure_draws: int = 200,
    executor: Executor | None = None,
    block: int = 25,
) -> CalibrationResult:
    """Rejection ABC of ``paths`` against ``observation`` (complete or partial).

    Raises:
        CalibrationError: bad input (paths, ranges, observed records), or no draw accepted.
    """
    if draws < 10 or replicates < 1 or not 0.0 < accept <= 1.0:
        raise CalibrationError(
            "ABC needs --draws >= 10, --abc-replicates >= 1 and 0 < --accept <= 1"
        )
    model = Model(scenario, paths)
    prior, origin = prior_ranges(scenario, paths, model.start, ranges)
    world0 = model.world_at(np.clip(model.start, prior[:, 0], prior[:, 1]))
    _, steps = history_steps(world0, observation, until)  # checks ids, dates and dyads
    if steps == 0:
        raise CalibrationError("--until leaves no step to fit")
    tracked, observed = observed_units(world0, observation)
    if not tracked.mechanisms:
        raise CalibrationError(f"{observation.source}: no endogenous adoption to compare with")
    root = scenario.runs.seed
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(root, spawn_key=(ABC_KEY,))))
    theta = prior[:, 0] + rng.random((draws, len(paths))) * (prior[:, 1] - prior[:, 0])
    target = observed[:, :steps]
    tasks = [
        DrawTask(
            scenario, list(paths), first, theta[first : first + block], replicates, tracked, target
        )
        for first in range(0, draws, block)
    ]
    if executor is None:
        blocks = [simulate_draws(t) for t in tasks]
    else:
        blocks = list(executor.map(simulate_draws, tasks))
    distance = np.concatenate(blocks)
    epsilon = float(np.quantile(distance, accept))
    weights = (distance <= epsilon).mean(axis=1)
    if weights.sum() <= 0:
        raise CalibrationError("ABC accepted no draw; raise --accept or --draws")
    w = weights / weights.sum()
    mean = w @ theta
    sd = np.sqrt(np.clip(w @ (theta - mean) ** 2, 0.0, None))
    prior_sd = (prior[:, 1] - prior[:, 0]) / math.sqrt(12.0)
    estimates = []
    for j, p in enumerate(paths):
        lo, hi = weighted_quantile(theta[:, j], w, [0.025, 0.975])
        ratio = sd[j] / prior_sd[j]
        note = f"posterior sd = {ratio:.2f} x prior sd"
        if ratio > 0.8:
            note += (
                ": the data barely inform this parameter (the interval mostly restates the prior)"
            )
        estimates.append(
            Estimate(
                p,
                float(mean[j]),
                float(sd[j]),
                float(lo),
                float(hi),
                float(model.start[j]),
                (float(prior[j, 0]), float(prior[j, 1])),
                note,
            )
        )
    ess = float(weights.sum() ** 2 / (weights**2).sum())
    pick = rng.choice(draws, size=figure_draws, replace=True, p=w)
    units = "all endogenous adoptions" if tracked.units is None else f"{len(tracked.units)} units"
    details: dict[str, Any] = {
        "abc": {
            "algorithm": "rejection ABC, uniform prior, acceptance per replicate",
            "summary": f"cumulative adoptions per year and mechanism ({units})",
            "distance": "root-mean-square difference over years and mechanisms (adoptions)",
            "draws": draws,
            "replicates_per_draw": replicates,
            "accept_quantile": accept,
            "epsilon": epsilon,
            "accepted_runs": int((distance <= epsilon).sum()),
            "draws_with_weight": int((weights > 0).sum()),
            "effective_sample_size": ess,
            "prior": {
                p: {"low": float(prior[j, 0]), "high": float(prior[j, 1]), "from": origin[j]}
                for j, p in enumerate(paths)
            },
            "sd_ratio": {p: float(sd[j] / prior_sd[j]) for j, p in enumerate(paths)},
            "observed_partial": not observation.complete,
        },
        "_posterior_draws": theta[pick],
    }
    # Median distance at the scenario's values and at the posterior mean (same streams).
    check = simulate_draws(
        DrawTask(
            scenario,
            list(paths),
            draws,
            np.vstack([np.clip(model.start, prior[:, 0], prior[:, 1]), mean]),
            max(replicates, 50),
            tracked,
            target,
        )
    )
    details["abc"]["distance_at_start_median"] = float(np.median(check[0]))
    details["abc"]["distance_at_estimate_median"] = float(np.median(check[1]))
    return CalibrationResult(
        method="abc",
        intervals="ABC posterior: estimate = weighted posterior mean, se = posterior sd, "
        "ci = 2.5 % and 97.5 % weighted posterior quantiles",
        estimates=estimates,
        n_events=int(observed[:, steps - 1].sum()),
        steps=steps,
        until=until,
        observed=observation.source,
        log_likelihood=None,
        details=details,
    )
