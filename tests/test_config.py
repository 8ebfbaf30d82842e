"""Scenario models and loader: every problem is found, located and reported at once."""

from __future__ import annotations

import datetime
import logging
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from diffusion_sim.config import Openness, Scenario, TimeConfig
from diffusion_sim.errors import Problem, ScenarioError
from diffusion_sim.loader import (
    apply_overrides,
    dump_scenario,
    load_scenario,
    override_scenario,
    scenario_hash,
    scenario_sources,
    validate_files,
)

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"))

BASE = """\
name: t
time: {start: 2000, steps: 10}
mechanisms:
  - {id: visa, kind: unilateral, intercept: -3}
  - {id: readm, kind: bilateral, intercept: -4, tcn_delay: 2}
states:
  - {id: A, human_rights: 0.9, openness: 0.5, sponsor: true}
  - {id: B, human_rights: 0.3, openness: {goods: 0.2, capital: 0.4, services: 0.6}}
  - {id: C, human_rights: 0.5, openness: 0.5, region: east}
networks:
  - {id: trade, edges: [[A, B], [B, C, 0.5]]}
  - {id: mig, directed: true, edges: [[B, A, 2.0], [C, B, 1.0]]}
  - {id: org, groups: {club: [A, B], empty: []}}
diffusion:
  channels:
    emulation: {weight: 1.0, layer: trade}
  covariates: {openness: 0.5}
  bilateral: {candidates: mig, demand: 1.0}
flows: {enabled: true, layer: mig, deflection: 0.3}
events:
  - {date: 2003, adopt: {mechanism: readm, state: A, partner: B, tcn_from: 2005-06-01}}
observed:
  - {mechanism: visa, state: C, date: 2004, source: test}
runs: {replicates: 5, seed: 1}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path, overrides: tuple[str, ...] = ()) -> list[Problem]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    found = info.value.problems
    assert found and all(p.path and p.message for p in found)
    return found


def only(found: list[Problem]) -> Problem:
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def replace(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# ------------------------------------------------------------------------------------------
# Shipped scenarios and the base case
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_shipped_scenario_validates(path: Path) -> None:
    """Every scenario shipped in scenarios/ validates without problems."""
    assert validate_files([path]) == []
    assert isinstance(load_scenario(path), Scenario)


def test_shipped_scenarios_exist() -> None:
    """The three scenarios this layer ships are present."""
    names = {p.stem for p in SCENARIOS}
    assert {"bass_limit", "minimal", "synthetic_world"} <= names


def test_base_scenario_resolves_defaults(tmp_path: Path) -> None:
    """Defaults are filled in: labels, names, leverage by sponsor, edge weights, runs."""
    s = load_scenario(write(tmp_path, BASE))
    assert s.mechanism("visa").label == "visa"
    assert s.states is not None
    a, b, c = s.states
    assert (a.name, a.leverage, b.leverage) == ("A", 1.0, 0.0)
    assert isinstance(b.openness, Openness) and b.openness_value == pytest.approx(0.4)
    assert c.region == "east" and a.region == "all"
    assert s.network("trade").edges == [("A", "B", 1.0), ("B", "C", 0.5)]
    assert s.runs.chunk == 64 and s.outputs.formats == ["png"]
    assert s.state_ids() == ["A", "B", "C"]
    assert s.channel_weight("visa", "emulation") == 1.0
    assert s.channel_weight("visa", "learning") == 0.0
    assert s.covariate_weight("visa", "openness") == 0.5
    assert s.covariate_weight("visa", "pressure") == 0.0
    with pytest.raises(KeyError):
        s.mechanism("nope")


def test_mechanism_overrides_take_precedence(tmp_path: Path) -> None:
    """A per-mechanism channel or covariate weight overrides the diffusion weight."""
    text = replace(
        "{id: visa, kind: unilateral, intercept: -3}",
        "{id: visa, kind: unilateral, intercept: -3, channels: {emulation: 2.5},"
        " covariates: {pressure: -1}}",
    )
    s = load_scenario(write(tmp_path, text))
    assert s.channel_weight("visa", "emulation") == 2.5
    assert s.channel_weight("readm", "emulation") == 1.0
    assert s.covariate_weight("visa", "pressure") == -1.0


def test_generated_ids_are_zero_padded(tmp_path: Path) -> None:
    """Generated ids are S0000.. with width max(4, digits of n-1)."""
    s = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "bass_limit.yaml")
    ids = s.state_ids()
    assert ids[0] == "S0000" and ids[-1] == "S1999" and len(ids) == 2000
    text = (SCENARIOS[0].parent / "bass_limit.yaml").read_text().replace("n: 2000", "n: 12345")
    big = load_scenario(write(tmp_path, text))
    assert big.state_ids()[-1] == "S12344" and big.state_ids()[0] == "S00000"
    assert big.generate is not None and big.generate.region_of(12344) == "R0"


def test_validate_is_fast() -> None:
    """Loading a shipped scenario takes well under half a second once imported."""
    start = time.perf_counter()
    for path in SCENARIOS:
        load_scenario(path)
    assert (time.perf_counter() - start) / max(len(SCENARIOS), 1) < 0.25


# ------------------------------------------------------------------------------------------
# Dates
# ------------------------------------------------------------------------------------------


def test_step_of_and_date_of() -> None:
    """A year or any date within it falls in step year - start; date_of(t) = start + t."""
    t = TimeConfig(start=2000, steps=21)
    assert t.step_of(2007) == 7
    assert t.step_of(datetime.date(2007, 1, 1)) == 7
    assert t.step_of(datetime.date(2007, 12, 31)) == 7
    assert t.step_of(datetime.date(2008, 2, 29)) == 8
    assert t.step_of(1999) == -1 and not t.contains(1999)
    assert t.contains(2020) and not t.contains(2021)
    assert t.date_of(7) == 2007.0 and t.end == 2021


def test_event_date_outside_window(tmp_path: Path) -> None:
    """An event dated after the window is reported at the event's date line."""
    text = replace("{date: 2003, adopt", "{date: 2010-01-01, adopt")
    text = replace(", tcn_from: 2005-06-01", "", text)
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (21, "events[0].date")
    assert "outside the time window" in p.message


