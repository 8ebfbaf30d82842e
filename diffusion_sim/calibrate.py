"""Fit scenario coefficients to an observed adoption timeline (``diffusion-sim calibrate``).

Two estimators share the observed timeline, the parameter handling and the outputs:

* ``mle`` (the default when a complete timeline is given): maximise the exact discrete-time
  event-history log-likelihood (Berry & Berry 1990; ``likelihood.py``) with scipy, then
  report Wald intervals from the observed information (the numerical Hessian of the
  log-likelihood at the maximum) or, on request, profile-likelihood intervals.
* ``abc`` (``abc.py``): approximate Bayesian computation for timelines that cover only some
  units (the scenario's ``observed:`` list), where the exact likelihood does not apply.

Parameters are named by their dotted scenario path (``mechanisms.readmission.intercept``,
``diffusion.channels.emulation.weight``, ``diffusion.bilateral.chain``,
``diffusion.covariates.openness``, ...). Every evaluation builds the world of the scenario with
the candidate values through ``loader.override_scenario`` (so each is validated like a
``--set``) and the batch's world seed, so a generated world stays the same world.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Scenario
from .errors import ScenarioError
from .kernel import Kernel, ZeroProbabilityError
from .likelihood import HistoryError, history_from_records, log_likelihood
from .loader import dump_scenario, override_scenario
from .seeds import run_seed, world_seed
from .world import BILATERAL_TERMS, World, build_world, calendar_year
from .world import resolve_mechanisms as _mechanism_specs

#: 97.5 % quantile of the standard normal (two-sided 95 % Wald interval).
Z95 = 1.959963984540054
#: 95 % quantile of chi-square with one degree of freedom (profile-likelihood interval).
CHI2_95 = 3.841458820694124

#: Parameter forms ``calibrate`` fits, with their schema bounds. Everything else (network
#: generators, states, the time window, integer or text fields) changes the world's
#: structure or is not continuous, so it is rejected with this list.
PARAMETER_FORMS: tuple[tuple[str, str, tuple[float, float]], ...] = (
    ("mechanisms.<id>.intercept", r"^mechanisms\.[^.]+\.intercept$", (-50.0, 50.0)),
    ("mechanisms.<id>.channels.<channel>", r"^mechanisms\.[^.]+\.channels\.[^.]+$", (-50.0, 50.0)),
    (
        "mechanisms.<id>.covariates.<covariate>",
        r"^mechanisms\.[^.]+\.covariates\.[^.]+$",
        (-50.0, 50.0),
    ),
    ("mechanisms.<id>.effectiveness", r"^mechanisms\.[^.]+\.effectiveness$", (0.0, 1.0)),
    ("diffusion.channels.<channel>.weight", r"^diffusion\.channels\.[^.]+\.weight$", (-50.0, 50.0)),
    ("diffusion.covariates.<covariate>", r"^diffusion\.covariates\.[^.]+$", (-50.0, 50.0)),
    (
        "diffusion.bilateral.<term>",
        r"^diffusion\.bilateral\.(demand|conditionality|chain|emulation|hr_gap|openness)$",
        (-50.0, 50.0),
    ),
    ("flows.deflection", r"^flows\.deflection$", (0.0, 1.0)),
)


#: A parameter vector (in the order of the fitted paths).
Theta = Sequence[float] | np.ndarray


class CalibrationError(ValueError):
    """Input that cannot be calibrated (bad observed file, unknown parameter, a history the
    model gives probability zero). The command line prints it and exits with status 2."""


# --------------------------------------------------------------------------------------------
# Observed timelines
# --------------------------------------------------------------------------------------------


def parse_date(text: Any) -> float:
    """A year (``2008``, ``2008.5``) or an ISO date (``2008-12-01``) as a fractional calendar
    year, as ``world.calendar_year`` (1 January of year y is y)."""
    if isinstance(text, datetime.date):
        return calendar_year(text)
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not math.isfinite(text):
            raise ValueError(f"{text!r} is not a year or an ISO date")
        return float(text)
    s = str(text).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", s):
        return float(s)
    try:
        return calendar_year(datetime.date.fromisoformat(s[:10]))
    except ValueError:
        raise ValueError(f"{s!r} is not a year or an ISO date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Observation:
    """An observed adoption timeline.

    Attributes:
        records: dicts with ``mechanism``, ``state``, ``partner`` (None for unilateral) and
            ``date`` (fractional calendar year).
        complete: True when every adoption in the window is listed (anything absent did not
            happen): the exact likelihood applies. False for a partial timeline (the
            scenario's ``observed:`` list covers only some units): only the listed units are
            compared, and only by simulation (ABC).
        source: where it was read from (a CSV path or ``<scenario>:observed``).
        lines: the line of each record in ``source`` (for messages).
    """

    records: list[dict[str, Any]]
    complete: bool
    source: str
    lines: list[int] = field(default_factory=list)


def read_observed(path: str | Path) -> Observation:
    """Read an observed CSV (columns ``state``, ``mechanism``, ``partner``, ``date``; a
    complete timeline). Every problem is reported as ``file:line: column: message``.

    Raises:
        CalibrationError: a missing file or column, an empty id or an unreadable date.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read the observed file: {exc.strerror}") from exc
    reader = csv.reader(text.splitlines())
    rows = list(reader)
    if not rows:
        raise CalibrationError(f"{path}:1: <root>: empty file, expected a header row")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in ("state", "mechanism", "partner", "date") if c not in header]
    if missing:
        raise CalibrationError(
            f"{path}:1: <header>: missing column(s) {', '.join(missing)} "
            "(expected state, mechanism, partner, date)"
        )
    col = {c: header.index(c) for c in ("state", "mechanism", "partner", "date")}
    problems: list[str] = []
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(f"{path}:{line}: <row>: {len(row)} cells, the header has {len(header)}")
            continue
        cells = {c: row[i].strip() for c, i in col.items()}
        for c in ("state", "mechanism", "date"):
            if not cells[c]:
                problems.append(f"{path}:{line}: {c}: empty cell")
        if not cells["date"]:
            continue
        try:
            date = parse_date(cells["date"])
        except ValueError as exc:
            problems.append(f"{path}:{line}: date: {exc}")
            continue
        records.append(
            {
                "mechanism": cells["mechanism"],
                "state": cells["state"],
                "partner": cells["partner"] or None,
                "date": date,
            }
        )
        lines.append(line)
    if problems:
        raise CalibrationError("\n".join(problems))
    return Observation(records, complete=True, source=str(path), lines=lines)


