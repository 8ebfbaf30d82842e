"""Figures from result tables: tables (and the ``world.json`` dict) in, a ``Figure`` out.

Every function takes an optional ``ax`` (single-panel figures) or ``axes`` (small multiples)
to draw into; without one it makes a new ``matplotlib.figure.Figure`` directly (not through
``pyplot``), so nothing here selects a backend or registers figures with a GUI. To show a
figure interactively, pass axes from ``plt.subplots``. Colours are the Okabe-Ito palette
(safe for the common colour-vision deficiencies); bands are the middle 50 % and 90 % of runs
around the median (``analysis.bands``). The x axis is the calendar year of a step; a curve's
value at year ``y`` is the state after the step that covers ``[y, y + 1)``.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from diffusion_sim import analysis

__all__ = [
    "CHANNEL_STYLE",
    "OKABE_ITO",
    "SERIES_COLOURS",
    "SPLIT_SWATCH",
    "draw_bands",
    "draw_observed",
    "legend_entries",
    "metric_label",
    "plot_buildup",
    "plot_channels",
    "plot_comparison",
    "plot_depth",
    "plot_hr_exposure",
    "plot_network",
    "plot_regions",
    "plot_spillover",
    "plot_sweep_heatmap",
    "plot_sweep_response",
    "representative_run",
]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Order in which series (mechanisms, scenarios, depths) take colours.
SERIES_COLOURS: tuple[str, ...] = (
    OKABE_ITO["blue"],
    OKABE_ITO["vermillion"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["orange"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["black"],
    OKABE_ITO["yellow"],
)

#: Fixed colour (and hatch, for the covariate terms) of every channel, in every figure.
CHANNEL_STYLE: dict[str, tuple[str, str]] = {
    "emulation": (OKABE_ITO["sky_blue"], ""),
    "learning": (OKABE_ITO["bluish_green"], ""),
    "competition": (OKABE_ITO["orange"], ""),
    "conditionality": (OKABE_ITO["vermillion"], ""),
    "demand": (OKABE_ITO["blue"], ""),
    "chain": (OKABE_ITO["reddish_purple"], ""),
    "hr_gap": (OKABE_ITO["yellow"], ""),
    "openness": ("#999999", "//"),
    "human_rights": ("#DDDDDD", ".."),
    "pressure": ("#555555", "xx"),
    "intercept": ("#FFFFFF", "--"),
}

_SCENARIO_STYLES = ("-", "--", "-.", ":")
_BAND_ALPHA = {"p90": 0.15, "p50": 0.35}
_BAND_EDGE_ALPHA = 0.6
_MEDIAN_GID = "band-median"  # marks the median lines drawn by draw_bands, for legends
_TITLE_SIZE = 11


# --------------------------------------------------------------------------- helpers


def _label(world: Mapping[str, Any], mechanism: str) -> str:
    for m in world["mechanisms"]:
        if m["id"] == mechanism:
            return str(m.get("label") or m["id"])
    return mechanism


def _title(text: str, width: int = 52) -> str:
    """Wrap a panel title so long mechanism labels are not clipped."""
    return textwrap.fill(text, width)


def _unit_label(kind: str) -> str:
    return "Agreements in force" if kind == "bilateral" else "States with the mechanism"


def _axes_grid(
    n: int,
    axes: Axes | Sequence[Axes] | None,
    ncols: int = 3,
    panel: tuple[float, float] = (4.2, 3.2),
    sharey: bool = False,
    sharex: bool = False,
) -> tuple[Figure, list[Axes]]:
    """``n`` panels: the given axes, or a new figure with a grid of at most ``ncols`` columns."""
    if axes is not None:
        given = [axes] if isinstance(axes, Axes) else list(axes)
        if len(given) < n:
            raise ValueError(f"this figure needs {n} axes, got {len(given)}")
        fig = given[0].get_figure()
        assert isinstance(fig, Figure)
        return fig, given[:n]
    n = max(n, 1)
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows + 0.6), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False, sharey=sharey, sharex=sharex)
    flat = list(grid.ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    if sharex:  # a panel above an empty slot is the bottom of its column: show its years
        for i, ax in enumerate(flat[:n]):
            if i + cols >= n:
                ax.xaxis.set_tick_params(labelbottom=True)
    return fig, flat[:n]


def _is_bottom(panels: Sequence[Axes], ax: Axes) -> bool:
    """Whether no other visible panel of the same figure lies below ``ax`` in its column."""
    spec = ax.get_subplotspec()
    if spec is None:
        return True
    col, row = spec.colspan.start, spec.rowspan.stop
    for other in panels:
        o = other.get_subplotspec()
        if o is not None and o.colspan.start == col and o.rowspan.start >= row:
            return False
    return True


def _is_left(ax: Axes) -> bool:
    spec = ax.get_subplotspec()
    return spec is None or spec.colspan.start == 0


def _single_ax(ax: Axes | None, size: tuple[float, float] = (7.0, 4.2)) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure()
        assert isinstance(fig, Figure)
        return fig, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots()


def _year_axis(ax: Axes, world: Mapping[str, Any] | None = None, label: bool = True) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    if label:
        ax.set_xlabel("Year")
    if world is not None:
        start = float(world["time"]["start"])
        ax.set_xlim(start, start + int(world["time"]["steps"]) - 1)
    ax.grid(True, color="#E5E5E5", linewidth=0.6)
    ax.set_axisbelow(True)


#: Legend handler that draws a tuple of patches side by side (one per series colour).
SPLIT_SWATCH = {tuple: HandlerTuple(ndivide=None, pad=0.0)}


def _band_legend(colours: Sequence[str], outer: bool = True) -> tuple[list[Any], list[str]]:
    """Legend swatches of the bands as drawn: per band, one patch in each series' colour.

    The 50 % band is drawn over the 90 % band, so its swatch has their combined opacity.
    Pass the result's handles with ``handler_map=SPLIT_SWATCH``.
    """
    inner = _BAND_ALPHA["p50"]
    if outer:
        inner = 1 - (1 - inner) * (1 - _BAND_ALPHA["p90"])
    handles: list[Any] = [tuple(Patch(facecolor=to_rgba(c, inner)) for c in colours)]
    labels = ["50 % of runs"]
    if outer:
        handles.append(
            tuple(
                Patch(
                    facecolor=to_rgba(c, _BAND_ALPHA["p90"]),
                    edgecolor=to_rgba(c, _BAND_EDGE_ALPHA),
                    linewidth=0.6,
                )
                for c in colours
            )
        )
        labels.append("90 % of runs")
    return handles, labels


def draw_bands(
    ax: Axes,
    table: pd.DataFrame,
    colour: str,
    label: str,
    x: str = "date",
    outer: bool = True,
    linestyle: str = "-",
) -> None:
    """Median line with the 50 % band (and the outlined 90 % band if ``outer``) of a
    ``bands`` table."""
    table = table.sort_values(x)
    xs = table[x].to_numpy(dtype=float)
    if outer:  # outlined, so overlapping bands of several series stay distinguishable
        ax.fill_between(
            xs,
            table["p5"],
            table["p95"],
            facecolor=to_rgba(colour, _BAND_ALPHA["p90"]),
            edgecolor=to_rgba(colour, _BAND_EDGE_ALPHA),
            linewidth=0.6,
        )
    ax.fill_between(
        xs, table["p25"], table["p75"], color=colour, alpha=_BAND_ALPHA["p50"], linewidth=0
    )
    ax.plot(
        xs,
        table["median"],
        color=colour,
        linewidth=2.0,
        linestyle=linestyle,
        label=label,
        gid=_MEDIAN_GID,
    )


def draw_observed(ax: Axes, world: Mapping[str, Any], mechanism: str) -> bool:
    """Observed cumulative adoptions of ``mechanism`` as a step function up to the last
    observed record (a record stops where its source stops, so the line is not extended to
    the end of the window); False if none."""
    observed = analysis.observed_curves(world)
    observed = observed[observed["mechanism"] == mechanism]
    if observed.empty:
        return False
    start = float(world["time"]["start"])
    end = start + int(world["time"]["steps"]) - 1
    xs = np.concatenate([[start], observed["date"].to_numpy(float), [end]])
    counts = observed["count"].to_numpy(float)
    ys = np.concatenate([[0.0], counts, [counts[-1]]])
    ax.step(
        xs[:-1],
        ys[:-1],
        where="post",
        color=OKABE_ITO["black"],
        linewidth=1.6,
        linestyle=":",
        marker="o",
        markevery=list(range(1, len(xs) - 1)),
        markersize=3.5,
        label="Observed (cumulative, to the last record)",
    )
    return True


def legend_entries(ax: Axes, outer: bool = True) -> tuple[list[Any], list[str]]:
    """The axes' labelled lines, then band swatches in the colours of the banded medians.

    Pass the handles with ``handler_map=SPLIT_SWATCH``."""
    handles, labels = ax.get_legend_handles_labels()
    banded = [h for h in handles if isinstance(h, Line2D) and h.get_gid() == _MEDIAN_GID]
    bands, band_labels = _band_legend(
        list(dict.fromkeys(str(h.get_color()) for h in banded)), outer
    )
    return handles + bands, labels + band_labels


def _n_runs(frame: pd.DataFrame) -> int:
    return int(frame["run_id"].nunique()) if "run_id" in frame else 0


# --------------------------------------------------------------------------- figures


def plot_spillover(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    axes: Axes | Sequence[Axes] | None = None,
    mechanisms: Sequence[str] | None = None,
) -> Figure:
    """One panel per mechanism: units in force, all and beyond the sponsors' own dyads.

    Median with 50 % / 90 % bands over runs. When ``world['observed']`` has a timeline for
    the mechanism, it is drawn as a step function together with its simulated counterpart:
    the endogenous adoptions concluded by the observed actors (see
    :func:`analysis.observed_counterpart_curves`), so like is compared with like.
    """
    curves = analysis.spillover_curves(events, world, runs)
    counterpart = analysis.observed_counterpart_curves(events, world, runs)
    kinds = analysis.mechanism_kinds(world)
    chosen = list(mechanisms) if mechanisms is not None else list(kinds)
    fig, panels = _axes_grid(len(chosen), axes, ncols=2, panel=(5.2, 3.6))
    total = analysis.bands(curves, "total")
    beyond = analysis.bands(curves, "beyond_sponsor")
    for ax, mech in zip(panels, chosen, strict=True):
        draw_bands(ax, total[total["mechanism"] == mech], SERIES_COLOURS[0], "All")
        draw_bands(
            ax,
            beyond[beyond["mechanism"] == mech],
            SERIES_COLOURS[1],
            "Beyond sponsor dyads",
            linestyle="--",
        )
        if draw_observed(ax, world, mech):
            comparable = counterpart[counterpart["mechanism"] == mech]
            if not comparable.empty:
                actors = comparable["actors"].iloc[0]
                draw_bands(
                    ax,
                    analysis.bands(comparable, "count"),
                    SERIES_COLOURS[2],
                    f"Simulated, concluded by {actors} (as observed)",
                    linestyle="-.",
                )
        ax.set_title(_title(_label(world, mech)), fontsize=_TITLE_SIZE)
        ax.set_ylabel(f"{_unit_label(kinds[mech])} (count)")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _year_axis(ax, world)
        ax.legend(
            *legend_entries(ax),
            handler_map=SPLIT_SWATCH,
            loc="upper left",
            fontsize=8,
            framealpha=0.9,
        )
    fig.suptitle(f"Spillover: agreements and adoptions in force ({_n_runs(curves)} runs)")
    return fig


def _median_band_legend(fig: Figure, panels: Sequence[Axes]) -> None:
    """One legend below small multiples: the first panel's lines and the 50 % band."""
    if not panels:
        return
    handles, labels = legend_entries(panels[0], outer=False)
    fig.legend(
        handles,
        labels,
        handler_map=SPLIT_SWATCH,
        loc="outside lower center",
        ncols=len(labels),
        fontsize=9,
    )


