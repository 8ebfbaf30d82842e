"""A batch folder in a shared, imperfect world: a second writer, parts removed or torn, stray
files, a full disk, and sweeps that cannot take effect. Each case ends in a clear message
(exit status 2) or in tables equal to an undisturbed batch."""

from __future__ import annotations

import copy
import errno
import json
import pickle
import shutil
from concurrent.futures import Future

import pyarrow as pa
import pytest
from batchutil import MINIMAL, assert_same_tables, batch_folder, cli, cli_process

from diffusion_sim import store as store_module
from diffusion_sim.loader import Override
from diffusion_sim.runner import Batch, Chunk, InlineExecutor, writing_session
from diffusion_sim.store import BatchStore

SMALL = ["--replicates", 12, "--set", "runs.chunk=4", "--no-plots", "--workers", 1]


@pytest.fixture
def finished(tmp_path):
    """A complete 3-chunk minimal batch, and an untouched copy to compare against."""
    done = cli_process("run", MINIMAL, *SMALL, "--out", tmp_path / "a")
    assert done.returncode == 0, done.stderr
    folder = batch_folder(tmp_path / "a")
    reference = tmp_path / "reference"
    shutil.copytree(folder, reference)
    return folder, reference


def test_a_second_writer_is_refused_and_changes_nothing(finished):
    """While one process holds the batch, another (even with --force) exits 2 at once."""
    folder, reference = finished
    with BatchStore(folder).lock():
        result = cli("run", MINIMAL, *SMALL, "--force", "--out", folder.parents[1])
    assert result.exit_code == 2
    assert "is being written by process" in result.output
    assert_same_tables(folder, reference)


def test_complete_batch_with_a_chunk_removed_is_finished_again(finished):
    """A manifest that says complete is not trusted over the parts: a missing chunk runs
    again, and the tables equal the original."""
    folder, reference = finished
    gone = sorted((folder / "runs.parquet").iterdir())[1]
    gone.unlink()
    again = cli_process("run", MINIMAL, *SMALL, "--out", folder.parents[1])
    assert again.returncode == 0, again.stderr
    assert "marked complete but has chunks missing" in again.stderr
    assert_same_tables(folder, reference)


def test_a_torn_part_is_detected_and_its_chunk_runs_again(finished):
    """An emptied events part (a crash before the data reached the disk) is not counted as
    done: its chunk runs again."""
    folder, reference = finished
    torn = sorted((folder / "events.parquet").iterdir())[0]
    torn.write_bytes(b"")
    again = cli_process("run", MINIMAL, *SMALL, "--out", folder.parents[1])
    assert again.returncode == 0, again.stderr
    assert "1 chunk(s) had parts that do not read" in again.stderr
    assert_same_tables(folder, reference)


def test_a_stray_file_in_a_table_folder_is_named_not_read(finished):
    """A copy of a part (what a file manager makes) would duplicate runs: run and plot
    refuse, naming it."""
    folder, _ = finished
    part = sorted((folder / "runs.parquet").iterdir())[0]
    stray = part.with_name(part.stem + " (copy).parquet")
    shutil.copy(part, stray)
    again = cli_process("run", MINIMAL, *SMALL, "--out", folder.parents[1])
    assert again.returncode == 2
    assert stray.name in again.stderr and "Traceback" not in again.stderr
    drawn = cli_process("plot", folder)
    assert drawn.returncode == 2
    assert stray.name in drawn.stderr and "Traceback" not in drawn.stderr


def test_a_full_disk_mid_batch_is_a_message_and_the_batch_resumes(tmp_path, monkeypatch):
    """No space left while a chunk is written: exit 2 with the path and how to go on; then
    the same command finishes the batch."""
    real = store_module.atomic_write_bytes
    calls = {"n": 0}

    def full_after_a_while(path, data):
        calls["n"] += 1
        if "events.parquet" in str(path) and calls["n"] > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(store_module, "atomic_write_bytes", full_after_a_while)
    result = cli("run", MINIMAL, *SMALL, "--out", tmp_path / "full")
    assert result.exit_code == 2
    assert "No space left on device" in result.output and "resumes" in result.output
    monkeypatch.setattr(store_module, "atomic_write_bytes", real)
    again = cli_process("run", MINIMAL, *SMALL, "--out", tmp_path / "full")
    assert again.returncode == 0, again.stderr
    assert "Resuming" in again.stderr
    whole = cli_process("run", MINIMAL, *SMALL, "--out", tmp_path / "whole")
    assert whole.returncode == 0
    assert_same_tables(batch_folder(tmp_path / "full"), batch_folder(tmp_path / "whole"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "runs.seed=1,2"], "runs.seed cannot be swept"),
        (["--grid", "runs.replicates=2,30"], "runs.replicates cannot be swept"),
        (["--grid", "name=a,b"], "name cannot be swept"),
        (
            ["--range", "diffusion.bilateral.chain=0:4", "--method", "sobol", "--samples", 5],
            "sobol needs a power of 2 samples",
        ),
        (["--range", "diffusion.bilateral.chain=0:4", "--samples", 0], "at least 1"),
        (
            ["--grid", "diffusion.bilateral.chain=1,2", "--range", "flows.deflection=0:1"],
            "not both",
        ),
    ],
)
def test_sweeps_that_cannot_take_effect_are_refused(tmp_path, args, message):
    """Sweeping what every point of a batch shares, or a malformed design: exit 2, no files."""
    result = cli("sweep", MINIMAL, *args, "--replicates", 2, "--out", tmp_path)
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir())


