"""Scenario problems and the exception that carries all of them.

A scenario is checked completely before anything runs; every problem found is one `Problem`
(`file:line: dotted.path: message`), and they travel together in one `ScenarioError` so the
command line can print them all and exit with status 2 (DESIGN.md section 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario, located as precisely as the input allows.

    Attributes:
        file: the file the problem is in, as the user gave it (a scenario YAML, a CSV it
            references, or `--set` for a command-line override).
        line: 1-based line in `file`, or None when there is no line (overrides, a missing file).
        path: dotted path of the offending value, list items as `[i]`
            (`mechanisms[0].intercept`); `<root>` for the document as a whole.
        message: what is wrong, in words a scenario author can act on.
    """

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}"


class ScenarioError(Exception):
    """A scenario (or several) failed validation; `problems` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
