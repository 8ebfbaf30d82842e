"""Observables and summaries rebuilt from the event table.

Pure functions: pandas DataFrames (and the ``world.json`` dict) in, DataFrames out. No I/O, no
model. Every curve is rebuilt from ``events.parquet`` and ``world.json`` alone, so it can be
checked against ``series.parquet`` and recomputed for old results (docs/INTERNALS.md).

Conventions shared by every function:

- Time. Step ``t`` has the calendar label ``date = time.start + t``; a curve's value at step
  ``t`` is the state *after* step ``t`` (as in ``series.parquet``).
- Units. A *unit* is what an event adopts or revokes: a state's holding of a unilateral
  mechanism, or an agreement (an unordered pair of states) for a bilateral one. A unit is in
  force after step ``t`` when its adoptions minus its revocations up to ``t`` are positive:
  every count here is a cumulative sum of ``+1`` (``action == 'adopt'``) and ``-1``
  (``action == 'revoke'``). Exogenous (scheduled) events count like drawn ones.
- Revocations inherit the attributes (region, depth, sponsor dyad, partner human rights,
  return flow, dominant channel) of the adoption they cancel, so that a revoked agreement
  leaves exactly the group it entered.
- Runs. Curves cover every run of ``run_index(events, runs)``: pass the ``runs`` table to
  include runs without any event (they contribute zeros) and to drop failed runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .world import CONTRIBUTIONS

__all__ = [
    "CHANNELS",
    "QUANTILES",
    "adoption_curves",
    "bands",
    "buildup_index",
    "channel_decomposition",
    "compare_metrics",
    "curves_by_channel",
    "curves_by_depth",
    "curves_by_region",
    "dominant_channel",
    "hr_exposure",
    "in_force_at",
    "mechanism_kinds",
    "metric_intervals",
    "observed_curves",
    "param_columns",
    "pooled_channel_shares",
    "run_index",
    "spillover_curves",
    "summarise_runs",
    "summary_metrics",
    "time_grid",
]

#: Terms of the linear predictor other than the intercept, in the order of the ``c_*`` columns.
CHANNELS: tuple[str, ...] = tuple(c for c in CONTRIBUTIONS if c != "intercept")

#: Band quantiles: column name -> probability.
QUANTILES: dict[str, float] = {
    "p5": 0.05,
    "p25": 0.25,
    "median": 0.5,
    "p75": 0.75,
    "p95": 0.95,
}

DEFAULT_HR_THRESHOLD = 0.4
RUN_KEYS = ["run_id", "point", "replicate"]

# Attributes a revocation takes over from the adoption it cancels.
_INHERITED = (
    "state_region",
    "partner_region",
    "depth",
    "sponsor_dyad",
    "partner_human_rights",
    "_low_hr",
    "return_flow",
    "exogenous",
    "dominant_channel",
)


# --------------------------------------------------------------------------- world helpers


def time_grid(world: Mapping[str, Any]) -> pd.DataFrame:
    """Steps and their calendar dates: columns ``step`` (int) and ``date`` (float)."""
    time = world["time"]
    steps = np.arange(int(time["steps"]))
    return pd.DataFrame({"step": steps, "date": float(time["start"]) + steps.astype(float)})


def mechanism_kinds(world: Mapping[str, Any]) -> dict[str, str]:
    """Mechanism id -> ``'unilateral'`` / ``'bilateral'``, in the world's order."""
    return {m["id"]: m["kind"] for m in world["mechanisms"]}


