"""Reading scenarios: the only place scenario YAML and CSV files are read.

`load_scenario` parses a YAML file with PyYAML's safe loader (composing the node tree so that
every key and list item keeps its line), inlines the CSV files it references, applies
`--set` overrides, validates everything with the models of `diffusion_sim.config`, and
raises one `ScenarioError` listing every problem as `file:line: dotted.path: message`.

The resolved `Scenario` is self-contained (CSV content inlined), so `dump_scenario` writes a
YAML that loads back to an equal scenario. The files read, with their sha256, are kept on the
scenario object and returned by `scenario_sources`.
"""

from __future__ import annotations

import copy
import csv
import datetime
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from diffusion_sim.config import (
    EdgeFile,
    Loc,
    Parts,
    Scenario,
    StatesFile,
    allowed_keys,
    check_parts,
    child_type,
    format_loc,
    resolve_path,
)
from diffusion_sim.errors import Problem, ScenarioError

log = logging.getLogger(__name__)

__all__ = [
    "Override",
    "apply_overrides",
    "dump_scenario",
    "load_scenario",
    "override_scenario",
    "scenario_hash",
    "scenario_sources",
    "validate_files",
]

ROOT = "<root>"
OVERRIDE_FILE = "--set"

#: Upper bound on YAML nodes after alias expansion (guards against alias bombs).
MAX_NODES = 2_000_000
#: Upper bound on YAML nesting depth.
MAX_DEPTH = 64
#: Sweep values checked per parameter (each one is a full validation).
MAX_SWEEP_CHECKS = 50

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class Override(str):
    """A ``dotted.path=value`` override set by a dedicated command-line option rather than
    ``--set`` (``--replicates 0`` is ``runs.replicates=0``): a problem with it names that
    option. Otherwise an ordinary override string."""

    path: str
    value_text: str
    option: str

    def __new__(cls, path: str, value: object, option: str) -> Override:
        self = super().__new__(cls, f"{path}={value}")
        self.path = path
        self.value_text = str(value)
        self.option = option
        return self

    def __getnewargs__(self) -> tuple[str, str, str]:  # type: ignore[override]
        """Pickling and copying rebuild it from its parts (``__new__`` takes three)."""
        return (self.path, self.value_text, self.option)


