"""Command line: ``diffusion-sim validate|run|sweep|plot|compare`` (glue only).

Heavy modules (numpy, Mesa, pandas, pyarrow, matplotlib) are imported inside the commands that
need them, so ``--help`` and ``validate`` answer fast. Errors a user can fix are printed as
messages with exit status 2, never as tracebacks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate how migration-control policies spread between states.",
    pretty_exceptions_enable=False,
)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a scenario field: dotted.path=value (repeatable).",
        metavar="PATH=VALUE",
    ),
]
OutOption = Annotated[Path, typer.Option("--out", help="Root folder for results.")]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Local worker processes; 1 = in this process. Default: one per core, or this "
        "process for a batch too small to repay starting workers (under about 1.5 s of work)."
    ),
]
SchedulerOption = Annotated[
    str | None, typer.Option(help="Address of a Dask scheduler (tcp://HOST:PORT).")
]
ResumeOption = Annotated[
    bool, typer.Option("--resume/--force", help="Resume a batch, or start it over.", metavar="")
]
NoPlotsOption = Annotated[bool, typer.Option("--no-plots", help="Skip the figures.", metavar="")]


class UserError(Exception):
    """An error the user can fix; printed without a traceback, exit status 2."""


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _load(path: Path, overrides: list[str]):
    from .errors import ScenarioError
    from .loader import load_scenario

    try:
        return load_scenario(path, overrides)
    except ScenarioError as exc:
        _fail("\n".join(str(p) for p in exc.problems) + f"\n{path}: {len(exc.problems)} problem(s)")


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files.")],
    set_: SetOption = None,
) -> None:
    """Check scenario files; print every problem as file:line: path: message."""
    from .errors import ScenarioError
    from .loader import load_scenario, validate_files

    if set_:
        problems = []
        for f in files:
            try:
                load_scenario(f, set_)
            except ScenarioError as exc:
                problems.extend(exc.problems)
    else:
        problems = validate_files(files)
    for p in problems:
        typer.echo(str(p), err=True)
    if problems:
        _fail(f"{len(problems)} problem(s) in {len(files)} file(s)")
    for f in files:
        typer.echo(f"ok: {f}")


def _batch_overrides(
    replicates: int | None, seed: int | None, steps: int | None, set_: list[str] | None
) -> list[str]:
    from .loader import Override

    out: list[str] = list(set_ or [])
    for path, value, option in (
        ("runs.replicates", replicates, "--replicates"),
        ("runs.seed", seed, "--seed"),
        ("time.steps", steps, "--steps"),
    ):
        if value is not None:
            out.append(Override(path, value, option))
    return out


def _execute(
    path: Path,
    overrides: list[str],
    points: list[dict[str, Any]] | None,
    *,
    out: Path,
    workers: int | None,
    scheduler: str | None,
    force: bool,
    no_plots: bool,
) -> None:
    """Plan, run and report a batch (used by ``run`` and ``sweep``).

    Order matters for "nothing half-written": options are checked, the executor is reached
    (a Dask scheduler) and the results folder proven writable before anything is written.
    """
    import json

    from rich.console import Console

    from .errors import ScenarioError
    from .loader import load_scenario, scenario_hash
    from .progress import progress_bar
    from .runner import (
        Batch,
        BatchError,
        Point,
        default_workers,
        is_complete,
        make_executor,
        run_session,
        usable_cores,
        writing_session,
    )
    from .seeds import world_seed
    from .store import BatchStore, StoreError
    from .world import build_world

    console = Console(stderr=True, soft_wrap=True)
    base = _load(path, overrides)
    sweep_params = sorted({k for p in (points or [{}]) for k in p})
    plan_points = []
    for i, values in enumerate(points or [{}]):
        try:
            scn = load_scenario(
                path, overrides + [f"{k}={json.dumps(v)}" for k, v in values.items()]
            )
        except ScenarioError as exc:
            _fail("\n".join(f"{p} (sweep point {i}: {values})" for p in exc.problems))
        plan_points.append(Point(i, values, scn, scenario_hash(scn)))
    batch = Batch(
        base.name, base.runs.seed, base.runs.replicates, plan_points, base.runs.chunk, sweep_params
    )
    store = BatchStore.for_batch(out, base.name, batch.batch_id)
    if workers is not None and workers < 1 and not scheduler:
        _fail(f"error: --workers must be at least 1 (got {workers})")
    previous = None if force else store.manifest()
    if is_complete(store, batch, previous):
        console.print(f"[green]Already complete:[/] {store.path} (use --force to run again)")
        try:
            _summary(store, console, previous.get("run_status", {}))  # type: ignore[union-attr]
        except StoreError as exc:
            _fail(f"error: {exc}")
        return
    if previous and previous.get("status") == "complete":
        console.print(f"{store.path} was marked complete but has chunks missing: resuming")
    world = build_world(base, world_seed(base.runs.seed))
    if workers is None:
        workers = default_workers(batch, world, usable_cores())
    try:
        with (
            make_executor(workers, scheduler) as ex,
            writing_session(store, batch, force=force, say=console.print) as session,
            progress_bar(batch.n_runs, base.name, console) as advance,
        ):
            manifest, report = run_session(
                batch, store, base, overrides, world, ex, session, on_progress=advance
            )
    except (BatchError, StoreError) as exc:
        _fail(f"error: {exc}")
    except KeyboardInterrupt:
        _fail(f"interrupted: rerun the same command to resume {store.path}", 130)
    console.print(
        f"{report.runs_this_session} runs in {report.seconds:.1f} s "
        f"({report.runs_this_session / max(report.seconds, 1e-9):,.0f} runs/s, {ex.description})"
    )
    if not no_plots and base.outputs.plots:
        try:
            _plots(store.path, None, base.outputs.formats, console)
        except OSError as exc:
            _fail(
                f"error: the runs are complete in {store.path}, but the figures could not be "
                f"written ({exc}); draw them with: diffusion-sim plot {store.path}",
                1,
            )
    _summary(store, console, manifest["run_status"])


def _summary(store, console, status: dict) -> None:
    """Summary table, runs ok / failed, results path; exit status 1 if any run failed."""
    _report(store, console)
    ok, failed = int(status.get("ok", 0)), int(status.get("failed", 0))
    console.print(f"Runs ok: {ok}, failed: {failed}")
    if failed:
        _fail(f"{failed} run(s) failed: see {store.path / 'runs.parquet'} (status, error)", 1)


def _plots(path: Path, kinds, formats, console, **network: Any) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    from .report import plot_results, world_varies_note

    written = plot_results(path, kinds=kinds, formats=formats, **network)
    if written:
        console.print(f"Plots: {written[0].parent}")
    note = world_varies_note(path)
    if note:
        console.print(f"Note: {note}")
    return written


def _number(value: float) -> str:
    """Three significant digits, without scientific notation for counts in the thousands."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _report(store, console) -> None:
    """Results path and a short summary table of the runs."""
    import pandas as pd
    from rich.table import Table

    # Only the columns shown: the table of a long batch is large (seeds, parameters, errors).
    shown = [
        c
        for c in store.table_columns("runs")
        if ":final_share" in c
        or ":final_agreements" in c
        or ":final_beyond_sponsor" in c
        or c in ("max_depth", "spillover_ratio", "hr_exposed_share")
    ]
    runs = store.read_table("runs", columns=["status", "point", *shown])
    ok = runs[runs["status"] == "ok"]
    points = ok["point"].nunique()
    pooled = f", {points} sweep points pooled" if points > 1 else ""
    table = Table(title=f"{store.path.parent.name}: {len(ok)} runs{pooled}")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("5%", justify="right")
    table.add_column("95%", justify="right")
    table.add_column("runs", justify="right")  # with the metric defined (e.g. nothing in force)
    for c in shown:
        x = pd.to_numeric(ok[c], errors="coerce").dropna()
        if len(x):
            values = (x.mean(), x.quantile(0.05), x.quantile(0.95))
            table.add_row(c, *(_number(v) for v in values), f"{len(x):,}")
    console.print(table)
    console.print(f"Results: {store.path}")
    print(store.path)


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    replicates: Annotated[int | None, typer.Option(help="Replicates (runs.replicates).")] = None,
    seed: Annotated[int | None, typer.Option(help="Root seed (runs.seed).")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps (time.steps).")] = None,
    out: OutOption = Path("results"),
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    set_: SetOption = None,
    resume: ResumeOption = True,
    no_plots: NoPlotsOption = False,
) -> None:
    """Run a scenario's replicates and write results/<name>/<batch-id>/."""
    overrides = _batch_overrides(replicates, seed, steps, set_)
    _execute(
        scenario,
        overrides,
        None,
        out=out,
        workers=workers,
        scheduler=scheduler,
        force=not resume,
        no_plots=no_plots,
    )