def _states(world: Mapping[str, Any]) -> pd.DataFrame:
    states = pd.DataFrame(world["states"])
    duplicated = states["id"][states["id"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"world.json: duplicate state ids {duplicated}")
    if "region" not in states:
        states["region"] = "all"
    if "sponsor" not in states:
        states["sponsor"] = False
    states["sponsor"] = states["sponsor"].fillna(False).astype(bool)
    return states.set_index("id", drop=False)


def _regions(world: Mapping[str, Any]) -> list[str]:
    states = _states(world)
    listed = [str(r) for r in world.get("regions", [])]
    return listed + sorted(set(states["region"].astype(str)) - set(listed))


def _hr_threshold(world: Mapping[str, Any], threshold: float | None) -> float:
    if threshold is not None:
        return float(threshold)
    return float(world.get("hr_threshold", DEFAULT_HR_THRESHOLD))


def param_columns(runs: pd.DataFrame) -> list[str]:
    """The ``param:<dotted.path>`` columns of a runs table, in table order."""
    return [c for c in runs.columns if str(c).startswith("param:")]


# --------------------------------------------------------------------------- event preparation


def run_index(events: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The runs a curve covers: columns ``run_id``, ``point``, ``replicate``, sorted by run id.

    With a runs table, its ``ok`` runs (all of them if it has no ``status`` column); without
    one, the runs that appear in the events.
    """
    if runs is not None:
        table = runs
        if "status" in table:
            table = table[table["status"] == "ok"]
    else:
        table = events
    out = pd.DataFrame({"run_id": table["run_id"].astype("int64")})
    for col in ("point", "replicate"):
        out[col] = table[col].astype("int64") if col in table else 0
    return out.drop_duplicates("run_id").sort_values("run_id").reset_index(drop=True)


def dominant_channel(events: pd.DataFrame) -> pd.Series:
    """Label of the largest non-intercept contribution of each event.

    ``'exogenous'`` for scheduled events; ``'none'`` when no channel contributes positively
    (only the intercept and negative terms); otherwise the channel name (see ``CHANNELS``).
    Ties go to the channel listed first in ``CHANNELS``.
    """
    present = [c for c in CHANNELS if f"c_{c}" in events]
    labels = np.full(len(events), "none", dtype=object)
    if present and len(events):
        values = events[[f"c_{c}" for c in present]].to_numpy(dtype=float)
        filled = np.where(np.isnan(values), -np.inf, values)
        best = filled.argmax(axis=1)
        top = filled[np.arange(len(events)), best]
        labels = np.where(top > 0, np.asarray(present, dtype=object)[best], "none")
    if "exogenous" in events:
        labels = np.where(events["exogenous"].fillna(False).astype(bool), "exogenous", labels)
    return pd.Series(labels, index=events.index, name="dominant_channel", dtype=object)


def _prepare(
    events: pd.DataFrame, world: Mapping[str, Any], runs: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalised events (``_sign``, ``_unit``, inherited revocation attributes) and run index."""
    index = run_index(events, runs)
    kinds = mechanism_kinds(world)
    ev = events[events["run_id"].isin(index["run_id"])].copy()
    ev = ev[ev["mechanism"].isin(list(kinds))]
    ev["run_id"] = ev["run_id"].astype("int64")
    ev["step"] = ev["step"].astype("int64")
    ev["mechanism"] = ev["mechanism"].astype(str)
    ev["state"] = ev["state"].astype(str)
    action = ev["action"] if "action" in ev else pd.Series("adopt", index=ev.index)
    ev["_sign"] = np.where(action.astype(str) == "revoke", -1, 1).astype("int64")
    ev["_kind"] = ev["mechanism"].map(kinds)
    bilateral = (ev["_kind"] == "bilateral").to_numpy()
    partner = ev["partner"].astype(object) if "partner" in ev else pd.Series(None, index=ev.index)
    partner = partner.where(partner.notna(), "").astype(str)
    ev["partner"] = partner.where(bilateral, None)
    state = ev["state"].to_numpy(dtype=object)
    other = partner.to_numpy(dtype=object)
    pair = [f"{a}|{b}" if a <= b else f"{b}|{a}" for a, b in zip(state, other, strict=True)]
    ev["_unit"] = np.where(bilateral, np.asarray(pair, dtype=object), state)

    states = _states(world)
    region = states["region"].astype(str)
    sponsor = states["sponsor"]
    if "state_region" not in ev:
        ev["state_region"] = ev["state"].map(region)
    if "partner_region" not in ev:
        ev["partner_region"] = ev["partner"].map(region)
    if "sponsor_dyad" not in ev:
        s = ev["state"].map(sponsor).fillna(False).astype(bool)
        p = ev["partner"].map(sponsor).fillna(False).astype(bool)
        ev["sponsor_dyad"] = s | (p & bilateral)
    if "partner_human_rights" not in ev:
        ev["partner_human_rights"] = ev["partner"].map(states["human_rights"]).astype(float)
    if "state_human_rights" not in ev:
        ev["state_human_rights"] = ev["state"].map(states["human_rights"]).astype(float)
    ev["_low_hr"] = np.fmin(
        pd.to_numeric(ev["state_human_rights"], errors="coerce").to_numpy(dtype=float),
        pd.to_numeric(ev["partner_human_rights"], errors="coerce").to_numpy(dtype=float),
    )
    if "return_flow" not in ev:
        ev["return_flow"] = 0.0
    if "exogenous" not in ev:
        ev["exogenous"] = False
    if "depth" not in ev:
        ev["depth"] = -1
    ev["dominant_channel"] = dominant_channel(ev)

    # Revocations inherit the attributes of the adoption they cancel (the latest before them).
    ev["_order"] = np.where(ev["_sign"] > 0, 0, 1)
    ev = ev.sort_values(["run_id", "mechanism", "_unit", "step", "_order"], kind="stable")
    is_adopt = ev["_sign"] > 0
    if not is_adopt.all():
        keys = [ev["run_id"], ev["mechanism"], ev["_unit"]]
        for col in _INHERITED:
            source = ev[col].astype(object).where(is_adopt)
            filled = source.groupby(keys).ffill()
            ev[col] = ev[col].astype(object).where(is_adopt, filled.where(filled.notna(), ev[col]))
    ev["sponsor_dyad"] = ev["sponsor_dyad"].fillna(False).astype(bool)
    ev["exogenous"] = ev["exogenous"].fillna(False).astype(bool)
    ev["depth"] = pd.to_numeric(ev["depth"], errors="coerce").fillna(-1).astype("int64")
    ev["partner_human_rights"] = pd.to_numeric(ev["partner_human_rights"], errors="coerce")
    ev["_low_hr"] = pd.to_numeric(ev["_low_hr"], errors="coerce")
    ev["return_flow"] = pd.to_numeric(ev["return_flow"], errors="coerce").fillna(0.0)
    ev["state_region"] = ev["state_region"].astype(str)
    ev["dominant_channel"] = ev["dominant_channel"].astype(str)
    return ev.reset_index(drop=True), index


def _cumulate(
    ev: pd.DataFrame,
    keys: Sequence[str],
    rows: pd.MultiIndex,
    n_steps: int,
    weight: str | None = None,
) -> pd.DataFrame:
    """Cumulative signed sums per ``keys`` over steps: rows ``rows``, columns ``0..n_steps-1``."""
    columns = pd.RangeIndex(n_steps, name="step")
    if ev.empty:
        return pd.DataFrame(0.0, index=rows, columns=columns)
    values = ev["_sign"].astype(float)
    if weight is not None:
        values = values * ev[weight].astype(float)
    grouped = values.groupby([ev[k] for k in keys] + [ev["step"]]).sum()
    wide = grouped.unstack("step", fill_value=0.0)
    wide = wide.reindex(columns=columns, fill_value=0.0).cumsum(axis=1)
    if wide.index.nlevels == 1:
        wide.index = pd.MultiIndex.from_arrays([wide.index], names=list(keys))
    return wide.reindex(rows, fill_value=0.0)


def _long(wide: pd.DataFrame, name: str) -> pd.DataFrame:
    """Wide (keys x step) -> long with a ``step`` column."""
    out = wide.stack()
    out.name = name
    return out.reset_index()


def _finish(
    frame: pd.DataFrame, index: pd.DataFrame, world: Mapping[str, Any], order: Sequence[str]
) -> pd.DataFrame:
    """Add dates and point/replicate; order columns and rows."""
    grid = time_grid(world)
    frame = frame.merge(grid, on="step", how="left").merge(index, on="run_id", how="left")
    first = [*RUN_KEYS, *order, "step", "date"]
    rest = [c for c in frame.columns if c not in first]
    frame = frame[first + rest].sort_values([*RUN_KEYS, *order, "step"], kind="stable")
    return frame.reset_index(drop=True)


def _product(index: pd.DataFrame, *levels: tuple[str, Sequence[Any]]) -> pd.MultiIndex:
    arrays: list[Sequence[Any]] = [index["run_id"].tolist()] + [list(v) for _, v in levels]
    return pd.MultiIndex.from_product(arrays, names=["run_id", *[n for n, _ in levels]])


def _party_counts(ev: pd.DataFrame, n_steps: int) -> pd.DataFrame:
    """Units in force per (run, mechanism, state) after each step; states with events only.

    For a bilateral mechanism both parties of an agreement count it.
    """
    sides = [ev.assign(_party=ev["state"])]
    bilateral = ev[ev["_kind"] == "bilateral"]
    if not bilateral.empty:
        sides.append(bilateral.assign(_party=bilateral["partner"].astype(str)))
    parties = pd.concat(sides, ignore_index=True)
    keys = ["run_id", "mechanism", "_party"]
    if parties.empty:
        rows = pd.MultiIndex.from_arrays([[], [], []], names=keys)
    else:
        rows = pd.MultiIndex.from_frame(parties[keys].drop_duplicates())
    return _cumulate(parties, keys, rows, n_steps)


# --------------------------------------------------------------------------- curves


def adoption_curves(
    events: pd.DataFrame, world: Mapping[str, Any], runs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Adoption curve per run and mechanism.

    Columns: run keys, ``mechanism``, ``kind``, ``step``, ``date``, ``adopters`` (states holding
    the mechanism; bilateral: with at least one agreement in force), ``share`` (``adopters`` /
    number of states), ``agreements`` (bilateral: agreements in force; unilateral: =
    ``adopters``) and ``level``, the headline curve: ``share`` for a unilateral mechanism,
    ``agreements`` for a bilateral one.
    """
    ev, index = _prepare(events, world, runs)
    kinds = mechanism_kinds(world)
    n_steps = int(world["time"]["steps"])
    n_states = len(world["states"])
    rows = _product(index, ("mechanism", list(kinds)))
    agreements = _cumulate(ev, ["run_id", "mechanism"], rows, n_steps)
    held = (_party_counts(ev, n_steps) > 0).astype(float)
    adopters = held.groupby(level=["run_id", "mechanism"]).sum().reindex(rows, fill_value=0.0)
    frame = _long(adopters, "adopters").merge(
        _long(agreements, "agreements"), on=["run_id", "mechanism", "step"]
    )
    frame["kind"] = frame["mechanism"].map(kinds)
    frame["adopters"] = frame["adopters"].round().astype("int64")
    frame["agreements"] = frame["agreements"].round().astype("int64")
    frame["share"] = frame["adopters"] / n_states
    frame["level"] = np.where(
        frame["kind"] == "bilateral", frame["agreements"].astype(float), frame["share"]
    )
    frame = _finish(frame, index, world, ["mechanism"])
    return frame[[*RUN_KEYS, "mechanism", "kind", "step", "date", *_ADOPTION_VALUES]]


_ADOPTION_VALUES = ["adopters", "share", "agreements", "level"]


def spillover_curves(
    events: pd.DataFrame, world: Mapping[str, Any], runs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Units in force per run and mechanism, all and beyond the sponsors' own dyads.

    Columns: run keys, ``mechanism``, ``kind``, ``step``, ``date``, ``total`` (agreements, or
    adopting states for a unilateral mechanism), ``beyond_sponsor`` (those with
    ``sponsor_dyad == False``: no sponsor among the parties) and ``ratio`` = ``beyond_sponsor
    / total`` (NaN while ``total`` is 0).
    """
    ev, index = _prepare(events, world, runs)
    kinds = mechanism_kinds(world)
    n_steps = int(world["time"]["steps"])
    rows = _product(index, ("mechanism", list(kinds)))
    keys = ["run_id", "mechanism"]
    total = _cumulate(ev, keys, rows, n_steps)
    beyond = _cumulate(ev[~ev["sponsor_dyad"]], keys, rows, n_steps)
    frame = _long(total, "total").merge(_long(beyond, "beyond_sponsor"), on=[*keys, "step"])
    frame["kind"] = frame["mechanism"].map(kinds)
    for col in ("total", "beyond_sponsor"):
        frame[col] = frame[col].round().astype("int64")
    frame["ratio"] = frame["beyond_sponsor"] / frame["total"].where(frame["total"] > 0)
    frame = _finish(frame, index, world, ["mechanism"])
    return frame[
        [*RUN_KEYS, "mechanism", "kind", "step", "date", "total", "beyond_sponsor", "ratio"]
    ]


def curves_by_region(
    events: pd.DataFrame, world: Mapping[str, Any], runs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Adoption curves per run, mechanism and region (regions from ``world.json`` states).

    Columns: run keys, ``mechanism``, ``region``, ``step``, ``date``, ``n_states`` (states in
    the region), ``adopters``, ``share`` (``adopters / n_states``) and ``agreements`` (bilateral:
    agreements in force with at least one party in the region, counted once; unilateral:
    ``adopters``), as in ``series.parquet``.
    """
    ev, index = _prepare(events, world, runs)
    kinds = mechanism_kinds(world)
    n_steps = int(world["time"]["steps"])
    states = _states(world)
    region_of = states["region"].astype(str)
    regions = _regions(world)
    rows = _product(index, ("mechanism", list(kinds)), ("region", regions))

    held = (_party_counts(ev, n_steps) > 0).astype(float)
    party_region = held.index.get_level_values("_party").map(region_of)
    held.index = pd.MultiIndex.from_arrays(
        [
            held.index.get_level_values("run_id"),
            held.index.get_level_values("mechanism"),
            party_region,
        ],
        names=["run_id", "mechanism", "region"],
    )
    adopters = held.groupby(level=["run_id", "mechanism", "region"]).sum().reindex(rows).fillna(0)

    # Agreements with at least one party in the region: one row per distinct region of a unit.
    ev_state = ev.assign(region=ev["state"].map(region_of).fillna(ev["state_region"]))
    sides = [ev_state]
    bilateral = ev[ev["_kind"] == "bilateral"]
    if not bilateral.empty:
        other = bilateral["partner"].map(region_of).fillna(bilateral["partner_region"].astype(str))
        other_side = bilateral.assign(region=other)
        sides.append(other_side[other_side["region"] != ev_state.loc[bilateral.index, "region"]])
    by_region = pd.concat(sides, ignore_index=True)
    agreements = _cumulate(by_region, ["run_id", "mechanism", "region"], rows, n_steps)

    frame = _long(adopters, "adopters").merge(
        _long(agreements, "agreements"), on=["run_id", "mechanism", "region", "step"]
    )
    n_in = region_of.value_counts()
    frame["n_states"] = frame["region"].map(n_in).fillna(0).astype("int64")
    frame["adopters"] = frame["adopters"].round().astype("int64")
    frame["agreements"] = frame["agreements"].round().astype("int64")
    frame["share"] = frame["adopters"] / frame["n_states"].where(frame["n_states"] > 0)
    frame = _finish(frame, index, world, ["mechanism", "region"])
    cols = ["n_states", "adopters", "share", "agreements"]
    return frame[[*RUN_KEYS, "mechanism", "region", "step", "date", *cols]]


def _curves_by(
    ev: pd.DataFrame, index: pd.DataFrame, world: Mapping[str, Any], column: str, groups: list[Any]
) -> pd.DataFrame:
    kinds = mechanism_kinds(world)
    n_steps = int(world["time"]["steps"])
    rows = _product(index, ("mechanism", list(kinds)), (column, groups))
    wide = _cumulate(ev, ["run_id", "mechanism", column], rows, n_steps)
    frame = _long(wide, "in_force")
    frame["in_force"] = frame["in_force"].round().astype("int64")
    frame = _finish(frame, index, world, ["mechanism", column])
    return frame[[*RUN_KEYS, "mechanism", column, "step", "date", "in_force"]]


def curves_by_depth(
    events: pd.DataFrame, world: Mapping[str, Any], runs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Units in force per run, mechanism and chain depth (the event's ``depth``).

    Columns: run keys, ``mechanism``, ``depth``, ``step``, ``date``, ``in_force``. Depths are
    those present in the events (sponsor dyads usually at 1, the sponsor itself being 0).
    """
    ev, index = _prepare(events, world, runs)
    depths = sorted(int(d) for d in ev["depth"].unique())
    return _curves_by(ev, index, world, "depth", depths)


def curves_by_channel(
    events: pd.DataFrame, world: Mapping[str, Any], runs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Units in force per run, mechanism and dominant channel (see ``dominant_channel``).

    Columns: run keys, ``mechanism``, ``channel``, ``step``, ``date``, ``in_force``. Channels
    are those present, in ``CHANNELS`` order, then ``'none'`` and ``'exogenous'``.
    """
    ev, index = _prepare(events, world, runs)
    ev = ev.rename(columns={"dominant_channel": "channel"})
    present = set(ev["channel"])
    order = [c for c in (*CHANNELS, "none", "exogenous") if c in present]
    return _curves_by(ev, index, world, "channel", order)


def channel_decomposition(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    include_intercept: bool = False,
) -> pd.DataFrame:
    """Each channel's share in the linear predictor of the adoptions, per run, mechanism, step.

    Only endogenous adoptions enter (exogenous events have no linear predictor, revocations
    none of their own). For the adoptions of one run, mechanism and step, ``contribution`` is
    the sum over events of the channel's ``c_*`` term, and
    ``share = contribution / sum over channels of |contribution|``. Negative contributions are
    kept with their sign: positive shares add up to the part of the predictor that pushed
    adoption, negative shares (e.g. a high human-rights standard with a negative weight) to
    the part that held it back, and the absolute shares add up to 1. The intercept is left
    out by default (it is the same baseline for every adoption and would dwarf the channels);
    ``include_intercept=True`` adds it as channel ``'intercept'``.

    Columns: run keys, ``mechanism``, ``step``, ``date``, ``channel``, ``contribution``,
    ``n_events``, ``share``. Only (run, mechanism, step) with at least one adoption appear.
    """
    ev, index = _prepare(events, world, runs)
    ev = ev[(ev["_sign"] > 0) & ~ev["exogenous"]]
    names = (["intercept"] if include_intercept else []) + list(CHANNELS)
    names = [c for c in names if f"c_{c}" in ev]
    keys = ["run_id", "mechanism", "step"]
    if ev.empty or not names:
        cols = [*RUN_KEYS, "mechanism", "step", "date", "channel", "contribution", "n_events"]
        return pd.DataFrame(columns=[*cols, "share"])
    contrib = ev[keys + [f"c_{c}" for c in names]].fillna({f"c_{c}": 0.0 for c in names})
    sums = contrib.groupby(keys).sum()
    counts = ev.groupby(keys).size().rename("n_events")
    sums.columns = names
    long = sums.stack()
    long.index = long.index.set_names([*keys, "channel"])
    frame = long.rename("contribution").reset_index().merge(counts.reset_index(), on=keys)
    scale = frame.groupby(keys)["contribution"].transform(lambda s: s.abs().sum())
    frame["share"] = frame["contribution"] / scale.where(scale > 0)
    frame = _finish(frame, index, world, ["mechanism"])
    frame["channel"] = pd.Categorical(frame["channel"], categories=names, ordered=True)
    frame = frame.sort_values([*RUN_KEYS, "mechanism", "step", "channel"], kind="stable")
    frame["channel"] = frame["channel"].astype(str)
    cols = ["channel", "contribution", "n_events", "share"]
    return frame[[*RUN_KEYS, "mechanism", "step", "date", *cols]].reset_index(drop=True)


def pooled_channel_shares(decomposition: pd.DataFrame) -> pd.DataFrame:
    """Channel shares pooled over runs: contributions summed over runs, then normalised.

    Same share rule as ``channel_decomposition`` (signed, absolute shares sum to 1). Columns:
    ``mechanism``, ``step``, ``date``, ``channel``, ``contribution``, ``n_events`` (adoptions
    over all runs), ``share``.
    """
    keys = ["mechanism", "step", "date"]
    if decomposition.empty:
        return pd.DataFrame(columns=[*keys, "channel", "contribution", "n_events", "share"])
    order = list(dict.fromkeys(decomposition["channel"]))
    summed = decomposition.groupby([*keys, "channel"], sort=False)["contribution"].sum()
    frame = summed.reset_index()
    n_events = (
        decomposition.drop_duplicates(["run_id", "mechanism", "step"])
        .groupby(keys)["n_events"]
        .sum()
        .reset_index()
    )
    frame = frame.merge(n_events, on=keys)
    scale = frame.groupby(keys)["contribution"].transform(lambda s: s.abs().sum())
    frame["share"] = frame["contribution"] / scale.where(scale > 0)
    frame["_c"] = frame["channel"].map({c: i for i, c in enumerate(order)})
    frame = frame.sort_values(["mechanism", "step", "_c"]).drop(columns="_c")
    return frame.reset_index(drop=True)


def hr_exposure(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Agreements in force with a party that protects rights poorly, per run and mechanism.

    An agreement is exposed when either party's human rights (``state_human_rights``,
    ``partner_human_rights``, at conclusion) are below ``threshold`` (default
    ``world['hr_threshold']``, else 0.4): readmission obligations run both ways, so returns
    can land in either state. Columns: run keys,
    ``mechanism``, ``step``, ``date``, ``agreements``, ``exposed``, ``exposed_share``
    (NaN while no agreement is in force), ``return_flow`` (flow covered by all agreements in
    force), ``exposed_return_flow`` and ``exposed_flow_share``.
    """
    limit = _hr_threshold(world, threshold)
    ev, index = _prepare(events, world, runs)
    bilateral = [m for m, k in mechanism_kinds(world).items() if k == "bilateral"]
    ev = ev[ev["mechanism"].isin(bilateral)]
    n_steps = int(world["time"]["steps"])
    rows = _product(index, ("mechanism", bilateral))
    keys = ["run_id", "mechanism"]
    exposed = ev[ev["_low_hr"] < limit]
    parts = {
        "agreements": _cumulate(ev, keys, rows, n_steps),
        "exposed": _cumulate(exposed, keys, rows, n_steps),
        "return_flow": _cumulate(ev, keys, rows, n_steps, weight="return_flow"),
        "exposed_return_flow": _cumulate(exposed, keys, rows, n_steps, weight="return_flow"),
    }
    frame = _long(parts["agreements"], "agreements")
    for name in ("exposed", "return_flow", "exposed_return_flow"):
        frame = frame.merge(_long(parts[name], name), on=[*keys, "step"])
    frame["agreements"] = frame["agreements"].round().astype("int64")
    frame["exposed"] = frame["exposed"].round().astype("int64")
    frame["exposed_share"] = frame["exposed"] / frame["agreements"].where(frame["agreements"] > 0)
    flow = frame["return_flow"].where(frame["return_flow"] > 0)
    frame["exposed_flow_share"] = frame["exposed_return_flow"] / flow
    frame = _finish(frame, index, world, ["mechanism"])
    cols = [
        "agreements",
        "exposed",
        "exposed_share",
        "return_flow",
        "exposed_return_flow",
        "exposed_flow_share",
    ]
    return frame[[*RUN_KEYS, "mechanism", "step", "date", *cols]]


def openness_over_time(
    baseline: np.ndarray, ids: Sequence[str], world: Mapping[str, Any], n_steps: int
) -> np.ndarray:
    """(states, steps) openness: the baseline with the scheduled openness shocks of
    ``world["attribute_changes"]`` (``{step, state, attribute, value | add}``) applied from
    their step on, clipped to [0, 1] as in the model."""
    path = np.repeat(baseline[:, None], n_steps, axis=1)
    position = {s: i for i, s in enumerate(ids)}
    changes = sorted(
        (c for c in world.get("attribute_changes", []) if c["attribute"] == "openness"),
        key=lambda c: c["step"],
    )
    for c in changes:
        i, t = position[c["state"]], int(c["step"])
        if not 0 <= t < n_steps:
            continue
        current = path[i, t]
        new = c["value"] if c.get("value") is not None else current + c["add"]
        path[i, t:] = min(1.0, max(0.0, new))
    return path


def buildup_index(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    count: Literal["mechanisms", "agreements"] = "mechanisms",
) -> pd.DataFrame:
    """Boundary build-up index: Spearman rank correlation, across all states of the world, of
    openness with the number of controls held, per run and step.

    Openness is each state's value during step ``t``: the baseline from ``world.json`` with
    the scheduled ``set`` shocks of ``world["attribute_changes"]`` applied from their step on
    (so an integration event such as the Customs Union is seen). Controls held after step
    ``t``, rebuilt from the events: with
    ``count='mechanisms'`` the number of mechanisms a state holds (a bilateral one counts once
    if the state is party to at least one agreement in force); with ``count='agreements'``
    every agreement in force counts. Ties get average ranks. ``rho`` is NaN while every state
    holds the same number of controls (the correlation is undefined).

    Columns: run keys, ``step``, ``date``, ``rho``, ``n_states``.
    """
    ev, index = _prepare(events, world, runs)
    states = _states(world)
    ids = states["id"].astype(str).tolist()
    openness = states["openness"]
    openness = openness.map(
        lambda v: float(np.mean(list(v.values()))) if isinstance(v, dict) else v
    )
    n_steps = int(world["time"]["steps"])
    n_runs = len(index)
    held = _party_counts(ev, n_steps)
    if count == "mechanisms":
        held = (held > 0).astype(float)
    per_state = held.groupby(level=["run_id", "_party"]).sum()
    cube = np.zeros((n_runs, len(ids), n_steps))
    if not per_state.empty:
        run_pos = pd.Index(index["run_id"]).get_indexer(per_state.index.get_level_values(0))
        state_pos = pd.Index(ids).get_indexer(per_state.index.get_level_values(1))
        ok = (run_pos >= 0) & (state_pos >= 0)
        cube[run_pos[ok], state_pos[ok], :] = per_state.to_numpy()[ok]
    open_path = openness_over_time(openness.to_numpy(dtype=float), ids, world, n_steps)
    open_rank = stats.rankdata(open_path, axis=0)
    held_rank = stats.rankdata(cube, axis=1)
    a = open_rank - open_rank.mean(axis=0, keepdims=True)
    b = held_rank - held_rank.mean(axis=1, keepdims=True)
    num = np.einsum("st,rst->rt", a, b)
    den = np.sqrt((a**2).sum(axis=0))[None, :] * np.sqrt((b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), np.nan)
    frame = pd.DataFrame(
        {
            "run_id": np.repeat(index["run_id"].to_numpy(), n_steps),
            "step": np.tile(np.arange(n_steps), n_runs),
            "rho": rho.reshape(-1),
            "n_states": len(ids),
        }
    )
    frame = _finish(frame, index, world, [])
    return frame[[*RUN_KEYS, "step", "date", "rho", "n_states"]]


def observed_curves(world: Mapping[str, Any]) -> pd.DataFrame:
    """Cumulative observed adoptions from ``world['observed']``, a step function per mechanism.

    One row per observation date: ``mechanism``, ``date`` (float year), ``count`` (observed
    adoptions or agreements up to and including that date). Empty when nothing is observed.
    """
    observed = pd.DataFrame(world.get("observed") or [])
    if observed.empty:
        return pd.DataFrame({"mechanism": [], "date": [], "count": []})
    observed = observed.sort_values(["mechanism", "date"], kind="stable")
    counts = observed.groupby(["mechanism", "date"]).size().groupby(level=0).cumsum()
    return counts.rename("count").reset_index()


def observed_counterpart_curves(
    events: pd.DataFrame, world: Mapping[str, Any], runs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The simulated curve that is comparable with ``world['observed']``.

    An observed timeline usually covers one actor's adoptions (Russia's own readmission
    agreements), so it is compared with the simulated cumulative count of *endogenous*
    adoptions concluded by the same actors: per mechanism with observations, adoptions (not
    scheduled events, revocations not subtracted: observed records count conclusions) whose
    ``state`` or (bilateral) ``partner`` is one of the observed records' ``state`` values.

    Columns: run keys, ``mechanism``, ``step``, ``date``, ``count``, ``actors`` (the observed
    actors, comma-separated). Empty when nothing is observed.
    """
    observed = pd.DataFrame(world.get("observed") or [])
    columns = [*RUN_KEYS, "mechanism", "step", "date", "count", "actors"]
    if observed.empty:
        return pd.DataFrame({c: [] for c in columns})
    ev, index = _prepare(events, world, runs)
    n_steps = int(world["time"]["steps"])
    frames = []
    for mech, rows in observed.groupby("mechanism", sort=True):
        actors = sorted(set(rows["state"].astype(str)))
        mine = ev[(ev["mechanism"] == mech) & (ev["_sign"] > 0) & ~ev["exogenous"]]
        involved = mine["state"].isin(actors)
        if "partner" in mine:
            involved |= mine["partner"].isin(actors)
        rows_index = _product(index, ("mechanism", [mech]))
        wide = _cumulate(mine[involved], ["run_id", "mechanism"], rows_index, n_steps)
        frame = _long(wide, "count")
        frame["actors"] = ",".join(actors)
        frames.append(frame)
    out = _finish(pd.concat(frames, ignore_index=True), index, world, ["mechanism"])
    return out[columns]


# --------------------------------------------------------------------------- summaries


def _first_date(frame: pd.DataFrame, value: str, threshold: float) -> pd.Series:
    reached = frame[frame[value] >= threshold - 1e-12]
    return reached.groupby(["run_id", "mechanism"])["date"].min()


def summarise_runs(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    runs: pd.DataFrame | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Summary metrics, one row per run.

    Per mechanism ``m`` (columns ``'<m>:<metric>'``):
    ``final_share`` (share of states holding ``m`` after the last step; bilateral: party to at
    least one agreement), ``final_agreements`` (bilateral only), ``final_beyond_sponsor``
    (units in force without a sponsor party), ``t10`` / ``t50`` (first date at which the share
    of states holding reaches 10 % / 50 %; NaN if never), ``auc`` (area under the share curve:
    sum over steps of the share, in share-years, between 0 and the number of steps).
    Whole run: ``max_depth`` (deepest chain depth of any adoption; NaN without adoptions),
    ``spillover_ratio`` (per mechanism ``'<m>:spillover_ratio'``: units in force without a
    sponsor party / all units in force after the last step; the whole-run ``spillover_ratio``
    pools the bilateral mechanisms' agreements, or all mechanisms when none is bilateral; NaN
    if nothing is in force), ``hr_exposed_share`` (share of the bilateral agreements in force
    after the last step with a party below the human-rights threshold; NaN if none).
    """
    index = run_index(events, runs)
    kinds = mechanism_kinds(world)
    last = int(world["time"]["steps"]) - 1
    curves = adoption_curves(events, world, runs)
    spill = spillover_curves(events, world, runs)
    out = index.set_index("run_id")
    final = curves[curves["step"] == last].set_index(["run_id", "mechanism"])
    final_spill = spill[spill["step"] == last].set_index(["run_id", "mechanism"])
    t10 = _first_date(curves, "share", 0.1)
    t50 = _first_date(curves, "share", 0.5)
    auc = curves.groupby(["run_id", "mechanism"])["share"].sum()
    for m, kind in kinds.items():
        out[f"{m}:final_share"] = final.xs(m, level="mechanism")["share"]
        if kind == "bilateral":
            out[f"{m}:final_agreements"] = final.xs(m, level="mechanism")["agreements"]
        out[f"{m}:final_beyond_sponsor"] = final_spill.xs(m, level="mechanism")["beyond_sponsor"]
        for name, series in (("t10", t10), ("t50", t50)):
            per_run = series[series.index.get_level_values("mechanism") == m].droplevel(1)
            out[f"{m}:{name}"] = per_run.reindex(out.index).astype(float)
        out[f"{m}:auc"] = auc.xs(m, level="mechanism").reindex(out.index).astype(float)
        mine = final_spill.xs(m, level="mechanism")
        ratio = mine["beyond_sponsor"] / mine["total"].where(mine["total"] > 0)
        out[f"{m}:spillover_ratio"] = ratio.reindex(out.index).astype(float)

    ev, _ = _prepare(events, world, runs)
    depth = ev[(ev["_sign"] > 0) & (ev["depth"] >= 0)].groupby("run_id")["depth"].max()
    out["max_depth"] = depth.reindex(out.index).astype(float)
    bilateral = [m for m, kind in kinds.items() if kind == "bilateral"] or list(kinds)
    in_pool = final_spill.index.get_level_values("mechanism").isin(bilateral)
    pooled = final_spill[in_pool].groupby(level="run_id")[["total", "beyond_sponsor"]].sum()
    out["spillover_ratio"] = pooled["beyond_sponsor"] / pooled["total"].where(pooled["total"] > 0)
    exposure = hr_exposure(events, world, runs, threshold)
    exposure = exposure[exposure["step"] == last].groupby("run_id")[["agreements", "exposed"]].sum()
    out["hr_exposed_share"] = exposure["exposed"] / exposure["agreements"].where(
        exposure["agreements"] > 0
    )
    out["hr_exposed_share"] = out["hr_exposed_share"].astype(float)
    return out.reset_index()


def summary_metrics(summary: pd.DataFrame) -> list[str]:
    """The metric columns of a summary table (numeric, not run keys, seeds or parameters)."""
    skip = {"run_id", "point", "replicate", "seed", "status", "error", "params"}
    return [
        c
        for c in summary.columns
        if c not in skip
        and not str(c).startswith("param:")
        and pd.api.types.is_numeric_dtype(summary[c])
    ]


def bands(
    curves: pd.DataFrame,
    value: str,
    by: Sequence[str] = ("mechanism",),
    x: str = "date",
) -> pd.DataFrame:
    """Median and 5/25/75/95 percentiles of ``value`` over runs, per ``by`` groups and ``x``.

    Percentiles use linear interpolation between order statistics (numpy's default); NaN
    values (e.g. a ratio while nothing is in force) are left out and ``n`` counts the rest.
    Columns: ``by``..., ``x``, ``n``, ``p5``, ``p25``, ``median``, ``p75``, ``p95``.
    """
    keys = [*by, x]
    grouped = curves.groupby(keys, sort=True)[value]
    quant = grouped.quantile(list(QUANTILES.values())).unstack()
    quant.columns = list(QUANTILES)
    out = pd.concat([grouped.count().rename("n"), quant], axis=1).reset_index()
    return out[[*keys, "n", *QUANTILES]]


def metric_intervals(
    summary: pd.DataFrame, metrics: Sequence[str] | None = None, level: float = 0.95
) -> pd.DataFrame:
    """Mean of each metric over runs with a Student-t interval for the mean.

    The runs of a batch are independent replicates, so the interval is
    ``mean ± t(level, n - 1) * sd / sqrt(n)`` over the runs where the metric is defined
    (``n``); ``n_missing`` counts runs where it is NaN (e.g. ``t50`` never reached), which the
    mean leaves out. With ``n < 2`` the interval is NaN. Columns: ``metric``, ``n``,
    ``n_missing``, ``mean``, ``sd``, ``lo``, ``hi``.
    """
    names = list(metrics) if metrics is not None else summary_metrics(summary)
    rows = []
    for name in names:
        values = summary[name].astype(float)
        finite = values.dropna().to_numpy()
        n = len(finite)
        mean = float(finite.mean()) if n else np.nan
        sd = float(finite.std(ddof=1)) if n > 1 else np.nan
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n)) if n > 1 else np.nan
        rows.append(
            {
                "metric": name,
                "n": n,
                "n_missing": int(values.isna().sum()),
                "mean": mean,
                "sd": sd,
                "lo": mean - half,
                "hi": mean + half,
            }
        )
    return pd.DataFrame(rows, columns=["metric", "n", "n_missing", "mean", "sd", "lo", "hi"])


def _welch(
    m1: float, s1: float, n1: int, m0: float, s0: float, n0: int, level: float
) -> tuple[float, float, float]:
    """Difference ``m1 - m0`` with a Welch t interval (Welch-Satterthwaite degrees of freedom)."""
    diff = m1 - m0
    if n1 < 2 or n0 < 2:
        return diff, np.nan, np.nan
    v1, v0 = s1**2 / n1, s0**2 / n0
    se = np.sqrt(v1 + v0)
    if se == 0:
        return diff, diff, diff
    df = (v1 + v0) ** 2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df) * se)
    return diff, diff - half, diff + half


def compare_metrics(
    summaries: Mapping[str, pd.DataFrame],
    metrics: Sequence[str] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per scenario mean and interval of each metric, and its difference from the first scenario.

    Means and intervals as in ``metric_intervals``. The difference of scenario ``k`` from the
    first is the difference of their means with a Welch t interval (independent samples,
    unequal variances, Welch-Satterthwaite degrees of freedom); NaN for the first scenario.
    ``metrics`` defaults to the metric columns present in every summary. Columns:
    ``scenario``, ``metric``, ``n``, ``n_missing``, ``mean``, ``lo``, ``hi``, ``diff``,
    ``diff_lo``, ``diff_hi``.
    """
    labels = list(summaries)
    if not labels:
        raise ValueError("compare_metrics needs at least one scenario")
    if metrics is None:
        common = [set(summary_metrics(s)) for s in summaries.values()]
        metrics = [m for m in summary_metrics(summaries[labels[0]]) if all(m in c for c in common)]
    tables = {
        k: metric_intervals(s, metrics, level).set_index("metric") for k, s in summaries.items()
    }
    base = tables[labels[0]]
    rows = []
    for label in labels:
        table = tables[label]
        for metric in metrics:
            r = table.loc[metric]
            if label == labels[0]:
                diff = lo = hi = np.nan
            else:
                b = base.loc[metric]
                diff, lo, hi = _welch(
                    float(r["mean"]),
                    float(r["sd"]),
                    int(r["n"]),
                    float(b["mean"]),
                    float(b["sd"]),
                    int(b["n"]),
                    level,
                )
            rows.append(
                {
                    "scenario": label,
                    "metric": metric,
                    "n": int(r["n"]),
                    "n_missing": int(r["n_missing"]),
                    "mean": float(r["mean"]),
                    "lo": float(r["lo"]),
                    "hi": float(r["hi"]),
                    "diff": diff,
                    "diff_lo": lo,
                    "diff_hi": hi,
                }
            )
    return pd.DataFrame(rows)


def in_force_at(
    events: pd.DataFrame,
    world: Mapping[str, Any],
    step: int,
    runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Units in force after ``step``, one row per (run, mechanism, unit).

    Columns: run keys, ``mechanism``, ``kind``, ``state``, ``partner`` (None for unilateral),
    ``depth``, ``sponsor_dyad``, ``date`` (of the adoption that put it in force).
    """
    ev, index = _prepare(events, world, runs)
    ev = ev[ev["step"] <= step]
    keys = ["run_id", "mechanism", "_unit"]
    net = ev.groupby(keys)["_sign"].sum()
    live = net[net > 0].index
    adopts = ev[ev["_sign"] > 0].drop_duplicates(keys, keep="last").set_index(keys)
    out = adopts.loc[adopts.index.intersection(live)].reset_index()
    out = out.merge(index, on="run_id", how="left", suffixes=("_ev", ""))
    out = out.drop(columns=["kind"], errors="ignore").rename(columns={"_kind": "kind"})
    cols = ["mechanism", "kind", "state", "partner", "depth", "sponsor_dyad", "date"]
    return (
        out[[*RUN_KEYS, *cols]].sort_values([*RUN_KEYS, "mechanism", "date"]).reset_index(drop=True)
    )
