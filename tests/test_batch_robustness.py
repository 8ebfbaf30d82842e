"""A batch folder in a shared, imperfect world: a second writer, parts removed or torn, stray
files, a full disk, and sweeps that cannot take effect. Each case ends in a clear message
(exit status 2) or in tables equal to an undisturbed batch."""

from __future__ import annotations

import errno
import json
import shutil
from concurrent.futures import Future

import pytest
from batchutil import MINIMAL, assert_same_tables, batch_folder, cli, cli_process

from diffusion_sim import store as store_module
from diffusion_sim.runner import InlineExecutor
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
