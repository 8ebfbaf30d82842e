"""Turn the kernel's index-coded arrays into the Arrow tables of docs/INTERNALS.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from .world import CONTRIBUTIONS, NO_TCN, World

if TYPE_CHECKING:
    from .kernel import KernelResult


def _labels(
    codes: np.ndarray, names: Sequence[str], null_below_zero: bool = False, encoded: bool = False
) -> pa.Array:
    """Strings for integer codes (dictionary decode in Arrow); code < 0 -> null. ``encoded``
    keeps the dictionary array (what the Parquet writer takes without hashing any string)."""
    mask = codes < 0 if null_below_zero else None
    dictionary = pa.DictionaryArray.from_arrays(
        pa.array(np.maximum(codes, 0).astype(np.int32), mask=mask), pa.array(list(names))
    )
    return dictionary if encoded else dictionary.cast(pa.string())


def _run_columns(
    replicate_local: np.ndarray, run_ids: np.ndarray, points: np.ndarray, replicates: np.ndarray
) -> dict[str, pa.Array]:
    return {
        "run_id": pa.array(run_ids[replicate_local].astype(np.int64)),
        "point": pa.array(points[replicate_local].astype(np.int32)),
        "replicate": pa.array(replicates[replicate_local].astype(np.int32)),
    }


#: Leading columns of the events and series tables: which run, which step.
_RUN_STEP = [
    ("run_id", pa.int64()),
    ("point", pa.int32()),
    ("replicate", pa.int32()),
    ("step", pa.int32()),
    ("date", pa.float64()),
]


def _schema(fields: list) -> pa.Schema:
    """Integer, boolean and string fields given as (name, type) never hold nulls; nullable
    ones are ``pa.field``s. Floating-point fields stay nullable (pandas reads NaN as null)."""
    return pa.schema(
        [
            f
            if isinstance(f, pa.Field)
            else pa.field(f[0], f[1], nullable=pa.types.is_floating(f[1]))
            for f in fields
        ]
    )


def encoded_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with dictionary-encoded string columns (the form tables are built in for
    Parquet; written without the Arrow schema, they read back as plain strings)."""
    return pa.schema(
        [
            f.with_type(pa.dictionary(pa.int32(), pa.string())) if pa.types.is_string(f.type) else f
            for f in schema
        ]
    )


EVENT_SCHEMA = _schema(
    [
        *_RUN_STEP,
        ("mechanism", pa.string()),
        ("kind", pa.string()),
        ("action", pa.string()),
        ("exogenous", pa.bool_()),
        ("state", pa.string()),
        pa.field("partner", pa.string(), nullable=True),
        ("state_region", pa.string()),
        pa.field("partner_region", pa.string(), nullable=True),
        ("state_human_rights", pa.float64()),
        pa.field("partner_human_rights", pa.float64(), nullable=True),
        ("state_openness", pa.float64()),
        ("sponsor_dyad", pa.bool_()),
        pa.field("tcn_step", pa.int32(), nullable=True),
        ("return_flow", pa.float64()),
        ("depth", pa.int32()),
        ("eta", pa.float64()),
        *[(f"c_{c}", pa.float64()) for c in CONTRIBUTIONS],
    ]
)

SERIES_SCHEMA = _schema(
    [
        *_RUN_STEP,
        ("mechanism", pa.string()),
        ("region", pa.string()),
        ("n_states", pa.int32()),
        ("adopters", pa.int32()),
        ("agreements", pa.int32()),
        ("beyond_sponsor", pa.int32()),
        ("mean_pressure", pa.float64()),
    ]
)