def test_observed_date_outside_window(tmp_path: Path) -> None:
    """An observation dated before the window is reported."""
    text = replace("date: 2004, source", "date: 1999, source")
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (23, "observed[0].date")


def test_bad_date_value(tmp_path: Path) -> None:
    """A date that is neither a year nor an ISO date is rejected with the accepted forms."""
    text = replace("{date: 2003, adopt", "{date: soon, adopt")
    p = only(problems(write(tmp_path, text)))
    assert p.path == "events[0].date" and "ISO date" in p.message


def test_tcn_from_before_event(tmp_path: Path) -> None:
    """tcn_from may not precede the conclusion of the agreement."""
    text = replace("tcn_from: 2005-06-01", "tcn_from: 2002")
    p = only(problems(write(tmp_path, text)))
    assert p.path == "events[0].adopt.tcn_from"


# ------------------------------------------------------------------------------------------
# Error classes, each with its line and path
# ------------------------------------------------------------------------------------------


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    """Malformed YAML is one problem at the line of the YAML error mark."""
    text = replace("runs: {replicates: 5, seed: 1}", "runs: {replicates: 5, seed: 1")
    p = only(problems(write(tmp_path, text)))
    assert p.path == "<root>" and p.line is not None and p.line >= 24
    assert "malformed YAML" in p.message


def test_top_level_not_mapping(tmp_path: Path) -> None:
    """A document that is a list is rejected as a whole."""
    p = only(problems(write(tmp_path, "- a\n- b\n")))
    assert p.path == "<root>" and "mapping" in p.message


def test_empty_file(tmp_path: Path) -> None:
    """An empty file is rejected, not loaded as None."""
    p = only(problems(write(tmp_path, "")))
    assert p.path == "<root>"


