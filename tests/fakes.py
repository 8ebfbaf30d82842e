"""Hand-made results folders in the docs/INTERNALS.md table schema, for analysis/plot tests.

``tiny_world`` / ``tiny_events`` are small enough to compute every curve by hand (see the
comments); ``synthetic_results`` draws a larger plausible batch (not the model: a few fixed
rules) for plots and end-to-end tests; ``write_results`` writes either to a folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from diffusion_sim.kernel import CONTRIBUTIONS as TERMS
from diffusion_sim.tables import EVENT_SCHEMA

# The events contract is the package's own schema (tables.py), so fakes cannot drift from it.
CONTRIBUTIONS = [f"c_{c}" for c in TERMS]


def tiny_world(steps: int = 5, start: int = 2000) -> dict[str, Any]:
    """Three states (EU27 sponsor, RUS, KAZ), one bilateral and one unilateral mechanism."""
    return {
        "time": {"start": start, "steps": steps, "unit": "year"},
        "states": [
            {
                "id": "EU27",
                "name": "EU27",
                "region": "Europe",
                "human_rights": 0.9,
                "openness": 0.6,
                "pressure": 0.1,
                "sponsor": True,
            },
            {
                "id": "RUS",
                "name": "Russia",
                "region": "Russia",
                "human_rights": 0.3,
                "openness": 0.4,
                "pressure": 0.3,
                "sponsor": False,
            },
            {
                "id": "KAZ",
                "name": "Kazakhstan",
                "region": "Central Asia",
                "human_rights": 0.2,
                "openness": 0.2,
                "pressure": 0.2,
                "sponsor": False,
            },
        ],
        "regions": ["Europe", "Russia", "Central Asia"],
        "mechanisms": [
            {
                "id": "readmission",
                "kind": "bilateral",
                "label": "Readmission agreement",
                "tcn_delay": 3,
            },
            {"id": "visa", "kind": "unilateral", "label": "Visa regime"},
        ],
        "hr_threshold": 0.4,
        "observed": [],
        "sweep_parameters": [],
    }


def event(world: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """One event row with the schema's defaults filled in from the world."""
    states = {s["id"]: s for s in world["states"]}
    kinds = {m["id"]: m["kind"] for m in world["mechanisms"]}
    row: dict[str, Any] = {
        "point": 0,
        "replicate": fields.get("run_id", 0),
        "action": "adopt",
        "exogenous": False,
        "partner": None,
        "tcn_step": None,
        "return_flow": 0.0,
        "depth": 1,
    }
    row.update(fields)
    row["kind"] = kinds[row["mechanism"]]
    row["date"] = float(world["time"]["start"] + row["step"])
    s = states[row["state"]]
    p = states.get(row["partner"]) if row["partner"] else None
    row.setdefault("state_region", s["region"])
    row.setdefault("partner_region", p["region"] if p else None)
    row.setdefault("state_human_rights", s["human_rights"])
    row.setdefault("partner_human_rights", p["human_rights"] if p else np.nan)
    row.setdefault("state_openness", s["openness"])
    row.setdefault("sponsor_dyad", bool(s.get("sponsor")) or bool(p and p.get("sponsor")))
    for c in CONTRIBUTIONS:
        row.setdefault(c, np.nan if row["exogenous"] else 0.0)
    if not row["exogenous"] and "eta" not in row:
        row["eta"] = sum(row[c] for c in CONTRIBUTIONS)
    row.setdefault("eta", np.nan)
    return row


