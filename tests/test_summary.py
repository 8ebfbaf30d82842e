"""summary.summarise (from kernel arrays) equals analysis.summarise_runs (from the events table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from batchutil import SCENARIOS

from diffusion_sim.analysis import summarise_runs
from diffusion_sim.kernel import Kernel
from diffusion_sim.loader import load_scenario
from diffusion_sim.runner import world_document
from diffusion_sim.seeds import run_seed, world_seed
from diffusion_sim.summary import metric_names, summarise
from diffusion_sim.tables import event_table
from diffusion_sim.world import build_world

REVOKE_SYN = [
    "time.steps=40",
    "mechanisms.readmission.revocable=true",
    "mechanisms.readmission.revocation_rate=0.08",
    "mechanisms.border_control.revocable=true",
    "mechanisms.border_control.revocation_rate=0.15",
]
REVOKE_MIN = [
    "mechanisms.readmission.revocable=true",
    "mechanisms.readmission.revocation_rate=0.3",
    "mechanisms.visa_regime.revocable=true",
    "mechanisms.visa_regime.revocation_rate=0.3",
]
CASES = [
    ("minimal", []),
    ("minimal", REVOKE_MIN),
    ("bass_limit", []),
    ("boundary_buildup", []),
    ("eu_russia_readmission", []),
    ("eu_russia_readmission", ["outputs.hr_threshold=0.6"]),
    ("synthetic_world", ["time.steps=40"]),
    ("synthetic_world", REVOKE_SYN),
]


def _both(name: str, overrides: list[str], replicates: int = 12):
    scenario = load_scenario(SCENARIOS / f"{name}.yaml", overrides)
    world = build_world(scenario, world_seed(scenario.runs.seed))
    seeds = [run_seed(scenario.runs.seed, 0, k) for k in range(replicates)]
    result = Kernel(world, seeds).run()
    ids = np.arange(replicates)
    events = event_table(world, result, ids, np.zeros(replicates, int), ids).to_pandas()
    runs = pd.DataFrame({"run_id": ids, "point": 0, "replicate": ids})
    slow = summarise_runs(events, world_document(world, scenario, []), runs)
    fast = summarise(world, result, replicates, scenario.outputs.hr_threshold)
    return world, events, slow, fast


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_fast_summary_equals_summarise_runs(name, overrides):
    """Every metric column, in the same order, equals summarise_runs bit for bit (NaN = NaN)."""
    world, events, slow, fast = _both(name, overrides)
    assert list(slow.columns[3:]) == metric_names(world) == list(fast)
    for column in metric_names(world):
        expected = slow[column].to_numpy(dtype=float)
        got = fast[column].astype(float)
        assert np.array_equal(expected, got, equal_nan=True), (column, expected, got)
    if overrides in (REVOKE_MIN, REVOKE_SYN):
        assert (events["action"] == "revoke").any(), "the revocation case must revoke"


def test_summary_covers_nan_cases():
    """Metrics that are undefined (never reached, no agreement) are NaN in both summaries."""
    _, _, slow, fast = _both("bass_limit", ["time.steps=4"], replicates=6)
    for column in ("control:t50", "hr_exposed_share"):
        assert np.isnan(fast[column]).any(), column
        assert np.array_equal(slow[column].to_numpy(float), fast[column], equal_nan=True)