def test_missing_file(tmp_path: Path) -> None:
    """A file that does not exist is a problem, not an OSError."""
    found = validate_files([tmp_path / "nope.yaml"])
    assert len(found) == 1 and "cannot read" in found[0].message


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    """An unknown key is reported at its own line with the closest valid key."""
    text = replace(
        "{id: visa, kind: unilateral, intercept: -3}",
        "{id: visa, kind: unilateral,\n     intercept: -3, efectiveness: 0.2}",
    )
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (5, "mechanisms[0].efectiveness")
    assert "did you mean 'effectiveness'" in p.message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    """A misspelt top-level block is reported with a suggestion."""
    p = only(problems(write(tmp_path, BASE + "output: {plots: false}\n")))
    assert (p.line, p.path) == (25, "output") and "'outputs'" in p.message


def test_wrong_type(tmp_path: Path) -> None:
    """A string where a number belongs gives the pydantic message at the value's line."""
    text = replace("intercept: -3}", "intercept: high}")
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (4, "mechanisms[0].intercept")
    assert "valid number" in p.message
    assert str(p).endswith("s.yaml:4: mechanisms[0].intercept: " + p.message)


def test_out_of_range(tmp_path: Path) -> None:
    """A value outside its documented range is rejected."""
    text = replace("{id: C, human_rights: 0.5", "{id: C, human_rights: 1.5")
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (9, "states[2].human_rights")


def test_missing_required_key_uses_parent_line(tmp_path: Path) -> None:
    """A missing key is reported at the line of the mapping that lacks it."""
    text = replace("{id: visa, kind: unilateral, intercept: -3}", "{id: visa, kind: unilateral}")
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (4, "mechanisms[0].intercept")


def test_non_finite_numbers(tmp_path: Path) -> None:
    """.nan and .inf are rejected as non-finite."""
    text = replace("intercept: -3}", "intercept: .nan}")
    text = replace("deflection: 0.3", "deflection: .inf", text)
    found = problems(write(tmp_path, text))
    assert {p.path for p in found} == {"mechanisms[0].intercept", "flows.deflection"}
    assert all("finite" in p.message for p in found)


def test_huge_values(tmp_path: Path) -> None:
    """Huge numbers (replicates, weights, steps) are out of range, not accepted."""
    text = replace("{replicates: 5, seed: 1}", "{replicates: 100000000000, seed: 1}")
    text = replace("[B, C, 0.5]", "[B, C, 1.0e+300]", text)
    text = replace("steps: 10}", "steps: 10000000}", text)
    found = problems(write(tmp_path, text))
    assert {p.path for p in found} >= {"runs.replicates", "networks[0].edges[1][2]", "time.steps"}


def test_duplicate_ids(tmp_path: Path) -> None:
    """Duplicate state, mechanism and network ids are each reported at the second one."""
    text = replace("{id: C, human_rights", "{id: A, human_rights")
    text = replace("{id: readm, kind", "{id: visa, kind", text)
    text = replace("{id: org, groups", "{id: trade, groups", text)
    found = problems(write(tmp_path, text))
    paths = {p.path: p for p in found}
    assert paths["states[2].id"].line == 9
    assert paths["mechanisms[1].id"].line == 5
    assert paths["networks[2].id"].line == 13


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    """A key given twice in one mapping is reported (PyYAML would keep the last silently)."""
    p = only(problems(write(tmp_path, BASE + "runs: {replicates: 6}\n")))
    assert (p.line, p.path) == (25, "runs") and "duplicate key" in p.message


def test_unknown_references(tmp_path: Path) -> None:
    """References to unknown states, mechanisms and layers are all reported."""
    text = replace("layer: trade}", "layer: trad}")
    text = replace("candidates: mig", "candidates: migr", text)
    text = replace("[C, B, 1.0]", "[C, X, 1.0]", text)
    text = replace("club: [A, B]", "club: [A, Q]", text)
    text = replace("{mechanism: visa, state: C", "{mechanism: vis, state: C", text)
    found = problems(write(tmp_path, text))
    by_path = {p.path: p for p in found}
    assert by_path["diffusion.channels.emulation.layer"].line == 16
    assert "did you mean 'trade'" in by_path["diffusion.channels.emulation.layer"].message
    assert by_path["diffusion.bilateral.candidates"].line == 18
    assert by_path["networks[1].edges[1][1]"].line == 12
    assert by_path["networks[2].groups.club[1]"].line == 13
    assert by_path["observed[0].mechanism"].line == 23
    assert len(found) == 5


