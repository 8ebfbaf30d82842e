"""The Mesa model: agents are views over the kernel; seeds make runs reproducible."""

from __future__ import annotations

import mesa
import numpy as np
from helpers import run_kernel, shipped

from diffusion_sim.model import DiffusionModel, StateAgent


def test_model_is_a_mesa_model_with_state_agents():
    """DiffusionModel is a mesa.Model whose agents are one StateAgent per state."""
    scenario = shipped("minimal")
    model = DiffusionModel(scenario)
    assert isinstance(model, mesa.Model)
    agents = list(model.agents)
    assert len(agents) == 8
    assert all(isinstance(a, StateAgent) for a in agents)
    assert {a.code for a in agents} == {s.id for s in scenario.states}


def test_agent_attributes_are_views_over_the_kernel():
    """After steps, every agent reports exactly the kernel's arrays (adoptions, partners,
    pressure, attributes)."""
    model = DiffusionModel(shipped("minimal")).run()
    k = model.kernel
    assert model.time_step == 21 and not model.running
    for agent in model.agents:
        i = agent.index
        assert agent.pressure == k.pressure[i, 0]
        assert agent.human_rights == k.human_rights[i]
        held = {m.id for j, m in enumerate(k.uni) if k.adopted[i, 0, j]}
        assert agent.adopted == held
    eu = next(a for a in model.agents if a.code == "EU")
    rus = next(a for a in model.agents if a.code == "RUS")
    assert "RUS" in eu.partners["readmission"] and "EU" in rus.partners["readmission"]


def test_same_seed_same_events_different_seed_different_events():
    """Two models with the same seed give identical events; another seed differs."""
    scenario = shipped("minimal")
    a = DiffusionModel(scenario, seed=3).run().events().to_pandas()
    b = DiffusionModel(scenario, seed=3).run().events().to_pandas()
    c = DiffusionModel(scenario, seed=4).run().events().to_pandas()
    assert a.equals(b)
    assert not a.equals(c)


def test_replicate_alone_equals_replicate_in_a_batch():
    """Replicate k run alone as a Mesa model equals replicate k of a kernel batch."""
    scenario = shipped("synthetic_world", ("generate.n=50", "time.steps=30"))
    _, batch = run_kernel(scenario, replicates=6)
    for k in (0, 4):
        alone = DiffusionModel(scenario, replicate=k).run().kernel.result().events
        mine = batch.events["replicate"] == k
        for column in ("step", "mechanism", "state", "partner", "depth"):
            np.testing.assert_array_equal(
                np.sort(alone[column]), np.sort(batch.events[column][mine]), err_msg=column
            )
        assert len(alone["state"]) == int(mine.sum()) > 0
        series = DiffusionModel(scenario, replicate=k).run().kernel.result().series
        in_batch = batch.series["replicate"] == k
        for column in ("adopters", "agreements", "beyond_sponsor", "mean_pressure"):
            np.testing.assert_array_equal(
                series[column], batch.series[column][in_batch], err_msg=column
            )


def test_chunking_does_not_change_results():
    """A batch of 6 replicates equals two batches of 3 (replicates 0-2 and 3-5)."""
    scenario = shipped("minimal")
    _, whole = run_kernel(scenario, replicates=6)
    _, second = run_kernel(scenario, replicates=3, first=3)
    mine = whole.events["replicate"] >= 3
    for column in ("step", "mechanism", "state", "partner"):
        a = sorted(
            zip(whole.events["replicate"][mine] - 3, whole.events[column][mine], strict=True)
        )
        b = sorted(zip(second.events["replicate"], second.events[column], strict=True))
        assert a == b, column
