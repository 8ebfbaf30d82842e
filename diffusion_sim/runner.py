"""Batches: sweep points x replicates, chunked through the kernel, on any executor.

A batch is planned as chunks of consecutive replicates of one sweep point. Each chunk runs in
one kernel call (the replicate axis), anywhere: in this process (``--workers 1``), in local
worker processes, or on a Dask cluster through ``Client.get_executor()`` (all behind
``concurrent.futures``). Every run's random stream comes from the root seed keyed by (point,
replicate) (see ``seeds.py``), so tables do not depend on workers, chunking or executor, and a
replicate run alone equals the same replicate inside a batch. A run that raises becomes a row
with status ``failed`` and its error; the batch goes on.

The worker does all per-chunk work: kernel, tables, summary metrics (``summary.py``, from the
kernel's arrays) and the zstd Parquet encoding, and sends back the encoded parts (a few MB
instead of ~100 MB of Arrow buffers). The parent only writes bytes to the store, so it is never
the bottleneck and holds at most ``in_flight`` chunks in memory whatever the batch size.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .config import Scenario
from .seeds import describe, run_seed, world_seed

DEPENDENCIES = (
    "mesa",
    "numpy",
    "scipy",
    "numba",
    "networkx",
    "pydantic",
    "pyarrow",
    "pandas",
    "yaml",
    "distributed",
)
#: zstd level of the Parquet parts: level 1 is as small as 3 on these tables and faster.
COMPRESSION = ("zstd", 1)
#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT = "5s"

RUN_SEED_RULE = (
    "numpy.random.SeedSequence(root_seed, spawn_key=(1, point, replicate)); "
    "each run's seed is in runs.parquet column `seed` as 'entropy:1.point.replicate'"
)
WORLD_SEED_RULE = "numpy.random.SeedSequence(root_seed, spawn_key=(0,))"


class BatchError(Exception):
    """A batch that cannot start or go on (bad options, unreachable scheduler, dead pool)."""


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


def param_types(points: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Arrow type of each ``param:<path>`` column, the same in every part of the batch."""
    out: dict[str, str] = {}
    for name in sorted({k for p in points for k in p}):
        values = [p[name] for p in points if name in p]
        if all(isinstance(v, bool) for v in values):
            out[name] = "bool"
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[name] = "int64"
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[name] = "float64"
        else:
            out[name] = "string"
    return out


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
    param_types: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        for p in self.points:
            digest.update(p.scenario_hash.encode())
        digest.update(f"{self.root_seed}:{self.replicates}:{self.chunk_size}".encode())
        if self.sweep_parameters:
            # a sweep whose points all equal the base (a default value) is not the plain run
            points = [p.values for p in self.points]
            digest.update(json.dumps([self.sweep_parameters, points], sort_keys=True).encode())
        # A new package version may simulate differently: it gets its own folder rather than
        # silently resuming (or reporting complete) a batch made by other code.
        digest.update(f"diffusion-sim {__version__}".encode())
        self.batch_id = digest.hexdigest()[:12]
        self.chunks = [
            Chunk(p.index, first, min(self.chunk_size, self.replicates - first))
            for p in self.points
            for first in range(0, self.replicates, self.chunk_size)
        ]
        self.param_types = param_types([p.values for p in self.points])

    @property
    def n_runs(self) -> int:
        return self.replicates * len(self.points)

    def run_id(self, point: int, replicate: int) -> int:
        return point * self.replicates + replicate

    def task(self, chunk: Chunk) -> ChunkTask:
        p = self.points[chunk.point]
        return ChunkTask(
            p.scenario,
            p.scenario_hash,
            self.root_seed,
            chunk,
            self.replicates,
            p.values,
            p.scenario.outputs.hr_threshold,
            self.param_types,
        )


# -- what runs in a worker ---------------------------------------------------------------------

_WORLDS: dict[tuple[str, int], Any] = {}


def _world(scenario: Scenario, scenario_hash: str, root_seed: int) -> Any:
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
    param_types: dict[str, str] = field(default_factory=dict)


#: Top-level scenario keys whose values shape ``world.json`` (the states, their attributes,
#: regions and sponsors, the time window, scheduled shocks, the observed record).
_WORLD_KEYS = ("time", "states", "generate", "events", "observed")


