"""Plot functions return figures with the expected panels, lines, bands and labels."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from fakes import event, events_frame, synthetic_events, synthetic_world, tiny_events, tiny_world
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from diffusion_sim import analysis as A
from diffusion_sim import plots as P


@pytest.fixture
def world() -> dict:
    return tiny_world()


@pytest.fixture
def events(world: dict) -> pd.DataFrame:
    return tiny_events(world)


def _visible(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def _polys(ax) -> int:
    return sum(isinstance(c, PolyCollection) for c in ax.collections)


def test_spillover_has_median_and_two_bands_per_series(world, events):
    """Per mechanism: all and beyond-sponsor medians, each with 50 % and 90 % bands."""
    fig = P.plot_spillover(events, world)
    axes = _visible(fig)
    assert isinstance(fig, Figure) and len(axes) == 2
    for ax in axes:
        assert _polys(ax) == 4
        assert len(ax.get_lines()) == 2
        assert ax.get_xlabel() == "Year"
    assert axes[0].get_title() == "Readmission agreement"
    assert axes[0].get_ylabel() == "Agreements in force (count)"
    assert axes[1].get_ylabel() == "States with the mechanism (count)"
    assert "Spillover" in fig.get_suptitle()


def test_spillover_draws_observed_step_function():
    """With observed adoptions in world.json, the observed step line and its simulated
    counterpart (the observed actors' own conclusions) are drawn on that panel only."""
    world = synthetic_world(n_per_region=1, steps=12)
    fig = P.plot_spillover(synthetic_events(world, 4), world)
    readmission, visa = _visible(fig)
    labels = [line.get_label() for line in readmission.get_lines()]
    assert any(label.startswith("Observed (cumulative") for label in labels)
    assert len(labels) == 4
    assert any(label.startswith("Simulated, concluded by") for label in labels)
    assert len(visa.get_lines()) == 2


def test_regions_small_multiples(world, events):
    """One panel per region, a median and a 50 % band per mechanism, shared 0-1 y axis."""
    fig = P.plot_regions(events, world)
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == [
        "Europe (1 state)",
        "Russia (1 state)",
        "Central Asia (1 state)",
    ]
    for ax in axes:
        assert _polys(ax) == 2 and len(ax.get_lines()) == 2
        assert ax.get_ylim()[1] == pytest.approx(1.02)
    assert axes[0].get_ylabel() == "Share of states holding"


def test_depth_small_multiples(world, events):
    """One panel per chain depth present in the events."""
    fig = P.plot_depth(events, world)
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["Depth 1", "Depth 2"]
    assert all(_polys(ax) == 2 for ax in axes)
    assert axes[0].get_ylabel() == "In force (count)"


def test_channels_stack_positive_up_and_negative_down(world, events):
    """Channel bars stack above zero, the negative openness term below, legend per channel."""
    fig = P.plot_channels(events, world)
    readmission, visa = _visible(fig)
    heights = [p.get_height() for p in readmission.patches]
    assert min(heights) == pytest.approx(-0.5 / 3.5)
    assert sum(h for h in heights if h > 0) == pytest.approx(3 / 3.5)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "emulation",
        "demand",
        "chain",
        "openness",
        "pressure",
    ]
    assert visa.get_ylabel() == "Signed share of predictor"


def test_channels_without_endogenous_adoptions(world, events):
    """Only exogenous events: one panel saying so, no error."""
    fig = P.plot_channels(events[events["exogenous"]], world)
    assert "No endogenous adoptions" in fig.axes[0].texts[0].get_text()


def test_hr_exposure_panels(world, events):
    """Count, share and (with flows) return-flow panels, each median with two bands."""
    fig = P.plot_hr_exposure(events, world)
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == [
        "Exposed agreements",
        "Exposed share",
        "Return flow under exposed agreements",
    ]
    assert all(_polys(ax) == 2 and len(ax.get_lines()) == 1 for ax in axes)
    assert "0.4" in fig.get_suptitle()


