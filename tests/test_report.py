"""plot_results and compare_results end to end on hand-made results folders."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import pandas as pd
import pytest
from fakes import (
    runs_frame,
    synthetic_events,
    synthetic_world,
    write_results,
)

from diffusion_sim.compare import compare_results
from diffusion_sim.report import KINDS, _check_network_run, plot_results, read_results

SWEEP = "diffusion.channels.emulation.weight"


def _folder(root: Path, name: str = "base", sweep: bool = False, steps: int = 12, **kw) -> Path:
    world = synthetic_world(n_per_region=1, steps=steps, sweep=[SWEEP] if sweep else [])
    runs = runs_frame(
        6, replicates=2 if sweep else 6, params={SWEEP: [0.5, 1.0, 2.0]} if sweep else None
    )
    strength = runs[f"param:{SWEEP}"].to_numpy() if sweep else None
    events = synthetic_events(world, 6, seed=len(name), strength=strength)
    return write_results(root / name, world, events, runs, scenario=name, **kw)


def test_plot_results_writes_every_applicable_kind(tmp_path):
    """All kinds but sweep are drawn from a folder whose events are part files; no temp left."""
    folder = _folder(tmp_path, parts=3)
    written = plot_results(folder)
    names = [p.name for p in written]
    assert names == [f"{k}.png" for k in KINDS if k != "sweep"]
    assert all(p.parent == folder / "plots" and p.stat().st_size > 1000 for p in written)
    assert not [p for p in (folder / "plots").iterdir() if p.name.startswith(".")]


def test_plot_results_kinds_and_formats(tmp_path):
    """Chosen kinds in several formats; sweep without swept parameters is skipped."""
    folder = _folder(tmp_path)
    written = plot_results(folder, kinds=["buildup", "sweep"], formats=("png", "svg"))
    assert [p.name for p in written] == ["buildup.png", "buildup.svg"]


def test_plot_results_sweep_figures(tmp_path):
    """With a swept parameter, a response figure per parameter is written."""
    folder = _folder(tmp_path, sweep=True)
    written = plot_results(folder, kinds=["sweep"])
    assert [p.name for p in written] == [f"sweep_{SWEEP}.png"]


def test_unknown_kind_lists_valid_kinds(tmp_path):
    """An unknown kind raises ValueError naming the valid kinds."""
    folder = _folder(tmp_path)
    with pytest.raises(ValueError, match="valid kinds: spillover, regions"):
        plot_results(folder, kinds=["spilover"])


def test_unknown_format_is_rejected(tmp_path):
    """An unknown file format raises ValueError before anything is drawn."""
    folder = _folder(tmp_path)
    with pytest.raises(ValueError, match="unknown figure format"):
        plot_results(folder, formats=["gif2"])
    assert not (folder / "plots").exists()


def test_read_results_drops_failed_runs(tmp_path):
    """Events of runs whose status is not ok are left out."""
    folder = _folder(tmp_path)
    runs = pd.read_parquet(folder / "runs.parquet")
    runs.loc[runs["run_id"] == 1, "status"] = "failed"
    runs.to_parquet(folder / "runs.parquet", index=False)
    assert 1 not in set(read_results(folder).events["run_id"])


def test_missing_world_is_a_clear_error(tmp_path):
    """A folder without world.json raises FileNotFoundError naming the file."""
    folder = _folder(tmp_path)
    (folder / "world.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"world\.json"):
        plot_results(folder)


def test_compare_results_end_to_end(tmp_path):
    """Figures, comparison.csv and comparison.md with means, intervals and differences."""
    a, b = _folder(tmp_path, "base"), _folder(tmp_path, "strong")
    out = compare_results([a, b], None, tmp_path / "cmp")
    assert [p.name for p in out["figures"]] == [
        "spillover_comparison.png",
        "spillover_readmission.png",
        "spillover_visa_regime.png",
    ]
    table = pd.read_csv(out["csv"])
    assert set(table["scenario"]) == {"base", "strong"}
    assert {"mean", "lo", "hi", "diff", "diff_lo", "diff_hi"} <= set(table.columns)
    assert table[table["scenario"] == "base"]["diff"].isna().all()
    text = out["markdown"].read_text()
    assert "Welch" in text and "difference from base" in text
    assert out["dropped_mechanisms"] == {}


def test_compare_drops_mechanisms_not_in_every_scenario(tmp_path):
    """A mechanism missing from one scenario is dropped, and the drop is reported."""
    a = _folder(tmp_path, "base")
    b = _folder(tmp_path, "other")
    world = read_results(b).world
    world["mechanisms"] = world["mechanisms"][:1]
    (b / "world.json").write_text(json.dumps(world))
    out = compare_results([a, b], ["A", "B"], tmp_path / "cmp")
    assert out["mechanisms"] == ["readmission"]
    assert out["dropped_mechanisms"] == {"A": ["visa_regime"]}
    assert "Dropped from A" in out["markdown"].read_text()


def test_compare_mismatched_windows_raise(tmp_path):
    """Different time windows raise ValueError describing both windows."""
    a = _folder(tmp_path, "base", steps=12)
    b = _folder(tmp_path, "longer", steps=14)
    with pytest.raises(ValueError, match=r"time windows differ.*base: 2000 \+ 12 steps.*14"):
        compare_results([a, b], None, tmp_path / "cmp")


def test_compare_argument_errors(tmp_path):
    """One folder, or a wrong number of labels, is a clear ValueError."""
    a, b = _folder(tmp_path, "base"), _folder(tmp_path, "alt")
    with pytest.raises(ValueError, match="at least two"):
        compare_results([a], None, tmp_path / "cmp")
    with pytest.raises(ValueError, match="3 labels for 2"):
        compare_results([a, b], ["x", "y", "z"], tmp_path / "cmp")


def test_read_results_draws_events_from_a_bounded_number_of_runs(tmp_path):
    """Large batches are plotted from the first replicates of each point: with max_runs=4 and
    3 sweep points of 2 replicates, one replicate per point is read (3 runs), never more."""
    folder = _folder(tmp_path, sweep=True, parts=3)
    everything = read_results(folder)
    assert everything.events["run_id"].nunique() == 6
    bounded = read_results(folder, max_runs=4)
    runs = sorted(bounded.events["run_id"].unique())
    assert len(runs) == 3
    chosen = bounded.runs.set_index("run_id").loc[runs]
    assert sorted(chosen["point"]) == [0, 1, 2] and set(chosen["replicate"]) == {0}


def test_format_outside_the_documented_ones_is_rejected(tmp_path):
    """jpg (which matplotlib could write) is refused: only png, svg and pdf are documented."""
    folder = _folder(tmp_path)
    with pytest.raises(ValueError, match=r"'jpg'.*choose from png, svg, pdf"):
        plot_results(folder, kinds=["buildup"], formats=["jpg"])
    assert not (folder / "plots").exists()


def test_network_run_that_does_not_exist_lists_the_run_ids(tmp_path):
    """A run id beyond the batch is a ValueError giving the range of run ids."""
    folder = _folder(tmp_path)
    with pytest.raises(ValueError, match=r"run 9999 is not in .*run ids are 0-5"):
        plot_results(folder, kinds=["network"], network_run=9999)


def test_network_run_that_failed_is_named(tmp_path):
    """A failed run is refused with its status and error, and the ok runs are listed."""
    folder = _folder(tmp_path)
    runs = pd.read_parquet(folder / "runs.parquet")
    runs.loc[runs["run_id"] == 2, ["status", "error"]] = ["failed", "boom"]
    runs.to_parquet(folder / "runs.parquet", index=False)
    with pytest.raises(
        ValueError, match=r"run 2 is not an ok run \(status 'failed': boom\).*0-1, 3-5"
    ):
        plot_results(folder, kinds=["network"], network_run=2)


def test_network_run_whose_events_were_not_read(tmp_path):
    """An ok run left out by the bound on runs read is refused, naming the runs drawn."""
    folder = _folder(tmp_path, sweep=True)
    bounded = read_results(folder, max_runs=4)  # runs 0, 2 and 4: one replicate per point
    with pytest.raises(ValueError, match=r"run 1 is not among the 3 runs.*drawn: 0, 2, 4"):
        _check_network_run(bounded, 1)
    _check_network_run(bounded, 2)


def test_network_dates_outside_the_window_are_rejected(tmp_path):
    """Dates before the start or after the last step give the simulated window; the last
    step's year (any date inside it) is accepted."""
    folder = _folder(tmp_path, steps=12)
    with pytest.raises(ValueError, match=r"1990, 2030 outside the simulated window 2000-2011"):
        plot_results(folder, kinds=["network"], network_dates=[1990, 2005, 2030])
    written = plot_results(folder, kinds=["network"], network_dates=[2000, 2011.5], network_run=0)
    assert [p.name for p in written] == ["network.png"]