def scenario_observation(scenario: Scenario) -> Observation:
    """The scenario's ``observed:`` list as a partial timeline.

    Raises:
        CalibrationError: when the scenario has no ``observed:`` list.
    """
    if not scenario.observed:
        raise CalibrationError(
            f"scenario {scenario.name} has no observed: list; give --observed FILE.csv"
        )
    records = [
        {
            "mechanism": o.mechanism,
            "state": o.state,
            "partner": o.partner,
            "date": calendar_year(o.date),
        }
        for o in scenario.observed
    ]
    return Observation(records, complete=False, source=f"<{scenario.name}>:observed")


def _relabel(message: str, observation: Observation) -> str:
    """``observed row n`` (likelihood.py) -> ``file:line`` of the observed file."""

    def repl(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if observation.lines and 1 <= n <= len(observation.lines):
            return f"{observation.source}:{observation.lines[n - 1]}"
        return f"{observation.source}: observed item {n}"

    return re.sub(r"observed row (\d+)", repl, message)


def history_steps(world: World, observation: Observation, until: float | None) -> tuple[Any, int]:
    """The replayable history and the number of steps it covers (``likelihood.py``), with
    problems located in the observed file."""
    if until is not None and not world.start < until <= world.start + world.steps:
        raise CalibrationError(
            f"--until {until:g} is outside the window ({world.start} to "
            f"{world.start + world.steps}, exclusive of the start)"
        )
    try:
        return history_from_records(world, observation.records, until)
    except HistoryError as exc:
        raise CalibrationError(_relabel(str(exc), observation)) from None


# --------------------------------------------------------------------------------------------
# Observed and simulated cumulative curves (figure, ABC distance)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tracked:
    """What is compared between an observed timeline and simulations.

    ``mechanisms`` are world mechanism indices (one curve each). With ``units`` None every
    endogenous adoption of those mechanisms counts (a complete timeline); otherwise only the
    listed units, encoded by :func:`unit_code`.
    """

    mechanisms: list[int]
    units: np.ndarray | None


def unit_code(n: int, mechanism: int, state: int, partner: int) -> int:
    """An integer per unit: (mechanism, state) or (mechanism, unordered pair)."""
    a, b = (state, partner) if partner < 0 else (min(state, partner), max(state, partner))
    return (mechanism * n + a) * (n + 1) + (b + 1)


def _scheduled_codes(world: World) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for events in world.adoptions.values():
        for s in events:
            out.setdefault(s.step, set()).add(unit_code(world.n, s.mechanism, s.state, s.partner))
    return out


def observed_units(world: World, observation: Observation) -> tuple[Tracked, np.ndarray]:
    """The tracked units and the observed cumulative counts, shape (mechanisms, steps).

    Records that coincide with a scheduled adoption (same unit, same step) belong to the
    scenario's events, not to the endogenous history, and are left out (as in the
    likelihood). Ids are assumed valid (checked by :func:`history_steps`).
    """
    mech = {m.id: m.index for m in world.mechanisms}
    scheduled = _scheduled_codes(world)
    codes, steps, mechs = [], [], []
    for rec in observation.records:
        m = mech[str(rec["mechanism"])]
        i = world.index[str(rec["state"])]
        j = world.index[str(rec["partner"])] if rec.get("partner") else -1
        step = math.floor(float(rec["date"]) - world.start)
        code = unit_code(world.n, m, i, j)
        if code in scheduled.get(step, set()):
            continue
        codes.append(code)
        steps.append(step)
        mechs.append(m)
    if observation.complete:
        tracked = Tracked([m.index for m in world.mechanisms], None)
    else:
        tracked = Tracked(sorted(set(mechs)), np.unique(np.asarray(codes, dtype=np.int64)))
    counts = np.zeros((len(tracked.mechanisms), world.steps))
    for m, step in zip(mechs, steps, strict=True):
        counts[tracked.mechanisms.index(m), step] += 1
    return tracked, np.cumsum(counts, axis=1)


def simulated_counts(
    world: World, events: Mapping[str, np.ndarray], tracked: Tracked, replicates: int
) -> np.ndarray:
    """Cumulative endogenous adoptions of the tracked units per replicate, shape
    (replicates, mechanisms, steps), from a kernel result's event columns."""
    out = np.zeros((replicates, len(tracked.mechanisms), world.steps))
    if not events or len(events.get("state", ())) == 0:
        return out
    keep = (events["action"] == 0) & ~events["exogenous"]
    pos = np.full(len(world.mechanisms), -1)
    pos[tracked.mechanisms] = np.arange(len(tracked.mechanisms))
    k = pos[events["mechanism"]]
    keep &= k >= 0
    if tracked.units is not None:
        state = events["state"].astype(np.int64)
        partner = events["partner"].astype(np.int64)
        a = np.where(partner < 0, state, np.minimum(state, partner))
        b = np.where(partner < 0, partner, np.maximum(state, partner))
        n = world.n
        code = (events["mechanism"].astype(np.int64) * n + a) * (n + 1) + (b + 1)
        keep &= np.isin(code, tracked.units)
    np.add.at(out, (events["replicate"][keep], k[keep], events["step"][keep]), 1.0)
    return np.cumsum(out, axis=2)


def simulate_counts(
    world: World, tracked: Tracked, seeds: Sequence[np.random.SeedSequence]
) -> np.ndarray:
    """Run the kernel for ``seeds`` (one batch) and count the tracked adoptions."""
    result = Kernel(world, list(seeds)).run()
    return simulated_counts(world, result.events, tracked, len(seeds))


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def _walk(data: Any, parts: Sequence[str]) -> Any:
    """The value at a dotted path in a scenario dump (list items by id or index)."""
    for part in parts:
        if isinstance(data, list):
            match = [x for x in data if isinstance(x, dict) and x.get("id") == part]
            if match:
                data = match[0]
            elif part.isdigit() and int(part) < len(data):
                data = data[int(part)]
            else:
                return None
        elif isinstance(data, dict):
            if part not in data:
                return None
            data = data[part]
        else:
            return None
    return data


def parameter_bounds(path: str) -> tuple[float, float]:
    """Schema bounds of a calibratable parameter.

    Raises:
        CalibrationError: for a path that is not one of :data:`PARAMETER_FORMS`.
    """
    for _form, pattern, bounds in PARAMETER_FORMS:
        if re.match(pattern, path):
            return bounds
    forms = ", ".join(f for f, _, _ in PARAMETER_FORMS)
    raise CalibrationError(
        f"--params: {path}: not a parameter calibrate can fit (a continuous coefficient); "
        f"the forms are: {forms}"
    )


def start_values(scenario: Scenario, paths: Sequence[str]) -> np.ndarray:
    """Each parameter's value in the scenario (its effective value when the path is a
    per-mechanism override not written in the file), after checking every path.

    Raises:
        CalibrationError: for a path of the wrong form, or one the scenario does not have
            (with the closest key, as for ``--set``).
    """
    if not paths:
        raise CalibrationError("--params: give at least one dotted parameter path")
    if len(set(paths)) != len(paths):
        raise CalibrationError("--params: a parameter is listed twice")
    problems: list[str] = []
    data = scenario.model_dump(exclude_none=True)
    for p in paths:
        try:
            parameter_bounds(p)
        except CalibrationError as exc:
            # A path the scenario does not have at all: say so, with the closest key.
            current = _walk(data, p.split("."))
            try:
                override_scenario(scenario, {p: 0.0 if current is None else current})
            except ScenarioError as missing:
                problems.extend(f"--params: {q.path}: {q.message}" for q in missing.problems)
                continue
            problems.append(str(exc))
    if problems:
        raise CalibrationError("\n".join(problems))
    values = []
    for p in paths:
        parts = p.split(".")
        value = _walk(data, parts)
        if value is None and parts[0] == "mechanisms" and len(parts) == 4:
            mech = _walk(data, parts[:2])
            if isinstance(mech, dict) and parts[2] == "channels":
                value = scenario.channel_weight(mech["id"], parts[3])
            elif isinstance(mech, dict) and parts[2] == "covariates":
                value = scenario.covariate_weight(mech["id"], parts[3])
        if value is None and parts[:2] == ["diffusion", "covariates"]:
            value = 0.0
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            value = 0.0 if value is None else value
        values.append(value)
    try:
        override_scenario(scenario, dict(zip(paths, values, strict=True)))
    except ScenarioError as exc:
        raise CalibrationError(
            "\n".join(f"--params: {p.path}: {p.message}" for p in exc.problems)
        ) from None
    bad = [p for p, v in zip(paths, values, strict=True) if not isinstance(v, int | float)]
    if bad:
        raise CalibrationError(f"--params: {', '.join(bad)}: not a number in the scenario")
    return np.asarray(values, dtype=float)


def resolve_bounds(
    paths: Sequence[str], ranges: Mapping[str, tuple[float, float]] | None
) -> np.ndarray:
    """(k, 2) bounds: ``--range`` where given (must lie inside the schema), else the schema.

    Raises:
        CalibrationError: a range for a parameter not fitted, or outside the schema bounds.
    """
    ranges = dict(ranges or {})
    extra = [p for p in ranges if p not in paths]
    if extra:
        raise CalibrationError(f"--range: {', '.join(extra)} not among --params")
    out = []
    for p in paths:
        lo, hi = parameter_bounds(p)
        if p in ranges:
            rlo, rhi = ranges[p]
            if rlo < lo or rhi > hi or rlo >= rhi:
                raise CalibrationError(
                    f"--range {p}={rlo:g}:{rhi:g}: must satisfy {lo:g} <= low < high <= {hi:g}"
                )
            lo, hi = rlo, rhi
        out.append((lo, hi))
    return np.asarray(out, dtype=float)


class Model:
    """A scenario with some parameters free: theta -> scenario, world, log-likelihood."""

    def __init__(self, scenario: Scenario, paths: Sequence[str]) -> None:
        self.scenario = scenario
        self.paths = list(paths)
        self.seed = world_seed(scenario.runs.seed)
        self.start = start_values(scenario, self.paths)
        self._structural = any(p.startswith("flows.") for p in self.paths)
        self._base: World | None = None

    def values(self, theta: Theta) -> dict[str, float]:
        return {p: float(v) for p, v in zip(self.paths, theta, strict=True)}

    def scenario_at(self, theta: Theta) -> Scenario:
        """The scenario with ``theta`` (validated like ``--set``).

        Raises:
            CalibrationError: when the values are not valid.
        """
        try:
            return override_scenario(self.scenario, self.values(theta))
        except ScenarioError as exc:
            raise CalibrationError(
                "\n".join(f"{p.path}: {p.message}" for p in exc.problems)
            ) from None

    def world_at(self, theta: Theta) -> World:
        """The world of ``theta``. Coefficients (intercepts, channel, covariate and bilateral
        weights, effectiveness) live only in the mechanism specs and the bilateral terms, so
        those are recompiled into a copy of the world built once; ``flows.deflection`` shapes
        the flows, so it rebuilds the world."""
        scenario = self.scenario_at(theta)
        if self._structural:
            return build_world(scenario, self.seed)
        if self._base is None:
            self._base = build_world(self.scenario, self.seed)
        bilateral = scenario.diffusion.bilateral
        return dataclasses.replace(
            self._base,
            mechanisms=_mechanism_specs(scenario),
            bilateral_terms=(
                {t: float(getattr(bilateral, t)) for t in BILATERAL_TERMS} if bilateral else {}
            ),
        )


class Likelihood:
    """The exact log-likelihood of a complete timeline as a function of theta."""

    def __init__(self, model: Model, observation: Observation, until: float | None) -> None:
        if not observation.complete:
            raise CalibrationError(
                f"{observation.source} covers only some units: the exact likelihood would count "
                "every unlisted adoption as not having happened. Use --method abc, or give a "
                "complete timeline with --observed."
            )
        self.model = model
        world = model.world_at(model.start)
        self.history, self.steps = history_steps(world, observation, until)
        self.n_events = sum(len(v) for v in self.history.unilateral_by_step.values()) + sum(
            len(v) for v in self.history.bilateral_by_step.values()
        )
        self.evaluations = 0
        if any(m.revocation_rate > 0 for m in world.mechanisms):
            raise CalibrationError(
                "the exact likelihood does not cover revocable mechanisms; use --method abc"
            )

    def __call__(self, theta: Theta) -> float:
        """log L(theta); raises ZeroProbabilityError when the history is impossible."""
        self.evaluations += 1
        return log_likelihood(self.model.world_at(theta), self.history, self.steps)

    def safe(self, theta: Theta) -> float:
        """log L(theta), or -inf where the history has probability zero."""
        try:
            return self(theta)
        except ZeroProbabilityError:
            return -math.inf


# --------------------------------------------------------------------------------------------
# Maximum likelihood
# --------------------------------------------------------------------------------------------


@dataclass
class Estimate:
    """One parameter's estimate and its 95 % interval."""

    path: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    start: float
    bounds: tuple[float, float]
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "estimate": _num(self.estimate),
            "se": _num(self.se),
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            "start": _num(self.start),
            "bounds": [_num(self.bounds[0]), _num(self.bounds[1])],
            "note": self.note,
        }