def test_event_references(tmp_path: Path) -> None:
    """Events name known mechanisms, states, layers and groups."""
    text = BASE.replace(
        "events:\n",
        "events:\n  - {date: 2004, join: {layer: org, group: clubb, state: C}}\n"
        "  - {date: 2004, leave: {layer: trade, group: club, state: C}}\n"
        "  - {date: 2004, set: {state: Z, attribute: openness, value: 0.2}}\n"
        "  - {date: 2004, block: {mechanism: nope, state: C}}\n",
    )
    found = problems(write(tmp_path, text))
    assert {p.path for p in found} == {
        "events[0].join.group",
        "events[1].leave.layer",
        "events[2].set.state",
        "events[3].block.mechanism",
    }
    assert [p.line for p in found] == [21, 22, 23, 24]


def test_partner_rules(tmp_path: Path) -> None:
    """partner is required for bilateral, forbidden for unilateral, never the state itself."""
    text = BASE.replace(
        "events:\n",
        "events:\n  - {date: 2004, adopt: {mechanism: visa, state: C, partner: A}}\n"
        "  - {date: 2004, adopt: {mechanism: readm, state: C}}\n"
        "  - {date: 2004, adopt: {mechanism: readm, state: C, partner: C}}\n",
    )
    found = problems(write(tmp_path, text))
    assert [(p.line, p.path) for p in found] == [
        (21, "events[0].adopt.partner"),
        (22, "events[1].adopt.partner"),
        (23, "events[2].adopt.partner"),
    ]
    assert "unilateral" in found[0].message and "bilateral" in found[1].message


def test_self_loop(tmp_path: Path) -> None:
    """An edge from a state to itself is rejected."""
    text = replace("[[A, B], [B, C, 0.5]]", "[[A, B], [C, C, 0.5]]")
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (11, "networks[0].edges[1]") and "self-loop" in p.message


def test_generator_parameters(tmp_path: Path) -> None:
    """A generator's missing parameter and a parameter it does not take are both reported."""
    text = BASE.replace("networks:\n", "networks:\n  - {id: er, generator: erdos_renyi, m: 2}\n")
    found = problems(write(tmp_path, text))
    assert {(p.line, p.path) for p in found} == {(11, "networks[0].p"), (11, "networks[0].m")}


def test_network_needs_one_source(tmp_path: Path) -> None:
    """A layer with both edges and a generator (or neither) is rejected."""
    text = replace(
        "{id: trade, edges: [[A, B], [B, C, 0.5]]}",
        "{id: trade, generator: complete, edges: [[A, B]]}",
    )
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (11, "networks[0]")


def test_bilateral_needs_diffusion_bilateral(tmp_path: Path) -> None:
    """A bilateral mechanism without diffusion.bilateral is rejected."""
    text = replace("  bilateral: {candidates: mig, demand: 1.0}\n", "")
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (14, "diffusion.bilateral") and "readm" in p.message


def test_mechanism_options(tmp_path: Path) -> None:
    """revocation_rate needs revocable; tcn_delay is for bilateral mechanisms only."""
    text = replace("intercept: -3}", "intercept: -3, revocation_rate: 0.1, tcn_delay: 2}")
    found = problems(write(tmp_path, text))
    assert {p.path for p in found} == {"mechanisms[0].revocation_rate", "mechanisms[0].tcn_delay"}


def test_flows_layer_must_be_directed(tmp_path: Path) -> None:
    """The flows layer must exist and be directed."""
    text = replace("layer: mig, deflection", "layer: trade, deflection")
    p = only(problems(write(tmp_path, text)))
    assert (p.line, p.path) == (19, "flows.layer")


def test_states_or_generate(tmp_path: Path) -> None:
    """Exactly one of states and generate."""
    text = BASE + "generate: {n: 3, human_rights: 0.5, openness: 0.5}\n"
    p = only(problems(write(tmp_path, text)))
    assert p.path == "generate"