@app.command()
def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    grid: Annotated[
        list[str] | None,
        typer.Option(help="path=v1,v2,... (repeatable; replaces sweep:).", metavar="GRID"),
    ] = None,
    range_: Annotated[
        list[str] | None,
        typer.Option(
            "--range", help="path=low:high (repeatable; replaces sweep:).", metavar="RANGE"
        ),
    ] = None,
    method: Annotated[str | None, typer.Option(help="grid | random | lhs | sobol")] = None,
    samples: Annotated[int | None, typer.Option(help="Points for random/lhs/sobol.")] = None,
    replicates: Annotated[int | None, typer.Option(help="Replicates per point.")] = None,
    seed: Annotated[int | None, typer.Option(help="Root seed.")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps.")] = None,
    out: OutOption = Path("results"),
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    set_: SetOption = None,
    resume: ResumeOption = True,
    no_plots: NoPlotsOption = False,
) -> None:
    """Run a parameter sweep: the scenario's sweep: block, or --grid / --range options."""
    from .sweep import SweepError, expand, parse_grid_option, parse_range_option

    overrides = _batch_overrides(replicates, seed, steps, set_)
    base = _load(scenario, overrides)
    params: dict[str, Any] = {}
    try:
        if grid and range_ and method is None:
            raise SweepError(
                "give --grid (the grid method) or --range (random, lhs or sobol), not both"
            )
        if grid or range_:
            for g in grid or []:
                k, values = parse_grid_option(g)
                params[k] = values
            for r in range_ or []:
                k, bounds = parse_range_option(r)
                params[k] = bounds
            chosen = method or ("grid" if grid and not range_ else "lhs")
            n = 16 if samples is None else samples
        elif base.sweep is not None:
            for k, v in base.sweep.parameters.items():
                params[k] = (v.low, v.high) if hasattr(v, "low") else list(v)
            chosen = method or base.sweep.method
            n = base.sweep.samples if samples is None else samples
        else:
            _fail(f"{scenario}: no sweep: block and no --grid/--range option")
        if chosen not in ("grid", "random", "lhs", "sobol"):
            raise SweepError(f"--method must be grid, random, lhs or sobol (got {chosen!r})")
        points = expand(chosen, params, n, base.runs.seed)
    except SweepError as exc:
        _fail(f"error: {exc}")
    _execute(
        scenario,
        overrides,
        points,
        out=out,
        workers=workers,
        scheduler=scheduler,
        force=not resume,
        no_plots=no_plots,
    )