def _num(x: float) -> float | None:
    """JSON-safe number (NaN and infinities as null)."""
    return float(x) if x is not None and math.isfinite(x) else None


@dataclass
class CalibrationResult:
    """What ``calibrate`` found, whatever the method."""

    method: str
    intervals: str
    estimates: list[Estimate]
    n_events: int
    steps: int
    until: float | None
    observed: str
    log_likelihood: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def theta(self) -> np.ndarray:
        return np.array([e.estimate for e in self.estimates])

    @property
    def aic(self) -> float | None:
        if self.log_likelihood is None:
            return None
        return 2.0 * len(self.estimates) - 2.0 * self.log_likelihood

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "intervals": self.intervals,
            "parameters": {e.path: e.as_dict() for e in self.estimates},
            "log_likelihood": _num(self.log_likelihood)
            if self.log_likelihood is not None
            else None,
            "aic": _num(self.aic) if self.aic is not None else None,
            "n_events": self.n_events,
            "n_parameters": len(self.estimates),
            "steps_fitted": self.steps,
            "until": self.until,
            "observed": self.observed,
            **self.details,
        }


def numerical_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x`` with steps ``h`` (per coordinate)."""
    k = len(x)
    hess = np.zeros((k, k))
    f0 = f(x)
    for i in range(k):
        e_i = np.zeros(k)
        e_i[i] = h[i]
        hess[i, i] = (f(x + e_i) - 2.0 * f0 + f(x - e_i)) / h[i] ** 2
        for j in range(i):
            e_j = np.zeros(k)
            e_j[j] = h[j]
            hess[i, j] = hess[j, i] = (
                f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)
            ) / (4.0 * h[i] * h[j])
    return hess


def _maximise(
    f: Callable[[np.ndarray], float], x0: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Maximise ``f`` (which may return -inf) within ``bounds``: L-BFGS-B with
    central-difference gradients, then Nelder-Mead from the best point if L-BFGS-B stopped
    abnormally (kinks or zero-probability regions of the linear link)."""
    from scipy.optimize import minimize

    best_x, best_f = [x0.copy()], [f(x0)]

    def neg(x: np.ndarray) -> float:
        value = f(x)
        if value > best_f[0]:
            best_x[0], best_f[0] = x.copy(), value
        return -value if math.isfinite(value) else 1e300

    def grad(x: np.ndarray) -> np.ndarray:
        g = np.zeros(len(x))
        for i in range(len(x)):
            h = 1e-5 * max(1.0, abs(x[i]))
            up, down = x.copy(), x.copy()
            up[i] = min(x[i] + h, bounds[i, 1])
            down[i] = max(x[i] - h, bounds[i, 0])
            g[i] = (neg(up) - neg(down)) / (up[i] - down[i])
        return g

    res = minimize(neg, x0, jac=grad, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
    info: dict[str, Any] = {
        "optimizer": "L-BFGS-B",
        "converged": bool(res.success),
        "message": str(res.message),
        "iterations": int(res.nit),
    }
    if not res.success or not math.isfinite(best_f[0]):
        res2 = minimize(
            neg,
            best_x[0],
            method="Nelder-Mead",
            bounds=bounds,
            options={"maxiter": 2000 * len(x0), "xatol": 1e-6, "fatol": 1e-8},
        )
        info = {
            "optimizer": "L-BFGS-B, then Nelder-Mead",
            "converged": bool(res2.success),
            "message": f"L-BFGS-B: {res.message}; Nelder-Mead: {res2.message}",
            "iterations": int(res.nit) + int(res2.nit),
        }
    return best_x[0], best_f[0], info


def _profile_interval(
    f: Callable[[np.ndarray], float],
    theta: np.ndarray,
    lmax: float,
    i: int,
    bounds: np.ndarray,
    scale: float,
) -> tuple[float, float]:
    """Profile-likelihood 95 % interval of coordinate ``i``: where
    ``2 (lmax - max_{others} log L) = chi2_1(0.95)``; a bound where it never gets there."""
    from scipy.optimize import brentq

    others = [j for j in range(len(theta)) if j != i]

    def profile(v: float) -> float:
        if not others:
            x = theta.copy()
            x[i] = v
            return f(x)

        def inner(y: np.ndarray) -> float:
            x = theta.copy()
            x[i] = v
            x[others] = y
            return f(x)

        _, value, _ = _maximise(inner, theta[others].copy(), bounds[others])
        return value

    def g(v: float) -> float:
        value = profile(v)
        return (2.0 * (lmax - value) if math.isfinite(value) else 1e6) - CHI2_95

    ends = []
    for direction in (-1.0, 1.0):
        limit = bounds[i, 0] if direction < 0 else bounds[i, 1]
        step = max(scale, 0.05)
        inside = theta[i]
        end = limit
        for _ in range(30):
            candidate = inside + direction * step
            if (candidate - limit) * direction >= 0:
                if g(limit) > 0:
                    end = brentq(g, min(inside, limit), max(inside, limit), xtol=1e-4)
                break
            if g(candidate) > 0:
                end = brentq(g, min(inside, candidate), max(inside, candidate), xtol=1e-4)
                break
            inside, step = candidate, step * 2.0
        ends.append(end)
    return ends[0], ends[1]


def fit_mle(
    scenario: Scenario,
    observation: Observation,
    paths: Sequence[str],
    *,
    until: float | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    intervals: str = "wald",
) -> CalibrationResult:
    """Maximum-likelihood estimates of ``paths`` from a complete observed timeline.

    Args:
        scenario: the scenario (its values are the starting point).
        observation: a complete timeline.
        paths: dotted parameter paths.
        until: fit only the history before this date (fractional year).
        ranges: optional search bounds per path (default: the schema bounds).
        intervals: ``wald`` (estimate +- 1.96 se, se from the inverse observed information)
            or ``profile`` (profile-likelihood intervals; se still from the Hessian).

    Raises:
        CalibrationError: bad input, or a history with probability zero at the start values.
    """
    if intervals not in ("wald", "profile"):
        raise CalibrationError(f"--intervals must be wald or profile (got {intervals!r})")
    model = Model(scenario, paths)
    bounds = resolve_bounds(paths, ranges)
    x0 = np.clip(model.start, bounds[:, 0], bounds[:, 1])
    lik = Likelihood(model, observation, until)
    try:
        lik(x0)
    except ZeroProbabilityError as exc:
        raise CalibrationError(
            f"the observed history has probability zero at the scenario's values: {exc}. "
            "With the linear link an adoption needs eta > 0; with a bilateral mechanism the "
            "pair must be an open candidate dyad. Change the start values (--set) or the model."
        ) from None

    def objective(x: np.ndarray) -> float:
        # Finite-difference probes may step past a bound by a hair: evaluate at the bound.
        return lik.safe(np.clip(x, bounds[:, 0], bounds[:, 1]))

    theta, lmax, info = _maximise(objective, x0, bounds)

    width = bounds[:, 1] - bounds[:, 0]
    at_bound = (theta - bounds[:, 0] < 1e-4 * width) | (bounds[:, 1] - theta < 1e-4 * width)
    h = np.minimum(
        1e-3 * np.maximum(1.0, np.abs(theta)),
        0.25 * np.minimum(theta - bounds[:, 0], bounds[:, 1] - theta).clip(min=1e-6),
    )
    hess = numerical_hessian(objective, theta, h)
    info_matrix = -hess
    cov = np.full((len(theta), len(theta)), np.nan)
    identified = bool(np.all(np.isfinite(info_matrix)))
    if identified:
        eig = np.linalg.eigvalsh(0.5 * (info_matrix + info_matrix.T))
        identified = bool(eig.min() > 1e-8 * max(1.0, eig.max()))
    if identified:
        cov = np.linalg.inv(info_matrix)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None)) if identified else np.full(len(theta), np.nan)

    estimates = []
    for i, p in enumerate(paths):
        note = []
        if at_bound[i]:
            note.append(
                "at a bound of the search range: no Hessian-based se there (the maximum is on "
                "the boundary); use --intervals profile or a wider --range"
            )
            se[i] = math.nan
        if not identified:
            note.append(
                "observed information not positive definite: the data do not identify the "
                "parameters jointly (no standard errors)"
            )
        lo, hi = theta[i] - Z95 * se[i], theta[i] + Z95 * se[i]
        estimates.append(
            Estimate(
                p,
                float(theta[i]),
                float(se[i]),
                lo,
                hi,
                float(model.start[i]),
                (float(bounds[i, 0]), float(bounds[i, 1])),
                "; ".join(note),
            )
        )
    if intervals == "profile":
        for i, e in enumerate(estimates):
            scale = e.se if math.isfinite(e.se) and e.se > 0 else 0.5
            e.ci_low, e.ci_high = _profile_interval(objective, theta, lmax, i, bounds, scale)
    correlation = None
    if identified:
        d = np.sqrt(np.diag(cov))
        correlation = (cov / np.outer(d, d)).round(4).tolist()
    return CalibrationResult(
        method="mle",
        intervals=(
            "wald: estimate +- 1.96 se, se = sqrt(diag(inverse observed information)), "
            "observed information = -(central-difference Hessian of log L at the maximum)"
            if intervals == "wald"
            else "profile: {x : 2 (log L_max - max over the other parameters log L) <= 3.84}; "
            "se from the inverse observed information"
        ),
        estimates=estimates,
        n_events=lik.n_events,
        steps=lik.steps,
        until=until,
        observed=observation.source,
        log_likelihood=float(lmax),
        details={
            **info,
            "evaluations": lik.evaluations,
            "log_likelihood_at_start": _num(lik.safe(x0)),
            "correlation": correlation,
        },
    )