def _regions_by_final_share(curves: pd.DataFrame, mechanism: str) -> list[str]:
    """Regions by the mean over runs of their share holding ``mechanism`` at the last step,
    highest first, ties alphabetically."""
    last = curves[(curves["step"] == curves["step"].max()) & (curves["mechanism"] == mechanism)]
    mean = last.groupby("region")["share"].mean().reset_index()
    ordered = mean.sort_values(["share", "region"], ascending=[False, True], kind="stable")
    return ordered["region"].astype(str).tolist()


def plot_regions(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    axes: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Small multiples by region: share of the region's states holding each mechanism.

    For a bilateral mechanism a state holds it when party to at least one agreement in force.
    Median and 50 % band over runs. Regions are ordered by their mean final share holding
    the first mechanism, highest first (ties alphabetically).
    """
    curves = analysis.curves_by_region(events, world, runs)
    kinds = analysis.mechanism_kinds(world)
    first = next(iter(kinds))
    regions = _regions_by_final_share(curves, first)
    fig, panels = _axes_grid(
        len(regions), axes, ncols=4, panel=(3.4, 2.7), sharey=True, sharex=True
    )
    table = analysis.bands(curves, "share", by=("region", "mechanism"))
    for ax, region in zip(panels, regions, strict=True):
        n = int(curves.loc[curves["region"] == region, "n_states"].iloc[0])
        for i, mech in enumerate(kinds):
            part = table[(table["region"] == region) & (table["mechanism"] == mech)]
            draw_bands(
                ax, part, SERIES_COLOURS[i % len(SERIES_COLOURS)], _label(world, mech), outer=False
            )
        ax.set_title(f"{region} ({n} state{'s' if n != 1 else ''})", fontsize=_TITLE_SIZE - 1)
        ax.set_ylim(0, 1.02)
        _year_axis(ax, world, label=_is_bottom(panels, ax))
        if _is_left(ax):
            ax.set_ylabel("Share of states holding")
    _median_band_legend(fig, panels)
    fig.suptitle(
        f"Adoption by region (median and 50 % band of {_n_runs(curves)} runs)\n"
        f"Regions ordered by their mean final share: {_label(world, first)}",
        fontsize="medium",
    )
    return fig


def _merge_rare_depths(curves: pd.DataFrame) -> tuple[pd.DataFrame, int | None]:
    """Depth curves without the depths where nothing is ever in force, and with the depths
    beyond the deepest one whose 50 % band is above zero summed into it.

    Returns the curves and that deepest depth if deeper ones were added into it, else None.
    """
    reached = curves.groupby("depth")["in_force"].max()
    if not (reached > 0).any():
        return curves, None
    curves = curves[curves["depth"].isin(reached.index[reached > 0])]
    table = analysis.bands(curves, "in_force", by=("depth", "mechanism"))
    shown = table.loc[table["p75"] > 0, "depth"]
    last = int(shown.max()) if len(shown) else int(curves["depth"].max())
    if last == int(curves["depth"].max()):
        return curves, None
    keys = [c for c in curves.columns if c != "in_force"]
    merged = curves.assign(depth=curves["depth"].clip(upper=last))
    return merged.groupby(keys, as_index=False, sort=True)["in_force"].sum(), last


def plot_depth(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    axes: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Small multiples by chain depth: units in force at each generation, per mechanism.

    Depth 1 holds the sponsors' direct partners (EU-RUS), depth 2 their partners (RUS-KAZ),
    and so on. Median and 50 % band over runs; y axes shared to compare magnitudes. Depths
    with nothing in force are left out, and depths too rare to show a band are added into
    the deepest one that does (titled "Depth ≥ k").
    """
    curves, tail = _merge_rare_depths(analysis.curves_by_depth(events, world, runs))
    depths = sorted(int(d) for d in curves["depth"].unique() if d >= 0)
    kinds = analysis.mechanism_kinds(world)
    fig, panels = _axes_grid(len(depths), axes, ncols=4, panel=(3.4, 2.7), sharey=True, sharex=True)
    table = analysis.bands(curves, "in_force", by=("depth", "mechanism"))
    top = float(table.loc[table["depth"].isin(depths), "p75"].max()) if len(table) else 1.0
    for ax, depth in zip(panels, depths, strict=True):
        for i, mech in enumerate(kinds):
            part = table[(table["depth"] == depth) & (table["mechanism"] == mech)]
            draw_bands(
                ax, part, SERIES_COLOURS[i % len(SERIES_COLOURS)], _label(world, mech), outer=False
            )
        ax.set_title(f"Depth {'≥ ' if depth == tail else ''}{depth}", fontsize=_TITLE_SIZE - 1)
        ax.set_ylim(0, max(top, 1.0) * 1.05)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _year_axis(ax, world, label=_is_bottom(panels, ax))
        if _is_left(ax):
            ax.set_ylabel("In force (count)")
    _median_band_legend(fig, panels)
    fig.suptitle(
        f"Spillover by chain depth (agreements or adoptions in force; {_n_runs(curves)} runs)"
    )
    return fig


def plot_channels(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    axes: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Stacked bars per year: each channel's signed share in the linear predictor of the
    adoptions (pooled over runs; ``analysis.channel_decomposition``).

    Terms that pushed adoption stack above zero, terms that held it back below; the absolute
    shares of a year add up to 1. Years without endogenous adoptions have no bar. One panel
    per mechanism with endogenous adoptions; the intercept is left out.
    """
    pooled = analysis.pooled_channel_shares(analysis.channel_decomposition(events, world, runs))
    kinds = analysis.mechanism_kinds(world)
    mechs = [m for m in kinds if (pooled["mechanism"] == m).any()] if not pooled.empty else []
    fig, panels = _axes_grid(max(len(mechs), 1), axes, ncols=2, panel=(5.4, 3.6))
    used: dict[str, Patch] = {}
    for ax, mech in zip(panels, mechs, strict=False):
        part = pooled[pooled["mechanism"] == mech]
        wide = part.pivot(index="date", columns="channel", values="share").fillna(0.0)
        channels = [c for c in CHANNEL_STYLE if c in wide and (wide[c].abs() > 1e-12).any()]
        xs = wide.index.to_numpy(dtype=float)
        up = np.zeros(len(xs))
        down = np.zeros(len(xs))
        for channel in channels:
            values = wide[channel].to_numpy()
            colour, hatch = CHANNEL_STYLE[channel]
            pos, neg = np.clip(values, 0, None), np.clip(values, None, 0)
            style: dict[str, Any] = {
                "color": colour,
                "hatch": hatch,
                "edgecolor": "#333333",
                "linewidth": 0.3,
                "width": 0.8,
            }
            if (pos > 0).any():
                ax.bar(xs, pos, bottom=up, **style)
            if (neg < 0).any():
                ax.bar(xs, neg, bottom=down, **style)
            up += pos
            down += neg
            used[channel] = Patch(
                facecolor=colour, hatch=hatch, edgecolor="#333333", label=channel.replace("_", " ")
            )
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylim(min(-0.05, down.min() - 0.05), 1.02)
        ax.set_title(_title(_label(world, mech)), fontsize=_TITLE_SIZE)
        ax.set_ylabel("Signed share of predictor")
        _year_axis(ax, world)
        start = float(world["time"]["start"])
        ax.set_xlim(start - 0.6, start + int(world["time"]["steps"]) - 0.4)
    if not mechs:
        panels[0].text(
            0.5,
            0.5,
            "No endogenous adoptions",
            ha="center",
            va="center",
            transform=panels[0].transAxes,
        )
        panels[0].set_axis_off()
    if used:
        fig.legend(
            handles=[used[c] for c in CHANNEL_STYLE if c in used],
            loc="outside right center",
            fontsize=9,
            title="Channel",
        )
    fig.suptitle("Channel contributions to adoptions (share of linear predictor, excl. intercept)")
    return fig


_SCALES = ((1e9, "billions of "), (1e6, "millions of "), (1e3, "thousands of "), (1.0, ""))


def _scaled_axis(ax: Axes, label: str, unit: str, top: float) -> None:
    """Tick labels of the y axis in thousands, millions or billions of ``unit`` (chosen from
    the largest value ``top``), with the scale in the axis label instead of an offset."""
    scale, words = next((f, w) for f, w in _SCALES if abs(top) >= f or f == 1.0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / scale:,.4g}"))
    ax.set_ylabel(f"{label} ({words}{unit})")


def plot_hr_exposure(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    axes: Axes | Sequence[Axes] | None = None,
    threshold: float | None = None,
) -> Figure:
    """Agreements with a party below the human-rights threshold, over time.

    Panels: their number, their share of the agreements in force, and (when the tables carry
    flows) the return flow they cover. One line per bilateral mechanism, median with 50 % /
    90 % bands over runs.
    """
    table = analysis.hr_exposure(events, world, runs, threshold)
    limit = analysis._hr_threshold(world, threshold)
    has_flow = bool((table["exposed_return_flow"].abs() > 0).any())
    specs = [
        ("exposed", "Exposed agreements (count)"),
        ("exposed_share", "Share of agreements"),
    ]
    if has_flow:
        specs.append(("exposed_return_flow", "Return flow covered"))
    fig, panels = _axes_grid(len(specs), axes, ncols=3, panel=(4.2, 3.3))
    mechs = list(dict.fromkeys(table["mechanism"]))
    for ax, (column, ylabel) in zip(panels, specs, strict=True):
        summary = analysis.bands(table, column)
        for i, mech in enumerate(mechs):
            draw_bands(
                ax,
                summary[summary["mechanism"] == mech],
                SERIES_COLOURS[i % len(SERIES_COLOURS)],
                _label(world, mech),
            )
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0, top=1.02 if column == "exposed_share" else None)
        if column == "exposed":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if column == "exposed_return_flow":
            _scaled_axis(ax, ylabel, "flow units", float(summary["p95"].max()))
        _year_axis(ax, world)
    titles = ["Exposed agreements", "Exposed share", "Return flow under exposed agreements"]
    for ax, title in zip(panels, titles, strict=False):
        ax.set_title(title, fontsize=_TITLE_SIZE)
    handles, labels = legend_entries(panels[0])
    fig.legend(
        handles,
        labels,
        handler_map=SPLIT_SWATCH,
        loc="outside lower center",
        ncols=len(labels),
        fontsize=9,
    )
    fig.suptitle(
        f"Human-rights exposure: agreements with a party whose human rights < {limit:g}"
        f" ({_n_runs(table)} runs)"
    )
    return fig


def plot_buildup(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Boundary build-up index over time: Spearman rho of openness with controls held.

    Median with 50 % / 90 % bands over runs (years where the index is undefined, e.g. before
    any adoption, are left out). Positive values: the more open states hold more controls.
    """
    table = analysis.buildup_index(events, world, runs)
    fig, ax = _single_ax(ax)
    summary = analysis.bands(table, "rho", by=())
    summary = summary[summary["n"] > 0]
    draw_bands(ax, summary, SERIES_COLOURS[0], "Median")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylim(-1.02, 1.02)
    ax.set_ylabel("Spearman ρ (openness vs controls held)")
    _year_axis(ax, world)
    ax.legend(*legend_entries(ax), handler_map=SPLIT_SWATCH, loc="lower right", fontsize=8)
    ax.set_title(f"Boundary build-up index ({_n_runs(table)} runs)", fontsize=_TITLE_SIZE + 1)
    return fig


def _layout(
    world: Mapping[str, Any],
) -> tuple[dict[str, tuple[float, float]], dict[str, float], dict[str, Any]]:
    """Circle of clusters: regions evenly on a unit circle, each region's states on a small
    circle around its centre. Returns positions, the direction of each state's name (outward
    from its region's centre) and region-label positions."""
    states = analysis._states(world)
    regions = [r for r in analysis._regions(world) if (states["region"] == r).any()]
    k = len(regions)
    sizes = [int((states["region"] == r).sum()) for r in regions]
    chord = 2 * math.sin(math.pi / k) if k > 1 else 2.0
    positions: dict[str, tuple[float, float]] = {}
    outward: dict[str, float] = {}
    labels: dict[str, Any] = {}
    for i, region in enumerate(regions):
        angle = math.pi / 2 - 2 * math.pi * i / k
        cx, cy = (math.cos(angle), math.sin(angle)) if k > 1 else (0.0, 0.0)
        members = states[states["region"] == region]["id"].astype(str).tolist()
        radius = 0.0 if sizes[i] == 1 else min(0.1 + 0.035 * math.sqrt(sizes[i]), 0.3 * chord)
        for j, sid in enumerate(members):
            a = angle + 2 * math.pi * j / max(len(members), 1)
            positions[sid] = (cx + radius * math.cos(a), cy + radius * math.sin(a))
            # a lone state's name goes above (below at the top) to leave room for the region's
            outward[sid] = a if len(members) > 1 else math.copysign(math.pi / 2, 0.7 - cy)
        reach = 1.0 + radius + 0.34 if k > 1 else radius + 0.4
        labels[region] = (reach * math.cos(angle), reach * math.sin(angle), angle)
    return positions, outward, labels


#: Chain depths 1, 2, 3 and >= 4: a dark-to-light sequential scale (ColorBrewer RdPu), so
#: depth reads as an order and is not mistaken for a mechanism's colour (blue, vermillion).
DEPTH_COLOURS: tuple[str, ...] = ("#49006A", "#AE017E", "#F768A1", "#FBB4B9")
_HALO = [patheffects.withStroke(linewidth=2.2, foreground="white")]


def _depth_colour(depth: int) -> str:
    return DEPTH_COLOURS[min(depth, len(DEPTH_COLOURS)) - 1] if depth >= 1 else "#333333"


def _side(angle: float) -> tuple[str, str]:
    """Text alignment (ha, va) that puts a label on the side of a point ``angle`` points to."""
    c, s = math.cos(angle), math.sin(angle)
    ha = "left" if c > 0.3 else "right" if c < -0.3 else "center"
    va = "bottom" if s > 0.3 else "top" if s < -0.3 else "center"
    return ha, va


def _draw_states(
    ax: Axes,
    positions: Mapping[str, tuple[float, float]],
    outward: Mapping[str, float],
    sponsors: set[str],
    parties: set[str],
    names: bool,
) -> None:
    """States as dots (filled when party to an agreement), sponsors as stars, and their ids
    on the outer side of their region's cluster, haloed so edges do not hide them."""
    for sid, (x, y) in positions.items():
        if sid in sponsors:
            ax.scatter(
                [x],
                [y],
                marker="*",
                s=170,
                color=OKABE_ITO["orange"],
                edgecolors="black",
                linewidths=0.8,
                zorder=3,
            )
        else:
            face = "#333333" if sid in parties else "#FFFFFF"
            ax.scatter([x], [y], s=30, color=face, edgecolors="#333333", linewidths=0.8, zorder=2)
        if names:
            gap = 7.0 if sid in sponsors else 4.0
            angle = outward[sid]
            ha, va = _side(angle)
            ax.annotate(
                sid,
                (x, y),
                xytext=(gap * math.cos(angle), gap * math.sin(angle)),
                textcoords="offset points",
                fontsize=6.5,
                ha=ha,
                va=va,
                color="#222222",
                zorder=5,
                path_effects=_HALO,
            )


def _draw_region_labels(ax: Axes, region_labels: Mapping[str, Any]) -> None:
    """Region names in italics outside their clusters."""
    for region, (x, y, angle) in region_labels.items():
        ax.text(
            x,
            y,
            region,
            fontsize=7.5,
            ha=_side(angle)[0],
            va="center",
            color="#555555",
            style="italic",
            zorder=5,
            path_effects=_HALO,
        )


_NET_X, _NET_Y = 1.95, 1.62  # half width and height of a network panel (data units)


def representative_run(events: pd.DataFrame, world: Mapping[str, Any], mechanism: str) -> int:
    """The run whose final number in force of ``mechanism`` is the (lower) median."""
    curves = analysis.spillover_curves(events, world)
    last = curves[(curves["step"] == curves["step"].max()) & (curves["mechanism"] == mechanism)]
    if last.empty:
        return 0
    ordered = last.sort_values(["total", "run_id"])
    return int(ordered["run_id"].iloc[(len(ordered) - 1) // 2])


def plot_network(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    run_id: int | None = None,
    dates: Sequence[float] | None = None,
    mechanism: str | None = None,
    axes: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Agreements of one run at chosen dates, states clustered by region on a circle.

    Edges are agreements in force after the step of each date, coloured by chain depth
    (generation); sponsors are drawn as stars; states party to an agreement are filled dark.
    Defaults: the first bilateral mechanism, the run with the median final number of
    agreements, and three dates (a third and two thirds through the window, and its end).
    """
    kinds = analysis.mechanism_kinds(world)
    bilateral = [m for m, k in kinds.items() if k == "bilateral"]
    mech = mechanism or (bilateral[0] if bilateral else None)
    if mech is None or kinds.get(mech) != "bilateral":
        raise ValueError(f"plot_network needs a bilateral mechanism; world has {bilateral}")
    start = int(world["time"]["start"])
    steps = int(world["time"]["steps"])
    if dates is None:
        dates = [start + steps // 3, start + (2 * steps) // 3, start + steps - 1]
    run = representative_run(events, world, mech) if run_id is None else int(run_id)
    positions, outward, region_labels = _layout(world)
    states = analysis._states(world)
    sponsors = set(states.loc[states["sponsor"], "id"].astype(str))
    fig, panels = _axes_grid(len(dates), axes, ncols=3, panel=(4.6, 4.6 * _NET_Y / _NET_X + 0.3))
    single = events[events["run_id"] == run]
    depth_handles: dict[int, Line2D] = {}
    show_names = len(positions) <= 60
    for ax, date in zip(panels, dates, strict=True):
        step = math.floor(float(date) - start)
        live = analysis.in_force_at(single, world, step)
        live = live[live["mechanism"] == mech]
        for depth, group in live.groupby("depth"):
            segs = [
                [positions[a], positions[b]]
                for a, b in zip(group["state"], group["partner"], strict=True)
                if a in positions and b in positions
            ]
            colour = _depth_colour(int(depth))
            ax.add_collection(
                LineCollection(segs, colors=colour, linewidths=1.6, alpha=0.85, zorder=1)
            )
            depth_handles[int(depth)] = Line2D(
                [], [], color=colour, linewidth=2, label=f"Depth {int(depth)}"
            )
        parties = set(live["state"]) | set(live["partner"].dropna())
        _draw_states(ax, positions, outward, sponsors, parties, show_names)
        _draw_region_labels(ax, region_labels)
        noun = "agreement" if len(live) == 1 else "agreements"
        ax.set_title(f"{int(date)}: {len(live)} {noun} in force", fontsize=_TITLE_SIZE)
        ax.set_aspect("equal")
        ax.set_xlim(-_NET_X, _NET_X)
        ax.set_ylim(-_NET_Y, _NET_Y)
        ax.set_axis_off()
    handles: list[Any] = [depth_handles[d] for d in sorted(depth_handles)]
    handles.append(
        Line2D(
            [],
            [],
            marker="*",
            linestyle="",
            markersize=12,
            markerfacecolor=OKABE_ITO["orange"],
            markeredgecolor="black",
            label="Sponsor",
        )
    )
    handles.append(
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=6,
            markerfacecolor="#333333",
            markeredgecolor="#333333",
            label="Party to an agreement",
        )
    )
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=9)
    fig.suptitle(f"{_label(world, mech)}: agreements in force, run {run} (edges by chain depth)")
    return fig


def _binned(values: pd.Series, max_levels: int = 12) -> pd.Series:
    """Parameter values as they are, or their bin centres when there are many (random designs)."""
    if values.nunique() <= max_levels:
        return values.astype(float)
    cut = pd.cut(values, bins=10)
    return cut.map(lambda iv: float(iv.mid)).astype(float)


_METRIC_NAMES: dict[str, str] = {
    "final_share": "share of states holding at end",
    "final_agreements": "agreements in force at end",
    "final_beyond_sponsor": "in force beyond sponsor dyads at end",
    "t10": "year 10 % of states reached",
    "t50": "year 50 % of states reached",
    "auc": "area under share curve (share-years)",
    "max_depth": "maximum chain depth",
    "spillover_ratio": "spillover ratio (beyond sponsor / all)",
    "hr_exposed_share": "share of agreements with a low-rights party",
}


def metric_label(metric: str, world: Mapping[str, Any] | None = None) -> str:
    """Readable label for a summary column such as ``'readmission:t50'``."""
    if ":" in metric:
        mech, name = metric.rsplit(":", 1)
        label = _label(world, mech) if world is not None else mech
        return f"{label}: {_METRIC_NAMES.get(name, name)}"
    return _metric_axis_label(metric)


def _metric_axis_label(metric: str) -> str:
    """The measure of a summary column without its mechanism, capitalised (an axis label)."""
    name = metric.rsplit(":", 1)[-1]
    text = _METRIC_NAMES.get(name, name)
    return text[:1].upper() + text[1:]


def _metric_owner(metric: str, world: Mapping[str, Any] | None) -> str:
    """What a summary column describes: its mechanism's label, or the run as a whole."""
    if ":" not in metric:
        return "Run summary"
    mech = metric.rsplit(":", 1)[0]
    return _label(world, mech) if world is not None else mech


def _runs_per_x(frame: pd.DataFrame, binned: bool) -> str:
    """``'100 runs per point'`` (or a range when the points differ) for a sweep panel."""
    counts = frame.groupby("x").size()
    low, high = int(counts.min()), int(counts.max())
    n = f"{low}" if low == high else f"{low}-{high}"
    return f"{n} runs per {'bin' if binned else 'point'}"


def plot_sweep_response(
    summary: pd.DataFrame,
    param: str,
    metric: str,
    world: Mapping[str, Any] | None = None,
    ax: Axes | None = None,
    legend: bool = True,
) -> Figure:
    """A summary metric against one swept parameter: median and 50 % / 90 % bands over runs.

    ``summary`` is ``summarise_runs`` joined with the runs table's ``param:<path>`` columns;
    ``param`` may be given with or without the ``param:`` prefix. With more than 12 distinct
    values (random designs), values are grouped into 10 equal-width bins (bin centres on x).
    The title gives the number of runs per point; ``legend=False`` leaves the legend to the
    caller (one per figure).
    """
    column = param if param.startswith("param:") else f"param:{param}"
    fig, ax = _single_ax(ax, size=(5.5, 3.8))
    frame = summary[[column, metric]].dropna().copy()
    frame["x"] = _binned(frame[column])
    table = analysis.bands(frame.assign(run_id=0), metric, by=(), x="x")
    draw_bands(ax, table, SERIES_COLOURS[0], "Median", x="x")
    ax.plot(table["x"], table["median"], "o", color=SERIES_COLOURS[0], markersize=4)
    ax.set_xlabel(column.removeprefix("param:"))
    ax.set_ylabel(_metric_axis_label(metric))
    ax.grid(True, color="#E5E5E5", linewidth=0.6)
    ax.set_axisbelow(True)
    if legend:
        ax.legend(*legend_entries(ax), handler_map=SPLIT_SWATCH, fontsize=8)
    binned = frame[column].nunique() != frame["x"].nunique()
    ax.set_title(
        f"{_title(_metric_owner(metric, world), 40)}\n({_runs_per_x(frame, binned)})",
        fontsize=_TITLE_SIZE,
    )
    return fig


def plot_sweep_heatmap(
    summary: pd.DataFrame,
    param_x: str,
    param_y: str,
    metric: str,
    world: Mapping[str, Any] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Mean of a summary metric over runs on a grid of two swept parameters (viridis)."""
    cx = param_x if param_x.startswith("param:") else f"param:{param_x}"
    cy = param_y if param_y.startswith("param:") else f"param:{param_y}"
    fig, ax = _single_ax(ax, size=(5.8, 4.6))
    frame = summary[[cx, cy, metric]].dropna().copy()
    frame["x"], frame["y"] = _binned(frame[cx]), _binned(frame[cy])
    grid = frame.pivot_table(index="y", columns="x", values=metric, aggfunc="mean")
    mesh = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [f"{v:.3g}" for v in grid.columns], rotation=45)
    ax.set_yticks(range(grid.shape[0]), [f"{v:.3g}" for v in grid.index])
    if grid.size <= 64:
        values = grid.to_numpy()
        finite = values[np.isfinite(values)]
        middle = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.3g}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if v > middle else "white",
                )
    ax.set_xlabel(cx.removeprefix("param:"))
    ax.set_ylabel(cy.removeprefix("param:"))
    fig.colorbar(mesh, ax=ax, label=f"Mean {_metric_axis_label(metric).lower()}")
    ax.set_title(
        f"{metric_label(metric, world)}\n(mean of {len(frame)} runs)", fontsize=_TITLE_SIZE
    )
    return fig


def plot_comparison(
    curves: Mapping[str, pd.DataFrame],
    world: Mapping[str, Any],
    value: str,
    mechanisms: Sequence[str],
    axes: Axes | Sequence[Axes] | None = None,
    title: str | None = None,
    observed: bool = True,
) -> Figure:
    """Overlay of several scenarios' curves (``spillover_curves`` tables), one panel per
    mechanism: median and 50 % / 90 % bands of ``value`` per scenario; observed timeline
    (``world['observed']``) drawn over them when ``value == 'total'``."""
    kinds = analysis.mechanism_kinds(world)
    fig, panels = _axes_grid(len(mechanisms), axes, ncols=2, panel=(5.4, 3.8))
    what = "beyond sponsor dyads" if value == "beyond_sponsor" else "all"
    for ax, mech in zip(panels, mechanisms, strict=True):
        for i, (label, table) in enumerate(curves.items()):
            summary = analysis.bands(table[table["mechanism"] == mech], value)
            draw_bands(
                ax,
                summary,
                SERIES_COLOURS[i % len(SERIES_COLOURS)],
                label,
                linestyle=_SCENARIO_STYLES[i % len(_SCENARIO_STYLES)],
            )
        if observed and value == "total":
            draw_observed(ax, world, mech)
        ax.set_title(f"{_title(_label(world, mech))}\n({what})", fontsize=_TITLE_SIZE)
        ax.set_ylabel(f"{_unit_label(kinds[mech])} (count)")
        ax.set_ylim(bottom=0)
        _year_axis(ax, world)
        ax.legend(
            *legend_entries(ax),
            handler_map=SPLIT_SWATCH,
            loc="upper left",
            fontsize=8,
            framealpha=0.9,
        )
    fig.suptitle(title or f"Scenario comparison: in force, {what}")
    return fig
