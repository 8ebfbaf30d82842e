"""Batch throughput, speed-up over the per-agent reference, Dask overhead, peak memory.

    .venv/bin/python benchmarks/bench_batch.py                 # everything (100k run: minutes)
    .venv/bin/python benchmarks/bench_batch.py --skip-big      # without the 100,000-run batch
    .venv/bin/python benchmarks/bench_batch.py --big-runs 20000 --big-steps 20   # a quick look

Every batch is the real command (``python -m diffusion_sim run ... --no-plots``) in a fresh
results folder, timed from process start to exit (so start-up, world building and the final
report are included); "kernel-session" is the runs/s the manifest records for the batch loop
alone. Memory is the summed RSS of the command and all its descendants (worker processes,
forkserver), sampled every 0.1 s with psutil (PSS every 2 s); the peak of that sum is reported.
The 2,000-run batches are timed in a run without sampling and sampled in a second run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "synthetic_world.yaml"


def run_batch(args: list[str], out: Path, sample: bool = False) -> dict:
    cmd = [sys.executable, "-m", "diffusion_sim", "run", str(SCENARIO), *args]
    cmd += ["--out", str(out), "--no-plots"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = peak_pss = 0
    if sample:
        # RSS (cheap: /proc/PID/statm) every 0.1 s; PSS (reads smaps) only every 2 s, so the
        # sampling itself takes little of the 2 cores it measures.
        root = psutil.Process(proc.pid)
        tick = 0
        while proc.poll() is None:
            rss = pss = 0
            with_pss = tick % 20 == 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        rss += p.memory_info().rss
                        if with_pss:
                            pss += p.memory_full_info().pss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            tick += 1
            time.sleep(0.1)
    _, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    manifest = json.loads(next(out.glob("*/*/manifest.json")).read_text())
    runs = manifest["runs_total"]
    return {
        "command": " ".join(["diffusion-sim", *cmd[3:]]),
        "runs": runs,
        "wall_s": wall,
        "runs_per_s": runs / wall,
        "session_runs_per_s": manifest["sessions"][-1]["runs_per_second"],
        "peak_rss_mib": peak / 2**20,
        "peak_pss_mib": peak_pss / 2**20,
    }


def reference_seconds(steps: int | None) -> float:
    """Seconds per run of the per-agent reference (one replicate of synthetic_world)."""
    from diffusion_sim.loader import load_scenario
    from diffusion_sim.reference import ReferenceModel
    from diffusion_sim.seeds import run_seed, world_seed
    from diffusion_sim.world import build_world

    overrides = [f"time.steps={steps}"] if steps else []
    scenario = load_scenario(SCENARIO, overrides)
    world = build_world(scenario, world_seed(scenario.runs.seed))
    started = time.perf_counter()
    ReferenceModel(world, run_seed(scenario.runs.seed, 0, 0)).run()
    return time.perf_counter() - started


def show(label: str, r: dict) -> None:
    print(
        f"{label:<28} {r['runs']:>7} runs  {r['wall_s']:7.1f} s  {r['runs_per_s']:7.0f} runs/s "
        f"(batch loop {r['session_runs_per_s']:.0f} runs/s)"
        + (
            f"  peak RSS sum {r['peak_rss_mib']:.0f} MiB (PSS sum {r['peak_pss_mib']:.0f} MiB)"
            if r["peak_rss_mib"]
            else ""
        )
    )
    print(f"    $ {r['command']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="runs of the throughput batches")
    ap.add_argument(
        "--reference-steps",
        type=int,
        default=None,
        help="steps of the reference run (default: the scenario's 100)",
    )
    ap.add_argument("--skip-big", action="store_true", help="skip the 100,000-run batch")
    ap.add_argument("--big-runs", type=int, default=100_000)
    ap.add_argument("--big-steps", type=int, default=None)
    ap.add_argument("--big-chunk", type=int, default=None, help="runs.chunk of the big batch")
    ap.add_argument("--skip-dask", action="store_true")
    opts = ap.parse_args()

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        base = ["--replicates", str(opts.runs)]
        for w in (1, 2):
            # timed without sampling; memory from a second, sampled run of the same batch
            results[f"workers {w}"] = r = run_batch(
                [*base, "--workers", str(w)], Path(tmp) / f"w{w}"
            )
            sampled = run_batch([*base, "--workers", str(w)], Path(tmp) / f"w{w}m", sample=True)
            r["peak_rss_mib"], r["peak_pss_mib"] = sampled["peak_rss_mib"], sampled["peak_pss_mib"]
            show(f"local, --workers {w}", r)

        ref = reference_seconds(opts.reference_steps)
        steps = opts.reference_steps or 100
        per_run_batch = 1 / results["workers 2"]["runs_per_s"]
        scale = 100 / steps  # the batch runs 100 steps; the reference ran `steps`
        print(
            f"per-agent reference: {ref:.1f} s for 1 run of {steps} steps "
            f"({ref * scale:.1f} s per 100-step run)"
        )
        print(
            f"speed-up of the batch (--workers 2, wall time incl. start-up) over the reference: "
            f"{ref * scale / per_run_batch:,.0f}x"
        )

        if not opts.skip_dask:
            from distributed import LocalCluster

            with LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=50,
            ) as cluster:
                d = run_batch([*base, "--scheduler", cluster.scheduler_address], Path(tmp) / "dask")
            show("dask LocalCluster 2x1", d)
            local = results["workers 2"]
            print(
                f"Dask overhead vs local processes (same 2 cores): "
                f"{(d['wall_s'] / local['wall_s'] - 1) * 100:+.0f} % wall time, "
                f"{(local['session_runs_per_s'] / d['session_runs_per_s'] - 1) * 100:+.0f} % "
                "batch-loop time"
            )

        if not opts.skip_big:
            big = ["--replicates", str(opts.big_runs), "--workers", "2"]
            if opts.big_steps:
                big += ["--steps", str(opts.big_steps)]
            if opts.big_chunk:
                big += ["--set", f"runs.chunk={opts.big_chunk}"]
            r = run_batch(big, Path(tmp) / "big", sample=True)
            show(f"{opts.big_runs:,}-run batch", r)
            size = sum(f.stat().st_size for f in (Path(tmp) / "big").rglob("*") if f.is_file())
            print(f"    results on disk: {size / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
