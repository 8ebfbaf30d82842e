"""Checks of the flagship Eurasian scenarios and their derived data (scenarios/data/eurasia)."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import math
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "scenarios"
DERIVED = SCEN / "data" / "eurasia"
SHARED = (ROOT / ".." / "shared" / "data" / "readmission").resolve()
FLAGSHIPS = sorted(p for p in SCEN.glob("*.yaml") if p.name.startswith(("eu_russia", "boundary")))
VARIANTS = {
    "eu_russia_no_tcn.yaml": "eu_russia_readmission.yaml",
    "eu_russia_no_conditionality.yaml": "eu_russia_readmission.yaml",
    "eu_russia_no_flows.yaml": "eu_russia_readmission.yaml",
    "eu_russia_freedom_house.yaml": "eu_russia_readmission.yaml",
    "boundary_buildup_no_openness.yaml": "boundary_buildup.yaml",
}

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared reference data not found at {SHARED}"
)


def _rows(path: Path, skip: int = 0) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        for _ in range(skip):
            fh.readline()
        return list(csv.DictReader(fh))


def _states() -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in _rows(DERIVED / "states.csv")}


def _prepare_module():
    spec = importlib.util.spec_from_file_location(
        "prepare_eurasia", SCEN / "data" / "prepare_eurasia.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fariss_2005() -> dict[str, float]:
    rows = _rows(SHARED / "raw" / "human_rights_protection_fariss_owid.csv")
    return {r["Code"]: float(r["Human rights protection"]) for r in rows if r["Year"] == "2005"}


def _trade_2005() -> dict[str, float]:
    out = {}
    for r in _rows(SHARED / "raw" / "trade_pct_gdp_wdi_owid.csv"):
        if r["Year"] == "2005":
            key = "EU27" if r["Entity"] == "European Union (27)" else r["Code"]
            out[key] = float(r["Trade (% of GDP)"])
    return out


def _load(name: str) -> dict:
    return yaml.safe_load((SCEN / name).read_text(encoding="utf-8"))


@needs_shared
def test_states_are_the_32_shared_actors_in_order():
    """states.csv lists the 32 actors of the shared states.csv, same ids, names, regions, order."""
    shared = _rows(SHARED / "states.csv")
    ours = _rows(DERIVED / "states.csv")
    assert [(r["id"], r["name"], r["region"]) for r in ours] == [
        (r["id"], r["name"], r["region"]) for r in shared
    ]
    assert len(ours) == 32


@needs_shared
def test_hr_source_value_equals_raw_fariss_2005():
    """hr_source_value is the raw Fariss 2005 score (EU27: mean of the 27 members)."""
    raw = _fariss_2005()
    states = _states()
    assert float(states["RUS"]["hr_source_value"]) == raw["RUS"] == -1.451654086
    for i, row in states.items():
        if i == "EU27":
            members = _prepare_module().EU27_MEMBERS
            expected = sum(raw[c] for c in members) / 27
            assert math.isclose(float(row["hr_source_value"]), expected, abs_tol=1e-9)
        else:
            assert float(row["hr_source_value"]) == raw[i], i


@needs_shared
def test_openness_source_value_equals_raw_trade_2005():
    """openness_source_value is the raw trade % of GDP 2005, empty exactly where it is missing."""
    raw = _trade_2005()
    for i, row in _states().items():
        if i in raw:
            assert float(row["openness_source_value"]) == raw[i], i
        else:
            assert row["openness_source_value"] == "", i
    assert math.isclose(float(_states()["VNM"]["openness_source_value"]), 130.71484)


@needs_shared
def test_imputed_rows_are_exactly_the_missing_raw_values():
    """The *_imputed flags are true on exactly the rows with no raw 2005 value."""
    fariss, trade = _fariss_2005(), _trade_2005()
    states = _states()
    hr_missing = {i for i in states if i != "EU27" and i not in fariss}
    tr_missing = {i for i in states if i not in trade}
    assert {i for i, r in states.items() if r["hr_imputed"] == "true"} == hr_missing
    assert {i for i, r in states.items() if r["openness_imputed"] == "true"} == tr_missing
    assert tr_missing == {"AFG", "NGA", "PRK"}
    assert all(
        r[k] in ("true", "false")
        for r in states.values()
        for k in ("hr_imputed", "openness_imputed")
    )


def test_imputed_values_follow_the_region_then_overall_mean_rule():
    """An imputed openness uses the region mean among the 32 actors, else the overall mean."""
    states = _states()
    known = {
        i: float(r["openness_source_value"])
        for i, r in states.items()
        if r["openness_imputed"] == "false"
    }
    overall = sum(known.values()) / len(known)
    for i, r in states.items():
        if r["openness_imputed"] != "true":
            assert float(r["openness_value_used"]) == pytest.approx(known[i], abs=1e-6)
            continue
        peers = [v for j, v in known.items() if states[j]["region"] == r["region"]]
        expected = sum(peers) / len(peers) if peers else overall
        assert float(r["openness_value_used"]) == pytest.approx(expected, abs=1e-6), i


def test_rescaling_rules_reproduce_the_model_columns():
    """human_rights = logistic(hr) and openness = min(trade/200, 1), within rounding."""
    for i, r in _states().items():
        hr = float(r["hr_value_used"])
        assert float(r["human_rights"]) == pytest.approx(1 / (1 + math.exp(-hr)), abs=1e-6), i
        tr = float(r["openness_value_used"])
        assert float(r["openness"]) == pytest.approx(min(tr / 200, 1.0), abs=1e-6), i
        assert 0 <= float(r["human_rights"]) <= 1 and 0 <= float(r["openness"]) <= 1


@needs_shared
def test_freedom_house_columns_equal_raw_2024_edition():
    """fh_total_2024ed is the raw FH 2024 total and human_rights_fh is it divided by 100."""
    raw = {
        r["Country/Territory"].strip(): float(r["Total"])
        for r in _rows(SHARED / "raw" / "freedom_house_fiw_2013_2024.csv", skip=1)
        if r["Edition"] == "2024"
    }
    for i, r in _states().items():
        total = float(r["fh_total_2024ed"])
        if i == "EU27":
            members = _prepare_module().EU27_MEMBERS.values()
            assert total == pytest.approx(sum(raw[n] for n in members) / 27, abs=1e-3)
        else:
            assert total == raw[r["name"]], i
        assert float(r["human_rights_fh"]) == pytest.approx(total / 100, abs=1e-6)


def test_sponsor_leverage_and_pressure():
    """EU27 is the only sponsor (leverage 1), Russia has leverage 0.5, pressure starts at 0."""
    states = _states()
    assert [i for i, r in states.items() if r["sponsor"] == "true"] == ["EU27"]
    lev = {i: float(r["leverage"]) for i, r in states.items()}
    assert lev.pop("EU27") == 1.0 and lev.pop("RUS") == 0.5
    assert set(lev.values()) == {0.0}
    assert {float(r["pressure"]) for r in states.values()} == {0.0}


@needs_shared
def test_migration_edges_equal_the_2010_migrant_stock():
    """migration_2010.csv holds every non-zero 2010 stock among the actors, and nothing else."""
    ours = {
        (r["source"], r["target"]): int(r["weight"]) for r in _rows(DERIVED / "migration_2010.csv")
    }
    shared = {
        (r["origin"], r["destination"]): int(r["persons"])
        for r in _rows(SHARED / "migrant_stock.csv")
        if r["year"] == "2010" and int(r["persons"]) > 0
    }
    assert ours == shared
    assert ours[("RUS", "EU27")] == 1801291
    assert all(w > 0 for w in ours.values())
    assert all(s != t for s, t in ours)


def test_trade_layer_is_the_documented_sparse_set():
    """trade.csv has the five documented ties, shares in (0, 1], ids among the actors."""
    rows = _rows(DERIVED / "trade.csv")
    ids = set(_states())
    ties = {(r["source"], r["target"]): float(r["weight"]) for r in rows}
    assert ties == {
        ("RUS", "EU27"): 0.435,
        ("RUS", "CHN"): 0.116,
        ("RUS", "TUR"): 0.046,
        ("EU27", "RUS"): 0.060,
        ("UKR", "EU27"): 0.410,
    }
    assert all(s in ids and t in ids for s, t in ties)


@needs_shared
def test_prepare_script_reproduces_committed_files_byte_for_byte(tmp_path):
    """Re-running prepare_eurasia.py into tmp_path gives byte-identical CSVs."""
    _prepare_module().main([str(SHARED), "--out", str(tmp_path)])
    for name in ("states.csv", "migration_2010.csv", "trade.csv"):
        assert (tmp_path / name).read_bytes() == (DERIVED / name).read_bytes(), name


@pytest.mark.parametrize("path", FLAGSHIPS, ids=[p.name for p in FLAGSHIPS])
def test_flagship_scenario_validates(path):
    """Every eu_russia*/boundary* scenario passes the project's loader."""
    loader = pytest.importorskip("diffusion_sim.loader", reason="loader not written yet")
    loader.load_scenario(path)


