"""When do worker processes pay off? The real command with ``--workers 1``, ``2`` and the default.

    .venv/bin/python benchmarks/bench_workers.py              # the table (about 2 minutes)
    .venv/bin/python benchmarks/bench_workers.py --repeat 1   # a quick look

Each cell is the median wall time, from process start to exit, of
``python -m diffusion_sim run SCENARIO --replicates N --workers W --no-plots`` in a fresh
results folder; the three settings of one row run alternately, so a noisy machine shifts them
alike. The last columns show which executor the default chose (from the manifest) and the
serial work ``runner.estimated_serial_seconds`` predicted, which decides it: below
``runner.SERIAL_SECONDS_FOR_WORKERS`` the batch runs in the command's own process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diffusion_sim.loader import load_scenario
from diffusion_sim.runner import estimated_serial_seconds
from diffusion_sim.seeds import world_seed
from diffusion_sim.world import build_world

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ("eu_russia_readmission", 200),
    ("eu_russia_readmission", 1000),
    ("eu_russia_readmission", 2000),
    ("synthetic_world", 100),
    ("synthetic_world", 256),
    ("synthetic_world", 512),
    ("synthetic_world", 2000),
]


def timed_run(scenario: str, replicates: int, workers: int | None) -> tuple[float, str]:
    """Wall seconds of one batch in a fresh folder, and the executor its manifest names."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "diffusion_sim", "run", f"scenarios/{scenario}.yaml"]
        cmd += ["--replicates", str(replicates), "--out", out, "--no-plots"]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        started = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        manifest = json.loads(next(Path(out).glob("*/*/manifest.json")).read_text())
    return seconds, manifest["sessions"][-1]["executor"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (median shown)")
    args = parser.parse_args()
    print(
        "| scenario | runs | `--workers 1` | `--workers 2` | default | default chose | estimate |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for scenario, replicates in CASES:
        times: dict[str, list[float]] = {"1": [], "2": [], "default": []}
        chosen = ""
        for _ in range(args.repeat):
            for key in times:
                seconds, executor = timed_run(
                    scenario, replicates, None if key == "default" else int(key)
                )
                times[key].append(seconds)
                chosen = executor if key == "default" else chosen
        spec = load_scenario(ROOT / "scenarios" / f"{scenario}.yaml")
        estimate = estimated_serial_seconds(build_world(spec, world_seed(1)), replicates)
        cells = " | ".join(f"{statistics.median(t):.2f} s" for t in times.values())
        print(f"| {scenario} | {replicates:,} | {cells} | {chosen} | {estimate:.2f} s |")


if __name__ == "__main__":
    main()
