"""Sweeps that change the world between points, and summaries over every run: world.json
describes the base scenario, so curves are not pooled across such points, and tables use each
run's stored summary (computed with its own point's world)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd
import pytest
from batchutil import MINIMAL, batch_folder, cli, cli_process

from diffusion_sim import compare, report
from diffusion_sim.compare import compare_results
from diffusion_sim.runner import world_varying


@pytest.mark.parametrize(
    ("path", "varies"),
    [
        ("outputs.hr_threshold", True),
        ("generate.n", True),
        ("time.steps", True),
        ("states.RUS.human_rights", True),
        ("mechanisms.readmission.tcn_delay", True),
        ("mechanisms.readmission.intercept", False),
        ("diffusion.bilateral.chain", False),
        ("networks.trade.p", False),
        ("flows.deflection", False),
    ],
)
def test_world_varying_names_the_paths_that_change_world_json(path, varies):
    """Paths that change the states, the window, shocks, mechanism kinds or the threshold."""
    assert world_varying([path]) == ([path] if varies else [])


@pytest.fixture(scope="module")
def threshold_sweep(tmp_path_factory):
    """minimal.yaml swept over outputs.hr_threshold (0.1, 0.9), 4 replicates per point."""
    out = tmp_path_factory.mktemp("threshold")
    done = cli_process(
        "sweep", MINIMAL, "--grid", "outputs.hr_threshold=0.1,0.9", "--replicates", 4,
        "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return batch_folder(out), done


def test_threshold_sweep_draws_only_sweep_figures_and_says_why(threshold_sweep):
    """Curves would take the base threshold for every point: only sweep figures, and a note."""
    folder, done = threshold_sweep
    assert "the sweep changes the world (outputs.hr_threshold)" in done.stderr
    figures = sorted(p.name for p in (folder / "plots").glob("*.png"))
    assert figures and all(name.startswith("sweep") for name in figures), figures
    # each run's stored exposure uses its own point's threshold
    runs = pd.read_parquet(folder / "runs.parquet")
    low = runs[runs["param:outputs.hr_threshold"] == 0.1]["hr_exposed_share"].dropna()
    high = runs[runs["param:outputs.hr_threshold"] == 0.9]["hr_exposed_share"].dropna()
    assert len(low) and len(high) and low.mean() < high.mean()


def test_curve_figure_of_a_world_changing_sweep_is_refused(threshold_sweep):
    """`plot --kind hr_exposure` on such a folder: exit 2, the reason, no figure."""
    folder, _ = threshold_sweep
    result = cli("plot", folder, "--kind", "hr_exposure")
    assert result.exit_code == 2
    assert "changes the world" in result.output
    assert not list((folder / "plots").glob("hr_exposure*"))


def test_compare_refuses_a_world_changing_sweep(threshold_sweep, tmp_path):
    """compare pools a folder's runs into curves: a world-changing sweep is refused."""
    folder, _ = threshold_sweep
    with pytest.raises(ValueError, match="changes the world"):
        compare_results([folder, folder], ["a", "b"], tmp_path / "cmp")


def test_compare_tabulates_every_run_beyond_the_drawing_cap(tmp_path, monkeypatch):
    """With curves drawn from 5 runs per folder, the metrics table still has all 12 runs,
    and equals the means of runs.parquet."""
    folders = []
    for name, extra in (("base", []), ("strong", ["--set", "diffusion.bilateral.chain=6"])):
        done = cli_process(
            "run", MINIMAL, "--replicates", 12, "--no-plots", *extra, "--out", tmp_path / name
        )
        assert done.returncode == 0, done.stderr
        folders.append(batch_folder(tmp_path / name))
    monkeypatch.setattr(compare, "read_results", lambda d: report.read_results(d, max_runs=5))
    out = compare_results(folders, ["base", "strong"], tmp_path / "cmp")
    table = out["table"].set_index(["scenario", "metric"])
    for label, folder in zip(["base", "strong"], folders, strict=True):
        runs = pd.read_parquet(folder / "runs.parquet")
        row = table.loc[(label, "readmission:final_agreements")]
        assert row["n"] == 12
        assert row["mean"] == pytest.approx(runs["readmission:final_agreements"].mean())
    assert "| 12 | 5 |" in out["markdown"].read_text()


def test_summary_table_counts_the_runs_behind_each_metric(tmp_path):
    """Runs where a metric is undefined (nothing in force) are left out of its row, and the
    row says how many runs it has."""
    done = cli_process(
        "run", MINIMAL, "--replicates", 10, "--no-plots", "--out", tmp_path,
        "--set", "mechanisms.readmission.revocable=true",
        "--set", "mechanisms.readmission.revocation_rate=1.0",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {
        cells[0]: cells[1:]
        for line in done.stderr.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 5
    }
    runs = pd.read_parquet(batch_folder(tmp_path) / "runs.parquet")
    defined = int(runs["spillover_ratio"].notna().sum())
    assert defined < 10
    assert rows["spillover_ratio"][-1] == str(defined)
    assert rows["readmission:final_agreements"][-1] == "10"


def test_a_one_value_world_sweep_still_draws_only_sweep_figures(tmp_path):
    """One value is still not the base's world (threshold 0.9 against 0.4 in world.json): no
    curve figure (and one value has no sweep response to draw either)."""
    done = cli_process(
        "sweep", MINIMAL, "--grid", "outputs.hr_threshold=0.9", "--replicates", 4, "--out",
        tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the sweep changes the world (outputs.hr_threshold)" in done.stderr
    figures = [p.name for p in (batch_folder(tmp_path) / "plots").glob("*.png")]
    assert all(name.startswith("sweep") for name in figures), figures