def world_varying(sweep_parameters: Sequence[str]) -> list[str]:
    """The swept paths that change what ``world.json`` records: those under ``_WORLD_KEYS``,
    a mechanism's kind, label or TCN delay, and ``outputs.hr_threshold``. ``world.json``
    describes the base scenario, so curves rebuilt from it cannot pool the points of such a
    sweep (each run's stored summary in ``runs.parquet`` is still its own point's)."""
    varying = []
    for path in sweep_parameters:
        parts = path.split(".")
        if (
            parts[0] in _WORLD_KEYS
            or path == "outputs.hr_threshold"
            or (parts[0] == "mechanisms" and parts[-1] in ("kind", "label", "tcn_delay"))
        ):
            varying.append(path)
    return varying


def world_document(world: Any, scenario: Scenario, sweep_parameters: Sequence[str]) -> dict:
    """``world.json``: what analyses and plots need, without the model; ``varies_with`` lists
    the swept paths that make it describe the base scenario only (``world_varying``)."""
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
    doc["varies_with"] = world_varying(sweep_parameters)
    return doc


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"


#: Replicates per slice when a worker turns kernel arrays into Parquet row groups: bounds the
#: worker's memory (the event table of a whole 256-replicate chunk is ~100 MB in Arrow).
ENCODE_SLICE = 64


@dataclass
class _Simulated:
    """A chunk's kernel output: ``pieces`` of (result, first local replicate), run keys, status."""

    world: Any
    pieces: list[tuple[Any, int]]
    run_ids: np.ndarray
    points: np.ndarray
    reps: np.ndarray
    runs: Any  # the runs Arrow table


def _simulate(task: ChunkTask) -> _Simulated:
    """Run the chunk's kernel. When it raises, run again replicate by replicate (each gives
    exactly what it gives inside the batch), so only the runs that raise are ``failed``."""
    from .kernel import Kernel
    from .summary import summarise

    c = task.chunk
    reps = np.arange(c.first, c.first + c.count, dtype=np.int64)
    run_ids = c.point * task.replicates_per_point + reps
    points = np.full(c.count, c.point, dtype=np.int64)
    seeds = [run_seed(task.root_seed, c.point, int(k)) for k in reps]
    errors: dict[int, str] = {}
    pieces: list[tuple[Any, int]] = []
    try:
        world = _world(task.scenario, task.scenario_hash, task.root_seed)
    except Exception as exc:  # a sweep point whose world cannot be built: every run fails
        errors = dict.fromkeys(range(c.count), _error_text(exc))
        runs = _runs_table(task, None, reps, run_ids, seeds, errors, np.zeros(0, np.int64), {})
        return _Simulated(None, [], run_ids, points, reps, runs)
    try:
        result = Kernel(world, seeds).run()
        metrics = summarise(world, result, c.count, task.hr_threshold)
        pieces = [(result, 0)]
        ok_local = np.arange(c.count)
    except Exception:
        ok, parts = [], []
        for j in range(c.count):
            try:
                res = Kernel(world, [seeds[j]]).run()
                parts.append(summarise(world, res, 1, task.hr_threshold))
            except Exception as exc:
                errors[j] = _error_text(exc)
                continue
            pieces.append((res, j))
            ok.append(j)
        ok_local = np.array(ok, dtype=np.int64)
        metrics = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    runs = _runs_table(task, world, reps, run_ids, seeds, errors, ok_local, metrics)
    return _Simulated(world, pieces, run_ids, points, reps, runs)


def _slices(sim: _Simulated, size: int) -> Iterator[tuple[Any, tuple[np.ndarray, ...]]]:
    """(result restricted to at most ``size`` replicates, its run keys), in replicate order."""
    from .kernel import KernelResult

    for result, offset in sim.pieces:
        n = int(result.series["replicate"].max()) + 1 if result.series else 1
        for lo in range(0, n, size):
            hi = min(n, lo + size)
            keys = (
                sim.run_ids[offset + lo : offset + hi],
                sim.points[offset + lo : offset + hi],
                sim.reps[offset + lo : offset + hi],
            )
            if lo == 0 and hi == n:
                yield result, keys
                continue
            sub = []
            for cols in (result.events, result.series):
                if not cols:
                    sub.append(cols)
                    continue
                # rows are in replicate order: a slice is a view
                start, stop = np.searchsorted(cols["replicate"], [lo, hi])
                part = {k: v[start:stop] for k, v in cols.items()}
                part["replicate"] = part["replicate"] - lo
                sub.append(part)
            yield KernelResult(sub[0], sub[1]), keys


