"""Derive the Eurasian readmission scenario inputs from the shared reference data.

Usage (from the repository root)::

    .venv/bin/python scenarios/data/prepare_eurasia.py [DATA_DIR] [--out OUT_DIR]

DATA_DIR defaults to ``../shared/data/readmission`` relative to the repository root; OUT_DIR
defaults to ``scenarios/data/eurasia``. The script is deterministic (stdlib only, fixed row
order, fixed number formats): rerunning it reproduces the committed CSVs byte for byte.

Files written and the rules behind them
---------------------------------------
``states.csv`` -- the 32 actors of ``DATA_DIR/states.csv`` (31 states + ``EU27`` as one bloc),
in the order of that file.

* ``hr_source_value``: Fariss latent human-rights protection score for 2005, read from
  ``raw/human_rights_protection_fariss_owid.csv`` by ISO3 code. ``EU27`` = unweighted mean of
  the 27 post-2020 members (the rule stated in the shared SOURCES.md). NOTE: this mean of the
  raw file is 1.995557; the curated ``states.csv`` says 2.009, which no member set we tried
  reproduces; we use the value computed from the raw file with the stated rule.
* ``human_rights`` = logistic(hr) = 1 / (1 + exp(-hr)). Chosen over min-max because (a) it is
  sample-independent (adding an actor does not move the others), (b) min-max over these 32
  would be anchored by two outliers (Iceland 5.03, Norway 4.19) and squeeze 28 of the 32
  actors into [0, 0.35], and (c) the Fariss score is the latent trait of an item-response
  model centred near 0 for the average country-year, so logistic(0) = 0.5 keeps that meaning.
* ``openness_source_value``: trade (exports + imports of goods and services) in % of GDP,
  2005, from ``raw/trade_pct_gdp_wdi_owid.csv`` by ISO3 code; ``EU27`` = the World Bank
  ``European Union (27)`` aggregate (it includes intra-EU trade). Empty = no 2005 value.
* ``openness`` = min(x / 200, 1): sample-independent; 100 % of GDP maps to 0.5; the cap at
  200 % only binds for entrepot economies, none of which is among the 32 (max: Moldova 143 %).
* Imputation (never silent): a missing 2005 value is replaced by the mean of the non-missing
  raw values of the same ``region`` among the 32 actors, or by the mean over all 32 actors
  when the region has no other value; ``*_imputed`` is ``true`` on exactly those rows and
  ``*_value_used`` holds the number actually rescaled. In 2005 this hits trade for AFG (South
  Asia mean), PRK (East Asia mean of CHN and MNG -- surely too high for North Korea) and NGA
  (no other African actor: overall mean). No Fariss value is missing.
* ``fh_total_2024ed``: Freedom House total score (0-100), 2024 edition, from
  ``raw/freedom_house_fiw_2013_2024.csv`` by country name; ``EU27`` = unweighted mean of the
  27 members. ``human_rights_fh`` = total / 100 (the FH variant of ``human_rights``).
  ``fh_total_2013ed`` / ``human_rights_fh_2013ed``: the same from the 2013 edition (covers
  2012), the earliest in the raw file and much closer to the 2000-2020 window (Turkey 61 vs
  33, Russia 27 vs 13); offered as a better-timed alternative, not used by default.
* ``pressure`` = 0 (the flows module computes it). ``sponsor``: only ``EU27``. ``leverage``:
  ``EU27`` 1.0; ``RUS`` 0.5 (see the constant ``RUSSIA_LEVERAGE`` below); others 0.

``migration_2010.csv`` -- ``source,target,weight`` = origin, destination, migrant stock in
2010 (persons) from ``migrant_stock.csv``; rows with 0 dropped (a 0 may mean "no estimate"),
sorted by source then target.

``trade.csv`` -- the sparse conditionality/dependence layer, directed: an edge ``i -> j``
with weight w means "j accounts for the share w of i's trade" (i's dependence on j). Only
the ties that ``trade_ties.csv`` gives as (or lets us compute as) a share are written; see
``TRADE_TIES`` below for each one and SOURCES.md for the ties that are absent.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "data" / "readmission"
DEFAULT_OUT = REPO_ROOT / "scenarios" / "data" / "eurasia"

YEAR = "2005"
FH_EDITIONS = ("2024", "2013")  # the brief's edition, and the earliest one (covers 2012)
OPENNESS_CAP = 200.0  # trade % of GDP that maps to openness 1.0

# The 27 post-2020 EU members: ISO3 codes (Fariss file) and names (Freedom House file).
EU27_MEMBERS = {
    "AUT": "Austria",
    "BEL": "Belgium",
    "BGR": "Bulgaria",
    "HRV": "Croatia",
    "CYP": "Cyprus",
    "CZE": "Czech Republic",
    "DNK": "Denmark",
    "EST": "Estonia",
    "FIN": "Finland",
    "FRA": "France",
    "DEU": "Germany",
    "GRC": "Greece",
    "HUN": "Hungary",
    "IRL": "Ireland",
    "ITA": "Italy",
    "LVA": "Latvia",
    "LTU": "Lithuania",
    "LUX": "Luxembourg",
    "MLT": "Malta",
    "NLD": "Netherlands",
    "POL": "Poland",
    "PRT": "Portugal",
    "ROU": "Romania",
    "SVK": "Slovakia",
    "SVN": "Slovenia",
    "ESP": "Spain",
    "SWE": "Sweden",
}
EU_TRADE_ENTITY = "European Union (27)"

# Russia is not a sponsor (a sponsor has chain generation 0; Russia must stay at depth 1 of
# the EU's spillover), but it holds leverage over CIS dependants: access to its labour market
# (remittances are a large share of GDP in Tajikistan and Kyrgyzstan), its visa-free regime
# (it left the 1992 Bishkek visa-free accord in 2000 and imposed visas on Georgia), and its
# weight in the Customs Union / EAEU. It has no membership or visa-liberalisation carrot
# comparable to the EU's (Lavenex & Schimmelfennig 2009), hence half the EU's leverage.
# Not calibrated. With the sparse trade layer no actor has a recorded dependence on Russia,
# so this value only acts once a user adds such ties.
RUSSIA_LEVERAGE = 0.5

# (source, target, share, item(s) in trade_ties.csv used, how).
# An edge i -> j: j's share of i's trade. Year 2015 unless stated.
TRADE_TIES = [
    (
        "RUS",
        "EU27",
        (45.7 - 2.2) / 100,
        "Russia: EU share of trade turnover (45.7 %) minus Russia-United Kingdom share (2.2 %)",
        "Jan-Aug 2015, Russian customs via Interfax; the EU was EU28 in 2015, the UK share is "
        "subtracted to match the EU27 bloc (UK excluded)",
    ),
    (
        "RUS",
        "CHN",
        11.6 / 100,
        "Russia-China share of Russia trade turnover",
        "Jan-Aug 2015, Russian customs via Interfax",
    ),
    (
        "RUS",
        "TUR",
        4.6 / 100,
        "Russia-Turkey share of Russia trade turnover",
        "Jan-Aug 2015, Russian customs via Interfax",
    ),
    (
        "EU27",
        "RUS",
        6.0 / 100,
        "Russia share of EU28 trade in goods",
        "2015, Eurostat; EU28 denominator (EU27 share not given)",
    ),
    (
        "UKR",
        "EU27",
        41.0 / 100,
        "EU share of Ukraine foreign trade",
        "2016 (9 months), Ukrainian Ministry of Economy; medium confidence",
    ),
]

STATE_COLUMNS = [
    "id",
    "name",
    "region",
    "human_rights",
    "openness",
    "pressure",
    "sponsor",
    "leverage",
    "hr_source_value",
    "hr_imputed",
    "openness_source_value",
    "openness_imputed",
    "human_rights_fh",
    "fh_total_2024ed",
    "hr_value_used",
    "openness_value_used",
    "human_rights_fh_2013ed",
    "fh_total_2013ed",
    "notes",
]


def read_csv(path: Path, skip: int = 0) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        for _ in range(skip):
            fh.readline()
        return list(csv.DictReader(fh))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def logistic(x: float) -> float:
    """The human_rights rescaling rule (see the module docstring)."""
    return 1.0 / (1.0 + math.exp(-x))


def openness_rule(trade_pct: float) -> float:
    """The openness rescaling rule (see the module docstring)."""
    return min(trade_pct / OPENNESS_CAP, 1.0)


def fmt(x: float, digits: int = 6) -> str:
    return f"{x:.{digits}f}"


def impute(values: dict[str, float | None], regions: dict[str, str]) -> dict[str, float]:
    """Fill None with the region mean among the actors, else the overall mean."""
    known = {k: v for k, v in values.items() if v is not None}
    overall = sum(known.values()) / len(known)
    out = {}
    for k, v in values.items():
        if v is not None:
            out[k] = v
            continue
        peers = [known[p] for p in known if regions[p] == regions[k]]
        out[k] = sum(peers) / len(peers) if peers else overall
    return out


def build_states(data: Path) -> list[list[str]]:
    actors = read_csv(data / "states.csv")
    regions = {a["id"]: a["region"] for a in actors}

    fariss = {}
    for r in read_csv(data / "raw" / "human_rights_protection_fariss_owid.csv"):
        if r["Year"] == YEAR and r["Code"]:
            fariss[r["Code"]] = r["Human rights protection"]
    trade = {}
    for r in read_csv(data / "raw" / "trade_pct_gdp_wdi_owid.csv"):
        if r["Year"] != YEAR:
            continue
        if r["Code"]:
            trade[r["Code"]] = r["Trade (% of GDP)"]
        elif r["Entity"] == EU_TRADE_ENTITY:
            trade["EU27"] = r["Trade (% of GDP)"]
    fh_total: dict[str, dict[str, str]] = {ed: {} for ed in FH_EDITIONS}
    for r in read_csv(data / "raw" / "freedom_house_fiw_2013_2024.csv", skip=1):
        if r["Edition"] in fh_total:
            fh_total[r["Edition"]][r["Country/Territory"].strip()] = r["Total"]

    hr_src: dict[str, str] = {}
    fh_src: dict[str, dict[str, str]] = {ed: {} for ed in FH_EDITIONS}
    for a in actors:
        i = a["id"]
        if i == "EU27":
            hr_src[i] = fmt(sum(float(fariss[c]) for c in EU27_MEMBERS) / 27, 9)
            for ed, table in fh_total.items():
                members = [float(table[n]) for n in EU27_MEMBERS.values()]
                fh_src[ed][i] = fmt(sum(members) / 27, 3)
        else:
            hr_src[i] = fariss.get(i, "")
            for ed, table in fh_total.items():
                fh_src[ed][i] = table[a["name"]]
    tr_src = {a["id"]: trade.get(a["id"], "") for a in actors}

    hr_used = impute({k: float(v) if v else None for k, v in hr_src.items()}, regions)
    tr_used = impute({k: float(v) if v else None for k, v in tr_src.items()}, regions)

    rows = []
    for a in actors:
        i = a["id"]
        notes = []
        if i == "EU27":
            notes.append(
                "hr and FH = unweighted mean of the 27 members; trade = World Bank "
                "EU27 aggregate (includes intra-EU trade)"
            )
        if not tr_src[i]:
            peers = [p for p in regions if regions[p] == regions[i] and tr_src[p]]
            notes.append(
                f"trade 2005 missing: imputed with the {regions[i]} mean"
                if peers
                else "trade 2005 missing: imputed with the mean of all actors"
            )
        if not hr_src[i]:
            notes.append("Fariss 2005 missing: imputed")
        leverage = 1.0 if i == "EU27" else RUSSIA_LEVERAGE if i == "RUS" else 0.0
        rows.append(
            [
                i,
                a["name"],
                a["region"],
                fmt(logistic(hr_used[i])),
                fmt(openness_rule(tr_used[i])),
                fmt(0.0),
                "true" if i == "EU27" else "false",
                fmt(leverage, 1),
                hr_src[i],
                "false" if hr_src[i] else "true",
                tr_src[i],
                "false" if tr_src[i] else "true",
                fmt(float(fh_src["2024"][i]) / 100),
                fh_src["2024"][i],
                fmt(hr_used[i], 9),
                fmt(tr_used[i], 6),
                fmt(float(fh_src["2013"][i]) / 100),
                fh_src["2013"][i],
                "; ".join(notes),
            ]
        )
    return rows


def build_migration(data: Path, ids: set[str]) -> list[list[str]]:
    edges = []
    for r in read_csv(data / "migrant_stock.csv"):
        if r["year"] != "2010" or int(r["persons"]) == 0:
            continue
        if r["origin"] in ids and r["destination"] in ids and r["origin"] != r["destination"]:
            edges.append((r["origin"], r["destination"], int(r["persons"])))
    return [[s, t, str(w)] for s, t, w in sorted(edges)]


def build_trade() -> list[list[str]]:
    return [[s, t, fmt(w, 3)] for s, t, w, _item, _how in TRADE_TIES]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data",
        nargs="?",
        default=str(DEFAULT_DATA),
        help="shared readmission data folder (default: %(default)s)",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    args = parser.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    states = build_states(data)
    write_csv(out / "states.csv", STATE_COLUMNS, states)
    ids = {row[0] for row in states}
    write_csv(
        out / "migration_2010.csv", ["source", "target", "weight"], build_migration(data, ids)
    )
    write_csv(out / "trade.csv", ["source", "target", "weight"], build_trade())


if __name__ == "__main__":
    main()
