"""Small builders shared by the model-core tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from diffusion_sim.config import Scenario
from diffusion_sim.kernel import Kernel, KernelResult
from diffusion_sim.loader import load_scenario
from diffusion_sim.seeds import run_seed, world_seed
from diffusion_sim.world import World, build_world

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def scenario_from_dict(raw: dict[str, Any], tmp_path: Path, overrides=()) -> Scenario:
    """Write ``raw`` as YAML and load it through the real loader."""
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_scenario(path, overrides)


def shipped(name: str, overrides=()) -> Scenario:
    return load_scenario(SCENARIOS / f"{name}.yaml", overrides)


def world_of(scenario: Scenario) -> World:
    return build_world(scenario, world_seed(scenario.runs.seed))


def run_kernel(scenario: Scenario, replicates: int, first: int = 0) -> tuple[World, KernelResult]:
    world = world_of(scenario)
    seeds = [run_seed(scenario.runs.seed, 0, k) for k in range(first, first + replicates)]
    return world, Kernel(world, seeds).run()


def constant_hazard(link: str, intercept: float, n: int = 2000, steps: int = 15) -> dict:
    """A world where nothing but the intercept acts: every state has the same hazard."""
    return {
        "name": f"constant_{link}",
        "time": {"start": 0, "steps": steps},
        "mechanisms": [{"id": "control", "kind": "unilateral", "intercept": intercept}],
        "generate": {"n": n, "regions": 2, "human_rights": 0.5, "openness": 0.5},
        "networks": [{"id": "none", "generator": "erdos_renyi", "p": 0.0}],
        "diffusion": {"link": link},
        "runs": {"replicates": 4, "seed": 11},
    }


def all_region_series(result: KernelResult, mechanism: int = 0) -> dict[str, np.ndarray]:
    se = result.series
    keep = (se["region"] == -1) & (se["mechanism"] == mechanism)
    return {k: v[keep] for k, v in se.items()}