def chunk_tables(task: ChunkTask) -> dict[str, Any]:
    """Run one chunk: its ``events``, ``series`` and ``runs`` Arrow tables."""
    import pyarrow as pa

    from .tables import EVENT_SCHEMA, SERIES_SCHEMA, event_table, series_table

    sim = _simulate(task)
    events = [event_table(sim.world, r, *keys) for r, keys in _slices(sim, 1 << 30)]
    series = [series_table(sim.world, r, *keys) for r, keys in _slices(sim, 1 << 30)]
    return {
        "events": pa.concat_tables([EVENT_SCHEMA.empty_table(), *events]),
        "series": pa.concat_tables([SERIES_SCHEMA.empty_table(), *series]),
        "runs": sim.runs,
    }


def _param_array(value: Any, kind: str, n: int) -> Any:
    import pyarrow as pa

    if kind == "string":
        text = value if isinstance(value, str) else json.dumps(value)
        return pa.array([text] * n, pa.string())
    arrow_type = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64()}[kind]
    return pa.array([value] * n, arrow_type)


def _runs_table(
    task: ChunkTask,
    world: Any,
    reps: np.ndarray,
    run_ids: np.ndarray,
    seeds: Sequence[np.random.SeedSequence],
    errors: Mapping[int, str],
    ok_local: np.ndarray,
    metrics: Mapping[str, np.ndarray],
) -> Any:
    """runs.parquet rows of a chunk: keys, seed, status, error, parameters, summary metrics."""
    import pyarrow as pa

    from .summary import metric_schema

    c = task.chunk
    cols: dict[str, Any] = {
        "run_id": pa.array(run_ids, pa.int64()),
        "point": pa.array(np.full(c.count, c.point), pa.int32()),
        "replicate": pa.array(reps, pa.int32()),
        "seed": pa.array([describe(s) for s in seeds], pa.string()),
        "status": pa.array(["failed" if j in errors else "ok" for j in range(c.count)]),
        "error": pa.array([errors.get(j) for j in range(c.count)], pa.string()),
        "params": pa.array([json.dumps(task.values, sort_keys=True)] * c.count, pa.string()),
    }
    for path, kind in task.param_types.items():
        cols[f"param:{path}"] = _param_array(task.values.get(path), kind, c.count)
    if world is not None:
        mask = np.ones(c.count, dtype=bool)
        mask[ok_local] = False
        for f in metric_schema(world):
            full = np.zeros(c.count, dtype=np.int64 if pa.types.is_integer(f.type) else float)
            if len(ok_local):
                full[ok_local] = metrics[f.name]
            cols[f.name] = pa.array(full, f.type, mask=mask)
    return pa.table(cols)


#: Parquet writer options: zstd; column statistics only for the run and step keys (what
#: readers filter on); string columns come dictionary-encoded (``tables.encoded_schema``) and
#: the Arrow schema is not stored, so they read back as plain strings.
_STATISTICS = ["run_id", "point", "replicate", "step"]


def _writer_options(schema: Any) -> dict[str, Any]:
    import pyarrow as pa

    return {
        "compression": COMPRESSION[0],
        "compression_level": COMPRESSION[1],
        "write_statistics": [c for c in _STATISTICS if c in schema.names],
        "use_dictionary": [f.name for f in schema if pa.types.is_dictionary(f.type)],
        "store_schema": False,
    }


def encode(table: Any) -> bytes:
    """A table as Parquet bytes (zstd)."""
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression=COMPRESSION[0], compression_level=COMPRESSION[1])
    return sink.getvalue()


def _encode_streamed(sim: _Simulated, name: str) -> bytes:
    """The chunk's events or series as Parquet bytes, one row group per replicate slice, so
    only a slice's Arrow table is in memory at a time."""
    import pyarrow.parquet as pq

    from .tables import EVENT_SCHEMA, SERIES_SCHEMA, encoded_schema, event_table, series_table

    schema, build = (
        (EVENT_SCHEMA, event_table) if name == "events" else (SERIES_SCHEMA, series_table)
    )
    schema = encoded_schema(schema)
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema, **_writer_options(schema)) as writer:
        for result, keys in _slices(sim, ENCODE_SLICE):
            table = build(sim.world, result, *keys, encoded=True)
            if table.num_rows:
                writer.write_table(table)
    return sink.getvalue()


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Undo Dask's ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers (glibc only).

    With that setting glibc returns freed memory at once and serves every large temporary
    from fresh pages: the kernel ran ~1.7x slower inside Dask workers. These values are
    where glibc's own dynamic thresholds settle (mmap 32 MiB, trim twice that).
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def run_chunk(task: ChunkTask) -> dict[str, Any]:
    """Run one chunk; return its Parquet-encoded parts and run counts (what a worker sends)."""
    _tune_malloc()
    started = time.perf_counter()
    sim = _simulate(task)
    parts = {name: _encode_streamed(sim, name) for name in ("events", "series")}
    parts["runs"] = encode(sim.runs)
    status = sim.runs.column("status").to_pylist()
    failed = status.count("failed")
    return {
        "chunk": task.chunk.id,
        "parts": parts,
        "ok": len(status) - failed,
        "failed": failed,
        "seconds": time.perf_counter() - started,
    }