def event_table(
    world: World,
    result: KernelResult,
    run_ids: np.ndarray,
    points: np.ndarray,
    replicates: np.ndarray,
    *,
    encoded: bool = False,
) -> pa.Table:
    """events.parquet rows of one kernel batch, in the kernel's (run, step, mechanism, state,
    partner) order; ``encoded``: string columns as dictionaries (``encoded_schema``)."""
    schema = encoded_schema(EVENT_SCHEMA) if encoded else EVENT_SCHEMA
    ev = result.events
    if not len(ev.get("state", ())):
        return schema.empty_table()
    mech_ids = [m.id for m in world.mechanisms]
    kinds = [m.kind for m in world.mechanisms]
    partner = ev["partner"]
    has_partner = partner >= 0
    sponsor_dyad = world.sponsor[ev["state"]] | (
        has_partner & world.sponsor[np.maximum(partner, 0)]
    )
    cols = _run_columns(ev["replicate"], run_ids, points, replicates)
    cols |= {
        "step": pa.array(ev["step"]),
        "date": pa.array(world.start + ev["step"].astype(np.float64)),
        "mechanism": _labels(ev["mechanism"], mech_ids, encoded=encoded),
        "kind": _labels(ev["mechanism"], kinds, encoded=encoded),
        "action": _labels(ev["action"].astype(np.int32), ["adopt", "revoke"], encoded=encoded),
        "exogenous": pa.array(ev["exogenous"]),
        "state": _labels(ev["state"], world.ids, encoded=encoded),
        "partner": _labels(partner, world.ids, null_below_zero=True, encoded=encoded),
        "state_region": _labels(world.region_of[ev["state"]], world.regions, encoded=encoded),
        "partner_region": _labels(
            np.where(has_partner, world.region_of[np.maximum(partner, 0)], -1),
            world.regions,
            null_below_zero=True,
            encoded=encoded,
        ),
        "state_human_rights": pa.array(ev["state_human_rights"]),
        "partner_human_rights": pa.array(
            ev["partner_human_rights"], mask=np.isnan(ev["partner_human_rights"])
        ),
        "state_openness": pa.array(ev["state_openness"]),
        "sponsor_dyad": pa.array(sponsor_dyad),
        "tcn_step": pa.array(ev["tcn_step"], mask=ev["tcn_step"] == NO_TCN),
        "return_flow": pa.array(ev["return_flow"]),
        "depth": pa.array(ev["depth"]),
        "eta": pa.array(ev["eta"]),
    }
    for c in CONTRIBUTIONS:
        cols[f"c_{c}"] = pa.array(ev[f"c_{c}"])
    return pa.table(cols, schema=schema)


def series_table(
    world: World,
    result: KernelResult,
    run_ids: np.ndarray,
    points: np.ndarray,
    replicates: np.ndarray,
    *,
    encoded: bool = False,
) -> pa.Table:
    """series.parquet rows of one kernel batch, in the kernel's (run, step, mechanism,
    region) order; ``encoded``: string columns as dictionaries (``encoded_schema``)."""
    schema = encoded_schema(SERIES_SCHEMA) if encoded else SERIES_SCHEMA
    se = result.series
    if not se:
        return schema.empty_table()
    region_names = ["all", *world.regions]
    sizes = np.concatenate([[world.n], np.bincount(world.region_of, minlength=len(world.regions))])
    cols = _run_columns(se["replicate"], run_ids, points, replicates)
    cols |= {
        "step": pa.array(se["step"]),
        "date": pa.array(world.start + se["step"].astype(np.float64)),
        "mechanism": _labels(se["mechanism"], [m.id for m in world.mechanisms], encoded=encoded),
        "region": _labels(se["region"] + 1, region_names, encoded=encoded),
        "n_states": pa.array(sizes[se["region"] + 1].astype(np.int32)),
        "adopters": pa.array(se["adopters"]),
        "agreements": pa.array(se["agreements"]),
        "beyond_sponsor": pa.array(se["beyond_sponsor"]),
        "mean_pressure": pa.array(se["mean_pressure"]),
    }
    return pa.table(cols, schema=schema)


def world_summary(world: World) -> dict:
    """The ``world.json`` of a results folder: what analyses need without the model."""
    return {
        "time": {"start": world.start, "steps": world.steps, "unit": "year"},
        "states": [
            {
                "id": world.ids[i],
                "name": world.names[i],
                "region": world.regions[world.region_of[i]],
                "human_rights": float(world.human_rights[i]),
                "openness": float(world.openness[i]),
                "pressure": float(world.pressure[i]),
                "sponsor": bool(world.sponsor[i]),
            }
            for i in range(world.n)
        ],
        "regions": list(world.regions),
        "attribute_changes": [
            {
                "step": ch.step,
                "state": world.ids[ch.state],
                "attribute": ch.attribute,
                "value": ch.value,
                "add": ch.add,
            }
            for step in sorted(world.attribute_changes)
            for ch in world.attribute_changes[step]
        ],
        "mechanisms": [
            {
                "id": m.id,
                "kind": m.kind,
                "label": m.label,
                "tcn_delay": None if m.tcn_delay < 0 else m.tcn_delay,
            }
            for m in world.mechanisms
        ],
    }
