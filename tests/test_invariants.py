"""Invariants of every run: absorbing adoptions, symmetric agreements, scheduled events, depth
(a revocation row carries the depth of the adoption it ends)."""

from __future__ import annotations

import numpy as np
from helpers import run_kernel, scenario_from_dict, shipped
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffusion_sim.kernel import ADOPT, REVOKE


def _check_invariants(world, result, replicates):
    ev = result.events
    bilateral = {m.index for m in world.bilateral}
    for rep in range(replicates):
        held: dict[tuple, int] = {}  # what is in force -> the depth it was adopted at
        mine = np.flatnonzero(ev["replicate"] == rep)
        order = mine[np.argsort(ev["step"][mine], kind="stable")]
        for j in order:
            m, s, p = int(ev["mechanism"][j]), int(ev["state"][j]), int(ev["partner"][j])
            if m in bilateral:
                assert p >= 0 and p != s, "an agreement has two distinct parties"
                key = (m, min(s, p), max(s, p))
            else:
                assert p == -1
                key = (m, s)
            if ev["action"][j] == ADOPT:
                assert key not in held, "an adoption in force is not adopted again"
                held[key] = int(ev["depth"][j])
                if m in bilateral and not ev["exogenous"][j]:
                    assert ev["depth"][j] >= 1, "endogenous agreements have depth >= 1"
            else:
                assert ev["action"][j] == REVOKE
                assert world.mechanisms[m].revocation_rate > 0, "only revocable ones end"
                assert ev["depth"][j] == held.pop(key), "a revocation carries its adoption's depth"


def test_shipped_minimal_invariants():
    """minimal.yaml: every invariant holds in 20 replicates."""
    scenario = shipped("minimal")
    world, result = run_kernel(scenario, replicates=20)
    _check_invariants(world, result, 20)


def test_scheduled_agreement_happens_when_scheduled():
    """The EU-RUS event of minimal.yaml is concluded in 2007 in every replicate, exogenously,
    at depth 1 (the sponsor is generation 0), with its TCN clause from 2010."""
    scenario = shipped("minimal")
    world, result = run_kernel(scenario, replicates=10)
    ev = result.events
    eu, rus = world.index["EU"], world.index["RUS"]
    pair = ((ev["state"] == eu) & (ev["partner"] == rus)) | (
        (ev["state"] == rus) & (ev["partner"] == eu)
    )
    hit = pair & ev["exogenous"]
    assert sorted(ev["replicate"][hit].tolist()) == list(range(10))
    assert set(ev["step"][hit].tolist()) == {2007 - 2000}
    assert set(ev["depth"][hit].tolist()) == {1}
    assert set(ev["tcn_step"][hit].tolist()) == {2010 - 2000}


def test_endogenous_tcn_clause_follows_the_delay():
    """An endogenous agreement's TCN clause applies tcn_delay steps after conclusion."""
    scenario = shipped("minimal")
    world, result = run_kernel(scenario, replicates=20)
    ev = result.events
    ra = world.mechanisms[[m.id for m in world.mechanisms].index("readmission")]
    endo = (ev["mechanism"] == ra.index) & ~ev["exogenous"]
    assert endo.any()
    np.testing.assert_array_equal(ev["tcn_step"][endo], ev["step"][endo] + ra.tcn_delay)


def test_series_counts_are_monotone_without_revocation():
    """Without revocable mechanisms the adopters of every run never decrease."""
    scenario = shipped("synthetic_world", ("generate.n=60", "time.steps=30"))
    _, result = run_kernel(scenario, replicates=5)
    se = result.series
    for rep in range(5):
        for m in np.unique(se["mechanism"]):
            keep = (se["replicate"] == rep) & (se["mechanism"] == m) & (se["region"] == -1)
            adopters = se["adopters"][keep][np.argsort(se["step"][keep])]
            assert (np.diff(adopters) >= 0).all()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    link=st.sampled_from(["logit", "cloglog", "linear"]),
    intercept=st.floats(-6, 0.5),
    weights=st.lists(st.floats(-3, 3), min_size=6, max_size=6),
    revocation=st.sampled_from([0.0, 0.0, 0.3]),
    n=st.integers(5, 40),
    p=st.floats(0.05, 0.5),
)
def test_invariants_hold_for_random_parameters(
    tmp_path, link, intercept, weights, revocation, n, p
):
    """For random links, weights and worlds, every invariant holds."""
    mechanisms = [
        {"id": "wall", "kind": "unilateral", "intercept": intercept},
        {"id": "ra", "kind": "bilateral", "intercept": intercept, "tcn_delay": 2},
    ]
    if revocation:
        for m in mechanisms:
            m |= {"revocable": True, "revocation_rate": revocation}
    raw = {
        "name": "random_world",
        "time": {"start": 1990, "steps": 12},
        "mechanisms": mechanisms,
        "generate": {
            "n": n,
            "regions": 2,
            "sponsors": 1,
            "human_rights": {"distribution": "uniform", "low": 0, "high": 1},
            "openness": {"distribution": "beta", "a": 2, "b": 2},
        },
        "networks": [
            {"id": "trade", "generator": "erdos_renyi", "p": p},
            {
                "id": "migration",
                "generator": "erdos_renyi",
                "p": p,
                "directed": True,
                "weights": {"low": 0.1, "high": 1.0},
            },
        ],
        "diffusion": {
            "link": link,
            "channels": {
                "emulation": {"weight": weights[0], "layer": "trade"},
                "conditionality": {"weight": weights[1], "layer": "trade"},
                "learning": {"weight": weights[2], "layer": "trade"},
                "competition": {"weight": weights[3], "layer": "trade"},
            },
            "covariates": {"openness": weights[4]},
            "bilateral": {
                "candidates": "migration",
                "chain": 2.0,
                "demand": weights[5],
                "emulation": 1.0,
                "hr_gap": 0.5,
            },
        },
        "flows": {"enabled": True, "layer": "migration", "deflection": 0.5},
        "runs": {"replicates": 3, "seed": 5},
    }
    scenario = scenario_from_dict(raw, tmp_path)
    world, result = run_kernel(scenario, replicates=3)
    _check_invariants(world, result, 3)


