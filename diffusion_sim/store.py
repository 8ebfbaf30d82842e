"""The results folder: the only module that knows paths under ``results/``.

Layout of ``<root>/<scenario-name>/<batch-id>/`` (DESIGN.md section 3):

* ``manifest.json``: versions, scenario hash, root and per-run seeds, times, status counts;
* ``scenario.yaml``: the resolved scenario; ``world.json``: states, regions, mechanisms;
* ``events.parquet/``, ``series.parquet/``, ``runs.parquet/``: Parquet datasets, one part file
  per finished chunk of runs (``part-<chunk>.parquet``), each written under a temporary name
  and renamed, so an interrupted batch never leaves a torn file. A chunk counts as done when
  its three parts exist and their Parquet footers read (``runs`` is written last);
* ``plots/``: figures.

One process at a time writes a batch: it holds an exclusive lock on the batch folder's
``.lock`` file, which ``--force`` keeps when it empties the folder. The file stays; only the
lock is released.

Readers (pandas, pyarrow.dataset) open a dataset folder exactly like a single Parquet file;
this module's readers take only the part files, so a stray file in a table folder is named
in an error instead of read.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

TABLES = ("events", "series", "runs")
#: A part file of a table: ``part-<chunk id>.parquet`` (``runner.Chunk.id``).
_PART = re.compile(r"part-(p\d{5,}-r\d{8,})\.parquet")
#: The lock file of a batch folder (``BatchStore.lock``).
_LOCK = ".lock"


class StoreError(Exception):
    """A results folder that cannot be used (unwritable, busy, or not a results folder)."""


def _cannot_write(path: Path, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot write {path}: {exc.strerror or exc}; the chunks written so far are kept, so "
        "once this is fixed the same command resumes the batch"
    )


def part_files(table_dir: Path) -> list[Path]:
    """The part files of a table folder, in chunk order (other files are not parts)."""
    if not table_dir.is_dir():
        return []
    return sorted(p for p in table_dir.iterdir() if _PART.fullmatch(p.name))


def foreign_files(table_dir: Path) -> list[Path]:
    """Files in a table folder that are not parts. Hidden names (``.`` or ``_`` first: this
    module's temporaries, a ``.DS_Store``) are left out, as pyarrow's readers leave them."""
    if not table_dir.is_dir():
        return []
    return sorted(
        p
        for p in table_dir.iterdir()
        if not _PART.fullmatch(p.name) and not p.name.startswith((".", "_"))
    )


def check_no_foreign_files(table_dir: Path) -> None:
    """Raise :class:`StoreError` naming the files of a table folder that are not parts (a
    reader would take them for results)."""
    foreign = foreign_files(table_dir)
    if foreign:
        raise StoreError(
            f"{table_dir} holds files that are not part of the results "
            f"({', '.join(p.name for p in foreign[:5])}); move them out of the folder"
        )


def read_dataset(
    table_dir: Path, columns: Iterable[str] | None = None, run_ids: Iterable[int] | None = None
):
    """A table folder's parts, or a single Parquet file, (the rows of ``run_ids`` only, if
    given) as one pandas DataFrame; :class:`StoreError` when the folder holds a file that is
    not a part, or a part that is not readable Parquet."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    check_no_foreign_files(table_dir)
    files = [table_dir] if table_dir.is_file() else part_files(table_dir)
    try:
        dataset = ds.dataset(files, format="parquet")
        table = dataset.to_table(
            columns=list(columns) if columns is not None else None,
            filter=None if run_ids is None else ds.field("run_id").isin(list(run_ids)),
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"{table_dir}: a part cannot be read ({exc})") from exc
    return table.to_pandas()


def _chunk_ids(table_dir: Path) -> set[str]:
    return {m.group(1) for p in part_files(table_dir) if (m := _PART.fullmatch(p.name))}