# --------------------------------------------------------------------------------------------
# Entry point and outputs
# --------------------------------------------------------------------------------------------


def calibrate(
    scenario: Scenario,
    paths: Sequence[str],
    *,
    observed: str | Path | None = None,
    method: str | None = None,
    until: float | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    intervals: str = "wald",
    abc_options: Mapping[str, Any] | None = None,
) -> tuple[CalibrationResult, Observation]:
    """Fit ``paths`` by ``method`` (default: ``mle`` with ``observed``, else ``abc`` on the
    scenario's ``observed:`` list)."""
    observation = (
        read_observed(observed) if observed is not None else scenario_observation(scenario)
    )
    method = method or ("mle" if observation.complete else "abc")
    if method == "mle":
        return (
            fit_mle(scenario, observation, paths, until=until, ranges=ranges, intervals=intervals),
            observation,
        )
    if method == "abc":
        from .abc_fit import fit_abc

        return (
            fit_abc(
                scenario, observation, paths, until=until, ranges=ranges, **dict(abc_options or {})
            ),
            observation,
        )
    raise CalibrationError(f"--method must be mle or abc (got {method!r})")


def predictive_counts(
    scenario: Scenario,
    result: CalibrationResult,
    observation: Observation,
    replicates: int = 200,
) -> tuple[World, Tracked, np.ndarray, np.ndarray]:
    """Observed counts and counts simulated from the fit: the plug-in scenario for ``mle``,
    the posterior predictive (one replicate per posterior draw) for ``abc``.

    Returns the fitted world, what is tracked, observed counts (M, T) and simulated counts
    (replicates, M, T).
    """
    model = Model(scenario, [e.path for e in result.estimates])
    world = model.world_at(result.theta)
    # Ids were checked by the fit; the world of the fitted values has the same structure.
    tracked, obs = observed_units(world, observation)
    root = scenario.runs.seed
    draws = result.details.get("_posterior_draws")
    if draws is None:
        seeds = [run_seed(root, 0, k) for k in range(replicates)]
        sims = simulate_counts(world, tracked, seeds)
    else:
        # One kernel call per distinct posterior draw, with as many replicates as it was drawn.
        unique, counts = np.unique(np.asarray(draws)[:replicates], axis=0, return_counts=True)
        parts, first = [], 0
        for theta, count in zip(unique, counts, strict=True):
            seeds = [run_seed(root, 0, k) for k in range(first, first + int(count))]
            parts.append(simulate_counts(model.world_at(theta), tracked, seeds))
            first += int(count)
        sims = np.concatenate(parts)
    return world, tracked, obs, sims


