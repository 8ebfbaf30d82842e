"""The results folder: the only module that knows paths under ``results/``.

Layout of ``<root>/<scenario-name>/<batch-id>/`` (DESIGN.md section 3):

* ``manifest.json``: versions, scenario hash, root and per-run seeds, times, status counts;
* ``scenario.yaml``: the resolved scenario; ``world.json``: states, regions, mechanisms;
* ``events.parquet/``, ``series.parquet/``, ``runs.parquet/``: Parquet datasets, one part file
  per finished chunk of runs (``part-<chunk>.parquet``), each written under a temporary name
  and renamed, so an interrupted batch never leaves a torn file. A chunk counts as done when
  its ``runs`` part exists (it is written last);
* ``plots/``: figures.

Readers (pandas, pyarrow.dataset) open a dataset folder exactly like a single Parquet file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TABLES = ("events", "series", "runs")


class StoreError(Exception):
    """A results folder that cannot be used (unwritable, or not a results folder)."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    The temporary file is created like any other (``mkstemp`` would make it owner-only), so
    results get the permissions the user's umask gives, and colleagues can read them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class BatchStore:
    """One batch's results folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_batch(cls, root: Path, scenario_name: str, batch_id: str) -> BatchStore:
        return cls(Path(root) / scenario_name / batch_id)

    # -- paths ---------------------------------------------------------------------------------

    def table_dir(self, table: str) -> Path:
        return self.path / f"{table}.parquet"

    def part_path(self, table: str, chunk_id: str) -> Path:
        return self.table_dir(table) / f"part-{chunk_id}.parquet"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    # -- life cycle ----------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Create the folder and prove it is writable, or raise :class:`StoreError`."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreError(f"cannot write results to {self.path}: {exc.strerror or exc}") from exc

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when there is none (or it cannot be read)."""
        try:
            return dict(self.read_json("manifest.json"))
        except (OSError, ValueError):
            return None

    def clear(self) -> None:
        """Remove this batch's folder (``--force``)."""
        if self.path.exists():
            shutil.rmtree(self.path)

    def done_chunks(self) -> set[str]:
        """Chunks whose ``runs`` part exists: finished and fully written."""
        folder = self.table_dir("runs")
        if not folder.exists():
            return set()
        return {p.name[len("part-") : -len(".parquet")] for p in folder.glob("part-*.parquet")}

    def write_chunk(self, chunk_id: str, parts: dict[str, Any]) -> None:
        """Write one chunk's parts (Parquet bytes, or Arrow tables) each under a temporary name
        then renamed; ``runs`` last, so its presence marks the chunk done."""
        import pyarrow.parquet as pq

        for name in ("events", "series", "runs"):
            target = self.part_path(name, chunk_id)
            part = parts[name]
            if isinstance(part, bytes | bytearray | memoryview):
                atomic_write_bytes(target, bytes(part))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            pq.write_table(part, tmp, compression="zstd")
            os.replace(tmp, target)

    def remove_stray_temporaries(self) -> None:
        """Temporary files of an interrupted run (never read, safe to delete)."""
        for table in TABLES:
            if not self.table_dir(table).exists():
                continue
            for tmp in self.table_dir(table).glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self.path / name, json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.path / name, text)

    def read_table(self, table: str, columns: Iterable[str] | None = None):
        """A table of the batch as a pandas DataFrame (all parts)."""
        import pandas as pd

        folder = self.table_dir(table)
        if not folder.exists():
            raise StoreError(f"{folder} does not exist: not a results folder, or no run finished")
        return pd.read_parquet(folder, columns=list(columns) if columns else None)


def open_results(path: Path) -> BatchStore:
    """A results folder given on the command line (must hold a manifest)."""
    store = BatchStore(Path(path))
    if not store.exists():
        raise StoreError(f"{path} is not a results folder (no manifest.json)")
    return store
