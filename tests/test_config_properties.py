"""Property-based tests: whatever the input, the loader answers with a Scenario or with
located problems, never with another exception."""

from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffusion_sim.config import Scenario
from diffusion_sim.errors import Problem, ScenarioError
from diffusion_sim.loader import dump_scenario, load_scenario, scenario_hash

BASE: dict[str, Any] = yaml.safe_load(
    """\
name: prop
time: {start: 2000, steps: 10}
mechanisms:
  - {id: visa, kind: unilateral, intercept: -3, channels: {emulation: 2.0}}
  - {id: readm, kind: bilateral, intercept: -4, tcn_delay: 2}
states:
  - {id: A, human_rights: 0.9, openness: 0.5, sponsor: true}
  - {id: B, human_rights: 0.3, openness: {goods: 0.2, capital: 0.4, services: 0.6}}
  - {id: C, human_rights: 0.5, openness: 0.5, region: east, pressure: 0.2}
networks:
  - {id: trade, edges: [[A, B], [B, C, 0.5]]}
  - {id: mig, directed: true, edges: [[B, A, 2.0], [C, B, 1.0]]}
  - {id: org, groups: {club: [A, B]}}
diffusion:
  link: logit
  channels:
    emulation: {weight: 1.0, layer: trade}
    competition: {weight: 0.5, layer: mig}
  covariates: {openness: 0.5, human_rights: -1.0}
  bilateral: {candidates: mig, demand: 1.0, chain: 2.0}
flows: {enabled: true, layer: mig, deflection: 0.3}
events:
  - {date: 2003, adopt: {mechanism: readm, state: A, partner: B, tcn_from: 2005-06-01}}
  - {date: 2004, set: {state: C, attribute: openness, add: 0.1}}
  - {date: 2005, join: {layer: org, group: club, state: C}}
observed:
  - {mechanism: visa, state: C, date: 2004, source: test}
runs: {replicates: 5, seed: 1}
sweep:
  parameters:
    mechanisms.visa.intercept: [-4, -3]
outputs: {plots: false, formats: [png, svg], hr_threshold: 0.3}
"""
)

SETTINGS = settings(
    max_examples=int(os.environ.get("CONFIG_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
bad_values = st.one_of(
    text,
    st.booleans(),
    st.none(),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(text, st.integers(), max_size=2),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 10**30, -(10**30), -1, -1e9]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)


def locations(node: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key / index path in a nested structure."""
    out = [loc]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(locations(v, (*loc, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(locations(v, (*loc, i)))
    return out


def get(node: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        node = node[part]
    return node


def check_outcome(path: Path, overrides: tuple[str, ...] = ()) -> Scenario | None:
    """Load; accept a Scenario or a ScenarioError whose problems are all well formed."""
    try:
        return load_scenario(path, overrides)
    except ScenarioError as exc:
        assert exc.problems
        for p in exc.problems:
            assert isinstance(p, Problem)
            assert isinstance(p.path, str) and p.path
            assert isinstance(p.message, str) and p.message
            assert p.line is None or p.line >= 1
            assert str(p)
        return None


def load_dict(data: Any, overrides: tuple[str, ...] = ()) -> Scenario | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return check_outcome(path, overrides)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        locs = [loc for loc in locations(data) if loc]
        if not locs:
            break
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        loc = draw(st.sampled_from(locs))
        parent = get(data, loc[:-1])
        if kind == "delete":
            del parent[loc[-1]]
        elif kind == "insert":
            target = get(data, loc)
            if isinstance(target, dict):
                target[draw(text)] = draw(bad_values)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(bad_values))
            else:
                parent[loc[-1]] = draw(bad_values)
        elif kind == "replace":
            parent[loc[-1]] = draw(bad_values)
        else:
            key = draw(st.sampled_from(["states", "mechanisms", "networks", "events"]))
            items = data.get(key)
            if isinstance(items, list) and items:
                items.append(copy.deepcopy(draw(st.sampled_from(items))))
    return data


def test_base_is_valid() -> None:
    """The unmutated base of the property tests is a valid scenario."""
    assert isinstance(load_dict(BASE), Scenario)


@SETTINGS
@given(mutated())
def test_mutations_never_crash(data: dict[str, Any]) -> None:
    """A mutated scenario gives a Scenario or a ScenarioError with located problems only."""
    scenario = load_dict(data)
    if scenario is not None:
        again = load_dict(yaml.safe_load(dump_scenario(scenario)))
        assert again == scenario and scenario_hash(again) == scenario_hash(scenario)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(content: bytes) -> None:
    """Arbitrary bytes as a scenario file give a ScenarioError, never another exception."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_bytes(content)
        assert check_outcome(path) is None


@SETTINGS
@given(st.text(st.sampled_from(list("ab:-[]{}&*!|>'\"#%@ ,?\n\t01.")), max_size=200))
def test_yaml_like_text_never_crashes(content: str) -> None:
    """YAML punctuation soup (anchors, aliases, tags, flow collections) never crashes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(content, encoding="utf-8")
        assert check_outcome(path) is None


@SETTINGS
@given(st.data())
def test_overrides_never_crash(data: st.DataObject) -> None:
    """Any override on any path gives a Scenario or located problems."""
    locs = [loc for loc in locations(BASE) if loc]
    loc = data.draw(st.sampled_from(locs))
    dotted = ".".join(str(p) for p in loc)
    if data.draw(st.booleans()):
        dotted += "." + data.draw(text)
    value = data.draw(
        st.one_of(
            text,
            st.integers().map(str),
            st.sampled_from(["[1, 2]", "{a: 1}", ".nan", "null", "'x"]),
        )
    )
    load_dict(BASE, (f"{dotted}={value}",))


def test_alias_bomb_is_rejected() -> None:
    """Nested aliases that would expand to billions of values are refused quickly."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert check_outcome(path) is None


def test_recursive_alias_is_rejected() -> None:
    """A self-referencing alias is a problem, not a RecursionError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text("name: &n [a, *n]\n", encoding="utf-8")
        assert check_outcome(path) is None
