"""Model-core speed (issue 2), measured side by side in one run.

1. One replicate of scenarios/synthetic_world.yaml through the per-agent reference and through
   the Mesa ``DiffusionModel`` (same world, same seed; the events are checked equal).
2. A 20,000-state generated world of the same structure with sparse layers (mean degree kept
   as in the 200-state world), 100 steps, through ``DiffusionModel``.
3. Start-up of ``diffusion-sim --help`` and ``diffusion-sim validate`` (fresh processes).

Run: ``python benchmarks/bench_model.py`` (add ``--quick`` to shorten the reference to 20 steps).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffusion_sim.loader import load_scenario  # noqa: E402
from diffusion_sim.model import DiffusionModel  # noqa: E402
from diffusion_sim.reference import ReferenceModel  # noqa: E402
from diffusion_sim.seeds import run_seed, world_seed  # noqa: E402
from diffusion_sim.world import build_world  # noqa: E402

SYNTHETIC = ROOT / "scenarios" / "synthetic_world.yaml"


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reference on 20 steps only")
    args = parser.parse_args()
    overrides = ["time.steps=20"] if args.quick else []
    scenario = load_scenario(SYNTHETIC, overrides)
    world = build_world(scenario, world_seed(scenario.runs.seed))
    seed = run_seed(scenario.runs.seed, 0, 0)

    t_ref, ref_events = timed(lambda: ReferenceModel(world, seed).run())
    print("reference done", flush=True)
    t_mesa, model = timed(lambda: DiffusionModel(scenario, world=world).run(), repeat=3)
    ev = model.kernel.result().events
    mesa_events = sorted(
        zip(
            ev["step"].tolist(),
            ev["mechanism"].tolist(),
            ev["state"].tolist(),
            ev["partner"].tolist(),
            strict=True,
        )
    )
    same = mesa_events == sorted((e[0], e[1], e[2], e[3]) for e in ref_events)
    print(f"synthetic_world, 1 replicate, {scenario.time.steps} steps, {world.n} states")
    print(f"  per-agent reference : {t_ref:8.3f} s")
    print(f"  Mesa DiffusionModel : {t_mesa:8.3f} s   (best of 3)")
    print(
        f"  speed-up            : {t_ref / t_mesa:8.1f} x   (target >= 10 x); same events: {same}"
    )

    big = load_scenario(
        SYNTHETIC,
        [
            "generate.n=20000",
            "networks.migration.p=0.0003",  # mean out-degree 6, as 0.03 x 200
            "time.steps=100",
            "events.0.adopt.state=S00000",  # generated ids are 5 digits wide from n = 10,001
            "events.0.adopt.partner=S00001",
        ],
    )
    t_build, big_world = timed(lambda: build_world(big, world_seed(big.runs.seed)))
    t_big, big_model = timed(lambda: DiffusionModel(big, world=big_world).run(), repeat=2)
    n_events = len(big_model.kernel.result().events["state"])
    print(
        f"20,000-state world (trade watts_strogatz k=6, migration erdos_renyi mean degree 6),"
        f" 100 steps, {len(big_world.dyads)} candidate dyads"
    )
    print(f"  world build         : {t_build:8.3f} s")
    print(f"  Mesa DiffusionModel : {t_big:8.3f} s   (target < 5 s; {n_events} events)")

    for label, cmd in (
        ("diffusion-sim --help", ["--help"]),
        ("diffusion-sim validate", ["validate", str(SYNTHETIC)]),
    ):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "diffusion_sim", *cmd], check=True, capture_output=True
            )
            times.append(time.perf_counter() - t0)
        print(f"  {label:22s}: median {statistics.median(times):.3f} s (target < 0.5 s)")


if __name__ == "__main__":
    main()
