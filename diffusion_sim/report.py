"""Figures for one results folder: read the tables, draw, write ``<dir>/plots/``.

The folder layout is DESIGN.md section 3 (``events.parquet``, ``runs.parquet`` and
``series.parquet`` are single files or directories of ``part-*.parquet`` files; ``world.json``,
``manifest.json``). Every figure is rebuilt from ``events.parquet`` and ``world.json``; the
runs table adds runs without events and the swept parameters.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from diffusion_sim import analysis, plots
from diffusion_sim.config import FIGURE_FORMATS
from diffusion_sim.store import read_dataset

__all__ = [
    "FORMATS",
    "KINDS",
    "Results",
    "applicable_kinds",
    "plot_results",
    "read_results",
    "save_figure",
    "world_varies_note",
]

log = logging.getLogger(__name__)

#: Figure kinds ``plot_results`` can draw, in the order it draws them.
KINDS: tuple[str, ...] = (
    "spillover",
    "regions",
    "depth",
    "channels",
    "hr_exposure",
    "buildup",
    "network",
    "sweep",
)


@dataclass(frozen=True)
class Results:
    """The tables of one results folder (events of failed runs left out)."""

    path: Path
    events: pd.DataFrame
    runs: pd.DataFrame | None
    world: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def scenario(self) -> str:
        """Scenario name from the manifest, else the folder name."""
        return str(self.manifest.get("scenario") or self.path.name)

    @property
    def sweep_parameters(self) -> list[str]:
        """Swept dotted paths that have a ``param:`` column and more than one value."""
        if self.runs is None:
            return []
        listed = [str(p) for p in self.world.get("sweep_parameters") or []]
        columns = analysis.param_columns(self.runs)
        names = listed or [c.removeprefix("param:") for c in columns]
        return [
            p
            for p in names
            if f"param:{p}" in self.runs and self.runs[f"param:{p}"].nunique(dropna=True) > 1
        ]

    @property
    def world_varies_with(self) -> list[str]:
        """Swept paths that change the world (``runner.world_varying``): ``world.json`` then
        describes the base scenario, which no run may have used (even a one-value sweep), so
        only figures of each run's stored summary (the sweep kind) are drawn."""
        return [str(p) for p in self.world.get("varies_with") or []]


def world_varies_note(results_dir: Path) -> str | None:
    """Why a folder's curve figures are not drawn (its sweep changes the world), or ``None``
    when they are. Reads ``world.json`` only."""
    world = _read_json(Path(results_dir) / "world.json")
    return _varies_note([str(p) for p in world.get("varies_with") or []])


