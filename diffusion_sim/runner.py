"""Batches: sweep points x replicates, chunked through the kernel, on any executor.

A batch is planned as chunks of consecutive replicates of one sweep point. Each chunk runs in
one kernel call (the replicate axis), anywhere: in this process, in local worker processes,
or on a Dask cluster through ``Client.get_executor()`` (all behind ``concurrent.futures``).
Every run's random stream comes from the root seed keyed by (point, replicate) (see
``seeds.py``), so tables do not depend on workers, chunking or executor, and a replicate run
alone equals the same replicate inside a batch. A run that raises becomes a row with status
``failed`` and its error; the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .config import Scenario
from .seeds import describe, run_seed, world_seed

DEPENDENCIES = ("mesa", "numpy", "scipy", "networkx", "pydantic", "pyarrow", "pandas", "yaml")


class BatchError(Exception):
    """A batch that cannot start (bad options, unreachable scheduler)."""


@dataclass(frozen=True)
class Point:
    """One sweep point: its index, the overridden values, the resolved scenario and its hash."""

    index: int
    values: dict[str, Any]
    scenario: Scenario
    scenario_hash: str


@dataclass(frozen=True)
class Chunk:
    """Consecutive replicates ``first .. first + count - 1`` of one point."""

    point: int
    first: int
    count: int

    @property
    def id(self) -> str:
        return f"p{self.point:05d}-r{self.first:08d}"


@dataclass
class Batch:
    """A planned batch."""

    name: str
    root_seed: int
    replicates: int
    points: list[Point]
    chunk_size: int
    sweep_parameters: list[str]
    batch_id: str = ""
    chunks: list[Chunk] = field(default_factory=list)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        for p in self.points:
            digest.update(p.scenario_hash.encode())
        digest.update(f"{self.root_seed}:{self.replicates}:{self.chunk_size}".encode())
        self.batch_id = digest.hexdigest()[:12]
        self.chunks = [
            Chunk(p.index, first, min(self.chunk_size, self.replicates - first))
            for p in self.points
            for first in range(0, self.replicates, self.chunk_size)
        ]

    @property
    def n_runs(self) -> int:
        return self.replicates * len(self.points)

    def run_id(self, point: int, replicate: int) -> int:
        return point * self.replicates + replicate


# -- what runs in a worker ---------------------------------------------------------------------

_WORLDS: dict[tuple[str, int], Any] = {}


def _world(scenario: Scenario, scenario_hash: str, root_seed: int):
    """The point's world, built once per worker process."""
    from .world import build_world

    key = (scenario_hash, root_seed)
    if key not in _WORLDS:
        _WORLDS.clear()  # one point at a time is enough; keeps worker memory flat
        _WORLDS[key] = build_world(scenario, world_seed(root_seed))
    return _WORLDS[key]


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker needs for one chunk (picklable)."""

    scenario: Scenario
    scenario_hash: str
    root_seed: int
    chunk: Chunk
    replicates_per_point: int
    values: dict[str, Any]
    hr_threshold: float


def world_document(world: Any, scenario: Scenario, sweep_parameters: Sequence[str]) -> dict:
    """``world.json``: what analyses and plots need, without the model."""
    from .tables import world_summary
    from .world import calendar_year

    doc = world_summary(world)
    doc["hr_threshold"] = scenario.outputs.hr_threshold
    doc["observed"] = [
        {
            "mechanism": o.mechanism,
            "state": o.state,
            "partner": o.partner,
            "date": calendar_year(o.date),
        }
        for o in (scenario.observed or [])
    ]
    doc["sweep_parameters"] = list(sweep_parameters)
    return doc


def run_chunk(task: ChunkTask) -> dict[str, Any]:
    """Run one chunk and return its ``events``, ``series`` and ``runs`` Arrow tables."""
    import pyarrow as pa

    from .kernel import Kernel
    from .tables import event_table, series_table

    world = _world(task.scenario, task.scenario_hash, task.root_seed)
    c = task.chunk
    reps = np.arange(c.first, c.first + c.count)
    run_ids = c.point * task.replicates_per_point + reps
    points = np.full(c.count, c.point)
    seeds = [run_seed(task.root_seed, c.point, int(k)) for k in reps]
    errors: dict[int, str] = {}
    try:
        result = Kernel(world, seeds).run()
        ok_local = np.arange(c.count)
        events = event_table(world, result, run_ids, points, reps)
        series = series_table(world, result, run_ids, points, reps)
    except Exception:
        # Isolate the failing runs: each replicate alone gives exactly what it gives in a batch.
        ev_parts, se_parts, ok = [], [], []
        for j, k in enumerate(reps):
            try:
                res = Kernel(world, [seeds[j]]).run()
            except Exception as exc:
                errors[j] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
                continue
            one = (run_ids[j : j + 1], points[j : j + 1], reps[j : j + 1])
            ev_parts.append(event_table(world, res, *one))
            se_parts.append(series_table(world, res, *one))
            ok.append(j)
        ok_local = np.array(ok, dtype=np.int64)
        from .tables import EVENT_SCHEMA, SERIES_SCHEMA

        events = pa.concat_tables([EVENT_SCHEMA.empty_table(), *ev_parts])
        series = pa.concat_tables([SERIES_SCHEMA.empty_table(), *se_parts])
    runs = _runs_table(task, world, events, run_ids, reps, seeds, errors, ok_local)
    return {"events": events, "series": series, "runs": runs, "chunk": c.id}


def _runs_table(task, world, events, run_ids, reps, seeds, errors, ok_local) -> Any:
    import pandas as pd
    import pyarrow as pa

    from .analysis import summarise_runs

    c = task.chunk
    frame = pd.DataFrame(
        {
            "run_id": run_ids.astype(np.int64),
            "point": np.full(c.count, c.point, dtype=np.int32),
            "replicate": reps.astype(np.int32),
            "seed": [describe(s) for s in seeds],
            "status": ["failed" if j in errors else "ok" for j in range(c.count)],
            "error": [errors.get(j) for j in range(c.count)],
            "params": json.dumps(task.values, sort_keys=True),
        }
    )
    for path, value in task.values.items():
        frame[f"param:{path}"] = value
    if len(ok_local):
        doc = world_document(world, task.scenario, list(task.values))
        doc["hr_threshold"] = task.hr_threshold
        ok_runs = frame.iloc[ok_local][["run_id", "point", "replicate"]]
        summary = summarise_runs(events.to_pandas(), doc, ok_runs)
        summary = summary.drop(columns=[c for c in ("point", "replicate") if c in summary])
        frame = frame.merge(summary, on="run_id", how="left")
    return pa.Table.from_pandas(frame, preserve_index=False)


# -- executors ---------------------------------------------------------------------------------


class InlineExecutor(Executor):
    """Runs each task at submission, in this process (``--workers 1``)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@contextmanager