def test_distribution_parameters(tmp_path: Path) -> None:
    """A distribution takes exactly its own parameters and stays inside the attribute range."""
    text = (SCENARIOS[0].parent / "bass_limit.yaml").read_text()
    text = text.replace("human_rights: 0.5", "human_rights: {distribution: beta, a: 2}")
    text = text.replace("openness: 0.5", "openness: {distribution: uniform, low: 0, high: 2}")
    found = problems(write(tmp_path, text))
    assert {p.path for p in found} == {"generate.human_rights", "generate.openness.high"}
    assert all(p.line == 6 for p in found)


def test_sweep_paths_and_values(tmp_path: Path) -> None:
    """Sweep paths must exist; each grid value must give a valid scenario."""
    text = BASE + textwrap.dedent("""\
        sweep:
          parameters:
            mechanisms.visa.intercept: [-4, -3]
            mechanisms.visa.intercep: [1]
            flows.deflection: [0.1, 2.0]
        """)
    found = problems(write(tmp_path, text))
    by_path = {p.path: p for p in found}
    assert by_path["sweep.parameters.mechanisms.visa.intercep"].line == 28
    assert (
        "did you mean 'intercept'" in by_path["sweep.parameters.mechanisms.visa.intercep"].message
    )
    assert by_path["sweep.parameters.flows.deflection"].line == 29
    assert "2.0" in by_path["sweep.parameters.flows.deflection"].message
    assert len(found) == 2


def test_sweep_method_value_forms(tmp_path: Path) -> None:
    """grid takes lists; sampling methods take ranges."""
    text = BASE + "sweep:\n  method: lhs\n  parameters:\n    mechanisms.visa.intercept: [-4, -3]\n"
    p = only(problems(write(tmp_path, text)))
    assert p.path == "sweep.parameters.mechanisms.visa.intercept" and "range" in p.message
    ok = (
        BASE
        + "sweep:\n  method: lhs\n  parameters:\n"
        + "    mechanisms.visa.intercept: {low: -5, high: -3}\n"
    )
    assert load_scenario(write(tmp_path, ok, "ok.yaml")).sweep is not None


def test_unsafe_tags_are_rejected(tmp_path: Path) -> None:
    """Python tags cannot execute anything: they are a problem at their line."""
    text = BASE + "description: !!python/object/apply:os.system ['echo hi']\n"
    p = only(problems(write(tmp_path, text)))
    assert p.line == 25


def test_bad_timestamp_is_a_problem(tmp_path: Path) -> None:
    """A date PyYAML cannot build (month 13) is a located problem, not a ValueError."""
    text = replace("tcn_from: 2005-06-01", "tcn_from: 2005-13-01")
    p = only(problems(write(tmp_path, text)))
    assert p.line == 21


def test_norway_problem_hint(tmp_path: Path) -> None:
    """An unquoted `no` read as a boolean gets a hint to quote it."""
    text = replace("region: east", "region: no")
    p = only(problems(write(tmp_path, text)))
    assert "quote" in p.message


def test_all_problems_at_once(tmp_path: Path) -> None:
    """A file with three independent errors gives exactly three problems, in line order."""
    text = replace("intercept: -3}", "intercept: x}")
    text = replace("{id: B, human_rights: 0.3", "{id: B, human_rights: -0.3", text)
    text = replace("date: 2004, source", "date: 2030, source", text)
    found = problems(write(tmp_path, text))
    assert [p.line for p in found] == [4, 8, 23]
    assert str(ScenarioError(found)).count("\n") == 2


# ------------------------------------------------------------------------------------------
# Overrides
# ------------------------------------------------------------------------------------------


