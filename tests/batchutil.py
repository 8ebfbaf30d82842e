"""Helpers shared by the batch tests: run the CLI in process or as a subprocess, read tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from diffusion_sim.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
MINIMAL = SCENARIOS / "minimal.yaml"
SYNTHETIC = SCENARIOS / "synthetic_world.yaml"

SORT = {
    "events": ["run_id", "step", "mechanism", "state", "partner", "action"],
    "series": ["run_id", "step", "mechanism", "region"],
    "runs": ["run_id"],
}


def cli(*args: str | Path):
    """Invoke ``diffusion-sim`` in this process (Click result: exit_code, output, exception)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def cli_process(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m diffusion_sim`` as a subprocess (exit status, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "diffusion_sim", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )


def batch_folder(out: Path) -> Path:
    """The single batch folder under a results root."""
    found = [p for p in out.glob("*/*") if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def tables(folder: Path, names=("events", "series", "runs")) -> dict[str, pd.DataFrame]:
    """A batch's tables, sorted by run and step, with a fresh index."""
    out = {}
    for name in names:
        frame = pd.read_parquet(folder / f"{name}.parquet")
        out[name] = frame.sort_values(SORT[name], kind="stable").reset_index(drop=True)
    return out


def assert_same_tables(a: Path, b: Path, names=("events", "series", "runs")) -> None:
    """Equal events/series/runs (runs compared without timings-free columns only)."""
    ta, tb = tables(a, names), tables(b, names)
    for name in names:
        assert len(ta[name]) > 0 or name == "events", name
        pd.testing.assert_frame_equal(ta[name], tb[name], check_exact=True, obj=name)
