"""Expand a sweep into points: dicts of ``dotted.path -> value``.

``grid`` takes the Cartesian product of value lists; ``random``, ``lhs`` (Latin hypercube) and
``sobol`` sample ``{low, high}`` ranges with scipy's ``qmc`` samplers, seeded from the batch's
root seed (spawn key ``(2,)``), so the same scenario and seed give the same points.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class SweepError(ValueError):
    """A sweep that cannot be expanded (mixed value lists and ranges, bad option syntax)."""


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """``path=v1,v2,...`` (values parsed as YAML scalars)."""
    import yaml

    path, sep, values = text.partition("=")
    if not sep or not path or not values:
        raise SweepError(f"--grid {text!r}: expected path=v1,v2,...")
    return path.strip(), [yaml.safe_load(v) for v in values.split(",")]


def parse_range_option(text: str) -> tuple[str, tuple[float, float]]:
    """``path=low:high``."""
    path, sep, bounds = text.partition("=")
    low, colon, high = bounds.partition(":")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        lo = hi = float("nan")
    if not sep or not colon or not path or not np.isfinite([lo, hi]).all() or lo > hi:
        raise SweepError(f"--range {text!r}: expected path=low:high with low <= high")
    return path.strip(), (lo, hi)


def expand(
    method: str,
    parameters: Mapping[str, Sequence[Any] | tuple[float, float]],
    samples: int,
    root_seed: int,
) -> list[dict[str, Any]]:
    """The sweep's points in a fixed order.

    Raises:
        SweepError: a path that cannot be swept (``config.unsweepable``), a grid given a range
            or a sampling method given a list, or fewer than one sample.
    """
    from .config import sobol_samples_problem, unsweepable

    names = list(parameters)
    if not names:
        return [{}]
    for name in names:
        reason = unsweepable(name)
        if reason is not None:
            raise SweepError(reason)
    if method != "grid" and samples < 1:
        raise SweepError(f"--samples must be at least 1 (got {samples})")
    problem = sobol_samples_problem(method, samples)
    if problem is not None:
        raise SweepError(problem)
    if method == "grid":
        lists = []
        for name in names:
            values = parameters[name]
            if isinstance(values, tuple):
                raise SweepError(
                    f"{name}: the grid method needs a list of values (--grid), not a range"
                )
            lists.append(list(values))
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
    bounds = []
    for name in names:
        values = parameters[name]
        if not isinstance(values, tuple):
            raise SweepError(
                f"{name}: the {method} method needs a range low:high (--range), not a list"
            )
        bounds.append(values)
    lows = np.array([b[0] for b in bounds])
    highs = np.array([b[1] for b in bounds])
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(root_seed, spawn_key=(2,))))
    if method == "random":
        unit = rng.random((samples, len(names)))
    else:
        from scipy.stats import qmc

        sampler = (
            qmc.LatinHypercube(d=len(names), rng=rng)
            if method == "lhs"
            else qmc.Sobol(d=len(names), scramble=True, rng=rng)
        )
        unit = sampler.random(samples)
    values = lows + unit * (highs - lows)
    return [{n: float(v) for n, v in zip(names, row, strict=True)} for row in values]