def _origin(text: str) -> str:
    """How an override was given, as a problem report names it: ``--set path=value`` or
    ``--replicates 0``."""
    if isinstance(text, Override):
        return f"{text.option} {text.value_text}"
    return f"{OVERRIDE_FILE} {text}"


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_scenario(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Scenario:
    """Read, resolve and validate a scenario file.

    Args:
        path: the scenario YAML; relative paths inside it are resolved against its folder.
        overrides: `dotted.path=value` strings applied before validation (value parsed as
            YAML; list items addressed by id or index). Each is logged.

    Raises:
        ScenarioError: with every problem found.
    """
    scenario, problems = _load(path, overrides)
    if problems or scenario is None:
        raise ScenarioError(problems)
    return scenario


def validate_files(paths: Iterable[str | os.PathLike[str]]) -> list[Problem]:
    """Every problem in every given scenario file (an empty list when all are valid)."""
    problems: list[Problem] = []
    for path in paths:
        problems.extend(_load(path, ())[1])
    return problems


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of raw scenario data with `dotted.path=value` overrides applied.

    Raises:
        ScenarioError: for a malformed override or a path that does not exist (with the
            closest valid key suggested).
    """
    data = copy.deepcopy(dict(raw))
    parsed, problems = _parse_overrides(overrides)
    _done, failed = _apply(data, parsed)
    problems.extend(_override_problem(path, message, origin) for path, _, origin, message in failed)
    if problems:
        raise ScenarioError(problems)
    return data


def override_scenario(scenario: Scenario, values: Mapping[str, Any]) -> Scenario:
    """A scenario with some values replaced, e.g. one point of a sweep.

    Args:
        scenario: a valid scenario.
        values: dotted path -> new value (already parsed, not a string).

    Raises:
        ScenarioError: when a path does not exist or the result is not valid.
    """
    data = _plain(scenario.model_dump(exclude_none=True))
    done, failed = _apply(data, [(k, v, _origin(f"{k}={v!r}")) for k, v in values.items()])
    problems = [_override_problem(path, message) for path, _, _, message in failed]
    if problems:
        raise ScenarioError(problems)
    ctx = _Context(file=f"<{scenario.name}>", overridden=dict(done))
    result, problems = _validate(data, ctx)
    if problems or result is None:
        raise ScenarioError(problems)
    result._sources = dict(scenario._sources)
    return result


def dump_scenario(scenario: Scenario) -> str:
    """The resolved scenario as YAML (defaults filled in, CSV content inlined)."""
    data = _plain(scenario.model_dump(exclude_none=True))
    return yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
    )


def scenario_hash(scenario: Scenario) -> str:
    """sha256 (hex) of the canonical JSON of the resolved scenario (sources not included)."""
    data = scenario.model_dump(mode="json", exclude_none=True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def scenario_sources(scenario: Scenario) -> dict[str, str]:
    """The files a loaded scenario was read from (scenario YAML first, then CSV files), as
    path (as reported in problems) -> sha256 hex. Empty for a scenario built in code.

    The record lives in the scenario's private attribute `_sources`; it takes no part in
    equality, `dump_scenario` or `scenario_hash`.
    """
    return dict(scenario._sources)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    """Where the values of a raw scenario came from, to locate problems."""

    file: str
    #: loc -> (file, line) for every mapping key and list item read from YAML or CSV.
    lines: dict[Loc, tuple[str, int | None]] = field(default_factory=dict)
    #: loc -> the override string for values set from the command line.
    overridden: dict[Loc, str] = field(default_factory=dict)
    #: locs of list blocks read from CSV: ('states',) or ('networks', j, 'edges').
    csv_blocks: set[Loc] = field(default_factory=set)
    #: locs already reported by the loader (pydantic errors there are dropped).
    reported: set[Loc] = field(default_factory=set)
    #: blocks whose file could not be read: references into them are not checked.
    unreadable: set[str] = field(default_factory=set)
    sources: dict[str, str] = field(default_factory=dict)


def _load(
    path: str | os.PathLike[str], overrides: Sequence[str]
) -> tuple[Scenario | None, list[Problem]]:
    display = os.fspath(path)
    ctx = _Context(file=display)
    try:
        content = Path(display).read_bytes()
    except OSError as exc:
        return None, [Problem(display, None, ROOT, f"cannot read file: {exc.strerror or exc}")]
    ctx.sources[display] = hashlib.sha256(content).hexdigest()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        return None, [Problem(display, line, ROOT, f"not UTF-8 text: {exc.reason}")]

    raw, problems = _parse_yaml(text, ctx)
    if problems:
        return None, problems
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {_kind(raw)}"
        return None, [
            Problem(
                display, 1, ROOT, f"the top level must be a mapping (name, time, ...), got {kind}"
            )
        ]

    parsed, bad = _parse_overrides(overrides)
    problems.extend(bad)
    # Overrides apply before CSV files are read (so `states.file=...` works) and again after
    # (so `states.RUS.human_rights=...` works on states read from a CSV file).
    done, pending = _apply(raw, parsed)
    ctx.overridden.update(done)
    base = Path(display).parent
    problems.extend(_inline_csv(raw, base, ctx))
    if pending:
        done, failed = _apply(raw, [(p, v, origin) for p, v, origin, _ in pending])
        ctx.overridden.update(done)
        problems.extend(_override_problem(p, message, origin) for p, _, origin, message in failed)

    scenario, more = _validate(raw, ctx)
    problems.extend(more)
    if scenario is not None and not problems:
        scenario._sources = dict(ctx.sources)
    return scenario, _sorted(problems)


def _sorted(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (not p.file.startswith("--"), p.file, p.line or 0))


def _kind(value: Any) -> str:
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------------


class _TooBig(Exception):
    pass


def _parse_yaml(text: str, ctx: _Context) -> tuple[Any, list[Problem]]:
    """Safe-load YAML, recording the line of every mapping key and list item in ctx.lines."""
    file = ctx.file
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(s) for s in (exc.context, exc.problem) if s)
        return None, [Problem(file, line, ROOT, f"malformed YAML: {what or exc}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, ROOT, f"malformed YAML: {exc}")]
    except RecursionError:
        return None, [Problem(file, None, ROOT, "malformed YAML: nesting too deep")]
    if root is None:
        return None, []

    problems: list[Problem] = []
    constructor = yaml.constructor.SafeConstructor()
    count = 0

    def fail(node: yaml.Node, loc: Loc, message: str) -> None:
        problems.append(Problem(file, node.start_mark.line + 1, format_loc(loc), message))

    def build(node: yaml.Node, loc: Loc, depth: int, stack: tuple[int, ...]) -> Any:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise _TooBig
        if depth > MAX_DEPTH:
            fail(node, loc, f"nested more than {MAX_DEPTH} levels deep")
            return None
        if isinstance(node, yaml.ScalarNode):
            try:
                return constructor.construct_object(node, deep=True)
            except Exception as exc:  # PyYAML raises ValueError etc. for bad timestamps
                fail(node, loc, f"cannot read value {node.value!r}: {_short(exc)}")
                return None
        if id(node) in stack:
            fail(node, loc, "recursive alias")
            return None
        stack = (*stack, id(node))
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                fail(node, loc, f"unsupported tag {node.tag}")
                return None
            items = []
            for i, child in enumerate(node.value):
                ctx.lines[(*loc, i)] = (file, child.start_mark.line + 1)
                items.append(build(child, (*loc, i), depth + 1, stack))
            return items
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                fail(node, loc, f"unsupported tag {node.tag}")
                return None
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = _scalar_key(constructor, key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    fail(key_node, (*loc, key), f"duplicate key (first at line {seen[key]})")
                seen.setdefault(key, line)
            try:
                constructor.flatten_mapping(node)
            except yaml.YAMLError as exc:
                fail(node, loc, f"bad merge: {_short(exc)}")
                return None
            mapping: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    fail(key_node, loc, "a key must be a plain value, not a list or mapping")
                    continue
                key = _scalar_key(constructor, key_node)
                if key is _BAD_KEY:
                    fail(key_node, loc, f"cannot read key {key_node.value!r}")
                    continue
                ctx.lines[(*loc, key)] = (file, key_node.start_mark.line + 1)
                mapping[key] = build(value_node, (*loc, key), depth + 1, stack)
            return mapping
        fail(node, loc, "unsupported YAML node")
        return None

    try:
        data = build(root, (), 0, ())
    except _TooBig:
        return None, [Problem(file, None, ROOT, f"more than {MAX_NODES} values after aliases")]
    except RecursionError:
        return None, [Problem(file, None, ROOT, "nesting too deep")]
    ctx.lines[()] = (file, root.start_mark.line + 1)
    return data, problems


_BAD_KEY = object()


def _scalar_key(constructor: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> Any:
    try:
        key = constructor.construct_object(node, deep=True)
        hash(key)
    except Exception:
        return _BAD_KEY
    return key


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def _override_problem(path: str, message: str, origin: str = OVERRIDE_FILE) -> Problem:
    """A problem with an override, reported under the option that set it."""
    return Problem(origin.split(" ", 1)[0], None, path or ROOT, message)


def _parse_overrides(
    overrides: Sequence[str],
) -> tuple[list[tuple[str, Any, str]], list[Problem]]:
    """(path, value, origin) of each ``dotted.path=value`` override; the value is parsed as
    YAML."""
    parsed: list[tuple[str, Any, str]] = []
    problems: list[Problem] = []
    for text in overrides:
        origin = _origin(text)
        path, sep, value_text = str(text).partition("=")
        path = path.strip()
        if not sep or not path:
            problems.append(
                _override_problem(path, f"expected dotted.path=value, got {str(text)!r}", origin)
            )
            continue
        try:
            value = yaml.safe_load(value_text)
        except Exception as exc:  # yaml.YAMLError, or a constructor's own error
            problems.append(
                _override_problem(path, f"cannot parse value {value_text!r}: {_short(exc)}", origin)
            )
            continue
        parsed.append((path, value, origin))
    return parsed, problems


def _apply(
    data: dict[str, Any], overrides: Sequence[tuple[str, Any, str]]
) -> tuple[dict[Loc, str], list[tuple[str, Any, str, str]]]:
    """Apply parsed (path, value, origin) overrides in place; returns (loc -> origin, failed
    ones as (path, value, origin, message))."""
    done: dict[Loc, str] = {}
    failed: list[tuple[str, Any, str, str]] = []
    for path, value, origin in overrides:
        parts = path.split(".")
        if any(not p for p in parts):
            failed.append((path, value, origin, "empty component in path"))
            continue
        found, error = resolve_path(data, parts, create=True)
        if found is None:
            failed.append((path, value, origin, error or "no such parameter"))
            continue
        loc, container, key = found
        container[key] = copy.deepcopy(value)
        done[loc] = origin
        log.info("override %s = %r", path, value)
    return done, failed


# --------------------------------------------------------------------------------------------
# CSV files
# --------------------------------------------------------------------------------------------


def _csv_display(base: Path, file: str) -> str:
    return os.path.normpath(os.path.join(os.fspath(base), file))


def _read_csv(
    display: str, ctx: _Context, yaml_loc: Loc, problems: list[Problem]
) -> tuple[list[str], list[tuple[int, dict[str, str]]]] | None:
    try:
        content = Path(display).read_bytes()
    except OSError as exc:
        problems.append(_at(ctx, yaml_loc, f"cannot read {display}: {exc.strerror or exc}"))
        return None
    ctx.sources[display] = hashlib.sha256(content).hexdigest()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        problems.append(Problem(display, line, format_loc(yaml_loc), "not UTF-8 text"))
        return None
    reader = csv.reader(text.splitlines(keepends=True))
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header or not any(header):
            problems.append(Problem(display, 1, format_loc(yaml_loc), "the file has no header"))
            return None
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) != len(header):
                problems.append(
                    Problem(
                        display,
                        line,
                        format_loc(yaml_loc),
                        f"{len(row)} cells, the header has {len(header)}",
                    )
                )
                continue
            rows.append((line, dict(zip(header, (c.strip() for c in row), strict=True))))
    except csv.Error as exc:
        problems.append(Problem(display, reader.line_num, format_loc(yaml_loc), f"bad CSV: {exc}"))
        return None
    return header, rows


def _at(ctx: _Context, loc: Loc, message: str) -> Problem:
    file, line = _line_of(ctx, loc)
    return Problem(file, line, format_loc(loc), message)


def _file_spec(
    model: type[BaseModel], value: Any, loc: Loc, ctx: _Context, problems: list[Problem]
) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, value, loc, ctx))
        return None


_STATE_REQUIRED = ("id", "human_rights")
_STATE_FIELDS = ("id", "name", "region", "human_rights", "pressure", "sponsor", "leverage")
_DIMS = ("goods", "capital", "services")


def _inline_csv(raw: dict[str, Any], base: Path, ctx: _Context) -> list[Problem]:
    """Replace `states: {file: ...}` and `networks[].file` with inline data read from CSV."""
    problems: list[Problem] = []
    states = raw.get("states")
    if isinstance(states, dict):
        spec = _file_spec(StatesFile, states, ("states",), ctx, problems)
        raw.pop("states")
        ctx.unreadable.add("states")
        if spec is not None:
            display = _csv_display(base, spec.file)
            got = _read_csv(display, ctx, ("states", "file"), problems)
            if got is not None:
                items = _states_from_csv(display, spec, *got, ctx, problems)
                if items is not None:
                    raw["states"] = items
                    ctx.csv_blocks.add(("states",))
                    ctx.unreadable.discard("states")
        if "states" not in raw:
            raw["states"] = None  # keep the key: the scenario does have named states
    networks = raw.get("networks")
    if isinstance(networks, list):
        for j, net in enumerate(networks):
            if not isinstance(net, dict) or ("file" not in net and "columns" not in net):
                continue
            loc: Loc = ("networks", j)
            spec_raw = {k: net.pop(k) for k in ("file", "columns") if k in net}
            spec = _file_spec(EdgeFile, spec_raw, loc, ctx, problems)
            if spec is None:
                ctx.unreadable.add(f"networks[{j}]")
                continue
            if "edges" in net or "generator" in net or "groups" in net:
                problems.append(
                    _at(
                        ctx,
                        (*loc, "file"),
                        "a layer takes exactly one source of edges, file, generator, groups",
                    )
                )
                continue
            display = _csv_display(base, spec.file)
            got = _read_csv(display, ctx, (*loc, "file"), problems)
            if got is None:
                ctx.unreadable.add(f"networks[{j}]")
                net["edges"] = None
                continue
            edges = _edges_from_csv(display, spec, *got, loc, ctx, problems)
            ctx.lines[(*loc, "edges")] = _line_of(ctx, (*loc, "file"))
            net["edges"] = edges
            if edges is None:
                ctx.unreadable.add(f"networks[{j}]")
            else:
                ctx.csv_blocks.add((*loc, "edges"))
    return problems


def _states_from_csv(
    display: str,
    spec: StatesFile,
    header: list[str],
    rows: list[tuple[int, dict[str, str]]],
    ctx: _Context,
    problems: list[Problem],
) -> list[dict[str, Any]] | None:
    columns: dict[str, str] = {str(k): v for k, v in spec.columns.items()}

    def column(name: str) -> str | None:
        col = columns.get(name, name)
        return col if col in header else None

    ok = True
    for name, col in columns.items():
        if col not in header:
            problems.append(
                Problem(display, 1, f"states.{name}", f"no column '{col}'" + _hint(col, header))
            )
            ok = False
    for name in _STATE_REQUIRED:
        if name not in columns and column(name) is None:
            problems.append(
                Problem(display, 1, f"states.{name}", f"no column '{name}'" + _hint(name, header))
            )
            ok = False
    dims = [d for d in _DIMS if column(d) is not None]
    scalar = column("openness")
    if scalar is None and len(dims) != len(_DIMS) and "openness" not in columns:
        problems.append(
            Problem(
                display,
                1,
                "states.openness",
                "no column 'openness' (nor all of 'goods', 'capital', 'services')",
            )
        )
        ok = False
    if not ok:
        return None
    items: list[dict[str, Any]] = []
    for i, (line, row) in enumerate(rows):
        item: dict[str, Any] = {}
        ctx.lines[("states", i)] = (display, line)
        for name in _STATE_FIELDS:
            found = column(name)
            if found is None:
                continue
            cell = row[found]
            if cell == "":
                if name in _STATE_REQUIRED:
                    problems.append(
                        Problem(display, line, f"states.{name}", f"empty cell in column '{found}'")
                    )
                    ctx.reported.add(("states", i, name))
                    item[name] = None
                continue
            item[name] = cell
        if scalar is not None:
            item["openness"] = row[scalar] if row[scalar] != "" else None
            if row[scalar] == "":
                ctx.reported.add(("states", i, "openness"))
                problems.append(
                    Problem(display, line, "states.openness", f"empty cell in column '{scalar}'")
                )
        else:
            item["openness"] = {d: row[columns.get(d, d)] for d in _DIMS}
        items.append(item)
    return items


def _hint(word: str, header: list[str]) -> str:
    from difflib import get_close_matches

    close = get_close_matches(word, header, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (columns: {', '.join(header)})"


def _edges_from_csv(
    display: str,
    spec: EdgeFile,
    header: list[str],
    rows: list[tuple[int, dict[str, str]]],
    loc: Loc,
    ctx: _Context,
    problems: list[Problem],
) -> list[list[Any]] | None:
    where = format_loc((*loc, "edges"))
    cols = {name: spec.columns.get(name, name) for name in ("source", "target", "weight")}  # type: ignore[call-overload]
    ok = True
    for name, col in cols.items():
        required = name != "weight" or "weight" in spec.columns
        if col not in header and required:
            problems.append(
                Problem(display, 1, f"{where}.{name}", f"no column '{col}'" + _hint(col, header))
            )
            ok = False
    if not ok:
        return None
    edges: list[list[Any]] = []
    for line, row in rows:
        k = len(edges)
        edge: list[Any] = []
        for name in ("source", "target", "weight"):
            col = cols[name]
            if col not in header:
                continue
            cell = row[col]
            if cell == "":
                if name == "weight":
                    cell = "1"
                else:
                    ctx.reported.add((*loc, "edges", k, len(edge)))
                    problems.append(
                        Problem(display, line, f"{where}.{name}", f"empty cell in column '{col}'")
                    )
            edge.append(cell)
        ctx.lines[(*loc, "edges", k)] = (display, line)
        edges.append(edge)
    return edges


# --------------------------------------------------------------------------------------------
# Validation and locating problems
# --------------------------------------------------------------------------------------------


def _validate(raw: dict[str, Any], ctx: _Context) -> tuple[Scenario | None, list[Problem]]:
    problems: list[Problem] = []
    try:
        scenario: Scenario | None = Scenario.model_validate(raw, context={"checked": True})
    except ValidationError as exc:
        scenario = None
        problems.extend(_pydantic_problems(exc, raw, (), ctx))
    except RecursionError:
        return None, [Problem(ctx.file, None, ROOT, "structure too deep or recursive")]

    if scenario is not None:
        parts = Parts.of(scenario)
        resolved: dict[str, Any] | None = scenario.model_dump(exclude_none=True)
    else:
        parts = Parts.from_raw(raw)
        resolved = raw
    if "states" in ctx.unreadable:
        parts.has_states = True
        parts.states_known = False
    for loc, message in check_parts(parts, resolved=resolved):
        if len(loc) == 2 and loc[0] == "networks" and f"networks[{loc[1]}]" in ctx.unreadable:
            continue  # its file could not be read: that problem is already reported
        problems.append(_problem(ctx, loc, message))

    outside_sweep = [p for p in problems if not p.path.startswith("sweep")]
    if scenario is not None and not outside_sweep and scenario.sweep is not None:
        problems.extend(_check_sweep_values(raw, scenario, ctx))
    if problems:
        return None, problems
    return scenario, []


def _check_sweep_values(raw: dict[str, Any], scenario: Scenario, ctx: _Context) -> list[Problem]:
    """Each sweep value (grid values, range ends) must give a valid scenario."""
    from diffusion_sim.config import Range

    problems: list[Problem] = []
    assert scenario.sweep is not None
    base = _plain(scenario.model_dump(exclude_none=True))
    base.pop("sweep", None)
    for path, values in scenario.sweep.parameters.items():
        loc: Loc = ("sweep", "parameters", path)
        candidates = [values.low, values.high] if isinstance(values, Range) else list(values)
        for value in candidates[:MAX_SWEEP_CHECKS]:
            data = copy.deepcopy(base)
            _done, failed = _apply(data, [(path, value, _origin(f"{path}={value!r}"))])
            if failed:
                break  # the path itself is reported by check_parts
            sub = _Context(file=ctx.file)
            _result, bad = _validate(data, sub)
            if bad:
                detail = "; ".join(f"{p.path}: {p.message}" for p in bad[:3])
                problems.append(_problem(ctx, loc, f"value {value!r} is not valid: {detail}"))
                break
    return problems


def _line_of(ctx: _Context, loc: Loc) -> tuple[str, int | None]:
    for n in range(len(loc), -1, -1):
        hit = ctx.lines.get(loc[:n])
        if hit is not None:
            return hit
    return ctx.file, None


def _problem(ctx: _Context, loc: Loc, message: str) -> Problem:
    """A Problem for a location: its line, the override that set it, or its CSV row."""
    for n in range(len(loc), 0, -1):
        if loc[:n] in ctx.overridden:
            origin = ctx.overridden[loc[:n]]
            return Problem(
                origin.split(" ", 1)[0], None, format_loc(loc), f"{message} (from {origin})"
            )
    file, line = _line_of(ctx, loc)
    path = format_loc(loc)
    for block in ctx.csv_blocks:
        if loc[: len(block)] == block and len(loc) > len(block):
            rest = [str(p) for p in loc[len(block) + 1 :]]
            if block[-1] == "edges" and rest and rest[0] in ("0", "1", "2"):
                rest[0] = ("source", "target", "weight")[int(rest[0])]
            path = ".".join([format_loc(block), *rest])
    return Problem(file, line, path, message)


def _pydantic_problems(exc: ValidationError, raw: Any, prefix: Loc, ctx: _Context) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = _data_loc(err["loc"], raw, err["type"])
        if (*prefix, *loc) in ctx.reported:
            continue
        problems.append(_problem(ctx, (*prefix, *loc), _message(err, raw, loc)))
    return problems


def _data_loc(loc: tuple[Any, ...], raw: Any, kind: str) -> Loc:
    """Drop union tags and pydantic's markers from an error location, keeping the path that
    exists in the data (plus the missing key for a `missing` error)."""
    node = raw
    out: list[str | int] = []
    for n, part in enumerate(loc):
        last = n == len(loc) - 1
        indexed = isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node)
        if indexed or (isinstance(node, dict) and part in node):
            out.append(part)
            node = node[part]
        elif last and kind == "missing" and isinstance(part, str):
            out.append(part)
        # anything else is a union tag or a marker such as '[key]'
    return tuple(out)


def _message(err: Mapping[str, Any], raw: Any, loc: Loc) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        keys = _keys_at(raw, loc[:-1])
        return f"unknown key '{key}'" + _suggestion(key, keys)
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "literal_error":
        expected = [
            e.strip().strip("'")
            for e in str(err.get("ctx", {}).get("expected", "")).replace(" or ", ", ").split(",")
        ]
        word = str(value)
        return f"{msg} (got {word!r}" + _did_you_mean(word, expected) + ")"
    if kind == "string_type" and isinstance(value, bool):
        return msg + " (YAML reads yes/no/on/off/true/false as booleans: quote the text)"
    if _is_scalar(value):
        text = repr(value)
        if len(text) <= 60:
            return f"{msg} (got {text})"
    return msg


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | datetime.date)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    from difflib import get_close_matches

    close = get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _suggestion(word: str, keys: list[str] | None) -> str:
    if not keys:
        return ""
    from difflib import get_close_matches

    close = get_close_matches(word, keys, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (allowed: {', '.join(keys)})"


def _keys_at(raw: Any, loc: Loc) -> list[str] | None:
    """The keys the schema allows for the mapping at `loc` in the raw data."""
    tp: Any = Scenario
    node = raw
    for part in loc:
        tp = child_type(tp, part, node)
        if tp is None:
            return None
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return allowed_keys(tp)


# --------------------------------------------------------------------------------------------
# Plain data for YAML
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Model dump -> plain dicts, lists, scalars and dates (tuples become lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