def _varies_note(varying: Sequence[str]) -> str | None:
    if not varying:
        return None
    return (
        f"the sweep changes the world ({', '.join(varying)}), and curves rebuilt from events "
        "need the world of their runs: only the sweep figures (each run's own summary) are "
        "drawn; to see a point's curves, run it as a scenario of its own "
        f"(e.g. --set {varying[0]}=VALUE)"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing (not a results folder?)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


#: Figures of events are drawn from at most this many runs (the first replicates of every
#: sweep point), so plotting a 100,000-run batch stays within memory; the titles give the count.
MAX_PLOT_RUNS = 2000


def _runs_to_draw(ok_runs: pd.DataFrame, max_runs: int) -> list[int]:
    """All ok run ids, or the first replicates of every point when there are too many."""
    if len(ok_runs) <= max_runs:
        return ok_runs["run_id"].astype(int).tolist()
    points = ok_runs["point"].nunique() if "point" in ok_runs else 1
    per_point = max(1, max_runs // points)
    first = ok_runs.sort_values(["point", "replicate"]).groupby("point").head(per_point)
    return first["run_id"].astype(int).tolist()


def read_results(results_dir: Path, max_runs: int = MAX_PLOT_RUNS) -> Results:
    """Read a results folder; raise ``FileNotFoundError`` / ``ValueError`` with the path.

    Events of at most ``max_runs`` runs are read (see :data:`MAX_PLOT_RUNS`); the runs table
    keeps the same runs (and the failed ones)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results folder")
    world = _read_json(root / "world.json")
    for key in ("time", "states", "mechanisms"):
        if key not in world:
            raise ValueError(f"{root / 'world.json'}: missing key {key!r}")
    manifest = _read_json(root / "manifest.json") if (root / "manifest.json").exists() else {}
    events_path = root / "events.parquet"
    if not events_path.exists():
        raise FileNotFoundError(f"{events_path}: missing (has the batch written any run yet?)")
    runs_path = root / "runs.parquet"
    runs = read_dataset(runs_path) if runs_path.exists() else None
    if runs is not None and "status" in runs:
        ok = runs.loc[runs["status"] == "ok", "run_id"]
        chosen = _runs_to_draw(runs[runs["status"] == "ok"], max_runs)
        events = read_dataset(events_path, run_ids=chosen)
        events = events[events["run_id"].isin(ok)]
        runs = runs[runs["run_id"].isin(chosen) | (runs["status"] != "ok")]
    else:
        events = read_dataset(events_path)
    return Results(root, events.reset_index(drop=True), runs, world, manifest)


def applicable_kinds(results: Results) -> list[str]:
    """The kinds that have something to show for this folder (only ``sweep`` when the sweep
    changes the world, see :func:`world_varies_note`)."""
    if results.world_varies_with:
        return ["sweep"]
    kinds = analysis.mechanism_kinds(results.world)
    has_bilateral = "bilateral" in kinds.values()
    regions = {s.get("region", "all") for s in results.world["states"]}
    ok = {
        "spillover": True,
        "regions": len(regions) > 1,
        "depth": True,
        "channels": True,
        "hr_exposure": has_bilateral,
        "buildup": True,
        "network": has_bilateral,
        "sweep": bool(results.sweep_parameters),
    }
    return [k for k in KINDS if ok[k]]


#: Figure file formats the commands document and accept (the scenario schema's).
FORMATS = FIGURE_FORMATS


def _check_formats(formats: Sequence[str]) -> list[str]:
    """The formats, lower-cased; ``ValueError`` for any outside :data:`FORMATS`."""
    chosen = [f.lower().lstrip(".") for f in formats]
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise ValueError(
            f"unknown figure format(s) {bad or list(formats)}; choose from {', '.join(FORMATS)}"
        )
    return chosen


def _id_ranges(ids: Sequence[int], limit: int = 6) -> str:
    """Sorted ids as ranges, e.g. ``0-4, 7, 9-199``; at most ``limit`` ranges, then ``...``."""
    spans: list[list[int]] = []
    for i in sorted(set(ids)):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    if not spans:
        return "none"
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:limit]]
    return ", ".join(parts) + (", ..." if len(spans) > limit else "")


def _check_network_dates(results: Results, dates: Sequence[float]) -> None:
    """``ValueError`` unless every date falls in a simulated step of the window."""
    start = float(results.world["time"]["start"])
    steps = int(results.world["time"]["steps"])
    bad = [d for d in dates if not start <= float(d) < start + steps]
    if bad:
        raise ValueError(
            f"network date(s) {', '.join(f'{d:g}' for d in bad)} outside the simulated window "
            f"{start:g}-{start + steps - 1:g} (a date must satisfy "
            f"{start:g} <= date < {start + steps:g})"
        )


def _check_network_run(results: Results, run: int) -> None:
    """``ValueError`` unless ``run`` is an ok run whose events were read."""
    drawn = analysis.run_index(results.events, results.runs)["run_id"].astype(int).tolist()
    if run in drawn:
        return
    choose = f"choose one of the runs drawn: {_id_ranges(drawn)}"
    if results.runs is None:
        raise ValueError(f"run {run} has no events in {results.path}; {choose}")
    listed = results.runs[results.runs["run_id"] == run]
    if not listed.empty:  # kept by read_results although not drawn: a run that is not ok
        status = listed["status"].iloc[0]
        error = listed["error"].iloc[0] if "error" in listed else None
        raise ValueError(
            f"run {run} is not an ok run (status {status!r}: {error or 'no error recorded'}); "
            f"{choose}"
        )
    every = read_dataset(results.path / "runs.parquet", columns=["run_id"])["run_id"]
    ids = every.astype(int).tolist()
    if run not in ids:
        also = f"; {choose}" if sorted(ids) != drawn else ""
        raise ValueError(
            f"run {run} is not in {results.path}: its run ids are {_id_ranges(ids)}{also}"
        )
    raise ValueError(
        f"run {run} is not among the {len(drawn)} runs whose events were read (large "
        f"batches are drawn from the first replicates of every sweep point); {choose}"
    )


def save_figure(fig: Figure, stem: Path, formats: Sequence[str], dpi: int = 150) -> list[Path]:
    """Write ``stem.<fmt>`` for each format, each to a temporary name then renamed."""
    written = []
    for fmt in _check_formats(formats):
        final = stem.with_name(f"{stem.name}.{fmt}")
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            fig.savefig(tmp, format=fmt, dpi=dpi)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(final)
    return written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "param"


def _sweep_response_figure(
    results: Results, summary: pd.DataFrame, param: str, metrics: Sequence[str]
) -> Figure:
    """One response panel per metric (at most three a row) and one legend below them."""
    cols = min(len(metrics), 3)
    rows = -(-len(metrics) // 3)
    fig = Figure(figsize=(4.6 * cols, 3.6 * rows + 0.7), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False)
    for ax in grid.ravel()[len(metrics) :]:
        ax.set_visible(False)
    for ax, metric in zip(grid.ravel(), metrics, strict=False):
        plots.plot_sweep_response(summary, param, metric, results.world, ax=ax, legend=False)
    handles, labels = plots.legend_entries(grid.ravel()[0])
    fig.legend(
        handles,
        labels,
        handler_map=plots.SPLIT_SWATCH,
        loc="outside lower center",
        ncols=len(labels),
        fontsize=9,
    )
    pooled = " (other swept parameters pooled)" if len(results.sweep_parameters) > 1 else ""
    fig.suptitle(f"Sweep response to {param}{pooled}: {results.scenario}")
    return fig


def _sweep_figures(results: Results) -> list[tuple[str, Figure]]:
    assert results.runs is not None
    params = results.sweep_parameters
    kinds = analysis.mechanism_kinds(results.world)
    metrics = [
        f"{m}:final_agreements" if k == "bilateral" else f"{m}:final_share"
        for m, k in kinds.items()
    ] + ["spillover_ratio"]
    keep = ["run_id", *[f"param:{p}" for p in params]]
    runs = results.runs
    if "status" in runs:
        runs = runs[runs["status"] == "ok"]
    if all(m in runs for m in metrics):  # the runner stored each run's summary
        summary = runs
    else:
        summary = analysis.summarise_runs(results.events, results.world, results.runs)
        summary = summary.merge(runs[keep], on="run_id", how="left")
    figures = [
        (f"sweep_{_slug(param)}", _sweep_response_figure(results, summary, param, metrics))
        for param in params
    ]
    if len(params) >= 2:
        fig = plots.plot_sweep_heatmap(
            summary, params[0], params[1], "spillover_ratio", results.world
        )
        figures.append(("sweep_heatmap", fig))
    return figures


def plot_results(
    results_dir: Path,
    kinds: Sequence[str] | None = None,
    formats: Sequence[str] = ("png",),
    network_dates: Sequence[float] | None = None,
    network_run: int | None = None,
) -> list[Path]:
    """Draw the figures of a results folder into ``<results_dir>/plots/``.

    Args:
        results_dir: a results folder (DESIGN.md section 3).
        kinds: figure kinds from ``KINDS``; ``None`` draws every kind that applies (regions
            with more than one region, human-rights exposure and network with a bilateral
            mechanism, sweep with swept parameters). A requested kind that does not apply is
            skipped with a log message.
        formats: file formats from :data:`FORMATS` (``png``, ``svg``, ``pdf``).
        network_dates: calendar dates of the network panels (default: a third, two thirds
            and the end of the window).
        network_run: the run drawn in the network picture (default: the run with the median
            final number of agreements).

    Returns:
        The files written, in drawing order.

    Raises:
        ValueError: an unknown kind or format (the message lists the valid ones), a network
            date outside the simulated window, or a network run that does not exist, failed
            or was not read (the message gives the window or the valid run ids).
    """
    if kinds is not None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown plot kind(s) {unknown}; valid kinds: {', '.join(KINDS)}")
    _check_formats(formats)
    results = read_results(Path(results_dir))
    if network_dates is not None:
        _check_network_dates(results, network_dates)
    if network_run is not None:
        _check_network_run(results, int(network_run))
    applicable = applicable_kinds(results)
    wanted = list(dict.fromkeys(kinds)) if kinds is not None else applicable
    note = _varies_note(results.world_varies_with)
    if note and kinds is not None and any(k != "sweep" for k in wanted):
        raise ValueError(f"{results.path}: cannot draw {', '.join(wanted)}: {note}")
    ev, world, runs = results.events, results.world, results.runs
    draw: dict[str, Callable[[], list[tuple[str, Figure]]]] = {
        "spillover": lambda: [("spillover", plots.plot_spillover(ev, world, runs))],
        "regions": lambda: [("regions", plots.plot_regions(ev, world, runs))],
        "depth": lambda: [("depth", plots.plot_depth(ev, world, runs))],
        "channels": lambda: [("channels", plots.plot_channels(ev, world, runs))],
        "hr_exposure": lambda: [("hr_exposure", plots.plot_hr_exposure(ev, world, runs))],
        "buildup": lambda: [("buildup", plots.plot_buildup(ev, world, runs))],
        "network": lambda: [
            ("network", plots.plot_network(ev, world, run_id=network_run, dates=network_dates))
        ],
        "sweep": lambda: _sweep_figures(results),
    }
    out_dir = results.path / "plots"
    out_dir.mkdir(exist_ok=True)
    written: list[Path] = []
    for kind in KINDS:
        if kind not in wanted:
            continue
        if kind not in applicable:
            log.info("skipping %s plot: it does not apply to %s", kind, results.path)
            continue
        for name, fig in draw[kind]():
            written += save_figure(fig, out_dir / name, formats)
    return written
