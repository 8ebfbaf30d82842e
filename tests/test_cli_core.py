"""End-to-end command line: validate and run as a new user would (issue 2 contracts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import ROOT, SCENARIOS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EVENT_COLUMNS = {"run_id", "replicate", "step", "date", "mechanism", "state", "partner", "depth"}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "diffusion_sim", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=300,
    )


def test_validate_accepts_shipped_scenarios():
    """`validate` exits 0 on every shipped scenario."""
    result = cli("validate", *map(str, sorted(SCENARIOS.glob("*.yaml"))))
    assert result.returncode == 0, result.stderr


def test_validate_reports_every_problem_with_line_and_exit_2(tmp_path):
    """A file with three independent problems gets three file:line: path: messages, exit 2,
    and no traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "time: {start: 2000, steps: -1}\n"
        "mechanisms:\n"
        "  - {id: m, kind: unilateral, intercept: 0, colour: red}\n"
        "generate: {n: 10, human_rights: 1.5, openness: 0.5}\n"
        "networks:\n"
        "  - {id: net, generator: complete}\n"
        "diffusion: {link: logit}\n"
    )
    result = cli("validate", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(bad))]
    assert any(":2: time.steps" in line for line in lines)
    assert any(":4: mechanisms[0].colour" in line for line in lines)
    assert any(":5: generate.human_rights" in line for line in lines)


def test_run_writes_the_results_folder(tmp_path):
    """`run` writes manifest, resolved scenario, the three tables with the contract's columns
    and a spillover plot, and prints the results path."""
    result = cli("run", "scenarios/minimal.yaml", "--replicates", "4", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    folders = list((tmp_path / "minimal").iterdir())
    assert len(folders) == 1
    out = folders[0]
    assert str(out) in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_status"]["ok"] == 4 and manifest["run_status"].get("failed", 0) == 0
    assert (out / "scenario.yaml").exists() and (out / "world.json").exists()
    events = pq.read_table(out / "events.parquet")
    assert set(events.column_names) >= EVENT_COLUMNS
    assert any(c.startswith("c_") for c in events.column_names)
    partner = events.column("partner").to_pylist()
    kinds = events.column("kind").to_pylist()
    assert all((p is None) == (k == "unilateral") for p, k in zip(partner, kinds, strict=True))
    series = pq.read_table(out / "series.parquet")
    assert {"run_id", "step", "mechanism", "region", "adopters"} <= set(series.column_names)
    runs = pq.read_table(out / "runs.parquet").to_pandas()
    assert sorted(runs["replicate"]) == [0, 1, 2, 3]
    assert list((out / "plots").glob("*spillover*.png"))


def test_set_override_is_validated(tmp_path):
    """A bad --set value is rejected like a bad file value: exit 2, path named."""
    result = cli(
        "run", "scenarios/minimal.yaml", "--set", "runs.replicates=0", "--out", str(tmp_path)
    )
    assert result.returncode == 2
    assert "runs.replicates" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "minimal").exists()


@pytest.mark.parametrize(
    ("option", "value", "path"),
    [
        ("--replicates", "0", "runs.replicates"),
        ("--steps", "0", "time.steps"),
        ("--seed", "-1", "runs.seed"),
    ],
)
def test_dedicated_option_is_named_in_its_problem(tmp_path, option, value, path):
    """A bad --replicates/--steps/--seed is reported under that option, not as a --set."""
    result = cli("run", "scenarios/minimal.yaml", option, value, "--out", str(tmp_path))
    assert result.returncode == 2
    assert f"{option}: {path}:" in result.stderr
    assert f"(from {option} {value})" in result.stderr
    assert "--set" not in result.stderr
    assert not (tmp_path / "minimal").exists()


def test_help_lists_the_commands():
    """`--help` names every command."""
    result = cli("--help")
    assert result.returncode == 0
    for command in ("validate", "run", "sweep", "plot", "compare"):
        assert command in result.stdout


BROKEN_PIECES = [
    "name: [unclosed\n",
    "time: {start: 2000, steps: 0}\n",
    "time: {start: 2000, steps: 1e12}\n",
    "mechanisms: [{id: m, kind: sideways, intercept: 0}]\n",
    "mechanisms: [{id: m, kind: unilateral, intercept: .nan}]\n",
    "generate: {n: 5, human_rights: 7, openness: 0.5}\n",
    "networks: [{id: a, edges: [[X, Y, 1]]}]\n",
    "networks: []\n",
    "diffusion: {link: probit}\n",
    "events: [{date: 1850, adopt: {mechanism: m, state: S0000}}]\n",
    "runs: {replicates: 0}\n",
    "!!python/object:os.system {}\n",
    "\t- bad indentation\n",
]


def _cli_runner_validate(path: Path):
    from typer.testing import CliRunner

    from diffusion_sim.cli import app

    return CliRunner().invoke(app, ["validate", str(path)])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pieces=st.lists(st.sampled_from(BROKEN_PIECES), min_size=1, max_size=4),
    keep=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_broken_scenarios_exit_2_without_traceback(tmp_path, pieces, keep):
    """Any mix of a valid scenario's lines and broken pieces ends in exit 0 (still valid) or
    exit 2 with file:line messages, never an exception."""
    valid = (SCENARIOS / "bass_limit.yaml").read_text().splitlines(keepends=True)
    lines = [line for line, k in zip(valid, keep * 3, strict=False) if k] + pieces
    path = tmp_path / "broken.yaml"
    path.write_text("".join(lines))
    result = _cli_runner_validate(path)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code in (0, 2)
    if result.exit_code == 2:
        assert str(path) in result.output


def test_plot_network_at_chosen_dates(tmp_path):
    """`plot --kind network --dates ... --run ...` redraws the network picture of a results
    folder at the chosen dates; unparsable dates exit 2."""
    assert (
        cli(
            "run",
            "scenarios/minimal.yaml",
            "--replicates",
            "2",
            "--no-plots",
            "--out",
            str(tmp_path),
        ).returncode
        == 0
    )
    folder = next((tmp_path / "minimal").iterdir())
    result = cli(
        "plot", str(folder), "--kind", "network", "--dates", "2005,2010,2020", "--run", "1"
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (folder / "plots").iterdir()] == ["network.png"]
    bad = cli("plot", str(folder), "--kind", "network", "--dates", "20x")
    assert bad.returncode == 2 and "--dates" in bad.stderr
