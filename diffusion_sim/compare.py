"""Compare the results of several scenarios: overlaid spillover curves and a metrics table.

Method (also written into ``comparison.md``): every summary metric (the ones stored in
``runs.parquet``, see ``analysis.summarise_runs``) is averaged over a scenario's runs with a
Student-t 95 % interval for the mean; each scenario's difference from the first is the
difference of means with a Welch t 95 % interval (independent replicates, unequal
variances). Runs of all sweep points of a folder are pooled.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from diffusion_sim import analysis, plots
from diffusion_sim.report import (
    MAX_PLOT_RUNS,
    Results,
    _check_formats,
    _slug,
    read_results,
    save_figure,
)
from diffusion_sim.store import read_dataset

__all__ = ["compare_results"]

log = logging.getLogger(__name__)


def _labels(results: Sequence[Results], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(results):
            raise ValueError(f"got {len(labels)} labels for {len(results)} results folders")
        chosen = [str(x) for x in labels]
    else:
        chosen = [r.scenario for r in results]
        if len(set(chosen)) < len(chosen):
            chosen = [f"{r.scenario} ({r.path.name})" for r in results]
    if len(set(chosen)) < len(chosen):
        raise ValueError(f"labels must be distinct, got {chosen}")
    return chosen


def _check_windows(results: Sequence[Results], labels: Sequence[str]) -> None:
    windows = []
    for r in results:
        t = r.world["time"]
        windows.append((float(t["start"]), int(t["steps"]), str(t.get("unit", "year"))))
    if len(set(windows)) > 1:
        described = "; ".join(
            f"{label}: {start:g} + {steps} steps ({start:g}-{start + steps - 1:g}, {unit})"
            for label, (start, steps, unit) in zip(labels, windows, strict=True)
        )
        raise ValueError(f"time windows differ, cannot align the curves: {described}")


def _common_mechanisms(
    results: Sequence[Results], labels: Sequence[str]
) -> tuple[list[str], dict[str, list[str]]]:
    kinds = [analysis.mechanism_kinds(r.world) for r in results]
    common = [m for m in kinds[0] if all(m in k for k in kinds)]
    clash = [m for m in common if len({k[m] for k in kinds}) > 1]
    if clash:
        raise ValueError(
            f"mechanism kinds differ between scenarios for {clash}: "
            + "; ".join(
                f"{lab}: {[k[m] for m in clash]}" for lab, k in zip(labels, kinds, strict=True)
            )
        )
    dropped = {lab: [m for m in k if m not in common] for lab, k in zip(labels, kinds, strict=True)}
    if not common:
        listed = "; ".join(f"{lab}: {list(k)}" for lab, k in zip(labels, kinds, strict=True))
        raise ValueError(f"no mechanism is present in every scenario ({listed})")
    return common, {lab: d for lab, d in dropped.items() if d}


def _check_one_world(results: Sequence[Results], labels: Sequence[str]) -> None:
    """Curves rebuilt from a folder's events need one world: refuse a folder whose sweep
    changes it between points."""
    for label, r in zip(labels, results, strict=True):
        if r.world_varies_with:
            raise ValueError(
                f"{label} ({r.path}): its sweep changes the world "
                f"({', '.join(r.world_varies_with)}), so its curves cannot be pooled; compare "
                "single scenarios (run each point with --set), or plot the sweep itself"
            )


def _summaries(
    results: Sequence[Results],
    labels: Sequence[str],
    worlds: Sequence[dict[str, Any]],
    dropped: dict[str, list[str]],
) -> dict[str, pd.DataFrame]:
    """Each folder's per-run metrics: those stored in ``runs.parquet`` (every ok run, each
    computed by its worker with its own point's world). When a mechanism is dropped, the
    pooled metrics must cover the common mechanisms only, so they are recomputed from the
    events read (at most ``MAX_PLOT_RUNS`` runs per folder, counted in ``comparison.md``)."""
    out = {}
    for label, r, w in zip(labels, results, worlds, strict=True):
        stored = None if dropped else read_dataset(r.path / "runs.parquet")
        if stored is None or "spillover_ratio" not in stored:  # no stored metrics: recompute
            out[label] = analysis.summarise_runs(r.events, w, r.runs)
            continue
        if "status" in stored:
            stored = stored[stored["status"] == "ok"]
        out[label] = stored.reset_index(drop=True)
    return out


def _restrict(world: dict[str, Any], mechanisms: Sequence[str]) -> dict[str, Any]:
    out = dict(world)
    out["mechanisms"] = [m for m in world["mechanisms"] if m["id"] in mechanisms]
    out["observed"] = [o for o in world.get("observed") or [] if o.get("mechanism") in mechanisms]
    return out


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1000:  # calendar years and large counts: keep every digit, one decimal
        return f"{value:.1f}"
    return f"{value:.{digits}g}"


def _markdown(
    table: pd.DataFrame,
    results: Sequence[Results],
    labels: Sequence[str],
    mechanisms: Sequence[str],
    dropped: dict[str, list[str]],
    summaries: dict[str, pd.DataFrame],
) -> str:
    lines = ["# Scenario comparison", ""]
    lines.append("| label | scenario | folder | runs in the table | runs in the curves |")
    lines.append("| --- | --- | --- | --- | --- |")
    for label, r in zip(labels, results, strict=True):
        drawn = analysis.run_index(r.events, r.runs)["run_id"].nunique()
        lines.append(f"| {label} | {r.scenario} | `{r.path}` | {len(summaries[label])} | {drawn} |")
    lines += [
        "",
        f"The curves are drawn from at most {MAX_PLOT_RUNS:,} runs per folder (the first "
        "replicates of every sweep point).",
        f"Mechanisms compared: {', '.join(mechanisms)}.",
    ]
    for label, names in dropped.items():
        lines.append(f"Dropped from {label} (not in every scenario): {', '.join(names)}.")
    lines += [
        "",
        "Method: each metric is averaged over a scenario's runs (independent replicates; "
        "runs of all sweep points pooled) with a Student-t 95 % interval for the mean; "
        "runs where a metric is undefined (e.g. 50 % never reached) are left out and counted "
        "in `missing`. The difference from the first scenario "
        f"({labels[0]}) is the difference of means with a Welch t 95 % interval "
        "(unequal variances, Welch-Satterthwaite degrees of freedom).",
        "",
        f"| metric | scenario | n | missing | mean [95 % CI] | difference from {labels[0]} "
        "[95 % CI] |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    order = {m: i for i, m in enumerate(dict.fromkeys(table["metric"]))}
    rows = table.assign(_m=table["metric"].map(order)).sort_values("_m", kind="stable")
    for _, row in rows.iterrows():
        mean = f"{_fmt(row['mean'])} [{_fmt(row['lo'])}, {_fmt(row['hi'])}]"
        if row["scenario"] == labels[0]:
            diff = "(reference)"
        else:
            diff = f"{_fmt(row['diff'])} [{_fmt(row['diff_lo'])}, {_fmt(row['diff_hi'])}]"
        lines.append(
            f"| {row['metric']} | {row['scenario']} | {row['n']} | {row['n_missing']} | "
            f"{mean} | {diff} |"
        )
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def compare_results(
    dirs: Sequence[Path],
    labels: Sequence[str] | None,
    out_dir: Path,
    formats: Sequence[str] = ("png",),
) -> dict[str, Any]:
    """Overlay several scenarios' spillover curves and tabulate their summary metrics.

    Writes into ``out_dir``: ``spillover_comparison.<fmt>`` (curves beyond the sponsors'
    dyads, one panel per mechanism, each scenario's median with 50 % / 90 % bands),
    ``spillover_<mechanism>.<fmt>`` (all units in force and those beyond sponsor dyads, with
    the observed timeline of the first scenario when present), ``comparison.csv`` (the
    ``analysis.compare_metrics`` table) and ``comparison.md`` (the same, readable, with the
    method).

    Only mechanisms present in every scenario are compared; the others are listed as dropped
    (in the returned dict, the markdown and the log).

    Args:
        dirs: results folders; the first is the reference for differences.
        labels: one label per folder, or ``None`` for the scenario names.
        out_dir: output folder (created).
        formats: figure formats.

    Returns:
        ``{"figures": [...], "csv": Path, "markdown": Path, "labels": [...],
        "mechanisms": [...], "dropped_mechanisms": {label: [...]}, "table": DataFrame}``.

    Raises:
        ValueError: fewer than two folders, an unknown format, wrong number of labels, time
            windows that differ, a mechanism with different kinds, no mechanism in common,
            or a sweep folder whose points change the world.
    """
    if len(dirs) < 2:
        raise ValueError(f"compare needs at least two results folders, got {len(dirs)}")
    _check_formats(formats)
    results = [read_results(Path(d)) for d in dirs]
    names = _labels(results, labels)
    _check_windows(results, names)
    _check_one_world(results, names)
    mechanisms, dropped = _common_mechanisms(results, names)
    for label, gone in dropped.items():
        log.warning("comparing %s only; dropped from %s: %s", mechanisms, label, gone)
    worlds = [_restrict(r.world, mechanisms) for r in results]
    curves = {
        label: analysis.spillover_curves(r.events, w, r.runs)
        for label, r, w in zip(names, results, worlds, strict=True)
    }
    summaries = _summaries(results, names, worlds, dropped)
    table = analysis.compare_metrics(summaries)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reference = worlds[0]
    figures: list[Path] = []
    fig = plots.plot_comparison(
        curves,
        reference,
        "beyond_sponsor",
        mechanisms,
        title="Spillover beyond the sponsors' dyads: " + " vs ".join(names),
    )
    figures += save_figure(fig, out / "spillover_comparison", formats)
    for mech in mechanisms:
        fig = Figure(figsize=(11.0, 4.2), layout="constrained")
        left, right = fig.subplots(1, 2, sharey=True)
        plots.plot_comparison(curves, reference, "total", [mech], axes=[left])
        plots.plot_comparison(curves, reference, "beyond_sponsor", [mech], axes=[right])
        fig.suptitle(f"{plots._label(reference, mech)}: " + " vs ".join(names))
        figures += save_figure(fig, out / f"spillover_{_slug(mech)}", formats)

    csv_path = out / "comparison.csv"
    tmp = csv_path.with_name(f".{csv_path.name}.{os.getpid()}.tmp")
    try:
        table.to_csv(tmp, index=False)
        os.replace(tmp, csv_path)
    finally:
        tmp.unlink(missing_ok=True)
    md_path = _write_text(
        out / "comparison.md", _markdown(table, results, names, mechanisms, dropped, summaries)
    )
    return {
        "figures": figures,
        "csv": csv_path,
        "markdown": md_path,
        "labels": names,
        "mechanisms": mechanisms,
        "dropped_mechanisms": dropped,
        "table": table,
    }