def test_override_by_id(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`mechanisms.<id>.<field>=value` changes that mechanism and is logged."""
    with caplog.at_level(logging.INFO, logger="diffusion_sim.loader"):
        s = load_scenario(write(tmp_path, BASE), ["mechanisms.readm.intercept=-2.5", "runs.seed=9"])
    assert s.mechanism("readm").intercept == -2.5 and s.runs.seed == 9
    assert "mechanisms.readm.intercept" in caplog.text


def test_override_by_index_and_new_key(tmp_path: Path) -> None:
    """List items are also addressed by index; an unset field the schema allows can be set."""
    s = load_scenario(write(tmp_path, BASE), ["states.1.pressure=0.7", "outputs.plots=false"])
    assert s.states is not None and s.states[1].pressure == 0.7 and s.outputs.plots is False


def test_override_bad_path_suggests(tmp_path: Path) -> None:
    """An unknown override path is reported with the closest key."""
    p = only(problems(write(tmp_path, BASE), ("mechanisms.readm.intercpt=-2",)))
    assert p.file == "--set" and p.line is None
    assert "did you mean 'intercept'" in p.message
    p = only(problems(write(tmp_path, BASE), ("networks.trad.directed=true",)))
    assert "did you mean 'trade'" in p.message


def test_override_value_validated(tmp_path: Path) -> None:
    """An override value is validated like the file and blamed on --set."""
    found = problems(write(tmp_path, BASE), ("flows.deflection=2", "mechanisms.visa.intercept=abc"))
    assert {(p.file, p.path) for p in found} == {
        ("--set", "flows.deflection"),
        ("--set", "mechanisms[0].intercept"),
    }


def test_override_syntax(tmp_path: Path) -> None:
    """An override without `=` is a problem."""
    p = only(problems(write(tmp_path, BASE), ("runs.seed",)))
    assert p.file == "--set"


def test_apply_overrides_on_raw() -> None:
    """apply_overrides returns a changed copy and raises ScenarioError for bad paths."""
    raw = yaml.safe_load(BASE)
    out = apply_overrides(raw, ["networks.mig.directed=false", "mechanisms.0.intercept=-1"])
    assert out["networks"][1]["directed"] is False and out["mechanisms"][0]["intercept"] == -1
    assert raw["networks"][1]["directed"] is True
    with pytest.raises(ScenarioError) as info:
        apply_overrides(raw, ["diffusion.chanels.x=1"])
    assert "channels" in str(info.value)


def test_override_scenario(tmp_path: Path) -> None:
    """override_scenario gives a new valid scenario or a ScenarioError."""
    s = load_scenario(write(tmp_path, BASE))
    t = override_scenario(s, {"diffusion.channels.emulation.weight": 2.0})
    assert t.diffusion.channels["emulation"].weight == 2.0 and s != t
    with pytest.raises(ScenarioError):
        override_scenario(s, {"flows.deflection": 5})


# ------------------------------------------------------------------------------------------
# Round trip and hash
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_dump_round_trip(path: Path, tmp_path: Path) -> None:
    """dump_scenario loads back to an equal scenario with the same hash."""
    s = load_scenario(path)
    dumped = write(tmp_path, dump_scenario(s), "dumped.yaml")
    t = load_scenario(dumped)
    assert t == s
    assert scenario_hash(t) == scenario_hash(s)
    assert scenario_sources(t) != scenario_sources(s) or path == dumped


def test_hash_stable_and_sensitive(tmp_path: Path) -> None:
    """The hash ignores formatting and comments but changes with any value."""
    a = load_scenario(write(tmp_path, BASE))
    b = load_scenario(write(tmp_path, "# comment\n" + BASE, "b.yaml"))
    c = load_scenario(write(tmp_path, BASE), ["runs.seed=2"])
    assert scenario_hash(a) == scenario_hash(b) != scenario_hash(c)
    assert len(scenario_hash(a)) == 64


def test_dates_round_trip(tmp_path: Path) -> None:
    """ISO dates stay dates and years stay integers through dump and load."""
    s = load_scenario(write(tmp_path, BASE))
    adopt = s.events[0].adopt
    assert adopt is not None and adopt.tcn_from == datetime.date(2005, 6, 1)
    assert s.events[0].date == 2003 and s.events[0].action == "adopt"
    t = load_scenario(write(tmp_path, dump_scenario(s), "d.yaml"))
    assert t.events == s.events


# ------------------------------------------------------------------------------------------
# CSV files
# ------------------------------------------------------------------------------------------

CSV_SCENARIO = """\
name: csv
time: {start: 2000, steps: 10}
mechanisms:
  - {id: visa, kind: unilateral, intercept: -3}
states: {file: data/states.csv, columns: {id: iso3, human_rights: hr}}
networks:
  - {id: trade, file: data/trade.csv}
  - {id: mig, directed: true, file: data/mig.csv, columns: {source: from, target: to, weight: n}}
diffusion:
  channels:
    emulation: {weight: 1.0, layer: trade}
"""

STATES_CSV = """\
iso3,name,region,hr,openness,sponsor
EU,European Union,Europe,0.9,0.8,true
RUS,Russia,Eurasia,0.3,0.5,false
KAZ,Kazakhstan,Central Asia,0.3,0.4,
"""


def csv_world(tmp_path: Path, states: str = STATES_CSV, trade: str | None = None) -> Path:
    write(tmp_path, states, "data/states.csv")
    write(tmp_path, trade or "source,target,weight\nEU,RUS,1\nRUS,KAZ,\n", "data/trade.csv")
    write(tmp_path, "from,to,n\nKAZ,RUS,10\nRUS,EU,5\n", "data/mig.csv")
    return write(tmp_path, CSV_SCENARIO)


def test_csv_states_and_edges(tmp_path: Path) -> None:
    """CSV states and edges are read, inlined and recorded with their sha256."""
    path = csv_world(tmp_path)
    s = load_scenario(path)
    assert s.state_ids() == ["EU", "RUS", "KAZ"]
    assert s.states is not None and s.states[0].sponsor and s.states[0].leverage == 1.0
    assert s.states[2].region == "Central Asia" and s.states[2].sponsor is False
    assert s.network("trade").edges == [("EU", "RUS", 1.0), ("RUS", "KAZ", 1.0)]
    assert s.network("mig").edges == [("KAZ", "RUS", 10.0), ("RUS", "EU", 5.0)]
    sources = scenario_sources(s)
    assert next(iter(sources)) == str(path) and len(sources) == 4
    assert all(len(h) == 64 for h in sources.values())
    dumped = dump_scenario(s)
    assert "file:" not in dumped
    assert load_scenario(write(tmp_path, dumped, "d.yaml")) == s


def test_csv_bad_cell_line(tmp_path: Path) -> None:
    """A bad cell is reported at its CSV line with path states.<field>."""
    bad = STATES_CSV.replace("RUS,Russia,Eurasia,0.3", "RUS,Russia,Eurasia,high")
    p = only(problems(csv_world(tmp_path, states=bad)))
    assert p.file.endswith("data/states.csv") and p.line == 3
    assert p.path == "states.human_rights" and "'high'" in p.message


def test_csv_empty_required_cell(tmp_path: Path) -> None:
    """An empty cell in a required column is a problem at its line."""
    bad = STATES_CSV.replace(
        "KAZ,Kazakhstan,Central Asia,0.3,0.4", "KAZ,Kazakhstan,Central Asia,,0.4"
    )
    p = only(problems(csv_world(tmp_path, states=bad)))
    assert (p.line, p.path) == (4, "states.human_rights") and "empty" in p.message


def test_csv_missing_column(tmp_path: Path) -> None:
    """A mapped column absent from the header is reported at line 1 with a suggestion."""
    bad = STATES_CSV.replace("iso3,", "iso,")
    p = only(problems(csv_world(tmp_path, states=bad)))
    assert (p.line, p.path) == (1, "states.id") and "'iso3'" in p.message


def test_csv_missing_file(tmp_path: Path) -> None:
    """A missing CSV is reported at the YAML line of `file`, with nothing else."""
    path = csv_world(tmp_path)
    (tmp_path / "data" / "states.csv").unlink()
    p = only(problems(path))
    assert (p.file, p.line, p.path) == (str(path), 5, "states.file")


def test_csv_edge_problems(tmp_path: Path) -> None:
    """Bad weights and unknown states in an edge file point at their CSV lines."""
    trade = "source,target,weight\nEU,RUS,-1\nRUS,XXX,1\n"
    found = problems(csv_world(tmp_path, trade=trade))
    assert [(p.line, p.path) for p in found] == [
        (2, "networks[0].edges.weight"),
        (3, "networks[0].edges.target"),
    ]
    assert all(p.file.endswith("data/trade.csv") for p in found)


def test_csv_override_on_inlined_states(tmp_path: Path) -> None:
    """Overrides address states read from CSV by id."""
    s = load_scenario(csv_world(tmp_path), ["states.KAZ.human_rights=0.6"])
    assert s.states is not None and s.states[2].human_rights == 0.6