def test_channel_contributions_add_up_to_the_linear_predictor():
    """For every endogenous adoption and agreement, the recorded c_* contributions add up to
    eta (so the channel decomposition is exact)."""
    for name in ("minimal", "boundary_buildup", "eu_russia_readmission"):
        scenario = shipped(name)
        _, result = run_kernel(scenario, replicates=10)
        ev = result.events
        endo = ~ev["exogenous"] & (ev["action"] == ADOPT)
        assert endo.sum() > 10
        parts = sum(ev[c][endo] for c in ev if c.startswith("c_"))
        np.testing.assert_allclose(parts, ev["eta"][endo], rtol=1e-9, atol=1e-9, err_msg=name)


def _tiny(tmp_path, name, networks, events, bilateral, flows=False):
    raw = {
        "name": name,
        "time": {"start": 0, "steps": 6},
        "mechanisms": [{"id": "ra", "kind": "bilateral", "intercept": 3.0, "tcn_delay": 1}],
        "states": [
            {"id": s, "human_rights": 0.5, "openness": 0.5, "sponsor": s == "E"}
            for s in ("E", "R", "S", "T")
        ],
        "networks": networks,
        "diffusion": {"link": "logit", "bilateral": bilateral},
        "events": events,
        "runs": {"replicates": 3, "seed": 1},
    }
    return scenario_from_dict(raw, tmp_path)


def test_return_flow_follows_the_current_candidate_layer(tmp_path):
    """With flows off, an agreement's return_flow is the candidate layer's weight both ways
    at conclusion, also for a tie created by a later join event."""
    networks = [{"id": "org", "groups": {"g1": ["E", "R"], "g2": ["S"]}}]
    events = [
        {"date": 0, "block": {"mechanism": "ra", "state": "E", "partner": "R"}},
        {"date": 2, "join": {"layer": "org", "group": "g2", "state": "T"}},
    ]
    scenario = _tiny(tmp_path, "joined", networks, events, {"candidates": "org"})
    world, result = run_kernel(scenario, replicates=3)
    ev = result.events
    s, t = world.index["S"], world.index["T"]
    pair = ((ev["state"] == s) & (ev["partner"] == t)) | ((ev["state"] == t) & (ev["partner"] == s))
    assert pair.sum() == 3 and (ev["step"][pair] >= 2).all()
    np.testing.assert_array_equal(ev["return_flow"][pair], 2.0)


def test_scheduled_agreements_of_one_step_are_concluded_together(tmp_path):
    """E-R and R-S scheduled in the same step take their depths from the start-of-step
    generations: E-R depth 1 (E is a sponsor), R-S depth 1 (neither had a generation yet)."""
    networks = [{"id": "migration", "directed": True, "edges": [["R", "E", 1.0], ["S", "R", 1.0]]}]
    events = [
        {"date": 1, "adopt": {"mechanism": "ra", "state": "E", "partner": "R"}},
        {"date": 1, "adopt": {"mechanism": "ra", "state": "R", "partner": "S"}},
    ]
    scenario = _tiny(tmp_path, "together", networks, events, {"candidates": "migration"})
    _, result = run_kernel(scenario, replicates=3)
    ev = result.events
    at_one = ev["exogenous"] & (ev["step"] == 1)
    assert at_one.sum() == 6
    np.testing.assert_array_equal(ev["depth"][at_one], 1)
