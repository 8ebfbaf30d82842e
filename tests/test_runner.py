"""The batch runner's parts: planning, chunk tables, the bounded submission loop, the store."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from batchutil import MINIMAL, SYNTHETIC

from diffusion_sim import kernel
from diffusion_sim.loader import load_scenario, scenario_hash
from diffusion_sim.runner import (
    Batch,
    ExecutorInfo,
    InlineExecutor,
    Point,
    chunk_tables,
    default_workers,
    estimated_serial_seconds,
    execute,
    param_types,
    run_chunk,
    run_session,
    usable_cores,
    writing_session,
)
from diffusion_sim.seeds import world_seed
from diffusion_sim.store import BatchStore
from diffusion_sim.world import build_world


def _batch(replicates=10, chunk=4, seed=5, points=({},)):
    scenario = load_scenario(MINIMAL, [f"runs.replicates={replicates}", f"runs.seed={seed}"])
    plan = [Point(i, dict(v), scenario, scenario_hash(scenario)) for i, v in enumerate(points)]
    return Batch(
        scenario.name, seed, replicates, plan, chunk, sorted({k for p in points for k in p})
    )


def test_chunks_cover_every_run_once():
    """Chunks of a point are consecutive replicates covering 0..replicates-1 exactly once."""
    batch = _batch(replicates=10, chunk=4, points=({"a": 1}, {"a": 2}))
    covered = [(c.point, c.first + i) for c in batch.chunks for i in range(c.count)]
    assert covered == [(p, k) for p in (0, 1) for k in range(10)]
    assert [c.count for c in batch.chunks] == [4, 4, 2, 4, 4, 2]


def test_batch_id_depends_on_scenario_seed_replicates_chunk_only():
    """The batch id changes with seed, replicates or chunk size and is otherwise stable."""
    base = _batch().batch_id
    assert _batch().batch_id == base
    assert _batch(seed=6).batch_id != base
    assert _batch(replicates=11).batch_id != base
    assert _batch(chunk=5).batch_id != base


def test_param_types_are_one_per_column_for_the_whole_batch():
    """Mixed int/float grid values get float64; so every part has the same param schema."""
    points = [{"w": 0.5, "flag": True, "n": 1, "s": "x"}, {"w": 1, "flag": False, "n": 2, "s": 3}]
    assert param_types(points) == {"flag": "bool", "n": "int64", "s": "string", "w": "float64"}


def test_chunk_tables_do_not_depend_on_chunk_boundaries():
    """Replicates 0..5 as one chunk or as chunks 0..2 and 3..5 give the same rows."""
    whole = _batch(replicates=6, chunk=6)
    split = _batch(replicates=6, chunk=3)
    one = chunk_tables(whole.task(whole.chunks[0]))
    parts = [chunk_tables(split.task(c)) for c in split.chunks]
    for name in ("events", "series", "runs"):
        joined = pa.concat_tables([p[name] for p in parts])
        assert joined.schema == one[name].schema
        pd.testing.assert_frame_equal(joined.to_pandas(), one[name].to_pandas(), check_exact=True)


def test_runs_schema_is_the_same_with_and_without_failures(monkeypatch):
    """A chunk with a failed run writes the same runs schema (nulls, not a type change)."""
    batch = _batch(replicates=4, chunk=4)
    clean = chunk_tables(batch.task(batch.chunks[0]))["runs"]
    original = kernel.Kernel.run

    from diffusion_sim.seeds import run_seed

    poisoned = np.random.PCG64(run_seed(5, 0, 2)).state

    # Every kernel with the poisoned replicate fails, so the chunk is rerun run by run.
    def run_any(self, steps=None):
        states = [g.bit_generator.state for g in self.generators]
        if poisoned in states:
            raise RuntimeError("poisoned")
        return original(self, steps)

    monkeypatch.setattr(kernel.Kernel, "run", run_any)
    failed = chunk_tables(batch.task(batch.chunks[0]))["runs"]
    assert failed.schema == clean.schema
    assert failed.column("status").to_pylist() == ["ok", "ok", "failed", "ok"]
    assert failed.column("visa_regime:final_share").null_count == 1
    ok = [0, 1, 3]
    pd.testing.assert_frame_equal(
        failed.take(ok).to_pandas(), clean.take(ok).to_pandas(), check_exact=True
    )


def test_execute_keeps_at_most_in_flight_chunks_pending(tmp_path, monkeypatch):
    """The loop never holds more than in_flight unfinished-or-unwritten chunks (flat memory)."""
    batch = _batch(replicates=20, chunk=2)
    store = BatchStore(tmp_path / "b")
    outstanding, peak = [0], [0]
    real_write = store.write_chunk

    class Counting(InlineExecutor):
        def submit(self, fn, /, *args, **kwargs):
            outstanding[0] += 1
            peak[0] = max(peak[0], outstanding[0])
            return super().submit(fn, *args, **kwargs)

    def write(chunk_id, parts):
        outstanding[0] -= 1
        real_write(chunk_id, parts)

    monkeypatch.setattr(store, "write_chunk", write)
    report = execute(batch, store, Counting(), in_flight=3)
    assert report.ok == 20 and report.failed == 0
    assert peak[0] == 3 + 1  # in_flight, plus the next one submitted before a write
    assert len(store.done_chunks()) == 10


def test_execute_skips_done_chunks(tmp_path):
    """Chunks whose runs part exists are not run again (resume)."""
    batch = _batch(replicates=8, chunk=2)
    store = BatchStore(tmp_path / "b")
    first = batch.chunks[0]
    store.write_chunk(first.id, run_chunk(batch.task(first))["parts"])
    calls = []

    class Spy(InlineExecutor):
        def submit(self, fn, /, *args, **kwargs):
            calls.append(args[0].chunk.id)
            return super().submit(fn, *args, **kwargs)

    report = execute(batch, store, Spy())
    assert first.id not in calls and len(calls) == 3
    assert report.skipped_chunks == 1 and report.runs_this_session == 6


def test_parts_are_written_atomically(tmp_path, monkeypatch):
    """A write interrupted mid-part leaves no part file (only a temporary, later removed)."""
    batch = _batch(replicates=2, chunk=2)
    store = BatchStore(tmp_path / "b")
    parts = run_chunk(batch.task(batch.chunks[0]))["parts"]
    import diffusion_sim.store as store_module

    def broken_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module.os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        store.write_chunk(batch.chunks[0].id, parts)
    monkeypatch.undo()
    assert not list(store.path.rglob("part-*.parquet"))
    assert store.done_chunks() == set()
    store.write_chunk(batch.chunks[0].id, parts)
    assert pq.read_table(store.part_path("runs", batch.chunks[0].id)).num_rows == 2


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_results_files_get_the_permissions_of_the_umask(tmp_path, umask):
    """Parts and JSON files are created like any file (0666 minus the umask), not owner-only,
    so a shared results folder can be read by colleagues when the umask allows it."""
    batch = _batch(replicates=2, chunk=2)
    parts = run_chunk(batch.task(batch.chunks[0]))["parts"]
    old = os.umask(umask)
    try:
        store = BatchStore(tmp_path / "b")
        store.write_chunk(batch.chunks[0].id, parts)
        store.write_json("manifest.json", {"status": "running"})
    finally:
        os.umask(old)
    written = [store.path / "manifest.json", store.part_path("runs", batch.chunks[0].id)]
    assert [f.stat().st_mode & 0o777 for f in written] == [0o666 & ~umask] * 2


def test_parts_read_back_with_the_public_schemas_and_equal_the_tables(tmp_path):
    """Part files hold the events and series tables exactly: plain strings (written as
    dictionaries, without the Arrow schema), the declared nullability, the same values."""
    from diffusion_sim.tables import EVENT_SCHEMA, SERIES_SCHEMA

    batch = _batch(replicates=6, chunk=6)
    task = batch.task(batch.chunks[0])
    store = BatchStore(tmp_path / "b")
    store.write_chunk(task.chunk.id, run_chunk(task)["parts"])
    expected = chunk_tables(task)
    for name, schema in (("events", EVENT_SCHEMA), ("series", SERIES_SCHEMA)):
        back = pq.read_table(store.part_path(name, task.chunk.id))
        assert back.schema.equals(schema), name
        assert back.num_rows > 0
        pd.testing.assert_frame_equal(back.to_pandas(), expected[name].to_pandas())  # NaN == NaN


def test_event_order_key_equals_a_lexsort_of_the_five_keys():
    """The one-key stable sort of kernel events is the (replicate, step, mechanism, state,
    partner) lexsort, on both its paths (packed int64 key and the lexsort fallback)."""
    rng = np.random.default_rng(3)
    size, sizes = 5000, (7, 11, 3, 40)
    events = {
        "replicate": rng.integers(0, sizes[0], size),
        "step": rng.integers(0, sizes[1], size),
        "mechanism": rng.integers(0, sizes[2], size),
        "state": rng.integers(0, sizes[3], size),
        "partner": rng.integers(-1, sizes[3], size),
    }
    keys = [events[k] for k in ("partner", "state", "mechanism", "step", "replicate")]
    expected = np.lexsort(keys)
    assert np.array_equal(kernel._event_order(events, sizes), expected)
    huge = (2**20, 2**20, 2**4, 2**10)  # too many combinations for one int64 key
    assert np.array_equal(kernel._event_order(events, huge), expected)


@pytest.mark.parametrize(
    ("path", "replicates", "chunk", "cores", "expected"),
    [
        (MINIMAL, 20, 4, 8, 1),  # five chunks, a fraction of a second of work: this process
        (SYNTHETIC, 20, 4, 8, 1),
        (MINIMAL, 200_000, 64, 2, 2),  # many cheap runs: one worker per core
        (SYNTHETIC, 2000, 64, 2, 2),
        (SYNTHETIC, 2000, 64, 64, 32),  # no more workers than chunks (2000 / 64)
        (SYNTHETIC, 64, 64, 8, 1),  # one chunk cannot be shared
    ],
)
def test_default_workers_start_processes_only_for_batches_worth_it(
    path, replicates, chunk, cores, expected
):
    """Without --workers a batch runs in this process unless its estimated work repays
    starting worker processes; then one worker per core, no more than there are chunks."""
    scenario = load_scenario(path, [f"runs.replicates={replicates}"])
    point = Point(0, {}, scenario, scenario_hash(scenario))
    batch = Batch(scenario.name, 1, replicates, [point], chunk, [])
    world = build_world(scenario, world_seed(1))
    assert default_workers(batch, world, cores) == expected


def test_estimated_work_grows_with_runs_steps_and_world_size():
    """The estimate is linear in runs and larger for longer runs and bigger worlds."""
    small = build_world(load_scenario(MINIMAL), world_seed(1))
    longer = build_world(load_scenario(MINIMAL, ["time.steps=200"]), world_seed(1))
    big = build_world(load_scenario(SYNTHETIC), world_seed(1))
    one = estimated_serial_seconds(small, 1)
    assert estimated_serial_seconds(small, 10) == pytest.approx(10 * one)
    assert one < estimated_serial_seconds(longer, 1) < estimated_serial_seconds(big, 1)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_usable_cores_follow_the_cpu_affinity():
    """Pinned to one CPU (taskset, a container), the default counts one core, not all."""
    old = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(old)})
        assert usable_cores() == 1
    finally:
        os.sched_setaffinity(0, old)
    assert usable_cores() == len(old)


def test_session_stops_the_workers_before_reading_the_runs_table(tmp_path, monkeypatch):
    """The end of a session reads the runs table (pyarrow, pandas) only once the executor is
    shut down, so that peak never adds to the workers' (the memory budget sums processes)."""
    batch = _batch(replicates=6, chunk=2)
    scenario = batch.points[0].scenario
    store = BatchStore(tmp_path / "b")
    stopped = []

    class Recording(InlineExecutor):
        def shutdown(self, wait=True, *, cancel_futures=False):
            stopped.append(True)

    real_read = store.read_table

    def read(table, columns=None):
        assert stopped, "the runs table was read while the executor was still up"
        return real_read(table, columns)

    monkeypatch.setattr(store, "read_table", read)
    world = build_world(scenario, world_seed(batch.root_seed))
    info = ExecutorInfo(Recording(), "recording", 1)
    with writing_session(store, batch, force=False, say=lambda _m: None) as session:
        manifest, report = run_session(batch, store, scenario, [], world, info, session)
    assert stopped and manifest["status"] == "complete" and report.ok == 6