def test_hr_exposure_without_flows_drops_flow_panel(world, events):
    """Without return flows in the tables only the count and share panels are drawn."""
    fig = P.plot_hr_exposure(events.assign(return_flow=0.0), world)
    assert len(_visible(fig)) == 2


def test_buildup_index_into_given_ax(world, events):
    """Draws into a caller's axes and returns that figure; bands, median and zero line."""
    fig = Figure()
    ax = fig.add_subplot()
    assert P.plot_buildup(events, world, ax=ax) is fig
    assert _polys(ax) == 2
    assert len(ax.get_lines()) == 2  # median and the zero reference line
    assert ax.get_ylim() == pytest.approx((-1.02, 1.02))
    assert ax.get_ylabel().startswith("Spearman")


def test_network_edges_by_depth_at_dates(world, events):
    """Agreements in force at each date as one edge collection per depth."""
    fig = P.plot_network(events, world, run_id=0, dates=[2001, 2002, 2003])
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == [
        "2001: 1 agreement in force",
        "2002: 2 agreements in force",
        "2003: 1 agreement in force",
    ]
    edges = [[c for c in ax.collections if isinstance(c, LineCollection)] for ax in axes]
    assert [len(e) for e in edges] == [1, 2, 1]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["Depth 1", "Depth 2", "Sponsor", "Party to an agreement"]


def test_network_needs_a_bilateral_mechanism(world, events):
    """Asking for a network of a unilateral mechanism is a clear error."""
    with pytest.raises(ValueError, match="bilateral"):
        P.plot_network(events, world, mechanism="visa")


def _sweep_summary() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    a = np.repeat([0.5, 1.0, 2.0], 8)
    b = np.tile([1.0, 2.0], 12)
    return pd.DataFrame(
        {"run_id": range(24), "param:x.a": a, "param:x.b": b, "m": a * b + rng.normal(0, 0.1, 24)}
    )


def test_sweep_response_bands():
    """A metric against one parameter: median line and two bands, parameter on x."""
    fig = P.plot_sweep_response(_sweep_summary(), "x.a", "m")
    ax = fig.axes[0]
    assert _polys(ax) == 2
    assert ax.get_xlabel() == "x.a"
    assert "8 runs per point" in ax.get_title()


def test_sweep_heatmap_cells_and_colourbar():
    """Two parameters: one image cell per pair, annotated with the mean, and a colour bar."""
    fig = P.plot_sweep_heatmap(_sweep_summary(), "x.a", "x.b", "m")
    ax = fig.axes[0]
    images = [c for c in ax.get_children() if isinstance(c, AxesImage)]
    assert len(images) == 1 and images[0].get_array().shape == (2, 3)
    assert len(ax.texts) == 6
    assert len(fig.axes) == 2  # the colour bar
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x.a", "x.b")


def test_comparison_overlays_scenarios(world, events):
    """Each scenario gets its median and two bands in every mechanism panel."""
    curves = {
        "base": A.spillover_curves(events, world),
        "alt": A.spillover_curves(events[events["run_id"] == 0], world),
    }
    fig = P.plot_comparison(curves, world, "beyond_sponsor", ["readmission", "visa"])
    for ax in _visible(fig):
        assert _polys(ax) == 4
        assert [line.get_label() for line in ax.get_lines()] == ["base", "alt"]


