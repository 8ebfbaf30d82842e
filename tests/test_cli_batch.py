"""``diffusion-sim run`` / ``sweep`` end to end: determinism, resume, faults and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from batchutil import (
    MINIMAL,
    ROOT,
    SYNTHETIC,
    assert_same_tables,
    batch_folder,
    cli,
    cli_process,
    tables,
)

from diffusion_sim.loader import load_scenario, scenario_hash
from diffusion_sim.model import DiffusionModel

SMALL_SYN = ["--set", "time.steps=25"]


def test_workers_and_chunking_do_not_change_tables(tmp_path):
    """Inline (1 worker, chunk 7) and 2 processes (chunk 256) give identical tables."""
    a, b = tmp_path / "a", tmp_path / "b"
    r1 = cli(
        "run",
        SYNTHETIC,
        "--replicates",
        24,
        "--workers",
        1,
        "--out",
        a,
        "--no-plots",
        *SMALL_SYN,
        "--set",
        "runs.chunk=7",
    )
    r2 = cli(
        "run", SYNTHETIC, "--replicates", 24, "--workers", 2, "--out", b, "--no-plots", *SMALL_SYN
    )
    assert r1.exit_code == 0, r1.output
    assert r2.exit_code == 0, r2.output
    fa, fb = batch_folder(a), batch_folder(b)
    assert len(list((fa / "runs.parquet").glob("part-*"))) == 4
    assert len(list((fb / "runs.parquet").glob("part-*"))) == 1
    assert_same_tables(fa, fb)


def test_replicate_alone_equals_replicate_in_batch(tmp_path):
    """DiffusionModel(scenario, replicate=k) reproduces replicate k of a batch exactly."""
    r = cli(
        "run",
        MINIMAL,
        "--replicates",
        10,
        "--workers",
        1,
        "--out",
        tmp_path,
        "--no-plots",
        "--set",
        "runs.chunk=4",
    )
    assert r.exit_code == 0, r.output
    events = tables(batch_folder(tmp_path), ["events"])["events"]
    scenario = load_scenario(MINIMAL, ["runs.replicates=10", "runs.chunk=4"])
    for k in (0, 6):
        alone = DiffusionModel(scenario, replicate=k).run().events().to_pandas()
        inside = events[events["replicate"] == k].drop(columns="run_id").reset_index(drop=True)
        alone = (
            alone.drop(columns="run_id")
            .sort_values(["step", "mechanism", "state", "partner", "action"], kind="stable")
            .reset_index(drop=True)
        )
        assert len(alone) > 0
        pd.testing.assert_frame_equal(alone, inside, check_exact=True)


def test_same_command_twice_is_a_no_op_and_force_starts_over(tmp_path):
    """A complete batch is not recomputed ("Already complete"); --force rewrites it."""
    args = ["run", MINIMAL, "--replicates", 6, "--workers", 1, "--out", tmp_path, "--no-plots"]
    assert cli(*args).exit_code == 0
    folder = batch_folder(tmp_path)
    part = next((folder / "events.parquet").glob("part-*"))
    before = part.stat().st_mtime_ns
    again = cli(*args)
    assert again.exit_code == 0
    assert "Already complete" in again.output
    assert part.stat().st_mtime_ns == before
    time.sleep(0.01)
    forced = cli(*args, "--force")
    assert forced.exit_code == 0
    assert "Already complete" not in forced.output
    assert "Starting over (--force)" in forced.output
    assert part.stat().st_mtime_ns != before


def test_figures_that_cannot_be_written_leave_complete_runs_and_say_how_to_redraw(
    tmp_path, monkeypatch
):
    """An OSError while drawing: the tables stay complete, a message (no traceback) says how
    to draw the figures later, exit status 1."""
    import diffusion_sim.cli as cli_module

    def no_room(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_module, "_plots", no_room)
    r = cli("run", MINIMAL, "--replicates", 4, "--workers", 1, "--out", tmp_path)
    assert r.exit_code == 1, r.output
    folder = batch_folder(tmp_path)
    assert f"diffusion-sim plot {folder}" in r.output
    assert "No space left on device" in r.output
    assert not isinstance(r.exception, OSError)
    assert json.loads((folder / "manifest.json").read_text())["status"] == "complete"


def test_manifest_records_versions_hashes_seeds_times_and_counts(tmp_path):
    """manifest.json has versions, scenario hash, seeds, times, status counts; scenario.yaml
    reloads to the same hash; runs.parquet has one seed per run."""
    r = cli(
        "run",
        MINIMAL,
        "--replicates",
        5,
        "--seed",
        77,
        "--workers",
        1,
        "--out",
        tmp_path,
        "--no-plots",
    )
    assert r.exit_code == 0, r.output
    folder = batch_folder(tmp_path)
    m = json.loads((folder / "manifest.json").read_text())
    for key in ("diffusion-sim", "python", "numpy", "pyarrow", "mesa"):
        assert m["versions"][key]
    assert m["root_seed"] == 77
    assert "spawn_key=(1, point, replicate)" in m["run_seeds"]
    assert m["status"] == "complete"
    assert m["started"] <= m["finished"]
    assert m["run_status"] == {"ok": 5, "failed": 0}
    assert m["sessions"][0]["runs"] == 5
    reloaded = load_scenario(folder / "scenario.yaml")
    assert scenario_hash(reloaded) == m["scenario_hash"]
    runs = tables(folder, ["runs"])["runs"]
    assert runs["seed"].tolist() == [f"77:1.0.{k}" for k in range(5)]
    assert (runs["status"] == "ok").all()


def test_small_batch_runs_in_this_process_by_default(tmp_path):
    """Without --workers, a batch of a few cheap chunks does not start worker processes."""
    r = cli(
        "run", MINIMAL, "--replicates", 6, "--set", "runs.chunk=2", "--out", tmp_path, "--no-plots"
    )
    assert r.exit_code == 0, r.output
    m = json.loads((batch_folder(tmp_path) / "manifest.json").read_text())
    assert (m["chunks"], m["sessions"][0]["executor"]) == (3, "this process")


def test_failed_run_is_recorded_and_batch_goes_on(tmp_path, monkeypatch):
    """A run raising inside the model: status failed with the error, others complete, exit 1
    with the number of failed runs; the other runs equal those of a clean batch."""
    from diffusion_sim import kernel

    original_init, original_step = kernel.Kernel.__init__, kernel.Kernel.step

    def init(self, world, seeds):
        original_init(self, world, seeds)
        self._poisoned = any(s.spawn_key == (1, 0, 3) for s in seeds)

    def step(self):
        if self._poisoned and self.t == 2:
            raise FloatingPointError("boom in replicate 3")
        original_step(self)

    clean = tmp_path / "clean"
    args = ["run", MINIMAL, "--replicates", 8, "--workers", 1, "--no-plots"]
    assert cli(*args, "--out", clean).exit_code == 0
    monkeypatch.setattr(kernel.Kernel, "__init__", init)
    monkeypatch.setattr(kernel.Kernel, "step", step)
    r = cli(*args, "--out", tmp_path / "bad")
    assert r.exit_code == 1
    assert "1 run(s) failed" in r.output
    folder = batch_folder(tmp_path / "bad")
    runs = tables(folder, ["runs"])["runs"]
    failed = runs[runs["status"] == "failed"]
    assert failed["replicate"].tolist() == [3]
    assert "boom in replicate 3" in failed["error"].iloc[0]
    assert failed["visa_regime:final_share"].isna().all()
    assert json.loads((folder / "manifest.json").read_text())["run_status"] == {
        "ok": 7,
        "failed": 1,
    }
    good = tables(batch_folder(clean))
    bad = tables(folder)
    keep = bad["runs"]["run_id"][bad["runs"]["status"] == "ok"]
    for name in ("events", "series"):
        expected = good[name][good[name]["run_id"].isin(keep)].reset_index(drop=True)
        pd.testing.assert_frame_equal(bad[name], expected, check_exact=True)
    metrics = [c for c in good["runs"] if ":" in c or c == "max_depth"]
    ok_rows = bad["runs"]["status"] == "ok"
    pd.testing.assert_frame_equal(
        bad["runs"].loc[ok_rows, metrics].reset_index(drop=True),
        good["runs"].loc[ok_rows, metrics].reset_index(drop=True),
        check_dtype=False,
    )


def test_sigkill_mid_batch_then_rerun_completes_identically(tmp_path):
    """A batch killed with SIGKILL and run again resumes and equals an uninterrupted batch."""
    args = [
        "run",
        SYNTHETIC,
        "--replicates",
        160,
        "--workers",
        1,
        "--no-plots",
        "--set",
        "time.steps=30",
        "--set",
        "runs.chunk=8",
    ]
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "diffusion_sim", *map(str, args), "--out", str(killed)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    parts: list = []
    while time.time() < deadline and proc.poll() is None:
        parts = list(killed.glob("*/*/runs.parquet/part-*.parquet"))
        if len(parts) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the batch finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    folder = batch_folder(killed)
    done = len(list((folder / "runs.parquet").glob("part-*")))
    assert 4 <= done < 20
    assert json.loads((folder / "manifest.json").read_text())["status"] == "running"
    resumed = cli_process(*args, "--out", killed)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stderr
    whole = tmp_path / "whole"
    assert cli_process(*args, "--out", whole).returncode == 0
    assert_same_tables(folder, batch_folder(whole))
    assert not list(folder.rglob("*.tmp"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_status"]["ok"] == 160
    killed_session, resumed_session = manifest["sessions"]
    assert killed_session.get("interrupted") is True and "wall_seconds" not in killed_session
    assert "interrupted" not in resumed_session
    assert manifest["wall_seconds"] == resumed_session["wall_seconds"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
        (["--scheduler", "tcp://127.0.0.1"], "missing port number"),
        (["--scheduler", "foo"], "expected tcp://HOST:PORT"),
    ],
)
def test_bad_batch_options_exit_2_without_traceback_or_files(tmp_path, extra, message):
    """--workers 0, an unreachable scheduler, a malformed scheduler address: a message, exit 2,
    no traceback, no folder, no wait."""
    started = time.time()
    r = cli_process(
        "run", MINIMAL, "--replicates", 4, "--out", tmp_path / "out", "--no-plots", *extra
    )
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "out").exists()
    assert time.time() - started < (20 if "cannot reach" in message else 8)


def test_unwritable_results_folder_exits_2(tmp_path):
    """A results root that cannot be created: exit 2, a clear message, no traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = cli_process("run", MINIMAL, "--replicates", 4, "--workers", 1, "--out", blocker / "sub")
    assert r.returncode == 2
    assert "cannot write results" in r.stderr
    assert "Traceback" not in r.stderr


