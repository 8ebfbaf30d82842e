"""Global sensitivity analysis with SALib (``diffusion-sim sensitivity``).

The experiment design is separate from where runs execute (the EMA Workbench habit): SALib
draws the design (Morris elementary-effects trajectories, or Saltelli's extension of Sobol'
sequences), every row of the design becomes one sweep point of an ordinary batch (so
``--workers`` and ``--scheduler`` work as for ``sweep``, and the batch is a normal, resumable
results folder), each point's outcome is the mean over its replicates of a per-run summary
metric of ``runs.parquet``, and SALib turns the outcomes into indices with bootstrap
confidence intervals.

* Morris (1991), with Campolongo, Cariboni & Saltelli's (2007) ``mu_star``: the mean absolute
  elementary effect, a screening measure that ranks parameters; ``sigma`` signals
  non-linearity or interactions. Cheap: ``samples x (k + 1)`` points.
* Sobol' (2001), estimated as Saltelli et al. (2010): ``S1`` (first-order share of the
  outcome's variance) and ``ST`` (total effect, including interactions). ``samples x (k + 2)``
  points; ``samples`` should be a power of two.

Replicate noise enters every point's mean (each point has its own run streams), so a
parameter that does nothing still gets small non-zero indices, of the order of the noise of a
point's mean; more replicates per point shrink it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Range, Scenario, unsweepable
from .errors import ScenarioError
from .loader import override_scenario

METHODS = ("morris", "sobol")
#: The index that ranks parameters, per method.
PRIMARY = {"morris": "mu_star", "sobol": "ST"}
#: Spawn-key prefix of the design's random stream (world 0, runs 1, sweeps 2, ABC 3).
DESIGN_KEY = 4


class SensitivityError(ValueError):
    """Input a sensitivity analysis cannot use (no range, unknown outcome, undefined
    outcome); the command line prints it and exits with status 2."""


@dataclass(frozen=True)
class Design:
    """A SALib experiment design over named parameter ranges."""

    method: str
    paths: list[str]
    bounds: np.ndarray  # (k, 2)
    samples: int
    seed: int
    levels: int
    x: np.ndarray  # (points, k)

    @property
    def problem(self) -> dict[str, Any]:
        return {
            "num_vars": len(self.paths),
            "names": list(self.paths),
            "bounds": self.bounds.tolist(),
        }

    def points(self) -> list[dict[str, float]]:
        """The design rows as sweep points (dotted path -> value)."""
        return [{p: float(v) for p, v in zip(self.paths, row, strict=True)} for row in self.x]


def parameter_ranges(
    scenario: Scenario,
    params: Sequence[str] | None,
    ranges: Mapping[str, tuple[float, float]] | None,
) -> dict[str, tuple[float, float]]:
    """Each parameter's range: ``--range`` first, else the scenario's ``sweep:`` range.

    Without ``params`` every parameter with a range is analysed. Both ends of every range are
    checked against the scenario (a path that does not exist, a value the schema refuses).

    Raises:
        SensitivityError: a parameter without a range, fewer than two parameters, or an
            invalid path or value.
    """
    ranges = dict(ranges or {})
    sweep: dict[str, tuple[float, float]] = {}
    if scenario.sweep is not None:
        for path, spec in scenario.sweep.parameters.items():
            if isinstance(spec, Range):
                sweep[path] = (float(spec.low), float(spec.high))
    names = list(params) if params else list(dict.fromkeys([*ranges, *sweep]))
    if len(set(names)) != len(names):
        raise SensitivityError("--params: a parameter is listed twice")
    problems = []
    out: dict[str, tuple[float, float]] = {}
    for name in names:
        bounds = ranges.get(name, sweep.get(name))
        reason = unsweepable(name)
        if reason is not None:
            problems.append(reason)
            continue
        if bounds is None:
            problems.append(
                f"{name}: no range; give --range {name}=LOW:HIGH or a {{low, high}} range in "
                "the scenario's sweep: block"
            )
            continue
        if not bounds[0] < bounds[1]:
            problems.append(f"{name}: empty range {bounds[0]:g}:{bounds[1]:g}")
            continue
        out[name] = bounds
    extra = [p for p in ranges if p not in names]
    if extra:
        problems.append(f"--range: {', '.join(extra)} not among --params")
    if problems:
        raise SensitivityError("\n".join(problems))
    if len(out) < 2:
        raise SensitivityError(
            f"a sensitivity analysis needs at least two parameters with ranges (got {len(out)})"
        )
    for end in (0, 1):
        try:
            override_scenario(scenario, {p: b[end] for p, b in out.items()})
        except ScenarioError as exc:
            raise SensitivityError(
                "\n".join(f"{p.path}: {p.message}" for p in exc.problems)
            ) from None
    return out


def _require_salib() -> None:
    """SALib comes with the ``tuning`` extra; without it, say so instead of a traceback."""
    try:
        import SALib  # noqa: F401
    except ImportError:
        raise SensitivityError(
            "sensitivity needs SALib: pip install 'diffusion-sim[tuning]'"
        ) from None


def make_design(
    method: str,
    ranges: Mapping[str, tuple[float, float]],
    samples: int,
    seed: int,
    levels: int = 4,
) -> Design:
    """SALib's design: Morris trajectories (``samples`` of them, ``levels`` grid levels) or
    Saltelli's Sobol' sample (``samples`` base points, first- and total-order only).

    The design's stream is ``SeedSequence(seed, spawn_key=(4,))``.
    """
    if method not in METHODS:
        raise SensitivityError(f"--method must be morris or sobol (got {method!r})")
    _require_salib()
    if samples < 2:
        raise SensitivityError("--samples must be at least 2")
    paths = list(ranges)
    bounds = np.asarray([ranges[p] for p in paths], dtype=float)
    problem = {"num_vars": len(paths), "names": paths, "bounds": bounds.tolist()}
    key = int(np.random.SeedSequence(seed, spawn_key=(DESIGN_KEY,)).generate_state(1)[0])
    if method == "morris":
        from SALib.sample import morris as morris_sample

        x = morris_sample.sample(problem, samples, num_levels=levels, seed=key)
    else:
        import warnings

        from SALib.sample import sobol as sobol_sample

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SALib warns when samples is not a power of 2
            x = sobol_sample.sample(problem, samples, calc_second_order=False, seed=key)
    return Design(method, paths, bounds, samples, seed, levels, np.asarray(x, dtype=float))


def outcome_means(runs: pd.DataFrame, outcome: str, n_points: int) -> np.ndarray:
    """Mean of a per-run metric over each point's successful replicates.

    Raises:
        SensitivityError: an unknown column, or points where the metric is undefined (NaN in
            every replicate, e.g. ``t50`` never reached): SALib needs a value at every point.
    """
    if outcome not in runs.columns:
        from .analysis import summary_metrics

        known = ", ".join(summary_metrics(runs))
        raise SensitivityError(f"--outcome {outcome}: not a column of runs.parquet ({known})")
    ok = runs[runs["status"] == "ok"]
    means = (
        pd.to_numeric(ok[outcome], errors="coerce")
        .groupby(ok["point"])
        .mean()
        .reindex(range(n_points))
    )
    missing = int(means.isna().sum())
    if missing:
        raise SensitivityError(
            f"--outcome {outcome} is undefined at {missing} of {n_points} points (no successful "
            "replicate, or the metric is NaN in all of them); choose another outcome"
        )
    return means.to_numpy(dtype=float)


def analyse(
    design: Design, y: np.ndarray, outcome: str, conf_level: float = 0.95, resamples: int = 1000
) -> pd.DataFrame:
    """Sensitivity indices of one outcome, one row per (parameter, index).

    Columns: ``outcome``, ``parameter``, ``low``, ``high``, ``index`` (morris: ``mu_star``,
    ``mu``, ``sigma``; sobol: ``S1``, ``ST``), ``value``, ``conf`` (half-width of the
    bootstrap confidence interval at ``conf_level``; NaN where SALib gives none), ``ci_low``,
    ``ci_high``, ``rank`` (1 = most influential by the primary index: ``mu_star`` or ``ST``).
    """
    key = int(np.random.SeedSequence(design.seed, spawn_key=(DESIGN_KEY, 1)).generate_state(1)[0])
    if design.method == "morris":
        from SALib.analyze import morris

        res = morris.analyze(
            design.problem,
            design.x,
            y,
            num_resamples=resamples,
            conf_level=conf_level,
            num_levels=design.levels,
            seed=key,
        )
        indices = {
            "mu_star": (res["mu_star"], res["mu_star_conf"]),
            "mu": (res["mu"], None),
            "sigma": (res["sigma"], None),
        }
    else:
        from SALib.analyze import sobol

        res = sobol.analyze(
            design.problem,
            y,
            calc_second_order=False,
            num_resamples=resamples,
            conf_level=conf_level,
            seed=key,
        )
        indices = {"S1": (res["S1"], res["S1_conf"]), "ST": (res["ST"], res["ST_conf"])}
    primary = np.asarray(indices[PRIMARY[design.method]][0], dtype=float)
    order = np.argsort(-np.nan_to_num(primary, nan=-np.inf), kind="stable")
    rank = np.empty(len(primary), dtype=int)
    rank[order] = np.arange(1, len(primary) + 1)
    rows = []
    for j, p in enumerate(design.paths):
        for name, (values, conf) in indices.items():
            v = float(np.asarray(values, dtype=float)[j])
            c = float(np.asarray(conf, dtype=float)[j]) if conf is not None else math.nan
            rows.append(
                {
                    "outcome": outcome,
                    "parameter": p,
                    "low": float(design.bounds[j, 0]),
                    "high": float(design.bounds[j, 1]),
                    "index": name,
                    "value": v,
                    "conf": c,
                    "ci_low": v - c,
                    "ci_high": v + c,
                    "rank": int(rank[j]),
                }
            )
    return pd.DataFrame(rows)


def plot_indices(table: pd.DataFrame, method: str, ax: Any = None) -> Any:
    """Horizontal bars of the sensitivity indices with their confidence intervals, one panel
    per outcome, parameters ordered by rank (most influential on top). Returns the Figure."""
    from matplotlib.figure import Figure

    from .plots import OKABE_ITO

    shown = ["mu_star", "sigma"] if method == "morris" else ["S1", "ST"]
    colours = {
        "mu_star": OKABE_ITO["blue"],
        "sigma": OKABE_ITO["orange"],
        "S1": OKABE_ITO["sky_blue"],
        "ST": OKABE_ITO["blue"],
    }
    labels = {
        "mu_star": "mu* (mean |elementary effect|)",
        "sigma": "sigma (non-linearity / interactions)",
        "S1": "S1 (first order)",
        "ST": "ST (total effect)",
    }
    outcomes = list(dict.fromkeys(table["outcome"]))
    if ax is None:
        k = table["parameter"].nunique()
        fig = Figure(figsize=(7.5, (1.2 + 0.45 * k) * len(outcomes)), layout="constrained")
        axes = np.atleast_1d(fig.subplots(len(outcomes), 1, squeeze=False)).ravel()
    else:
        fig, axes = ax.get_figure(), np.array([ax])
    height = 0.8 / len(shown)
    for axis, outcome in zip(axes, outcomes, strict=False):
        sub = table[table["outcome"] == outcome]
        params = sub.drop_duplicates("parameter").sort_values("rank", ascending=False)
        ypos = {p: i for i, p in enumerate(params["parameter"])}
        for s, name in enumerate(shown):
            rows = sub[sub["index"] == name]
            y = np.array([ypos[p] for p in rows["parameter"]]) + (s - (len(shown) - 1) / 2) * height
            err = rows["conf"].to_numpy(float)
            axis.barh(
                y,
                rows["value"],
                height=height,
                color=colours[name],
                label=labels[name],
                xerr=None if np.isnan(err).all() else np.nan_to_num(err),
                error_kw={"elinewidth": 1.0, "capsize": 2},
            )
        axis.set_yticks(range(len(ypos)), list(ypos))
        axis.axvline(0.0, color="#555555", linewidth=0.8)
        axis.set_title(f"{method.capitalize()} indices of {outcome}", fontsize=10)
        axis.set_axisbelow(True)
        axis.grid(True, axis="x", color="#E5E5E5", linewidth=0.6)
    axes[-1].set_xlabel(
        "index, in units of the outcome"
        if method == "morris"
        else "share of the outcome's variance"
    )
    # One legend below the bars, where it cannot hide a bar or its interval.
    handles, names = axes[0].get_legend_handles_labels()
    if ax is None:
        fig.legend(handles, names, loc="outside lower center", ncols=len(shown), fontsize=8)
    else:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=len(shown))
    return fig


def run_design(
    scenario: Scenario,
    design: Design,
    *,
    out: Path,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    overrides: Sequence[str] = (),
    on_progress: Callable[[int], None] | None = None,
    describe: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Run every design point as a sweep point of one batch (resumable; a complete batch is
    not run again) and return its store and manifest.

    Raises:
        SensitivityError: a design point the scenario refuses.
        BatchError, StoreError: from the batch engine.
    """
    from .loader import scenario_hash
    from .runner import (
        Batch,
        Point,
        default_workers,
        is_complete,
        make_executor,
        run_session,
        usable_cores,
        writing_session,
    )
    from .seeds import world_seed
    from .store import BatchStore
    from .world import build_world

    points = []
    for i, values in enumerate(design.points()):
        try:
            scn = override_scenario(scenario, values)
        except ScenarioError as exc:
            raise SensitivityError(
                "\n".join(f"design point {i} {values}: {p.path}: {p.message}" for p in exc.problems)
            ) from None
        points.append(Point(i, values, scn, scenario_hash(scn)))
    batch = Batch(
        scenario.name,
        scenario.runs.seed,
        scenario.runs.replicates,
        points,
        scenario.runs.chunk,
        list(design.paths),
    )
    store = BatchStore.for_batch(out, scenario.name, batch.batch_id)
    previous = None if force else store.manifest()
    if is_complete(store, batch, previous):
        if describe:
            describe(f"Already complete: {store.path}")
        return store, previous  # type: ignore[return-value]
    world = build_world(scenario, world_seed(scenario.runs.seed))
    if workers is None:
        workers = default_workers(batch, world, usable_cores())
    say = describe or (lambda _message: None)
    with (
        make_executor(workers, scheduler) as ex,
        writing_session(store, batch, force=force, say=say) as session,
    ):
        manifest, report = run_session(
            batch, store, scenario, list(overrides), world, ex, session, on_progress
        )
    if describe:
        describe(f"{report.runs_this_session} runs in {report.seconds:.1f} s ({ex.description})")
    return store, manifest