def test_scenario_sweep_block_over_the_seed_is_a_problem_with_its_line(tmp_path):
    """The same rule for a sweep: block in the file, reported at its line."""
    text = MINIMAL.read_text() + "\nsweep:\n  parameters:\n    runs.seed: [1, 2]\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = cli("validate", bad)
    assert result.exit_code == 2
    line = text.splitlines().index("    runs.seed: [1, 2]") + 1
    assert f"bad.yaml:{line}: sweep.parameters.runs.seed: runs.seed cannot be swept" in (
        result.output
    )


def test_a_sweep_at_the_default_value_is_not_the_plain_run(tmp_path):
    """Same resolved scenarios, different batches: the sweep gets its own folder."""
    plain = cli_process("run", MINIMAL, *SMALL, "--out", tmp_path)
    swept = cli_process(
        "sweep", MINIMAL, "--grid", "flows.deflection=0.3", *SMALL, "--out", tmp_path
    )
    assert plain.returncode == 0 and swept.returncode == 0, swept.stderr
    assert "Already complete" not in swept.stderr
    assert len([p for p in (tmp_path / "minimal").iterdir() if p.is_dir()]) == 2


def test_a_name_of_dots_is_refused(tmp_path):
    """`name: ..` would write outside results/<name>/."""
    result = cli("run", MINIMAL, "--set", "name=..", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "name" in result.output
    assert not (tmp_path / "r").exists()


def test_inline_executor_lets_ctrl_c_through():
    """Ctrl-C inside a task stops the batch at once instead of waiting in a future."""

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        InlineExecutor().submit(interrupted)
    failed = InlineExecutor().submit(lambda: 1 / 0)
    assert isinstance(failed, Future) and isinstance(failed.exception(), ZeroDivisionError)


def test_a_manifest_that_is_not_an_object_reads_as_none(tmp_path):
    """A hand-edited manifest holding a JSON list is treated as unreadable, not a crash."""
    store = BatchStore(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps([1, 2]))
    assert store.manifest() is None


def test_chunk_ids_of_a_sweep_with_a_hundred_thousand_points_are_parts(tmp_path):
    """Point indices grow past five digits (the schema allows a million samples): such parts
    count as done and are not taken for stray files."""
    store = BatchStore(tmp_path)
    table = pa.table({"run_id": pa.array([0], pa.int64())})
    chunk = Chunk(123456, 0, 1).id
    store.write_chunk(chunk, {name: table for name in ("events", "series", "runs")})
    assert store.done_chunks() == {chunk}
    store.check_tables()


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    """flock failing with ENOLCK (NFS without a lock daemon): a warning, not a traceback."""
    import fcntl

    def no_locks(*_args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    result = cli("run", MINIMAL, *SMALL, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "cannot lock" in result.output


def test_force_on_a_new_batch_does_not_claim_to_remove_one(tmp_path):
    result = cli("run", MINIMAL, *SMALL, "--force", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "removed the old" not in result.output
    again = cli("run", MINIMAL, *SMALL, "--force", "--out", tmp_path)
    assert "removed the old" in again.output


def test_the_session_reads_the_manifest_once_it_holds_the_lock(tmp_path):
    """A manifest written by a session that finished while this one waited is the one this
    session continues (not a copy read before the lock); --force starts without one."""
    store = BatchStore(tmp_path / "batch")
    store.check_writable()
    store.write_json("manifest.json", {"status": "complete", "sessions": [{"runs": 3}]})
    batch = Batch("m", 1, 2, [], 2, [])
    with writing_session(store, batch, force=False, say=lambda _m: None) as session:
        assert session.previous == {"status": "complete", "sessions": [{"runs": 3}]}
    with writing_session(store, batch, force=True, say=lambda _m: None) as session:
        assert session.previous is None


def test_overrides_from_dedicated_options_survive_pickling_and_copying():
    """Override strings travel to workers and through deep copies intact."""
    override = Override("runs.replicates", 0, "--replicates")
    for copied in (pickle.loads(pickle.dumps(override)), copy.deepcopy([override])[0]):
        assert copied == "runs.replicates=0"
        assert (copied.option, copied.value_text) == ("--replicates", "0")


def test_hidden_files_in_a_table_folder_are_not_stray(finished):
    """A Finder's .DS_Store (hidden, like the writer's temporaries) is ignored, as pyarrow's
    readers ignore it: the complete batch still reads."""
    folder, reference = finished
    (folder / "runs.parquet" / ".DS_Store").write_bytes(b"\x00\x01")
    again = cli_process("run", MINIMAL, *SMALL, "--out", folder.parents[1])
    assert again.returncode == 0, again.stderr
    assert "Already complete" in again.stderr
    assert_same_tables(folder, reference)