def _warm_up() -> None:
    """Imports a worker needs, done once when the worker starts. A worker ignores Ctrl-C:
    the command stops the pool itself and says how to resume."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import kernel, summary, tables, world  # noqa: F401


# -- executors ---------------------------------------------------------------------------------


class InlineExecutor(Executor):
    """Runs each task at submission, in this process (``--workers 1``)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # Ctrl-C and exits stop the batch at once
            future.set_exception(exc)
        return future


#: Local worker processes pay off only for batches with more simulation than this (seconds of
#: one core): each worker first spends about 1 s of CPU on imports, pandas (through pyarrow)
#: and loading the compiled loops. ``--workers 2`` overtook one process at 1.4-1.6 s of
#: serial work on the development machine (``benchmarks/bench_workers.py``).
SERIAL_SECONDS_FOR_WORKERS = 1.5
#: A run's cost on the development machine: a fixed part, and one per state and per unit that
#: can adopt (state-mechanism or dyad-mechanism) and step. On the shipped scenarios a run cost
#: 0.29 ms in the smallest world and 24-58 ns per state or unit and step beyond it; the larger
#: value is taken, so the estimate errs high.
_RUN_SECONDS, _ELEMENT_STEP_SECONDS = 3e-4, 6e-8


def estimated_serial_seconds(world: Any, runs: int) -> float:
    """An estimate, erring high, of the batch's simulation time on one core of the development
    machine: per run, a fixed cost plus one per state and per unit that can adopt, per step."""
    units = world.n * len(world.unilateral) + len(world.dyads) * len(world.bilateral)
    per_run = _RUN_SECONDS + _ELEMENT_STEP_SECONDS * world.steps * (world.n + units)
    return runs * per_run


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, as ``taskset`` or a container sets
    it), not all the machine's cores."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_workers(batch: Batch, world: Any, cores: int) -> int:
    """``--workers`` when not given: this process for a batch too small to repay starting
    worker processes, else one worker per core (no more than there are chunks)."""
    if estimated_serial_seconds(world, batch.n_runs) < SERIAL_SECONDS_FOR_WORKERS:
        return 1
    return max(1, min(cores, len(batch.chunks)))


@dataclass
class ExecutorInfo:
    """What the batch loop needs to know about an executor."""

    executor: Executor
    description: str
    slots: int


