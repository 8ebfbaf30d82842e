"""Closed forms the kernel must reproduce (DESIGN.md section 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import (
    all_region_series,
    constant_hazard,
    run_kernel,
    scenario_from_dict,
    shipped,
    world_of,
)

from diffusion_sim.kernel import Kernel, hazard


@pytest.mark.parametrize(
    ("link", "intercept", "p"),
    [
        ("logit", -2.0, 1 / (1 + math.exp(2.0))),
        ("cloglog", -2.0, 1 - math.exp(-math.exp(-2.0))),
        ("linear", 0.1, 1 - math.exp(-0.1)),
    ],
)
def test_constant_hazard_gives_geometric_survival(tmp_path, link, intercept, p):
    """With only an intercept, the share not yet adopted after t+1 steps is (1-p)^(t+1)."""
    scenario = scenario_from_dict(constant_hazard(link, intercept), tmp_path)
    _, result = run_kernel(scenario, replicates=4)
    se = all_region_series(result)
    n_total = 2000 * 4
    survivors = np.array([se["adopters"][se["step"] == t].sum() for t in range(15)])
    survival = 1 - survivors / n_total
    expected = (1 - p) ** np.arange(1, 16)
    # Binomial standard error of a share estimated on 8,000 states; 4.5 SE bounds every step.
    tolerance = 4.5 * np.sqrt(expected * (1 - expected) / n_total)
    np.testing.assert_array_less(np.abs(survival - expected), tolerance + 1e-12)


def test_hazard_links_match_their_formulas():
    """logit, cloglog and linear links turn eta into the stated probabilities."""
    eta = np.array([-3.0, -0.5, 0.0, 0.7, 2.0])
    np.testing.assert_allclose(hazard(eta, "logit"), 1 / (1 + np.exp(-eta)))
    np.testing.assert_allclose(hazard(eta, "cloglog"), 1 - np.exp(-np.exp(eta)))
    np.testing.assert_allclose(hazard(eta, "linear"), 1 - np.exp(-np.maximum(eta, 0)))


def test_bass_limit_follows_the_discrete_bass_recursion():
    """The shipped bass_limit scenario tracks F[t+1] = F[t] + (1-F[t])(1-exp(-(p+qF[t])))."""
    scenario = shipped("bass_limit")
    _, result = run_kernel(scenario, replicates=scenario.runs.replicates)
    se = all_region_series(result)
    reps, n = scenario.runs.replicates, scenario.generate.n
    simulated = np.array([se["adopters"][se["step"] == t].sum() for t in range(30)]) / (reps * n)
    p, q = 0.03, 0.38
    f, expected = 0.0, []
    for _ in range(30):
        f = f + (1 - f) * (1 - math.exp(-(p + q * f)))
        expected.append(f)
    # Tolerance: the binomial SE of F over 20,000 states is at most 0.0035, and early noise is
    # amplified by the feedback q*F (about x2 at the inflection); emulation averages over the
    # n-1 other states, a 1/n (0.05 %) bias. 0.02 is about 3 amplified SEs.
    np.testing.assert_allclose(simulated, expected, atol=0.02)


def _gradient_world(covariate: str, weight: float) -> dict:
    raw = constant_hazard("logit", -3.0, n=3000, steps=10)
    raw["name"] = f"sign_{covariate}"
    dist = {"distribution": "uniform", "low": 0.0, "high": 1.0}
    raw["generate"]["human_rights"] = dist
    raw["generate"]["openness"] = dist
    raw["generate"]["pressure"] = dist
    raw["diffusion"]["covariates"] = {covariate: weight}
    return raw


@pytest.mark.parametrize("covariate", ["openness", "human_rights", "pressure"])
@pytest.mark.parametrize("weight", [1.5, -1.5])
def test_covariate_effects_have_their_sign(tmp_path, covariate, weight):
    """A positive covariate weight makes high-covariate states adopt more, a negative less."""
    scenario = scenario_from_dict(_gradient_world(covariate, weight), tmp_path)
    world, result = run_kernel(scenario, replicates=4)
    attribute = getattr(world, covariate)
    adopters = np.bincount(result.events["state"], minlength=world.n)
    high = adopters[attribute > 0.5].mean()
    low = adopters[attribute <= 0.5].mean()
    assert (high - low) * np.sign(weight) > 0.1 * max(high, low)


def test_hr_gap_pushes_agreements_towards_weaker_protection(tmp_path):
    """A positive hr_gap weight concludes more agreements with partners of lower human_rights
    than the requester, on a world where demand is symmetric."""
    raw = {
        "name": "hr_gap",
        "time": {"start": 0, "steps": 8},
        "mechanisms": [{"id": "ra", "kind": "bilateral", "intercept": -4.0}],
        "generate": {
            "n": 400,
            "regions": 1,
            "human_rights": {"distribution": "uniform", "low": 0, "high": 1},
            "openness": 0.5,
        },
        "networks": [{"id": "migration", "generator": "erdos_renyi", "p": 0.05}],
        "diffusion": {
            "link": "logit",
            "bilateral": {"candidates": "migration", "hr_gap": 4.0},
        },
        "runs": {"replicates": 4, "seed": 3},
    }
    scenario = scenario_from_dict(raw, tmp_path)
    world, result = run_kernel(scenario, replicates=4)
    ev = result.events
    gap = np.abs(world.human_rights[ev["state"]] - world.human_rights[ev["partner"]])
    dy = world.dyads
    baseline_gap = np.abs(world.human_rights[dy.a] - world.human_rights[dy.b]).mean()
    assert gap.mean() > baseline_gap + 0.05
    # The requesting side is the better-protecting one (that orientation has the larger eta).
    assert (world.human_rights[ev["state"]] >= world.human_rights[ev["partner"]]).all()


@pytest.mark.parametrize(
    ("agreements", "expected", "covered"),
    [
        # both ways: A -> B loses half and, A's only destination, the removed flow is lost
        ("both", {("A", "B"): 1.0, ("B", "A"): 2.5, ("B", "C"): 4.0}, 7.0),
        # DESIGN.md: the agreement A-B (A requesting) removes e * M_BA only
        ("requester", {("A", "B"): 2.0, ("B", "A"): 2.5, ("B", "C"): 4.0}, 5.0),
    ],
)
def test_agreement_cuts_flows_as_flows_agreements_says(tmp_path, agreements, expected, covered):
    """Flows after an agreement A-B requested by A (effectiveness 0.5, deflection 0.4): B -> A
    keeps 5 * 0.5; B's removed 2.5 goes 40 % to its other destination C (3 + 1.0); A -> B is
    halved only when agreements cut both ways. The recorded return_flow is the flow cut."""
    raw = {
        "name": "flows_direction",
        "time": {"start": 0, "steps": 2},
        "mechanisms": [{"id": "ra", "kind": "bilateral", "intercept": -40.0, "effectiveness": 0.5}],
        "states": [{"id": x, "region": "r", "human_rights": 0.5, "openness": 0.5} for x in "ABC"],
        "networks": [
            {
                "id": "migration",
                "directed": True,
                "edges": [["A", "B", 2.0], ["B", "A", 5.0], ["B", "C", 3.0]],
            }
        ],
        "diffusion": {"link": "logit", "bilateral": {"candidates": "migration"}},
        "flows": {
            "enabled": True,
            "layer": "migration",
            "deflection": 0.4,
            "agreements": agreements,
        },
        "events": [{"date": 1, "adopt": {"mechanism": "ra", "state": "A", "partner": "B"}}],
        "runs": {"replicates": 1, "seed": 1},
    }
    scenario = scenario_from_dict(raw, tmp_path)
    world = world_of(scenario)
    kernel = Kernel(world, [np.random.SeedSequence(1)])
    result = kernel.run()
    fl, ids = world.flows, world.ids
    flows = {
        (ids[o], ids[d]): f
        for o, d, f in zip(fl.origin, fl.destination, kernel._flow[:, 0], strict=True)
    }
    assert flows == pytest.approx(expected, rel=1e-12)
    assert result.events["return_flow"].tolist() == [covered]
