"""Analysis functions on hand-made tables with hand-computed answers (tests/fakes.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fakes import event, events_frame, runs_frame, tiny_events, tiny_world
from scipy import stats

from diffusion_sim import analysis as A


@pytest.fixture
def world() -> dict:
    return tiny_world()


@pytest.fixture
def events(world: dict) -> pd.DataFrame:
    return tiny_events(world)


def _curve(frame: pd.DataFrame, column: str, **where: object) -> list:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    return frame.loc[mask].sort_values("step")[column].tolist()


def test_bilateral_curve_counts_agreements_minus_revocations(world, events):
    """Agreements in force = cumulative adoptions minus revocations, whatever the orientation."""
    curves = A.adoption_curves(events, world)
    assert _curve(curves, "agreements", run_id=0, mechanism="readmission") == [0, 1, 2, 1, 1]
    assert _curve(curves, "adopters", run_id=0, mechanism="readmission") == [0, 2, 3, 2, 2]
    assert _curve(curves, "level", run_id=1, mechanism="readmission") == [0, 1, 1, 1, 1]


def test_unilateral_curve_is_share_of_states(world, events):
    """A unilateral mechanism's level is the share of the world's states holding it."""
    curves = A.adoption_curves(events, world)
    assert _curve(curves, "level", run_id=0, mechanism="visa") == pytest.approx(
        [0, 0, 1 / 3, 1 / 3, 1 / 3]
    )
    assert _curve(curves, "date", run_id=0, mechanism="visa") == [2000, 2001, 2002, 2003, 2004]


def test_runs_table_adds_empty_runs_and_drops_failed(world, events):
    """A run without events gets a zero curve; a failed run is left out."""
    runs = runs_frame(3)
    runs.loc[runs["run_id"] == 1, "status"] = "failed"
    curves = A.adoption_curves(events, world, runs)
    assert sorted(curves["run_id"].unique()) == [0, 2]
    assert _curve(curves, "agreements", run_id=2, mechanism="readmission") == [0] * 5


def test_spillover_counts_beyond_sponsor_dyads_and_ratio(world, events):
    """Beyond-sponsor counts exclude sponsor dyads; a revocation leaves the group it entered."""
    spill = A.spillover_curves(events, world)
    assert _curve(spill, "total", run_id=0, mechanism="readmission") == [0, 1, 2, 1, 1]
    # the revocation row claims sponsor_dyad=True; it must still cancel the non-sponsor RUS-KAZ
    assert _curve(spill, "beyond_sponsor", run_id=0, mechanism="readmission") == [0, 0, 1, 0, 0]
    ratio = _curve(spill, "ratio", run_id=0, mechanism="readmission")
    assert math.isnan(ratio[0]) and ratio[1:] == [0.0, 0.5, 0.0, 0.0]


def test_region_curves_count_an_agreement_once_per_region(world, events):
    """Regional agreements count those with at least one party in the region."""
    reg = A.curves_by_region(events, world)
    run0 = {"run_id": 0, "mechanism": "readmission"}
    assert _curve(reg, "agreements", region="Russia", **run0) == [0, 1, 2, 1, 1]
    assert _curve(reg, "agreements", region="Europe", **run0) == [0, 1, 1, 1, 1]
    assert _curve(reg, "adopters", region="Central Asia", **run0) == [0, 0, 1, 0, 0]
    assert _curve(reg, "share", region="Russia", run_id=0, mechanism="visa") == [0, 0, 1, 1, 1]


def test_depth_curves_use_adoption_depth_for_revocations(world, events):
    """The revoked RUS-KAZ agreement leaves depth 2 (its adoption's depth), not depth 7."""
    depth = A.curves_by_depth(events, world)
    run0 = {"run_id": 0, "mechanism": "readmission"}
    assert _curve(depth, "in_force", depth=1, **run0) == [0, 1, 1, 1, 1]
    assert _curve(depth, "in_force", depth=2, **run0) == [0, 0, 1, 0, 0]
    assert 7 not in set(depth["depth"])


def test_dominant_channel_ignores_intercept_and_labels_exogenous(world, events):
    """Dominant channel: largest non-intercept term; 'exogenous' for scheduled events."""
    labels = A.dominant_channel(events).tolist()
    assert labels[:3] == ["exogenous", "chain", "pressure"]
    assert labels[5] == "emulation"
    only_negative = events_frame(
        [
            event(
                world,
                run_id=0,
                step=0,
                mechanism="visa",
                state="KAZ",
                c_intercept=2.0,
                c_openness=-1.0,
            )
        ]
    )
    assert A.dominant_channel(only_negative).tolist() == ["none"]


def test_channel_curves_group_by_dominant_channel(world, events):
    """Curves by dominant channel put each unit under its adoption's dominant channel."""
    chan = A.curves_by_channel(events, world)
    run0 = {"run_id": 0, "mechanism": "readmission"}
    assert _curve(chan, "in_force", channel="chain", **run0) == [0, 0, 1, 0, 0]
    assert _curve(chan, "in_force", channel="exogenous", **run0) == [0, 1, 1, 1, 1]


def test_channel_decomposition_signed_shares(world, events):
    """Shares are term / sum of |terms| (negative kept), exogenous and intercept excluded."""
    dec = A.channel_decomposition(events, world)
    step2 = dec[(dec["run_id"] == 0) & (dec["mechanism"] == "readmission")].set_index("channel")
    assert step2.loc["chain", "share"] == pytest.approx(2 / 3.5)
    assert step2.loc["demand", "share"] == pytest.approx(1 / 3.5)
    assert step2.loc["openness", "share"] == pytest.approx(-0.5 / 3.5)
    assert step2["share"].abs().sum() == pytest.approx(1.0)
    assert set(dec["step"]) == {2, 4}  # the exogenous 2001 adoptions have no predictor
    with_intercept = A.channel_decomposition(events, world, include_intercept=True)
    row = with_intercept[(with_intercept["mechanism"] == "readmission")].set_index("channel")
    assert row.loc["intercept", "share"] == pytest.approx(-3 / 6.5)


def test_pooled_channel_shares_sum_contributions_over_runs(world):
    """Pooled shares add contributions over runs before normalising."""
    rows = [
        event(world, run_id=0, step=1, mechanism="visa", state="RUS", c_emulation=1.0),
        event(
            world, run_id=1, step=1, mechanism="visa", state="KAZ", c_emulation=1.0, c_pressure=2.0
        ),
    ]
    pooled = A.pooled_channel_shares(A.channel_decomposition(events_frame(rows), world))
    shares = pooled.set_index("channel")["share"]
    assert shares["emulation"] == pytest.approx(0.5)
    assert shares["pressure"] == pytest.approx(0.5)
    assert set(pooled["n_events"]) == {2}


def test_hr_exposure_counts_share_and_flow(world, events):
    """Exposed = partner human rights below the threshold; the flow follows the agreements."""
    hr = A.hr_exposure(events, world)
    run0 = {"run_id": 0, "mechanism": "readmission"}
    assert _curve(hr, "exposed", **run0) == [0, 1, 2, 1, 1]
    assert _curve(hr, "exposed_return_flow", **run0) == [0, 10, 14, 10, 10]
    assert _curve(hr, "exposed_share", **run0)[1:] == [1.0, 1.0, 1.0, 1.0]
    strict = A.hr_exposure(events, world, threshold=0.25)  # only KAZ (0.2) is below
    assert _curve(strict, "exposed", **run0) == [0, 0, 1, 0, 0]
    assert set(strict["mechanism"]) == {"readmission"}


def test_buildup_index_spearman_by_hand(world, events):
    """Spearman rho of openness (EU .6, RUS .4, KAZ .2) with controls held, ties averaged."""
    rho = _curve(A.buildup_index(events, world), "rho", run_id=0)
    assert math.isnan(rho[0])  # nobody holds anything: undefined
    assert rho[1] == pytest.approx(1.5 / math.sqrt(3))  # holdings 1, 1, 0
    assert rho[2] == pytest.approx(0.0)  # holdings 1, 2, 1
    assert rho[3] == pytest.approx(0.5)  # holdings 1, 2, 0
    check = stats.spearmanr([0.6, 0.4, 0.2], [1, 2, 0]).statistic
    assert rho[3] == pytest.approx(check)
    run1 = _curve(A.buildup_index(events, world), "rho", run_id=1)
    assert math.isnan(run1[4])  # everyone holds exactly one control


def test_buildup_index_sees_scheduled_openness_shocks(world, events):
    """A scheduled openness shock (world attribute_changes) enters the index from its step:
    KAZ opening to 0.9 at step 3 turns holdings 1, 2, 0 from rho 0.5 to rho -0.5."""
    shocked = dict(world)
    shocked["attribute_changes"] = [
        {"step": 3, "state": "KAZ", "attribute": "openness", "value": 0.9, "add": None}
    ]
    before = _curve(A.buildup_index(events, shocked), "rho", run_id=0)
    assert before[2] == pytest.approx(0.0)  # unchanged before the shock
    assert before[3] == pytest.approx(stats.spearmanr([0.6, 0.4, 0.9], [1, 2, 0]).statistic)
    path = A.openness_over_time(np.array([0.6, 0.4, 0.2]), ["EU", "RUS", "KAZ"], shocked, 5)
    assert path[2].tolist() == [0.2, 0.2, 0.2, 0.9, 0.9]


def test_observed_counterpart_counts_endogenous_conclusions_of_observed_actors(world, events):
    """The simulated counterpart of an observed RUS timeline counts RUS's endogenous
    agreements concluded (the exogenous EU27-RUS is left out, the 2003 revocation is not
    subtracted): run 0 has 0, 0, 1, 1, 1 and run 1 has none."""
    observed = dict(world)
    observed["observed"] = [
        {"mechanism": "readmission", "state": "RUS", "partner": "KAZ", "date": 2002.5}
    ]
    curves = A.observed_counterpart_curves(events, observed)
    assert set(curves["mechanism"]) == {"readmission"}
    assert set(curves["actors"]) == {"RUS"}
    assert _curve(curves, "count", run_id=0) == [0, 0, 1, 1, 1]
    assert _curve(curves, "count", run_id=1) == [0, 0, 0, 0, 0]
    assert A.observed_counterpart_curves(events, world).empty


def test_hr_exposure_counts_a_poorly_protecting_requester(world):
    """An agreement requested by a low-protection state (RUS 0.3) from a high one (EU27 0.9)
    is exposed: returns run both ways, so either party below the threshold counts."""
    rows = [
        event(
            world,
            run_id=0,
            step=1,
            mechanism="readmission",
            state="RUS",
            partner="EU27",
            state_human_rights=0.3,
            partner_human_rights=0.9,
            return_flow=5.0,
        )
    ]
    exposure = A.hr_exposure(events_frame(rows), world)
    assert _curve(exposure, "exposed", run_id=0) == [0, 1, 1, 1, 1]
    assert _curve(exposure, "exposed_return_flow", run_id=0)[-1] == pytest.approx(5.0)


def test_buildup_index_can_count_agreements(world, events):
    """With count='agreements' each agreement in force counts, not each mechanism."""
    rho = _curve(A.buildup_index(events, world, count="agreements"), "rho", run_id=0)
    # step 2: EU 1, RUS 3 (two agreements + visa), KAZ 1 -> same ranks as mechanisms: 0
    assert rho[2] == pytest.approx(0.0)


def test_summarise_runs_metrics_by_hand(world, events):
    """Final levels, time to 10 %/50 %, AUC, max depth, spillover ratio, exposed share."""
    summary = A.summarise_runs(events, world).set_index("run_id")
    assert list(summary.index) == [0, 1]
    assert summary.loc[0, "readmission:final_agreements"] == 1
    assert summary.loc[0, "readmission:t50"] == 2001.0
    assert summary.loc[0, "readmission:auc"] == pytest.approx(3.0)
    assert summary.loc[1, "readmission:auc"] == pytest.approx(8 / 3)
    assert summary.loc[0, "visa:t10"] == 2002.0
    assert summary.loc[1, "visa:t10"] == 2004.0
    assert math.isnan(summary.loc[0, "visa:t50"])
    assert summary.loc[0, "max_depth"] == 2
    # Pooled over agreements only: EU27-RUS is a sponsor dyad, RUS-KAZ was revoked.
    assert summary.loc[0, "spillover_ratio"] == pytest.approx(0.0)
    assert summary.loc[0, "visa:spillover_ratio"] == pytest.approx(1.0)  # RUS is no sponsor
    assert summary.loc[0, "readmission:spillover_ratio"] == pytest.approx(0.0)
    assert summary.loc[0, "hr_exposed_share"] == pytest.approx(1.0)
    assert "visa:final_agreements" not in summary


def test_summarise_runs_without_events_gives_nan_depth(world):
    """A run with no adoption has zero levels and undefined depth, ratios and times."""
    empty = tiny_events(world).iloc[0:0]
    summary = A.summarise_runs(empty, world, runs_frame(1)).iloc[0]
    assert summary["readmission:final_agreements"] == 0
    assert math.isnan(summary["max_depth"])
    assert math.isnan(summary["spillover_ratio"])
    assert math.isnan(summary["readmission:t10"])


def test_bands_quantiles():
    """Bands are the 5/25/50/75/95 percentiles over runs (linear interpolation), NaN skipped."""
    curves = pd.DataFrame(
        {"mechanism": "m", "date": 2000.0, "v": [0.0, 1.0, 2.0, 3.0, 4.0, np.nan]}
    )
    row = A.bands(curves, "v").iloc[0]
    assert (row["p5"], row["p25"], row["median"], row["p75"], row["p95"]) == pytest.approx(
        (0.2, 1.0, 2.0, 3.0, 3.8)
    )
    assert row["n"] == 5


def test_metric_intervals_student_t():
    """The interval is mean ± t(0.975, n-1) sd / sqrt(n); NaN runs are counted as missing."""
    summary = pd.DataFrame({"run_id": [0, 1, 2], "x": [1.0, 3.0, np.nan]})
    row = A.metric_intervals(summary).set_index("metric").loc["x"]
    assert row["mean"] == 2.0 and row["n"] == 2 and row["n_missing"] == 1
    assert row["hi"] - row["mean"] == pytest.approx(12.7062, rel=1e-4)


def test_compare_metrics_welch_difference():
    """Differences from the first scenario use a Welch t interval."""
    a = pd.DataFrame({"run_id": [0, 1, 2], "x": [1.0, 2.0, 3.0]})
    b = pd.DataFrame({"run_id": [0, 1, 2], "x": [2.0, 4.0, 6.0]})
    table = A.compare_metrics({"a": a, "b": b}).set_index("scenario")
    se = math.sqrt(1 / 3 + 4 / 3)
    df = (5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)
    half = stats.t.ppf(0.975, df) * se
    assert table.loc["b", "diff"] == pytest.approx(2.0)
    assert table.loc["b", "diff_lo"] == pytest.approx(2.0 - half)
    assert math.isnan(table.loc["a", "diff"])


def test_observed_curves_step_counts(world):
    """Observed adoptions become a cumulative count per mechanism at their dates."""
    world["observed"] = [
        {"mechanism": "readmission", "state": "RUS", "partner": "NOR", "date": 2001.4},
        {"mechanism": "readmission", "state": "EU27", "partner": "RUS", "date": 2001.2},
        {"mechanism": "readmission", "state": "RUS", "partner": "KAZ", "date": 2003.0},
    ]
    obs = A.observed_curves(world)
    assert obs["date"].tolist() == [2001.2, 2001.4, 2003.0]
    assert obs["count"].tolist() == [1, 2, 3]


def test_in_force_at_lists_live_units(world, events):
    """Units in force after a step: revoked agreements are gone, depths from adoption."""
    live = A.in_force_at(events, world, 2)
    assert len(live[live["run_id"] == 0]) == 3
    later = A.in_force_at(events, world, 3)
    assert later[(later["run_id"] == 0) & (later["mechanism"] == "readmission")][
        "partner"
    ].tolist() == ["RUS"]


def test_duplicate_state_ids_are_rejected(world, events):
    """A world with duplicate state ids is an error, not a silent miscount."""
    world["states"].append(dict(world["states"][0]))
    with pytest.raises(ValueError, match="duplicate state ids"):
        A.adoption_curves(events, world)