def test_importing_plotting_modules_selects_no_backend():
    """Importing plots/report/compare neither imports pyplot nor selects a backend."""
    code = (
        "import sys, diffusion_sim.plots, diffusion_sim.report, diffusion_sim.compare\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "import matplotlib\n"
        "assert matplotlib.rcParams._get_backend_or_none() is None, matplotlib.rcParams['backend']"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_sweep_response_labels_and_runs_per_point(world):
    """Readable y label and mechanism title, runs counted per point (a range when they
    differ), grid drawn below the bands."""
    summary = _sweep_summary().rename(columns={"m": "readmission:final_agreements"})
    fig = P.plot_sweep_response(summary.iloc[1:], "x.a", "readmission:final_agreements", world)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "Agreements in force at end"
    assert ax.get_title() == "Readmission agreement\n(7-8 runs per point)"
    assert ax.get_axisbelow() is True


def test_band_legend_swatches_take_the_series_colours(world, events):
    """The band entries of a two-series legend are split swatches in the two series' colours,
    the 50 % one as opaque as the 50 % band drawn over the 90 % band."""
    ax = P.plot_spillover(events, world).axes[0]
    handles, labels = P.legend_entries(ax)
    inner, outer = handles[labels.index("50 % of runs")], handles[labels.index("90 % of runs")]
    series = [to_hex(P.SERIES_COLOURS[0]), to_hex(P.SERIES_COLOURS[1])]
    assert [to_hex(h.get_facecolor(), keep_alpha=False) for h in inner] == series
    assert [to_hex(h.get_facecolor(), keep_alpha=False) for h in outer] == series
    assert inner[0].get_facecolor()[3] == pytest.approx(1 - 0.65 * 0.85)


def test_depth_merges_depths_too_rare_to_show_and_uses_integer_ticks():
    """Depths reached in 1 of 8 runs (no visible band) are added into the deepest depth with
    a band, titled "Depth ≥ k"; y ticks are whole numbers."""
    world = tiny_world()
    rows = []
    for run in range(8):
        rows.append(
            event(
                world,
                run_id=run,
                step=1,
                mechanism="readmission",
                state="EU27",
                partner="RUS",
                exogenous=True,
                depth=1,
            )
        )
        if run < 6:
            rows.append(
                event(
                    world,
                    run_id=run,
                    step=2,
                    mechanism="readmission",
                    state="RUS",
                    partner="KAZ",
                    depth=2,
                )
            )
    rows.append(event(world, run_id=0, step=3, mechanism="visa", state="KAZ", depth=3))
    rows.append(event(world, run_id=1, step=3, mechanism="visa", state="RUS", depth=5))
    fig = P.plot_depth(events_frame(rows), world)
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["Depth 1", "Depth ≥ 2"]
    assert all(float(t).is_integer() for ax in axes for t in ax.get_yticks())


def test_hr_exposure_flow_axis_states_its_scale(world, events):
    """Flows in the millions: plain tick labels, the scale in the axis label, no offset."""
    fig = P.plot_hr_exposure(events.assign(return_flow=events["return_flow"] * 1e6), world)
    flow = _visible(fig)[2]
    fig.canvas.draw()
    assert flow.get_ylabel() == "Return flow covered (millions of flow units)"
    assert flow.yaxis.get_offset_text().get_text() == ""
    ticks = [float(t.get_text()) for t in flow.get_yticklabels()]
    assert 14 <= max(ticks) < 20  # 14 million covered at most: EU27-RUS 10 and RUS-KAZ 4


def test_network_depth_colours_are_not_mechanism_colours(world, events):
    """Edges use the depth scale, never the colours that mean a mechanism elsewhere."""
    fig = P.plot_network(events, world, run_id=0, dates=[2002])
    ax = _visible(fig)[0]
    colours = {to_hex(c.get_colors()[0]) for c in ax.collections if isinstance(c, LineCollection)}
    assert colours == {P.DEPTH_COLOURS[0].lower(), P.DEPTH_COLOURS[1].lower()}
    assert not colours & {to_hex(c) for c in P.SERIES_COLOURS[:2]}


def test_regions_ordered_by_final_share(world, events):
    """Panels follow the mean final share holding the first mechanism, not world order."""
    world = {**world, "regions": ["Central Asia", "Russia", "Europe"]}
    fig = P.plot_regions(events, world)
    assert [ax.get_title() for ax in _visible(fig)] == [
        "Europe (1 state)",
        "Russia (1 state)",
        "Central Asia (1 state)",
    ]
    assert "ordered by their mean final share" in fig.get_suptitle()