@contextmanager
def make_executor(workers: int, scheduler: str | None) -> Iterator[ExecutorInfo]:
    """Local processes (default), this process (``workers == 1``), or a Dask cluster."""
    if scheduler:
        with _dask_executor(scheduler) as info:
            yield info
        return
    if workers < 1:
        raise BatchError(f"--workers must be at least 1 (got {workers})")
    if workers == 1:
        yield ExecutorInfo(InlineExecutor(), "this process", 1)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: workers are forked from a small clean server (no threads, nothing
    # imported), so they start in parallel and each imports only what it needs. (Preloading
    # the heavy modules in the server saves CPU but not wall time, and its copy of them would
    # count against the memory budget.)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([])  # not even the default ["__main__"]
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_warm_up)
    try:
        yield ExecutorInfo(pool, f"local processes x{workers}", workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _dask_executor(scheduler: str) -> Iterator[ExecutorInfo]:
    try:
        from distributed import Client
    except ImportError as exc:
        raise BatchError(
            "--scheduler needs Dask distributed: pip install 'diffusion-sim[dask]'"
        ) from exc
    _check_address(scheduler)
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:  # OSError, TimeoutError, ValueError (bad address) ...
        raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    try:
        threads = sum(client.nthreads().values()) or 1
        yield ExecutorInfo(client.get_executor(pure=False), f"dask {scheduler}", threads)
    finally:
        client.close()


def _check_address(scheduler: str) -> None:
    """Refuse a malformed scheduler address before a ``Client`` is made: a client that fails
    on one keeps trying to close for 10 s after the error and then prints a traceback."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, location = parse_address(scheduler)
        if scheme != "inproc":
            parse_host_port(location)
    except ValueError as exc:
        raise BatchError(f"--scheduler {scheduler!r}: {exc} (expected tcp://HOST:PORT)") from None


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
    """What a session of a batch did."""

    path: Any
    total: int
    ok: int
    failed: int
    skipped_chunks: int
    seconds: float
    runs_this_session: int = 0
    worker_seconds: float = 0.0
    already_complete: bool = False


@dataclass
class Session:
    """What a writing session starts from: the manifest as it is once the lock is held (None
    with ``--force``), and the chunks already done."""

    previous: dict[str, Any] | None
    done: set[str]


@contextmanager
def writing_session(
    store: Any, batch: Batch, *, force: bool, say: Callable[[str], None]
) -> Iterator[Session]:
    """Hold the batch's write lock while a session writes it: with ``force`` the old batch is
    removed; the folder must be writable and hold nothing but results; chunks whose parts do
    not read (a crash, a full disk) are removed so they run again; stray temporaries go. The
    manifest and the done chunks are read once the lock is held, so a session that finished
    meanwhile is seen."""
    with store.lock() as locked:
        if not locked:
            say(
                f"warning: the file system cannot lock {store.path}; do not run this batch "
                "from two commands at once"
            )
        if force and store.has_results():
            store.clear()
            say(f"Starting over (--force): removed the old {store.path}")
        store.check_writable()
        store.check_tables()
        done, broken = store.scan_chunks()
        if broken:
            store.remove_chunks(broken)
            say(f"{len(broken)} chunk(s) had parts that do not read; they run again")
        store.remove_stray_temporaries()
        if done:
            say(f"Resuming {store.path}: {len(done)} of {len(batch.chunks)} chunks done")
        yield Session(None if force else store.manifest(), done)


def is_complete(store: Any, batch: Batch, manifest: Mapping[str, Any] | None) -> bool:
    """The manifest says complete and every chunk's parts are there and read."""
    if not manifest or manifest.get("status") != "complete":
        return False
    done = store.done_chunks()
    return all(c.id in done for c in batch.chunks)


def check_all_written(store: Any, batch: Batch) -> None:
    """Raise :class:`BatchError` unless every chunk's ``runs`` part is in place (one removed
    while the batch ran): the batch is then not marked complete, and the same command resumes
    it. Parts were checked when the session started or written by it, so names suffice."""
    missing = [c.id for c in batch.chunks if not store.has_chunk(c.id)]
    if missing:
        raise BatchError(
            f"{len(missing)} of {len(batch.chunks)} chunks are missing from {store.path} "
            f"(first: {missing[0]}); run the same command again to finish the batch"
        )


def run_session(
    batch: Batch,
    store: Any,
    scenario: Scenario,
    overrides: Sequence[str],
    world: Any,
    executor: ExecutorInfo,
    session: Session,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], BatchReport]:
    """Write a session of a batch (inside ``writing_session``): the resolved scenario,
    ``world.json`` and the manifest, then every chunk not done, then the finished manifest.
    Returns (manifest, report)."""
    from .loader import dump_scenario

    store.write_text("scenario.yaml", dump_scenario(scenario))
    store.write_json("world.json", world_document(world, scenario, batch.sweep_parameters))
    manifest = start_manifest(batch, scenario, overrides, executor.description, session.previous)
    store.write_json("manifest.json", manifest)
    report = execute(
        batch,
        store,
        executor.executor,
        in_flight=executor.slots + 1,
        on_progress=on_progress,
        done=session.done,
    )
    check_all_written(store, batch)
    # The workers go before this process reads the runs table (pyarrow and pandas): the two
    # peaks must not add up (the memory budget counts every process).
    executor.executor.shutdown(wait=True)
    counts = store.read_table("runs", columns=["status"])["status"].value_counts().to_dict()
    manifest = finish_manifest(manifest, report, counts)
    store.write_json("manifest.json", manifest)
    return manifest, report