def make_executor(workers: int, scheduler: str | None) -> Iterator[Executor]:
    """Local processes (default), this process (``workers == 1``), or a Dask cluster."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError as exc:
            raise BatchError(
                "--scheduler needs Dask distributed: pip install 'diffusion-sim[dask]'"
            ) from exc
        try:
            client = Client(scheduler, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        try:
            yield client.get_executor()
        finally:
            client.close()
        return
    if workers < 1:
        raise BatchError(f"--workers must be at least 1 (got {workers})")
    if workers == 1:
        yield InlineExecutor()
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


# -- the batch loop ----------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Python and dependency versions for the manifest."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"diffusion-sim": __version__, "python": platform.python_version()}
    for name in DEPENDENCIES:
        dist = {"yaml": "PyYAML"}.get(name, name)
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class BatchReport:
    path: Any
    total: int
    ok: int
    failed: int
    skipped_chunks: int
    seconds: float
    already_complete: bool = False


def execute(
    batch: Batch,
    store: Any,
    executor: Executor,
    *,
    in_flight: int = 4,
    on_progress: Callable[[int], None] | None = None,
) -> BatchReport:
    """Run every chunk not yet done, writing each as it finishes (resumable)."""
    started = time.time()
    done = store.done_chunks()
    todo = [c for c in batch.chunks if c.id not in done]
    skipped = len(batch.chunks) - len(todo)
    if on_progress and skipped:
        on_progress(sum(c.count for c in batch.chunks if c.id in done))
    points = {p.index: p for p in batch.points}
    queue = iter(todo)
    pending: dict[Future, Chunk] = {}
    failed = 0

    def submit_next() -> bool:
        chunk = next(queue, None)
        if chunk is None:
            return False
        p = points[chunk.point]
        task = ChunkTask(
            p.scenario, p.scenario_hash, batch.root_seed, chunk, batch.replicates, p.values,
            p.scenario.outputs.hr_threshold,
        )
        pending[executor.submit(run_chunk, task)] = chunk
        return True

    for _ in range(max(1, in_flight)):
        if not submit_next():
            break
    while pending:
        finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in finished:
            chunk = pending.pop(future)
            tables = future.result()
            store.write_chunk(chunk.id, tables)
            failed += int((tables["runs"].column("status").to_numpy(zero_copy_only=False)
                           == "failed").sum())
            if on_progress:
                on_progress(chunk.count)
            submit_next()
    return BatchReport(store.path, batch.n_runs, 0, failed, skipped, time.time() - started)