def _readable(path: Path) -> bool:
    """The file exists and its Parquet footer reads (a torn or emptied file does not)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowInvalid):
        return False
    return True


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
        with suppress(OSError):  # keep the original error (e.g. a read-only file system)
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
        """The manifest, or None when there is none (or it cannot be read as an object)."""
        try:
            found = self.read_json("manifest.json")
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def has_results(self) -> bool:
        """The batch folder holds anything besides its lock file."""
        return self.path.is_dir() and any(p.name != _LOCK for p in self.path.iterdir())

    @contextmanager
    def lock(self) -> Iterator[bool]:
        """Hold the batch's write lock; raise :class:`StoreError` at once when another process
        holds it. Yields ``False`` where the file system cannot lock (e.g. NFS without a lock
        daemon): the session then goes on unlocked, and the caller says so."""
        import fcntl

        path = self.path / _LOCK
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a+")  # noqa: SIM115 - held for the whole session
        except OSError as exc:
            raise StoreError(
                f"cannot write results to {path.parent}: {exc.strerror or exc}"
            ) from exc
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise StoreError(
                    f"{self.path} is being written by {holder}; wait for it to finish (or stop "
                    "it), then run the same command again to resume"
                ) from None
            except OSError:  # ENOLCK, EOPNOTSUPP, ENOSYS: no locks on this file system
                yield False
                return
            fh.seek(0)
            fh.truncate()
            fh.write(f"process {os.getpid()}")
            fh.flush()
            yield True
        finally:
            fh.close()  # releases the lock

    def clear(self) -> None:
        """Empty this batch's folder (``--force``), keeping the lock file the caller holds."""
        if not self.path.exists():
            return
        try:
            for child in self.path.iterdir():
                if child.name == _LOCK:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        except OSError as exc:
            raise StoreError(f"cannot remove {self.path}: {exc.strerror or exc}") from exc

    def scan_chunks(self) -> tuple[set[str], list[str]]:
        """(done, broken): chunks whose three parts exist and read as Parquet, and chunks
        whose ``runs`` part exists but some part does not read (torn by a crash or a full
        disk). Reads every part's footer once."""
        listed = _chunk_ids(self.table_dir("runs"))
        done = {c for c in listed if all(_readable(self.part_path(t, c)) for t in TABLES)}
        return done, sorted(listed - done)

    def done_chunks(self) -> set[str]:
        """Chunks whose three parts exist and read as Parquet: finished and fully written."""
        return self.scan_chunks()[0]

    def has_chunk(self, chunk_id: str) -> bool:
        """The chunk's ``runs`` part exists (it is renamed into place last)."""
        return self.part_path("runs", chunk_id).exists()

    def remove_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Remove the parts of these chunks, so they run again."""
        for chunk in chunk_ids:
            for table in ("runs", "events", "series"):  # runs first: the chunk is no longer done
                self.part_path(table, chunk).unlink(missing_ok=True)

    def check_tables(self) -> None:
        """Raise :class:`StoreError` when a table folder holds a file that is not a part."""
        for table in TABLES:
            check_no_foreign_files(self.table_dir(table))

    def write_chunk(self, chunk_id: str, parts: dict[str, Any]) -> None:
        """Write one chunk's parts (Parquet bytes, or Arrow tables) each under a temporary name
        then renamed; ``runs`` last, so its presence marks the chunk done."""
        import pyarrow.parquet as pq

        for name in ("events", "series", "runs"):
            target = self.part_path(name, chunk_id)
            part = parts[name]
            try:
                if isinstance(part, bytes | bytearray | memoryview):
                    atomic_write_bytes(target, bytes(part))
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.tmp")
                pq.write_table(part, tmp, compression="zstd")
                os.replace(tmp, target)
            except OSError as exc:
                raise _cannot_write(target, exc) from exc

    def remove_stray_temporaries(self) -> None:
        """Temporary files of an interrupted run (never read, safe to delete)."""
        for table in TABLES:
            if not self.table_dir(table).exists():
                continue
            for tmp in self.table_dir(table).glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def write_text(self, name: str, text: str) -> None:
        try:
            atomic_write_text(self.path / name, text)
        except OSError as exc:
            raise _cannot_write(self.path / name, exc) from exc

    def table_columns(self, table: str) -> list[str]:
        """The column names of a table (from its first part's schema; [] without parts)."""
        import pyarrow.parquet as pq

        parts = part_files(self.table_dir(table))
        return list(pq.read_schema(parts[0]).names) if parts else []

    def read_table(self, table: str, columns: Iterable[str] | None = None):
        """A table of the batch as a pandas DataFrame (all parts)."""

        folder = self.table_dir(table)
        if not folder.exists():
            raise StoreError(f"{folder} does not exist: not a results folder, or no run finished")
        return read_dataset(folder, columns)


def open_results(path: Path) -> BatchStore:
    """A results folder given on the command line (must hold a manifest)."""
    store = BatchStore(Path(path))
    if not store.exists():
        raise StoreError(f"{path} is not a results folder (no manifest.json)")
    return store