@app.command()
def plot(
    results: Annotated[Path, typer.Argument(help="A results folder.")],
    kind: Annotated[
        list[str] | None, typer.Option(help="Figure kind (repeatable).", metavar="KIND")
    ] = None,
    format_: Annotated[
        list[str] | None,
        typer.Option("--format", help="png, svg or pdf (repeatable).", metavar="FORMAT"),
    ] = None,
    dates: Annotated[
        str | None,
        typer.Option(help="Network picture: comma-separated dates, e.g. 2007,2010,2020."),
    ] = None,
    run_id: Annotated[
        int | None, typer.Option("--run", help="Network picture: the run id to draw.")
    ] = None,
) -> None:
    """(Re)draw the figures of a results folder into its plots/."""
    from rich.console import Console

    from .store import StoreError, open_results

    try:
        network_dates = [float(d) for d in dates.split(",")] if dates else None
    except ValueError:
        _fail(f"error: --dates {dates!r}: expected comma-separated years such as 2007,2010")
    try:
        open_results(results)
        written = _plots(
            results,
            kind or None,
            format_ or ["png"],
            Console(stderr=True, soft_wrap=True),
            network_dates=network_dates,
            network_run=run_id,
        )
    except (StoreError, ValueError) as exc:
        _fail(f"error: {exc}")
    for w in written:
        typer.echo(str(w))