def test_flagship_set_and_names():
    """The seven flagship files exist and every scenario has a distinct name."""
    names = [_load(p.name)["name"] for p in FLAGSHIPS]
    expected = {"eu_russia_readmission.yaml", "boundary_buildup.yaml", *VARIANTS}
    assert expected <= {p.name for p in FLAGSHIPS}
    assert len(names) == len(set(names))
    assert all(_load(p.name)["name"] == p.stem for p in FLAGSHIPS)


def test_baseline_schedules_eu_russia_with_tcn_from_2010():
    """The baseline has the EU27-RUS adopt event on 2007-06-01 with tcn_from 2010-06-01."""
    events = [
        e["adopt"] | {"date": e["date"]}
        for e in _load("eu_russia_readmission.yaml")["events"]
        if "adopt" in e
    ]
    hits = [e for e in events if {e.get("state"), e.get("partner")} == {"EU27", "RUS"}]
    assert len(hits) == 1
    assert hits[0]["mechanism"] == "readmission"
    assert hits[0]["date"] == dt.date(2007, 6, 1)
    assert hits[0]["tcn_from"] == dt.date(2010, 6, 1)


def _without_name(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "name"}


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _diff(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [path]


EXPECTED_CHANGES = {
    "eu_russia_no_tcn.yaml": [".events[3].adopt.tcn", ".events[3].adopt.tcn_from"],
    "eu_russia_no_conditionality.yaml": [
        ".diffusion.bilateral.conditionality",
        ".diffusion.channels.conditionality.weight",
    ],
    "eu_russia_no_flows.yaml": [".flows.enabled"],
    "eu_russia_freedom_house.yaml": [".states.columns"],
    "boundary_buildup_no_openness.yaml": [".diffusion.covariates.openness"],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_differs_from_its_baseline_by_one_change(variant):
    """Each counterfactual is its baseline with exactly the documented change (and its name)."""
    base = _without_name(_load(VARIANTS[variant]))
    var = _without_name(_load(variant))
    assert _diff(base, var) == EXPECTED_CHANGES[variant]


@pytest.mark.parametrize("path", FLAGSHIPS, ids=[p.name for p in FLAGSHIPS])
def test_scenario_references_known_states_and_window(path):
    """Every state id used in groups, events and observed is an actor; dates in 2000-2020."""
    doc = _load(path.name)
    ids = set(_states())
    used, dates = [], []
    for net in doc["networks"]:
        for members in (net.get("groups") or {}).values():
            used += members
    for ev in doc.get("events", []):
        dates.append(ev["date"])
        (action,) = [v for k, v in ev.items() if k != "date"]
        used += [action[k] for k in ("state", "partner") if k in action]
        if "tcn_from" in action:
            dates.append(action["tcn_from"])
    for obs in doc.get("observed", []):
        used += [obs["state"], obs["partner"]]
        dates.append(obs["date"])
    assert set(used) <= ids, set(used) - ids
    years = [d if isinstance(d, int) else d.year for d in dates]
    assert all(2000 <= y <= 2020 for y in years)


def test_baseline_blocks_every_eu27_dyad_so_only_scheduled_eu_agreements_occur():
    """Every EU27 readmission dyad is blocked from 2000; the ten scheduled ones are among them."""
    events = _load("eu_russia_readmission.yaml")["events"]
    blocked = {
        e["block"]["partner"]
        for e in events
        if "block" in e and e["block"]["state"] == "EU27" and e["date"] == 2000
    }
    scheduled = {
        e["adopt"]["partner"]
        for e in events
        if "adopt" in e
        and e["adopt"]["mechanism"] == "readmission"
        and e["adopt"]["state"] == "EU27"
    }
    assert blocked == set(_states()) - {"EU27"}
    assert scheduled == {"LKA", "RUS", "UKR", "MDA", "PAK", "GEO", "ARM", "AZE", "TUR", "BLR"}