def events_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly the INTERNALS.md columns and types."""
    table = pa.Table.from_pylist(list(rows), schema=EVENT_SCHEMA)
    return table.to_pandas()


def tiny_events(world: dict[str, Any] | None = None) -> pd.DataFrame:
    """Two runs with hand-checkable events.

    Run 0: 2001 EU27-RUS readmission (exogenous, sponsor dyad, depth 1, flow 10);
    2002 RUS-KAZ readmission (depth 2, flow 4; chain 2, demand 1, openness -0.5, intercept -3)
    and RUS visa (emulation 0.5, pressure 1.5); 2003 RUS-KAZ revoked (recorded as KAZ-RUS
    with junk attributes, which the analysis must ignore).
    Run 1: 2001 EU27-RUS readmission (exogenous); 2004 KAZ visa (emulation 1).
    """
    w = world or tiny_world()
    rows = [
        event(
            w,
            run_id=0,
            step=1,
            mechanism="readmission",
            state="EU27",
            partner="RUS",
            exogenous=True,
            return_flow=10.0,
            depth=1,
            tcn_step=4,
        ),
        event(
            w,
            run_id=0,
            step=2,
            mechanism="readmission",
            state="RUS",
            partner="KAZ",
            return_flow=4.0,
            depth=2,
            c_intercept=-3.0,
            c_chain=2.0,
            c_demand=1.0,
            c_openness=-0.5,
        ),
        event(
            w,
            run_id=0,
            step=2,
            mechanism="visa",
            state="RUS",
            depth=1,
            c_intercept=-2.0,
            c_emulation=0.5,
            c_pressure=1.5,
        ),
        event(
            w,
            run_id=0,
            step=3,
            mechanism="readmission",
            state="KAZ",
            partner="RUS",
            action="revoke",
            sponsor_dyad=True,
            depth=7,
            return_flow=0.0,
            partner_human_rights=0.9,
            c_chain=0.0,
        ),
        event(
            w,
            run_id=1,
            step=1,
            mechanism="readmission",
            state="EU27",
            partner="RUS",
            exogenous=True,
            return_flow=10.0,
            depth=1,
            tcn_step=4,
        ),
        event(
            w,
            run_id=1,
            step=4,
            mechanism="visa",
            state="KAZ",
            depth=2,
            c_intercept=-2.0,
            c_emulation=1.0,
        ),
    ]
    return events_frame(rows)


def runs_frame(
    n_runs: int, replicates: int | None = None, params: dict[str, Sequence[float]] | None = None
) -> pd.DataFrame:
    """A runs table: ``n_runs`` ok runs, ``param:<path>`` columns from per-point values."""
    reps = replicates or n_runs
    run_id = np.arange(n_runs, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "run_id": run_id,
            "point": (run_id // reps).astype(np.int32),
            "replicate": (run_id % reps).astype(np.int32),
            "seed": [f"42/{i}" for i in run_id],
            "status": "ok",
            "error": pd.Series([None] * n_runs, dtype=object),
        }
    )
    values: dict[str, list[float]] = {}
    for path, per_point in (params or {}).items():
        values[path] = [float(per_point[int(p)]) for p in frame["point"]]
        frame[f"param:{path}"] = values[path]
    frame["params"] = [json.dumps({k: v[i] for k, v in values.items()}) for i in range(n_runs)]
    return frame


REGIONS = [
    "Europe",
    "Russia",
    "Central Asia",
    "South Caucasus",
    "Eastern Europe",
    "Middle East",
    "South Asia",
    "South-East Asia",
]
PREFIX = {
    "Central Asia": "CA",
    "South Caucasus": "SC",
    "Eastern Europe": "EE",
    "Middle East": "ME",
    "South Asia": "SA",
    "South-East Asia": "SE",
}


def synthetic_world(
    n_per_region: int = 3, steps: int = 21, start: int = 2000, sweep: Sequence[str] = ()
) -> dict[str, Any]:
    """EU27 (sponsor), RUS and ``n_per_region`` states in each other region, two mechanisms."""
    rng = np.random.default_rng(7)
    states = [
        {
            "id": "EU27",
            "name": "EU27",
            "region": "Europe",
            "human_rights": 0.9,
            "openness": 0.8,
            "pressure": 0.1,
            "sponsor": True,
        },
        {
            "id": "RUS",
            "name": "Russia",
            "region": "Russia",
            "human_rights": 0.3,
            "openness": 0.45,
            "pressure": 0.4,
            "sponsor": False,
        },
    ]
    for region in REGIONS[2:]:
        for k in range(n_per_region):
            states.append(
                {
                    "id": f"{PREFIX[region]}{k}",
                    "name": f"{region} {k}",
                    "region": region,
                    "human_rights": round(float(rng.uniform(0.1, 0.8)), 2),
                    "openness": round(float(rng.uniform(0.1, 0.9)), 2),
                    "pressure": round(float(rng.uniform(0.0, 1.0)), 2),
                    "sponsor": False,
                }
            )
    return {
        "time": {"start": start, "steps": steps, "unit": "year"},
        "states": states,
        "regions": REGIONS,
        "mechanisms": [
            {
                "id": "readmission",
                "kind": "bilateral",
                "label": "Readmission agreement",
                "tcn_delay": 3,
            },
            {"id": "visa_regime", "kind": "unilateral", "label": "Visa regime"},
        ],
        "hr_threshold": 0.4,
        "observed": [
            {"mechanism": "readmission", "state": "EU27", "partner": "RUS", "date": 2007.42},
            {"mechanism": "readmission", "state": "RUS", "partner": "NOR", "date": 2007.44},
            {"mechanism": "readmission", "state": "RUS", "partner": "KAZ", "date": 2013.5},
            {"mechanism": "readmission", "state": "RUS", "partner": "UZB", "date": 2014.2},
            {"mechanism": "readmission", "state": "RUS", "partner": "VNM", "date": 2016.9},
        ],
        "sweep_parameters": list(sweep),
    }


def synthetic_events(
    world: dict[str, Any], n_runs: int, seed: int = 0, strength: Sequence[float] | None = None
) -> pd.DataFrame:
    """A plausible batch: EU27-RUS in 2007, then Russia and others spread agreements by chain.

    ``strength[run]`` scales the per-step hazard (a stand-in for a swept parameter).
    """
    rng = np.random.default_rng(seed)
    start = world["time"]["start"]
    steps = world["time"]["steps"]
    ids = [s["id"] for s in world["states"]]
    others = ids[2:]
    channels = ["c_demand", "c_chain", "c_conditionality", "c_emulation", "c_hr_gap", "c_openness"]
    rows: list[dict[str, Any]] = []
    for run in range(n_runs):
        k = 1.0 if strength is None else float(strength[run])
        first = 2007 - start
        rows.append(
            event(
                world,
                run_id=run,
                step=first,
                mechanism="readmission",
                state="EU27",
                partner="RUS",
                exogenous=True,
                return_flow=20.0,
                depth=1,
                tcn_step=first + 3,
            )
        )
        gen = {"EU27": 0, "RUS": 1}
        held: set[tuple[str, str]] = {("EU27", "RUS")}
        visa: set[str] = set()
        for step in range(first + 1, steps):
            holders = [s for s in gen if s != "EU27"]
            for s in others:
                if rng.random() < 0.12 * k and holders:
                    r = holders[int(rng.integers(len(holders)))]
                    pair = (min(r, s), max(r, s))
                    if r == s or pair in held:
                        continue
                    held.add(pair)
                    gen.setdefault(s, gen[r] + 1)
                    c = rng.normal(0.6, 0.5, size=len(channels))
                    c[1] = abs(c[1]) * (2.0 if r == "RUS" else 1.0)
                    row = event(
                        world,
                        run_id=run,
                        step=step,
                        mechanism="readmission",
                        state=r,
                        partner=s,
                        depth=gen[s],
                        return_flow=float(rng.uniform(1, 5)),
                        c_intercept=-4.0,
                        **dict(zip(channels, c, strict=True)),
                    )
                    rows.append(row)
            for s in ids[1:]:
                if s not in visa and rng.random() < 0.05 * k:
                    visa.add(s)
                    rows.append(
                        event(
                            world,
                            run_id=run,
                            step=step,
                            mechanism="visa_regime",
                            state=s,
                            depth=gen.get(s, 1),
                            c_intercept=-3.0,
                            c_emulation=float(rng.uniform(0, 1)),
                            c_openness=float(rng.uniform(0, 1)),
                            c_human_rights=-float(rng.uniform(0, 0.5)),
                            c_pressure=float(rng.uniform(0, 1)),
                        )
                    )
            if step == steps - 3 and len(held) > 2 and rng.random() < 0.5:
                pair = sorted(held - {("EU27", "RUS")})[0]
                rows.append(
                    event(
                        world,
                        run_id=run,
                        step=step,
                        mechanism="readmission",
                        state=pair[0],
                        partner=pair[1],
                        action="revoke",
                    )
                )
    return events_frame(rows)


def write_results(
    directory: Path,
    world: dict[str, Any],
    events: pd.DataFrame,
    runs: pd.DataFrame,
    scenario: str = "fake",
    parts: int = 1,
) -> Path:
    """Write a results folder; with ``parts > 1`` events.parquet is a directory of part files."""
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(events, schema=EVENT_SCHEMA, preserve_index=False)
    if parts > 1:
        (directory / "events.parquet").mkdir()
        ids = np.array_split(np.sort(runs["run_id"].to_numpy()), parts)
        for i, chunk in enumerate(ids):
            mask = events["run_id"].isin(chunk).to_numpy()
            pq.write_table(
                table.filter(pa.array(mask)),
                directory / f"events.parquet/part-p00000-r{i:08d}.parquet",
            )
    else:
        pq.write_table(table, directory / "events.parquet")
    runs.to_parquet(directory / "runs.parquet", index=False)
    series = pd.DataFrame(
        {"run_id": pd.Series([], dtype="int64"), "step": pd.Series([], dtype="int32")}
    )
    series.to_parquet(directory / "series.parquet", index=False)
    (directory / "world.json").write_text(json.dumps(world, indent=1))
    (directory / "manifest.json").write_text(json.dumps({"scenario": scenario, "version": "0.1.0"}))
    return directory
