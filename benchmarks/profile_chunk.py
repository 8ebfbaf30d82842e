"""Where a worker's time goes: one chunk of synthetic_world, phase by phase, in this process.

    .venv/bin/python benchmarks/profile_chunk.py                # phases, ms per run
    .venv/bin/python benchmarks/profile_chunk.py --profile 20   # and the kernel's top functions
    .venv/bin/python benchmarks/profile_chunk.py --codecs       # events encoding per codec

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
import time
from pathlib import Path

import pyarrow.parquet as pq

from diffusion_sim.loader import load_scenario, scenario_hash
from diffusion_sim.runner import (
    ENCODE_SLICE,
    Batch,
    Point,
    _encode_streamed,
    _simulate,
    _slices,
    _writer_options,
    encode,
    run_chunk,
)
from diffusion_sim.tables import EVENT_SCHEMA, encoded_schema, event_table

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


if __name__ == "__main__":
    main()