def plot_fit(
    world: World,
    tracked: Tracked,
    observed: np.ndarray,
    simulated: np.ndarray,
    *,
    title: str,
    until: float | None = None,
    complete: bool = True,
) -> Any:
    """Observed cumulative adoptions (black steps) over the 50 % / 90 % bands and median of
    the simulated ones, one panel per tracked mechanism. Returns a matplotlib Figure."""
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from .plots import OKABE_ITO, draw_bands

    k = len(tracked.mechanisms)
    fig = Figure(figsize=(6.4 * min(k, 2), 4.0 * math.ceil(k / 2)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(math.ceil(k / 2), min(k, 2), squeeze=False)).ravel()
    dates = world.start + np.arange(world.steps, dtype=float)
    for j, m in enumerate(tracked.mechanisms):
        ax = axes[j]
        q = np.percentile(simulated[:, j, :], [5, 25, 50, 75, 95], axis=0)
        table = pd.DataFrame(
            {"date": dates, "p5": q[0], "p25": q[1], "median": q[2], "p75": q[3], "p95": q[4]}
        )
        draw_bands(ax, table, OKABE_ITO["blue"], f"simulated from the fit ({len(simulated)} runs)")
        ax.step(
            dates,
            observed[j],
            where="post",
            color=OKABE_ITO["black"],
            linewidth=1.8,
            label="observed",
        )
        if until is not None:
            ax.axvline(
                until,
                color=OKABE_ITO["vermillion"],
                linestyle="--",
                linewidth=1.2,
                label=f"fitted up to {until:g}",
            )
        spec = world.mechanisms[m]
        unit = "Agreements" if spec.bilateral else "Adoptions"
        what = "endogenous, all units" if complete else "endogenous, observed units only"
        ax.set_title(spec.label, fontsize=10)
        ax.set_xlabel("Year")
        ax.set_ylabel(f"{unit}, cumulative ({what})", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, color="#E5E5E5", linewidth=0.6)
        ax.legend(fontsize=8, loc="upper left")
    for ax in axes[k:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return fig


def write_outputs(
    out: str | Path,
    scenario: Scenario,
    result: CalibrationResult,
    observation: Observation,
    *,
    replicates: int = 200,
    formats: Sequence[str] = ("png",),
) -> dict[str, Path]:
    """Write ``calibration.json``, ``calibrated.yaml`` and the fit figure into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = Model(scenario, [e.path for e in result.estimates])
    fitted = model.scenario_at(result.theta)
    paths = {"yaml": out / "calibrated.yaml", "json": out / "calibration.json"}
    header = (
        f"# {scenario.name} calibrated by diffusion-sim calibrate ({result.method}) against "
        f"{observation.source}\n# "
        + "\n# ".join(f"{e.path} = {e.estimate:.6g}" for e in result.estimates)
        + "\n"
    )
    paths["yaml"].write_text(header + dump_scenario(fitted), encoding="utf-8")
    world, tracked, obs, sims = predictive_counts(scenario, result, observation, replicates)
    doc = result.as_json()
    doc = {k: v for k, v in doc.items() if not k.startswith("_")}
    doc["scenario"] = scenario.name
    doc["figure_replicates"] = len(sims)
    doc["observed_final"] = {
        world.mechanisms[m].id: float(obs[j, -1]) for j, m in enumerate(tracked.mechanisms)
    }
    doc["simulated_final_mean"] = {
        world.mechanisms[m].id: float(sims[:, j, -1].mean())
        for j, m in enumerate(tracked.mechanisms)
    }
    paths["json"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    fig = plot_fit(
        world,
        tracked,
        obs,
        sims,
        title=f"{scenario.name}: observed vs. fitted ({result.method})",
        until=result.until,
        complete=observation.complete,
    )
    for fmt in formats:
        paths[fmt] = out / f"calibration_fit.{fmt}"
        fig.savefig(paths[fmt], dpi=150)
    return paths
