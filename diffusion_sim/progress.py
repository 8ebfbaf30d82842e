"""A progress bar for long batches: runs done, rate and ETA, on stderr."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


class BatchProgress:
    """``progress(runs)`` when runs finish; ``progress.skip(runs)`` for runs found done.

    The rate and ETA count only this session's runs (runs found done when a batch resumes
    move the bar, not the rate), averaged since the session started: chunks finish in bursts,
    so a short moving window would jump.
    """

    def __init__(self, progress: Progress, task: TaskID, total: int) -> None:
        self._progress, self._task, self.total = progress, task, total
        self.started = time.perf_counter()
        self.done = 0
        self.session = 0

    def __call__(self, runs: int) -> None:
        self.done += runs
        self.session += runs
        elapsed = time.perf_counter() - self.started
        rate = self.session / elapsed if elapsed > 0 else 0.0
        eta = _clock((self.total - self.done) / rate) if rate > 0 else "-"
        self._progress.update(self._task, completed=self.done, rate=f"{rate:,.0f} runs/s", eta=eta)

    def skip(self, runs: int) -> None:
        self.done += runs
        self._progress.update(self._task, completed=self.done)


@contextmanager
def progress_bar(total: int, label: str, console: Console) -> Iterator[BatchProgress]:
    """A bar on ``console`` (stderr) showing runs done, runs/s, elapsed time and ETA."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total, rate="", eta="-")
        yield BatchProgress(progress, task, total)


def _clock(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"
