"""Every shipped scenario runs with its defaults (a few replicates)."""

from __future__ import annotations

import pytest
from helpers import SCENARIOS, run_kernel

from diffusion_sim.loader import load_scenario

FILES = sorted(SCENARIOS.glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_runs(path):
    """The scenario validates, runs 3 replicates over its whole window and records series for
    every step."""
    scenario = load_scenario(path)
    world, result = run_kernel(scenario, replicates=3)
    steps = set(result.series["step"].tolist())
    assert steps == set(range(scenario.time.steps))
    assert world.n == len(scenario.state_ids())