@app.command()
def compare(
    results: Annotated[list[Path], typer.Argument(help="Two or more results folders.")],
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("results/compare"),
    format_: Annotated[
        list[str] | None,
        typer.Option("--format", help="png, svg or pdf (repeatable).", metavar="FORMAT"),
    ] = None,
) -> None:
    """Overlay spillover curves of several results folders and tabulate their differences."""
    import matplotlib

    matplotlib.use("Agg")
    from .compare import compare_results
    from .store import StoreError, open_results

    names = labels.split(",") if labels else None
    try:
        if len(results) < 2:
            raise ValueError("compare needs at least two results folders")
        if names is not None and len(names) != len(results):
            raise ValueError(f"--labels has {len(names)} labels for {len(results)} folders")
        for r in results:
            open_results(r)
        summary = compare_results(results, names, out, formats=format_ or ["png"])
    except (StoreError, ValueError) as exc:
        _fail(f"error: {exc}")
    typer.echo(f"Comparison written to {out}")
    for key, value in summary.items():
        if isinstance(value, str | Path):
            typer.echo(f"  {key}: {value}")
        elif key == "figures":
            for figure in value:
                typer.echo(f"  figure: {figure}")


def main() -> None:
    """Entry point of the ``diffusion-sim`` command."""
    try:
        app()
    except UserError as exc:  # pragma: no cover - commands raise typer.Exit themselves
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


@app.command()
def calibrate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    params: Annotated[
        str, typer.Option("--params", help="Comma-separated dotted paths of the parameters to fit.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for calibration.json, calibrated.yaml, figure.")
    ],
    observed: Annotated[
        Path | None,
        typer.Option(
            help="CSV state,mechanism,partner,date: every adoption in the window (complete). "
            "Without it: the scenario's observed: list (partial, ABC)."
        ),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="mle | abc (default: mle with --observed, else abc).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Fit only the history before DATE (year or ISO date).")
    ] = None,
    range_: Annotated[
        list[str] | None,
        typer.Option(
            "--range", help="path=low:high: search bounds (mle) or prior (abc).", metavar="RANGE"
        ),
    ] = None,
    intervals: Annotated[str, typer.Option(help="mle intervals: wald | profile.")] = "wald",
    draws: Annotated[int, typer.Option(help="abc: prior draws.")] = 1000,
    abc_replicates: Annotated[int, typer.Option(help="abc: replicates per draw.")] = 10,
    accept: Annotated[float, typer.Option(help="abc: accepted share of the runs.")] = 0.05,
    replicates: Annotated[int, typer.Option(help="Runs simulated for the figure.")] = 200,
    workers: Annotated[
        int | None, typer.Option(help="abc: local worker processes (default: this process).")
    ] = None,
    scheduler: SchedulerOption = None,
    set_: SetOption = None,
) -> None:
    """Fit parameters to an observed timeline (exact likelihood, or ABC for partial ones)."""
    import matplotlib

    matplotlib.use("Agg")
    from contextlib import nullcontext

    from . import calibrate as cal
    from .runner import BatchError, make_executor
    from .sweep import SweepError, parse_range_option

    base = _load(scenario, list(set_ or []))
    try:
        ranges = dict(parse_range_option(r) for r in range_ or [])
        until_year = cal.parse_date(until) if until is not None else None
        paths = [p.strip() for p in params.split(",") if p.strip()]
        use_pool = (method or ("mle" if observed else "abc")) == "abc" and (
            scheduler or (workers or 1) > 1
        )
        with make_executor(workers or 1, scheduler) if use_pool else nullcontext() as ex:
            result, observation = cal.calibrate(
                base,
                paths,
                observed=observed,
                method=method,
                until=until_year,
                ranges=ranges,
                intervals=intervals,
                abc_options={
                    "draws": draws,
                    "replicates": abc_replicates,
                    "accept": accept,
                    "executor": ex.executor if ex is not None else None,
                },
            )
        written = cal.write_outputs(
            out, base, result, observation, replicates=replicates, formats=base.outputs.formats
        )
    except (cal.CalibrationError, SweepError, BatchError, ValueError) as exc:
        _fail(f"error: {exc}")
    typer.echo(f"method: {result.method} ({result.intervals})")
    typer.echo(
        f"observed: {result.observed}, {result.n_events} events, {result.steps} steps fitted"
    )
    for e in result.estimates:
        typer.echo(
            f"  {e.path} = {e.estimate:.4g}  se {e.se:.3g}  "
            f"95 % [{e.ci_low:.4g}, {e.ci_high:.4g}]" + (f"  ({e.note})" if e.note else "")
        )
    if result.log_likelihood is not None:
        typer.echo(f"log-likelihood {result.log_likelihood:.4f}, AIC {result.aic:.4f}")
    for path in written.values():
        typer.echo(str(path))


