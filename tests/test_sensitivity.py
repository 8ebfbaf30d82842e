"""Sensitivity analysis: designs run through the batch engine, an inert parameter ranks last,
bad input is a clear error (``diffusion_sim.sensitivity``, ``diffusion-sim sensitivity``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from diffusion_sim import sensitivity as S
from diffusion_sim.cli import app
from diffusion_sim.loader import load_scenario

INERT = "diffusion.covariates.pressure"


def toy_raw() -> dict[str, Any]:
    """A unilateral mechanism whose spread depends on its intercept and emulation weight; the
    pressure covariate multiplies a pressure of 0 everywhere (flows off), so it does nothing."""
    return {
        "name": "sens_toy",
        "time": {"start": 2000, "steps": 15},
        "mechanisms": [{"id": "control", "kind": "unilateral", "intercept": -4.0}],
        "generate": {
            "n": 80,
            "human_rights": 0.5,
            "openness": {"distribution": "uniform", "low": 0.0, "high": 1.0},
        },
        "networks": [{"id": "ties", "generator": "erdos_renyi", "p": 0.06}],
        "diffusion": {
            "link": "logit",
            "channels": {"emulation": {"weight": 2.0, "layer": "ties"}},
            "covariates": {"openness": 1.0, "pressure": 0.0},
        },
        "runs": {"replicates": 30, "seed": 5},
        "sweep": {
            "method": "lhs",
            "parameters": {
                "mechanisms.control.intercept": {"low": -5.0, "high": -2.5},
                "diffusion.channels.emulation.weight": {"low": 0.0, "high": 3.0},
                INERT: {"low": -2.0, "high": 2.0},
            },
        },
    }


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy_raw(), sort_keys=False))
    return path


def _invoke(*args: str):
    return CliRunner().invoke(app, ["sensitivity", *args])


@pytest.mark.parametrize(("method", "samples"), [("morris", "6"), ("sobol", "16")])
def test_inert_parameter_ranks_last_and_results_are_a_normal_batch(toy, tmp_path, method, samples):
    """A parameter that cannot change anything ranks last (Morris mu*, Sobol ST); indices
    come with intervals in sensitivity.csv, the chart in plots/, and the runs in a normal
    results folder (manifest, runs.parquet with one point per design row)."""
    out = tmp_path / "results"
    res = _invoke(
        str(toy),
        "--method",
        method,
        "--samples",
        samples,
        "--outcome",
        "control:final_share",
        "--outcome",
        "control:auc",
        "--out",
        str(out),
        "--workers",
        "1",
    )
    assert res.exit_code == 0, res.output
    (folder,) = (out / "sens_toy").iterdir()
    table = pd.read_csv(folder / "sensitivity.csv")
    primary = S.PRIMARY[method]
    for outcome in ("control:final_share", "control:auc"):
        main = table[(table["outcome"] == outcome) & (table["index"] == primary)]
        ranked = main.sort_values("rank")["parameter"].tolist()
        assert ranked[-1] == INERT, main
        assert ranked[0] == "mechanisms.control.intercept"
        assert (main["ci_low"] <= main["value"]).all() and (main["value"] <= main["ci_high"]).all()
    assert (folder / "plots" / "sensitivity.png").stat().st_size > 0
    manifest = json.loads((folder / "manifest.json").read_text())
    design = json.loads((folder / "sensitivity.json").read_text())
    assert manifest["status"] == "complete"
    runs = pd.read_parquet(folder / "runs.parquet")
    assert runs["point"].nunique() == design["points"] == len(manifest["points"])
    assert len(runs) == design["points"] * 30
    assert {f"param:{p}" for p in design["ranges"]} <= set(runs.columns)
    # The same command again finds the batch complete and gives the same indices.
    again = _invoke(
        str(toy),
        "--method",
        method,
        "--samples",
        samples,
        "--outcome",
        "control:final_share",
        "--outcome",
        "control:auc",
        "--out",
        str(out),
        "--workers",
        "1",
    )
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(pd.read_csv(folder / "sensitivity.csv"), table)


def test_ranges_come_from_the_command_before_the_sweep_block(toy):
    """--range overrides the sweep: range of the same path; --params selects parameters."""
    scenario = load_scenario(toy)
    ranges = S.parameter_ranges(
        scenario,
        ["mechanisms.control.intercept", INERT],
        {"mechanisms.control.intercept": (-4.0, -3.0)},
    )
    assert ranges == {"mechanisms.control.intercept": (-4.0, -3.0), INERT: (-2.0, 2.0)}


def test_outcome_means_average_successful_replicates_per_point():
    """A point's outcome is the mean over its ok replicates; failed runs are left out."""
    runs = pd.DataFrame(
        {
            "point": [0, 0, 0, 1, 1],
            "status": ["ok", "ok", "failed", "ok", "ok"],
            "m": [1.0, 3.0, np.nan, 5.0, 7.0],
        }
    )
    np.testing.assert_allclose(S.outcome_means(runs, "m", 2), [2.0, 6.0])
    with pytest.raises(S.SensitivityError, match="undefined at 1 of 3 points"):
        S.outcome_means(runs, "m", 3)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--params", "mechanisms.control.intercept,diffusion.covariates.openness"],
            "diffusion.covariates.openness: no range",
        ),
        (["--range", "mechanisms.control.intercpt=-5:-3"], "did you mean"),
        (["--range", "mechanisms.control.intercept=-60:-3"], "mechanisms.control.intercept"),
        (["--method", "fast"], "--method must be morris or sobol"),
        (["--range", "mechanisms.control.intercept=3"], "expected path=low:high"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_status_2(toy, tmp_path, args, expected):
    """Missing ranges, unknown paths, values the schema refuses and unknown methods are
    reported before anything runs, with exit status 2."""
    out = tmp_path / "results"
    res = _invoke(str(toy), "--outcome", "control:final_share", "--out", str(out), *args)
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "Traceback" not in res.output
    assert not out.exists()


def test_unknown_outcome_lists_the_metric_columns(toy, tmp_path):
    """An outcome that is not a runs.parquet column is an error naming the columns."""
    res = _invoke(
        str(toy),
        "--outcome",
        "control:final_shares",
        "--samples",
        "2",
        "--out",
        str(tmp_path / "results"),
        "--workers",
        "1",
        "--replicates",
        "2",
    )
    assert res.exit_code == 2, res.output
    assert "control:final_share," in res.output


def test_without_salib_the_command_says_which_extra_to_install(toy, tmp_path, monkeypatch):
    """SALib missing (no ``tuning`` extra): a one-line error naming the extra, exit 2."""
    monkeypatch.setitem(sys.modules, "SALib", None)  # makes ``import SALib`` fail
    out = tmp_path / "results"
    res = _invoke(str(toy), "--outcome", "control:final_share", "--out", str(out))
    assert res.exit_code == 2, res.output
    assert "pip install 'diffusion-sim[tuning]'" in res.output
    assert not out.exists()
