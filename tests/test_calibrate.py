"""Calibration: the exact likelihood by hand, parameter recovery, ABC, the command and its
errors (``diffusion_sim.calibrate``, ``diffusion_sim.abc_fit``, ``diffusion-sim calibrate``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from diffusion_sim.calibrate import (
    Likelihood,
    Model,
    Observation,
    fit_mle,
    parse_date,
    read_observed,
)
from diffusion_sim.cli import app
from diffusion_sim.config import Scenario
from diffusion_sim.kernel import Kernel
from diffusion_sim.likelihood import history_from_records, log_likelihood
from diffusion_sim.loader import load_scenario
from diffusion_sim.seeds import run_seed, world_seed
from diffusion_sim.world import build_world

RECOVERY_PATHS = [
    "mechanisms.control.intercept",
    "diffusion.channels.emulation.weight",
    "diffusion.covariates.openness",
]
RECOVERY_TRUTH = np.array([-5.0, 2.0, 1.0])


def recovery_raw(n: int = 200, steps: int = 40, seed: int = 1) -> dict[str, Any]:
    """A generated world: one unilateral mechanism with intercept, emulation on an
    Erdos-Renyi layer (mean degree about 6) and openness."""
    return {
        "name": "recovery",
        "time": {"start": 2000, "steps": steps},
        "mechanisms": [{"id": "control", "kind": "unilateral", "intercept": -5.0}],
        "generate": {
            "n": n,
            "human_rights": 0.5,
            "openness": {"distribution": "uniform", "low": 0.0, "high": 1.0},
        },
        "networks": [{"id": "ties", "generator": "erdos_renyi", "p": 0.03}],
        "diffusion": {
            "link": "logit",
            "channels": {"emulation": {"weight": 2.0, "layer": "ties"}},
            "covariates": {"openness": 1.0},
        },
        "runs": {"replicates": 10, "seed": seed},
    }


def simulate_records(scenario: Scenario, replicate: int, root: int = 99) -> list[dict]:
    """One simulated history as observed records (the endogenous adoptions)."""
    world = build_world(scenario, world_seed(scenario.runs.seed))
    ev = Kernel(world, [run_seed(root, 0, replicate)]).run().events
    rows = []
    for i, j, step, exo in zip(
        ev["state"], ev["partner"], ev["step"], ev["exogenous"], strict=True
    ):
        if exo:
            continue
        m = world.mechanisms[0]
        rows.append(
            {
                "mechanism": m.id,
                "state": world.ids[i],
                "partner": world.ids[j] if j >= 0 else None,
                "date": world.start + int(step),
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["state", "mechanism", "partner", "date"])
        for r in rows:
            w.writerow([r["state"], r["mechanism"], r["partner"] or "", r["date"]])
    return path


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --------------------------------------------------------------------------- the likelihood


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_three_state_log_likelihood_matches_hand_computation():
    """log_likelihood equals the logit event-history likelihood computed by hand."""
    raw = {
        "name": "three",
        "time": {"start": 2000, "steps": 3},
        "mechanisms": [{"id": "visa", "kind": "unilateral", "intercept": -2.0}],
        "states": [
            {"id": "A", "human_rights": 0.5, "openness": 0.9},
            {"id": "B", "human_rights": 0.5, "openness": 0.5},
            {"id": "C", "human_rights": 0.5, "openness": 0.2},
        ],
        "networks": [{"id": "ties", "edges": [["A", "B", 1.0], ["B", "C", 1.0]]}],
        "diffusion": {
            "link": "logit",
            "channels": {"emulation": {"weight": 1.5, "layer": "ties"}},
            "covariates": {"openness": 0.8},
        },
    }
    world = build_world(Scenario.model_validate(raw), world_seed(0))
    records = [
        {"mechanism": "visa", "state": "A", "partner": None, "date": 2000.0},
        {"mechanism": "visa", "state": "B", "partner": None, "date": 2001.5},
    ]
    history, steps = history_from_records(world, records)

    def p(emulation: float, openness: float) -> float:
        return _logistic(-2.0 + 1.5 * emulation + 0.8 * openness)

    # Step 0 (2000): nobody has adopted, E = 0 for all; A adopts, B and C do not.
    # Step 1 (2001): A is out of the risk set; B's neighbours A (adopted) and C: E_B = 1/2;
    #   C's only neighbour B has not adopted: E_C = 0. B adopts, C does not.
    # Step 2 (2002): C's only neighbour B has adopted: E_C = 1. C does not adopt.
    hand = (
        math.log(p(0, 0.9))
        + math.log(1 - p(0, 0.5))
        + math.log(1 - p(0, 0.2))
        + math.log(p(0.5, 0.5))
        + math.log(1 - p(0, 0.2))
        + math.log(1 - p(1, 0.2))
    )
    assert steps == 3
    assert log_likelihood(world, history, steps) == pytest.approx(hand, rel=1e-12)


def test_likelihood_is_higher_at_the_true_parameters_than_at_distorted_ones():
    """A long simulated history is more likely under its true parameters than under any of
    them moved by +-1 (one at a time) or all moved together."""
    scenario = Scenario.model_validate(recovery_raw())
    records = simulate_records(scenario, replicate=0)
    lik = Likelihood(Model(scenario, RECOVERY_PATHS), Observation(records, True, "sim"), None)
    at_truth = lik(RECOVERY_TRUTH)
    for i in range(len(RECOVERY_TRUTH)):
        for delta in (-1.0, 1.0):
            theta = RECOVERY_TRUTH.copy()
            theta[i] += delta
            assert lik(theta) < at_truth
    assert lik(RECOVERY_TRUTH + np.array([1.0, -1.0, -1.0])) < at_truth


def test_parameter_recovery_intervals_cover_the_truth_at_about_95_percent():
    """Over 10 simulated histories each true value lies in its 95 % Wald interval at least
    8 times, and the estimates centre on the truth.

    If the intervals have their nominal 95 % coverage, the count of covering intervals per
    parameter is Binomial(10, 0.95): P(count <= 7) = 1.2 %, so ">= 8 of 10" fails for a
    calibrated interval rarely, while an interval with coverage 70 % would pass it only
    38 % of the time. (50 further histories of this design, about 110 adoptions each,
    gave coverage 0.92, 0.94 and 0.96.)
    """
    scenario = Scenario.model_validate(recovery_raw())
    covered = np.zeros(3, dtype=int)
    estimates = []
    for replicate in range(10):
        records = simulate_records(scenario, replicate)
        result = fit_mle(scenario, Observation(records, True, "sim"), RECOVERY_PATHS)
        assert result.details["converged"]
        lo = np.array([e.ci_low for e in result.estimates])
        hi = np.array([e.ci_high for e in result.estimates])
        assert np.all(np.isfinite(lo)) and np.all(hi > lo)
        covered += (lo <= RECOVERY_TRUTH) & (hi >= RECOVERY_TRUTH)
        estimates.append(result.theta)
    assert covered.min() >= 8, covered
    mean = np.mean(estimates, axis=0)
    sd = np.std(estimates, axis=0, ddof=1)
    # The mean of 10 estimates lies within 3 standard errors of the mean of the truth.
    assert np.all(np.abs(mean - RECOVERY_TRUTH) < 3 * sd / math.sqrt(10) + 0.05), (mean, sd)


def test_wald_and_profile_intervals_agree_for_a_well_identified_intercept():
    """With many events the likelihood is nearly quadratic: the profile interval of the
    intercept matches the Wald interval to within a tenth of its width."""
    scenario = Scenario.model_validate(recovery_raw())
    records = simulate_records(scenario, 0)
    obs = Observation(records, True, "sim")
    paths = ["mechanisms.control.intercept"]
    wald = fit_mle(scenario, obs, paths).estimates[0]
    prof = fit_mle(scenario, obs, paths, intervals="profile").estimates[0]
    width = wald.ci_high - wald.ci_low
    assert abs(prof.ci_low - wald.ci_low) < 0.1 * width
    assert abs(prof.ci_high - wald.ci_high) < 0.1 * width


def test_parse_date_reads_years_and_iso_dates_as_fractional_years():
    """A year is the year; an ISO date adds the elapsed share of its year (1 Jan = 0)."""
    assert parse_date("2008") == 2008.0
    assert parse_date("2008-01-01") == 2008.0
    assert parse_date("2010-07-02") == pytest.approx(2010 + 182 / 365)
    with pytest.raises(ValueError):
        parse_date("June 2010")


# --------------------------------------------------------------------------- ABC


def abc_raw() -> dict[str, Any]:
    """A small world with a strong intercept signal for a quick ABC run."""
    raw = recovery_raw(n=80, steps=15, seed=3)
    raw["mechanisms"][0]["intercept"] = -3.0
    raw["diffusion"]["channels"]["emulation"]["weight"] = 0.5
    return raw


def test_abc_posterior_concentrates_near_the_truth_and_reports_its_width(tmp_path):
    """ABC on a complete simulated timeline puts the intercept near its true value with a
    posterior much narrower than the prior, and says it ran ABC."""
    scenario_path = write_yaml(tmp_path / "abc.yaml", abc_raw())
    records = simulate_records(load_scenario(scenario_path), replicate=1)
    observed = write_csv(tmp_path / "obs.csv", records)
    out = tmp_path / "fit"
    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            str(scenario_path),
            "--observed",
            str(observed),
            "--method",
            "abc",
            "--params",
            "mechanisms.control.intercept,diffusion.covariates.openness",
            "--range",
            "mechanisms.control.intercept=-6:0",
            "--draws",
            "150",
            "--abc-replicates",
            "4",
            "--accept",
            "0.05",
            "--replicates",
            "40",
            "--out",
            str(out),
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "calibration.json").read_text())
    assert doc["method"] == "abc"
    assert "method: abc" in res.output
    icpt = doc["parameters"]["mechanisms.control.intercept"]
    assert abs(icpt["estimate"] - (-3.0)) < 0.6
    assert doc["abc"]["sd_ratio"]["mechanisms.control.intercept"] < 0.5
    assert icpt["ci_low"] < -3.0 < icpt["ci_high"]
    assert doc["log_likelihood"] is None


def test_partial_observed_list_defaults_to_abc_and_refuses_mle(tmp_path):
    """Without --observed the scenario's observed: list is used with ABC; asking for the
    exact likelihood on it is an error (exit 2) explaining why."""
    raw = {
        "name": "partial",
        "time": {"start": 2000, "steps": 10},
        "mechanisms": [{"id": "visa", "kind": "unilateral", "intercept": -2.0}],
        "generate": {"n": 30, "human_rights": 0.5, "openness": 0.5},
        "networks": [{"id": "ties", "generator": "erdos_renyi", "p": 0.1}],
        "diffusion": {"channels": {"emulation": {"weight": 1.0, "layer": "ties"}}},
        "observed": [
            {"mechanism": "visa", "state": "S0003", "date": 2002},
            {"mechanism": "visa", "state": "S0007", "date": "2004-06-01"},
        ],
    }
    path = write_yaml(tmp_path / "partial.yaml", raw)
    common = [
        "--params",
        "mechanisms.visa.intercept,diffusion.channels.emulation.weight",
        "--draws",
        "30",
        "--abc-replicates",
        "2",
        "--replicates",
        "20",
        "--workers",
        "1",
    ]
    res = CliRunner().invoke(app, ["calibrate", str(path), "--out", str(tmp_path / "a"), *common])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "a" / "calibration.json").read_text())
    assert doc["method"] == "abc" and doc["abc"]["observed_partial"] is True
    assert doc["n_events"] == 2
    assert (tmp_path / "a" / "calibration_fit.png").stat().st_size > 0
    res = CliRunner().invoke(
        app, ["calibrate", str(path), "--method", "mle", "--out", str(tmp_path / "b"), *common]
    )
    assert res.exit_code == 2
    assert "covers only some units" in res.output


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def small_case(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("calibrate")
    raw = recovery_raw(n=120, steps=20, seed=4)
    path = write_yaml(tmp / "small.yaml", raw)
    records = simulate_records(load_scenario(path), replicate=2)
    return path, write_csv(tmp / "observed.csv", records), records


def test_calibrate_command_writes_json_yaml_and_figure(small_case, tmp_path):
    """calibrate writes calibration.json (estimate, se, interval per parameter; log L, AIC,
    events, method) and a calibrated.yaml that loads and holds the estimates."""
    scenario, observed, records = small_case
    out = tmp_path / "fit"
    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            str(scenario),
            "--observed",
            str(observed),
            "--params",
            "mechanisms.control.intercept,diffusion.channels.emulation.weight",
            "--out",
            str(out),
            "--replicates",
            "50",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "calibration.json").read_text())
    assert doc["method"] == "mle" and doc["intervals"].startswith("wald")
    assert doc["n_events"] == len(records)
    assert doc["aic"] == pytest.approx(2 * 2 - 2 * doc["log_likelihood"])
    for p in ("mechanisms.control.intercept", "diffusion.channels.emulation.weight"):
        e = doc["parameters"][p]
        assert e["ci_low"] < e["estimate"] < e["ci_high"]
        assert e["se"] > 0
        assert e["ci_high"] - e["ci_low"] == pytest.approx(2 * 1.959964 * e["se"], rel=1e-5)
    fitted = load_scenario(out / "calibrated.yaml")
    assert fitted.mechanisms[0].intercept == pytest.approx(
        doc["parameters"]["mechanisms.control.intercept"]["estimate"]
    )
    assert fitted.diffusion.channels["emulation"].weight == pytest.approx(
        doc["parameters"]["diffusion.channels.emulation.weight"]["estimate"]
    )
    assert (out / "calibration_fit.png").stat().st_size > 0


def test_until_fits_only_the_earlier_history(small_case, tmp_path):
    """--until keeps only the events before the date and says so in the JSON."""
    scenario, observed, records = small_case
    out = tmp_path / "early"
    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            str(scenario),
            "--observed",
            str(observed),
            "--params",
            "mechanisms.control.intercept",
            "--until",
            "2012",
            "--out",
            str(out),
            "--replicates",
            "20",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "calibration.json").read_text())
    assert doc["steps_fitted"] == 12 and doc["until"] == 2012
    assert doc["n_events"] == sum(r["date"] < 2012 for r in records)


def _bad_observed(
    tmp: Path, rows: list[list[Any]], header=("state", "mechanism", "partner", "date")
):
    path = tmp / "bad.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_path", "did you mean"),
        ("structural_path", "not a parameter calibrate can fit"),
        ("unknown_state", "bad.csv:3: state: unknown state 'XYZ'"),
        ("outside_window", "bad.csv:2: date: 1990.0 is outside the window"),
        ("bad_date", "bad.csv:2: date: 'soon' is not a year or an ISO date"),
        ("missing_column", "bad.csv:1: <header>: missing column(s) partner"),
        ("bad_until", "--until 2050 is outside the window"),
        ("bad_range", "--range"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_status_2(small_case, tmp_path, case, expected):
    """Unknown or unfit parameter paths and bad observed rows give a located message and
    exit status 2, never a traceback."""
    scenario, observed, _ = small_case
    params = "mechanisms.control.intercept"
    extra: list[str] = []
    obs = observed
    if case == "unknown_path":
        params = "mechanisms.control.intercpt"
    elif case == "structural_path":
        params = "networks.ties.p"
    elif case == "unknown_state":
        obs = _bad_observed(
            tmp_path, [["S0001", "control", "", 2001], ["XYZ", "control", "", 2002]]
        )
    elif case == "outside_window":
        obs = _bad_observed(tmp_path, [["S0001", "control", "", 1990]])
    elif case == "bad_date":
        obs = _bad_observed(tmp_path, [["S0001", "control", "", "soon"]])
    elif case == "missing_column":
        obs = _bad_observed(tmp_path, [["S0001", "control", 2001]], ("state", "mechanism", "date"))
    elif case == "bad_until":
        extra = ["--until", "2050"]
    elif case == "bad_range":
        extra = ["--range", "mechanisms.control.intercept=3"]
    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            str(scenario),
            "--observed",
            str(obs),
            "--params",
            params,
            "--out",
            str(tmp_path / "out"),
            *extra,
        ],
    )
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out" / "calibration.json").exists()


def test_zero_probability_history_is_a_clear_error(tmp_path):
    """With the linear link and eta <= 0 an observed adoption has probability zero: exit 2
    with a message naming the adoption."""
    raw = recovery_raw(n=20, steps=5)
    raw["diffusion"] = {"link": "linear"}
    raw["mechanisms"][0]["intercept"] = -1.0
    path = write_yaml(tmp_path / "linear.yaml", raw)
    obs = _bad_observed(tmp_path, [["S0003", "control", "", 2001]])
    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            str(path),
            "--observed",
            str(obs),
            "--params",
            "mechanisms.control.intercept",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 2, res.output
    assert "probability zero" in res.output and "S0003" in res.output


def test_read_observed_reports_every_bad_row(tmp_path):
    """All bad rows are reported at once, each with its line."""
    path = _bad_observed(tmp_path, [["", "control", "", 2001], ["S0001", "control", "", "x"]])
    with pytest.raises(ValueError) as err:
        read_observed(path)
    assert "bad.csv:2: state: empty cell" in str(err.value)
    assert "bad.csv:3: date:" in str(err.value)


@pytest.mark.parametrize("shipped", ["eu_russia_readmission", "minimal"])
def test_fast_world_equals_a_rebuilt_world(shipped):
    """The world of new coefficient values (mechanism specs and bilateral terms swapped into
    a world built once) equals the world built from the overridden scenario."""
    scenario = load_scenario(Path(__file__).parents[1] / "scenarios" / f"{shipped}.yaml")
    paths = [
        "mechanisms.readmission.intercept",
        "diffusion.bilateral.chain",
        "diffusion.covariates.openness",
        "mechanisms.visa_regime.effectiveness",
    ]
    model = Model(scenario, paths)
    theta = model.start + np.array([0.7, -1.1, 0.3, 0.1])
    fast = model.world_at(theta)
    slow = build_world(model.scenario_at(theta), world_seed(scenario.runs.seed))
    assert fast.mechanisms == slow.mechanisms
    assert fast.bilateral_terms == slow.bilateral_terms
    assert fast.link == slow.link
    seeds = [run_seed(1, 0, k) for k in range(3)]
    a, b = Kernel(fast, seeds).run().events, Kernel(slow, seeds).run().events
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