@app.command()
def sensitivity(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    outcome: Annotated[
        list[str],
        typer.Option(
            help="Metric column of runs.parquet, e.g. readmission:final_share (repeatable).",
            metavar="METRIC",
        ),
    ],
    method: Annotated[str, typer.Option(help="morris | sobol")] = "morris",
    params: Annotated[
        str | None, typer.Option(help="Comma-separated dotted paths (default: all with ranges).")
    ] = None,
    range_: Annotated[
        list[str] | None,
        typer.Option(
            "--range", help="path=low:high (repeatable; else the sweep: ranges).", metavar="RANGE"
        ),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Morris trajectories (10) / Sobol base samples (64).")
    ] = None,
    levels: Annotated[int, typer.Option(help="Morris grid levels.")] = 4,
    replicates: Annotated[int | None, typer.Option(help="Replicates per point.")] = None,
    seed: Annotated[int | None, typer.Option(help="Root seed.")] = None,
    out: OutOption = Path("results"),
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    set_: SetOption = None,
    resume: ResumeOption = True,
) -> None:
    """Morris or Sobol indices of summary metrics; runs the design as a batch."""
    import matplotlib

    matplotlib.use("Agg")
    from rich.console import Console

    from . import sensitivity as sens
    from .progress import progress_bar
    from .runner import BatchError
    from .store import StoreError
    from .sweep import SweepError, parse_range_option

    console = Console(stderr=True, soft_wrap=True)
    overrides = _batch_overrides(replicates, seed, None, set_)
    base = _load(scenario, overrides)
    try:
        ranges = dict(parse_range_option(r) for r in range_ or [])
        names = [p.strip() for p in params.split(",") if p.strip()] if params else None
        chosen = sens.parameter_ranges(base, names, ranges)
        n = samples if samples is not None else (10 if method == "morris" else 64)
        design = sens.make_design(method, chosen, n, base.runs.seed, levels=levels)
        console.print(
            f"{method}: {len(design.x)} points x {base.runs.replicates} replicates "
            f"over {len(chosen)} parameters"
        )
        with progress_bar(len(design.x) * base.runs.replicates, base.name, console) as advance:
            store, _ = sens.run_design(
                base,
                design,
                out=out,
                workers=workers,
                scheduler=scheduler,
                force=not resume,
                overrides=overrides,
                on_progress=advance,
                describe=console.print,
            )
        runs = store.read_table("runs")
        import pandas as pd

        table = pd.concat(
            [sens.analyse(design, sens.outcome_means(runs, o, len(design.x)), o) for o in outcome]
        )
        written = sens.write_outputs(store, design, table, formats=base.outputs.formats)
    except (sens.SensitivityError, SweepError, BatchError, StoreError) as exc:
        _fail(f"error: {exc}")
    primary = sens.PRIMARY[method]
    for o in outcome:
        sub = table[(table["outcome"] == o) & (table["index"] == primary)].sort_values("rank")
        typer.echo(f"{o}: {primary} (95 % CI), most influential first")
        for _, row in sub.iterrows():
            typer.echo(
                f"  {row['rank']}. {row['parameter']}: {row['value']:.4g} "
                f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}]"
            )
    for path in written.values():
        typer.echo(str(path))
