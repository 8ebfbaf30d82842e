"""The flagship scenarios run, and the EU27-RUS agreement is in force from 2007 everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SCENARIOS, run_kernel

from diffusion_sim.loader import load_scenario

FLAGSHIPS = sorted(SCENARIOS.glob("eu_russia*.yaml"))


@pytest.mark.parametrize("path", FLAGSHIPS, ids=[p.stem for p in FLAGSHIPS])
def test_eu_russia_agreement_concluded_in_2007_in_every_replicate(path):
    """In 20 replicates of each flagship scenario, EU27-RUS readmission is concluded exactly
    once, exogenously, in 2007, at chain depth 1; it never appears earlier."""
    scenario = load_scenario(path)
    world, result = run_kernel(scenario, replicates=20)
    ev = result.events
    eu, rus = world.index["EU27"], world.index["RUS"]
    pair = ((ev["state"] == eu) & (ev["partner"] == rus)) | (
        (ev["state"] == rus) & (ev["partner"] == eu)
    )
    assert sorted(ev["replicate"][pair].tolist()) == list(range(20))
    assert set((world.start + ev["step"][pair]).tolist()) == {2007}
    assert ev["exogenous"][pair].all()
    assert set(ev["depth"][pair].tolist()) == {1}


def _russia_requested(world, ev):
    rus = world.index["RUS"]
    return (ev["state"] == rus) & ~ev["exogenous"] & (ev["partner"] >= 0), rus


def test_tcn_clause_binds_russia_from_2010():
    """Baseline: from 2010 every agreement Russia requests from a partner that sends migrants
    to Russia carries a positive chain contribution (Russia is bound by the EU TCN clause)."""
    base = load_scenario(SCENARIOS / "eu_russia_readmission.yaml")
    world, result = run_kernel(base, replicates=100)
    ev = result.events
    mine, rus = _russia_requested(world, ev)
    layer = world.layers["migration"]
    sends = layer.weights(ev["partner"][mine], np.full(mine.sum(), rus)) > 0
    after = (world.start + ev["step"][mine] >= 2010) & sends
    assert after.sum() > 10
    assert (ev["c_chain"][mine][after] > 0).all()


def test_without_tcn_russia_is_bound_only_by_its_own_earlier_agreements():
    """No-TCN variant: a Russia-requested agreement has a chain contribution only if Russia
    concluded another agreement at least tcn_delay steps earlier in that replicate."""
    scenario = load_scenario(SCENARIOS / "eu_russia_no_tcn.yaml")
    world, result = run_kernel(scenario, replicates=100)
    ev = result.events
    mine, rus = _russia_requested(world, ev)
    delay = scenario.mechanism("readmission").tcn_delay
    party = ((ev["state"] == rus) | (ev["partner"] == rus)) & (ev["partner"] >= 0)
    own = party & ~((ev["state"] == world.index["EU27"]) | (ev["partner"] == world.index["EU27"]))
    checked = 0
    for j in np.flatnonzero(mine & (ev["c_chain"] > 0)):
        same_run = own & (ev["replicate"] == ev["replicate"][j])
        assert (ev["step"][same_run] <= ev["step"][j] - delay).any()
        checked += 1
    assert checked > 0


def test_observed_csv_matches_the_scenario_observed_list():
    """scenarios/data/eurasia/russia_readmission_observed.csv holds exactly the baseline's
    observed: records (same actors, partners and dates)."""
    import csv
    import datetime as dt

    scenario = load_scenario(SCENARIOS / "eu_russia_readmission.yaml")
    listed = {(o.state, o.mechanism, o.partner, o.date.isoformat()) for o in scenario.observed}
    with open(SCENARIOS / "data/eurasia/russia_readmission_observed.csv", newline="") as fh:
        rows = {
            (r["state"], r["mechanism"], r["partner"], dt.date.fromisoformat(r["date"]).isoformat())
            for r in csv.DictReader(fh)
        }
    assert rows == listed and len(rows) == 4