def test_sweep_grid_adds_param_columns(tmp_path):
    """A --grid sweep runs every point x replicates and records param:<path> per run."""
    path = "diffusion.channels.emulation.weight"
    r = cli(
        "sweep",
        SYNTHETIC,
        "--grid",
        f"{path}=0.5,1,2",
        "--replicates",
        3,
        "--workers",
        1,
        "--out",
        tmp_path,
        "--no-plots",
        *SMALL_SYN,
    )
    assert r.exit_code == 0, r.output
    assert "9 runs, 3 sweep points pooled" in r.output  # the summary table says it pools
    runs = tables(batch_folder(tmp_path), ["runs"])["runs"]
    assert len(runs) == 9
    assert runs[f"param:{path}"].tolist() == [0.5] * 3 + [1.0] * 3 + [2.0] * 3
    assert runs["point"].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert json.loads(runs["params"].iloc[3]) == {path: 1}


def test_sweep_lhs_range(tmp_path):
    """--range with --method lhs --samples 8 gives 8 points inside the range."""
    path = "diffusion.channels.emulation.weight"
    r = cli(
        "sweep",
        MINIMAL,
        "--range",
        f"{path}=0.5:2",
        "--method",
        "lhs",
        "--samples",
        8,
        "--replicates",
        2,
        "--workers",
        1,
        "--out",
        tmp_path,
        "--no-plots",
    )
    assert r.exit_code == 0, r.output
    runs = tables(batch_folder(tmp_path), ["runs"])["runs"]
    values = runs.groupby("point")[f"param:{path}"].first()
    assert len(values) == 8
    assert values.between(0.5, 2).all()
    # Latin hypercube: one sample in each eighth of the range.
    assert sorted(((values - 0.5) / 1.5 * 8).astype(int)) == list(range(8))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--grid", "diffusion.channels.emulation.weight"], "expected path=v1,v2"),
        (["--range", "diffusion.channels.emulation.weight=2:1"], "expected path=low:high"),
        (["--grid", "diffusion.channels.nope.weight=1,2"], "diffusion.channels.nope"),
    ],
)
def test_bad_sweep_options_exit_2(tmp_path, option, message):
    """Bad --grid / --range syntax and unknown parameter paths: a message and exit 2."""
    r = cli("sweep", MINIMAL, *option, "--replicates", 2, "--workers", 1, "--out", tmp_path)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)
    assert not tmp_path.joinpath("minimal").exists()