def write_outputs(
    store: Any, design: Design, table: pd.DataFrame, formats: Sequence[str] = ("png",)
) -> dict[str, Path]:
    """``sensitivity.csv`` and ``sensitivity.json`` (the design) in the batch folder, the bar
    chart in its ``plots/``."""
    path = Path(store.path)
    written = {"csv": path / "sensitivity.csv", "json": path / "sensitivity.json"}
    table.to_csv(written["csv"], index=False)
    store.write_json(
        "sensitivity.json",
        {
            "method": design.method,
            "samples": design.samples,
            "levels": design.levels if design.method == "morris" else None,
            "points": len(design.x),
            "seed": design.seed,
            "design_stream": f"SeedSequence(seed, spawn_key=({DESIGN_KEY},))",
            "ranges": {
                p: list(map(float, b)) for p, b in zip(design.paths, design.bounds, strict=True)
            },
            "outcomes": list(dict.fromkeys(table["outcome"])),
            "outcome_rule": "mean over each point's successful replicates",
            "primary_index": PRIMARY[design.method],
            "confidence": "SALib bootstrap, 95 %",
        },
    )
    fig = plot_indices(table, design.method)
    store.plots_dir.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        written[fmt] = store.plots_dir / f"sensitivity.{fmt}"
        fig.savefig(written[fmt], dpi=150)
    return written