def execute(
    batch: Batch,
    store: Any,
    executor: Executor,
    *,
    in_flight: int = 4,
    on_progress: Callable[[int], None] | None = None,
    done: set[str] | None = None,
) -> BatchReport:
    """Run every chunk not yet done (``done``, else read from the store), writing each as it
    finishes (resumable).

    At most ``in_flight`` chunks are submitted and not yet written, which bounds the memory of
    this process whatever the number of runs. ``ok`` / ``failed`` count this session's runs.
    """
    from concurrent.futures.process import BrokenProcessPool

    started = time.perf_counter()
    done = store.done_chunks() if done is None else done
    todo = [c for c in batch.chunks if c.id not in done]
    skipped = len(batch.chunks) - len(todo)
    if on_progress and skipped:
        skip = getattr(on_progress, "skip", on_progress)
        skip(sum(c.count for c in batch.chunks if c.id in done))
    queue = iter(todo)
    pending: dict[Future, Chunk] = {}
    ok = failed = 0
    worker_seconds = 0.0

    def submit_next() -> None:
        chunk = next(queue, None)
        if chunk is not None:
            pending[executor.submit(run_chunk, batch.task(chunk))] = chunk

    for _ in range(max(1, in_flight)):
        submit_next()
    try:
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in finished:
                chunk = pending.pop(future)
                out = future.result()
                submit_next()  # keep the workers busy while this chunk is written
                store.write_chunk(chunk.id, out["parts"])
                ok += out["ok"]
                failed += out["failed"]
                worker_seconds += out["seconds"]
                if on_progress:
                    on_progress(chunk.count)
    except BrokenProcessPool as exc:
        raise BatchError(
            f"a worker process died ({exc}); rerun the same command to resume"
        ) from exc
    finally:
        for future in pending:
            future.cancel()
    return BatchReport(
        store.path,
        batch.n_runs,
        ok,
        failed,
        skipped,
        time.perf_counter() - started,
        runs_this_session=ok + failed,
        worker_seconds=worker_seconds,
    )


# -- the manifest ------------------------------------------------------------------------------


def now() -> str:
    """Local time, ISO 8601 with the UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def start_manifest(
    batch: Batch,
    base: Scenario,
    overrides: Sequence[str],
    executor: str,
    previous: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The manifest of a batch that starts (or resumes: ``previous`` is the old manifest)."""
    from .loader import scenario_hash, scenario_sources

    sessions = list((previous or {}).get("sessions", []))
    sessions.append({"started": now(), "executor": executor})
    return {
        "scenario": base.name,
        "batch_id": batch.batch_id,
        "status": "running",
        "versions": versions(),
        "scenario_hash": scenario_hash(base),
        "point_hashes": [p.scenario_hash for p in batch.points],
        "sources": scenario_sources(base),
        "overrides": list(overrides),
        "root_seed": batch.root_seed,
        "world_seed": WORLD_SEED_RULE,
        "run_seeds": RUN_SEED_RULE,
        "run_id": "point * replicates + replicate",
        "replicates": batch.replicates,
        "points": [p.values for p in batch.points],
        "sweep_parameters": batch.sweep_parameters,
        "chunk_size": batch.chunk_size,
        "chunks": len(batch.chunks),
        "runs_total": batch.n_runs,
        "started": (previous or {}).get("started", sessions[-1]["started"]),
        "sessions": sessions,
    }


def finish_manifest(
    manifest: dict[str, Any], report: BatchReport, status_counts: Mapping[str, int]
) -> dict[str, Any]:
    """The manifest of a finished batch: end time, timings, run status counts. An earlier
    session that never finished (the process was killed) is marked ``interrupted``; its
    time is unknown, so the batch's ``wall_seconds`` counts the finished sessions only."""
    for earlier in manifest["sessions"][:-1]:
        if "finished" not in earlier:
            earlier["interrupted"] = True
    session = manifest["sessions"][-1]
    session |= {
        "finished": now(),
        "wall_seconds": round(report.seconds, 3),
        "runs": report.runs_this_session,
        "runs_per_second": round(report.runs_this_session / max(report.seconds, 1e-9), 1),
        "worker_seconds": round(report.worker_seconds, 3),
    }
    return manifest | {
        "status": "complete",
        "finished": session["finished"],
        "wall_seconds": round(sum(s.get("wall_seconds", 0.0) for s in manifest["sessions"]), 3),
        "run_status": {
            "ok": int(status_counts.get("ok", 0)),
            "failed": int(status_counts.get("failed", 0)),
        },
    }
