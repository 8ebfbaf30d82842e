"""Where a worker's time goes: one chunk of synthetic_world, phase by phase, in this process.

    .venv/bin/python benchmarks/profile_chunk.py                # phases, ms per run
    .venv/bin/python benchmarks/profile_chunk.py --profile 20   # and the kernel's top functions
    .venv/bin/python benchmarks/profile_chunk.py --codecs       # events encoding per codec
    .venv/bin/python benchmarks/profile_chunk.py --floors       # what 500 runs/s leaves the model

A worker runs a chunk in three phases (``runner.run_chunk``): the kernel and the per-run
summary (``_simulate``), then Parquet encoding of the events, then of the series and runs.
Each phase is timed over ``--chunks`` chunks of ``--chunk`` replicates, after one warm-up chunk
(which loads the compiled loops); the best of ``--repeat`` rounds is printed, in milliseconds
per run. Two workers on two cores cannot run faster than 2000 / (total ms per run) runs/s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from diffusion_sim import fused
from diffusion_sim.kernel import Kernel
from diffusion_sim.loader import load_scenario, scenario_hash
from diffusion_sim.runner import (
    ENCODE_SLICE,
    Batch,
    ChunkTask,
    Point,
    _encode_streamed,
    _simulate,
    _slices,
    _world,
    _writer_options,
    encode,
    run_chunk,
)
from diffusion_sim.seeds import run_seed
from diffusion_sim.tables import (
    EVENT_SCHEMA,
    SERIES_SCHEMA,
    encoded_schema,
    event_table,
    series_table,
)
from diffusion_sim.world import World

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "synthetic_world.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunk", type=int, default=64, help="replicates per chunk")
    parser.add_argument("--chunks", type=int, default=8, help="chunks timed per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the best is shown)")
    parser.add_argument("--profile", type=int, default=0, help="show the N top kernel functions")
    parser.add_argument(
        "--codecs", action="store_true", help="time the events' Parquet writing per codec"
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        help="the per-run budget of 500 runs/s with two workers, less the costs the contracts fix",
    )
    args = parser.parse_args()

    scenario = load_scenario(SCENARIO)
    point = Point(0, {}, scenario, scenario_hash(scenario))
    batch = Batch(
        scenario.name, scenario.runs.seed, args.chunk * args.chunks, [point], args.chunk, []
    )
    tasks = [batch.task(c) for c in batch.chunks]
    runs = sum(t.chunk.count for t in tasks)
    run_chunk(tasks[0])  # warm-up: imports, compiled loops, the world

    best: dict[str, float] = {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        sims = [_simulate(t) for t in tasks]
        simulated = time.perf_counter()
        for sim in sims:
            _encode_streamed(sim, "events")
        events = time.perf_counter()
        for sim in sims:
            _encode_streamed(sim, "series")
            encode(sim.runs)
        done = time.perf_counter()
        for name, seconds in (
            ("kernel and summary", simulated - started),
            ("encode events", events - simulated),
            ("encode series and runs", done - events),
            ("total", done - started),
        ):
            best[name] = min(best.get(name, float("inf")), 1e3 * seconds / runs)
    print(f"synthetic_world, {args.chunks} x {args.chunk} replicates, best of {args.repeat}:")
    for name, ms in best.items():
        print(f"  {name:24s} {ms:6.3f} ms per run")
    print(f"  two workers cannot pass {2000 / best['total']:.0f} runs/s")

    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [_simulate(t) for t in tasks])
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    if args.codecs:
        compare_codecs([_simulate(t) for t in tasks], args.repeat)
    if args.floors:
        print_floors(tasks, args.repeat, best["kernel and summary"])


def compare_codecs(sims: list, repeat: int) -> None:
    """Writing the events (Arrow tables built beforehand) with the package's options and with
    other codecs, alternately; best of ``repeat``, ms and KiB per run."""
    schema = encoded_schema(EVENT_SCHEMA)
    tables = [
        event_table(sim.world, result, *keys, encoded=True)
        for sim in sims
        for result, keys in _slices(sim, ENCODE_SLICE)
    ]
    runs = sum(len(sim.run_ids) for sim in sims)
    package = _writer_options(schema)
    codecs = {
        "zstd level 1 (the package)": package,
        "lz4": package | {"compression": "lz4", "compression_level": None},
        "no compression": package | {"compression": "none", "compression_level": None},
    }
    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeat):
        for name, options in codecs.items():
            sink = io.BytesIO()
            started = time.perf_counter()
            with pq.ParquetWriter(sink, schema, **options) as writer:
                for table in tables:
                    if table.num_rows:
                        writer.write_table(table)
            seconds = time.perf_counter() - started
            if seconds < best.get(name, (float("inf"), 0))[0]:
                best[name] = (seconds, len(sink.getvalue()))
    print("writing the events' Parquet (tables already built):")
    for name, (seconds, size) in best.items():
        print(f"  {name:28s} {1e3 * seconds / runs:6.3f} ms per run {size / runs / 1024:7.1f} KiB")


def print_floors(tasks: list, repeat: int, kernel_ms: float) -> None:
    """The bound on the issue's target: 2,000 runs at 500 runs/s is 4 s of wall time on two
    cores. Even granting the main process no time at all, each worker first starts up, so
    each run may cost at most 2 * (4 s - start-up) / 2,000 of CPU. From that budget, take what
    the contracts fix whatever the engine: the uniforms of the reproducibility contract (a
    fixed block per replicate and step from the replicate's own generator) and the Parquet
    encoding of the results contract's tables, uncompressed (the cheapest Parquet can be).
    What is left is for the model's arithmetic, stated per unit at risk and step."""
    runs = sum(t.chunk.count for t in tasks)
    startup = min(_worker_startup() for _ in range(repeat))
    budget_ms = 1e3 * 2 * (4.0 - startup) / 2000

    kernels = [Kernel(_task_world(t), _task_seeds(t)) for t in tasks]
    draws = min(_time_uniforms(kernels) for _ in range(repeat)) / runs

    sims = [_simulate(t) for t in tasks]
    plain = min(_encode_uncompressed(sims) for _ in range(repeat)) / runs
    at_risk = _units_at_risk(tasks[0]) / tasks[0].chunk.count

    left_ms = budget_ms - 1e3 * (draws + plain)
    print("500 runs/s for 2,000 runs with --workers 2 (4.0 s of wall time on two cores):")
    print(f"  worker start-up (fresh process to its first chunk)  {startup:6.2f} s")
    print(f"  CPU budget per run, the main process taking nothing {budget_ms:6.3f} ms")
    print(f"  - uniforms the reproducibility contract fixes       {1e3 * draws:6.3f} ms")
    print(f"  - Parquet encoding of the tables, uncompressed      {1e3 * plain:6.3f} ms")
    print(f"  = left for the model                                {left_ms:6.3f} ms per run")
    print(f"  units at risk, summed over the steps of a run       {at_risk:8.0f}")
    print(
        f"  = left per unit at risk and step                    {1e6 * left_ms / at_risk:6.1f} ns"
    )
    print(f"  the kernel and summary now                          {kernel_ms:6.3f} ms per run")
    print(
        f"    per unit at risk and step                         {1e6 * kernel_ms / at_risk:6.1f} ns"
    )


def _task_world(task: ChunkTask) -> World:
    return _world(task.scenario, task.scenario_hash, task.root_seed)


def _task_seeds(task: ChunkTask) -> list:
    c = task.chunk
    return [run_seed(task.root_seed, c.point, k) for k in range(c.first, c.first + c.count)]


def _worker_startup() -> float:
    """Seconds from launching a fresh Python process until it has run a one-replicate,
    six-step chunk of synthetic_world (a worker's imports and the compiled loops' loading;
    six steps, to pass the scheduled agreement at step 5)."""
    code = (
        "from diffusion_sim.loader import load_scenario, scenario_hash\n"
        "from diffusion_sim.runner import Batch, Point, run_chunk\n"
        f"s = load_scenario({str(SCENARIO)!r}, ['time.steps=6'])\n"
        "b = Batch(s.name, 1, 1, [Point(0, {}, s, scenario_hash(s))], 1, [])\n"
        "run_chunk(b.task(b.chunks[0]))\n"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def _time_uniforms(kernels: list) -> float:
    """Seconds to draw every replicate's uniforms for all its steps, in one call per
    replicate: the same stream the kernel draws a step at a time, at the least cost."""
    started = time.perf_counter()
    for kernel in kernels:
        block = np.empty(kernel.world.steps * kernel._draws, dtype=np.float32)
        for generator in kernel.generators:
            generator.random(out=block, dtype=np.float32)
    return time.perf_counter() - started


def _encode_uncompressed(sims: list) -> float:
    """Seconds to write the chunks' events, series and runs as uncompressed Parquet."""
    started = time.perf_counter()
    for sim in sims:
        for schema, build in (
            (EVENT_SCHEMA, event_table),
            (SERIES_SCHEMA, series_table),
        ):
            encoded = encoded_schema(schema)
            options = _writer_options(encoded) | {"compression": "none", "compression_level": None}
            with pq.ParquetWriter(io.BytesIO(), encoded, **options) as writer:
                for result, keys in _slices(sim, ENCODE_SLICE):
                    table = build(sim.world, result, *keys, encoded=True)
                    if table.num_rows:
                        writer.write_table(table)
        pq.write_table(sim.runs, io.BytesIO(), compression="none")
    return time.perf_counter() - started


def _units_at_risk(task: ChunkTask) -> int:
    """Units (state-mechanisms and dyad-mechanisms) at risk, summed over a chunk's steps."""
    listed = 0
    original = fused.open_units

    def counting(*args):  # type: ignore[no-untyped-def]
        nonlocal listed
        out = original(*args)
        listed += len(out[0])
        return out

    fused.open_units = counting
    try:
        Kernel(_task_world(task), _task_seeds(task)).run()
    finally:
        fused.open_units = original
    return listed


if __name__ == "__main__":
    main()
