"""Typed scenario models: the contract of docs/SCENARIO.md as pydantic v2 models.

Every model forbids unknown keys, is frozen, and documents each field (attribute docstrings).
Field-level rules (types, ranges, patterns) live on the fields; rules that relate several
parts of a scenario (references between blocks, duplicate ids, dates inside the time window,
generator parameters, ...) live in `check_parts`, which reports every problem with its own
location so the loader can point at the offending line. `Scenario` runs the same checks
when built directly, so a `Scenario` object is always consistent.

No file is read here: `diffusion_sim.loader` reads YAML and CSV and calls into this module.
Imports are kept to the standard library and pydantic so that validation starts fast.
"""

from __future__ import annotations

import datetime
import math
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    SerializationInfo,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    model_validator,
)

# --------------------------------------------------------------------------------------------
# Shared types
# --------------------------------------------------------------------------------------------

#: Largest magnitude accepted for unbounded non-negative quantities (pressure, edge weights).
BIG = 1e12
#: Bound on every linear-predictor coefficient (intercepts, channel and covariate weights).
MAX_COEF = 50.0
#: Bound on calendar labels (years).
MAX_YEAR = 100_000

Loc = tuple[str | int, ...]
"""A location inside a scenario: keys and list indices from the top level down."""

#: A scenario name, which names a results folder: letters, digits, `_`, `-`, `.`, not only dots.
_NAME_PATTERN = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64)]
"""An identifier: a letter or `_`, then letters, digits, `_` or `-` (no dots: ids are used in
dotted paths)."""

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Field(ge=0.0, le=BIG)]
Coefficient = Annotated[float, Field(ge=-MAX_COEF, le=MAX_COEF)]

ChannelName = Literal["emulation", "learning", "competition", "conditionality"]
CovariateName = Literal["openness", "human_rights", "pressure"]
LinkName = Literal["logit", "cloglog", "linear"]
GeneratorName = Literal[
    "complete", "erdos_renyi", "watts_strogatz", "barabasi_albert", "same_region"
]
Attribute = Literal["human_rights", "openness", "pressure", "leverage"]
StateField = Literal[
    "id",
    "name",
    "region",
    "human_rights",
    "openness",
    "goods",
    "capital",
    "services",
    "pressure",
    "sponsor",
    "leverage",
]
EdgeField = Literal["source", "target", "weight"]

CHANNELS: tuple[str, ...] = typing.get_args(ChannelName)
COVARIATES: tuple[str, ...] = typing.get_args(CovariateName)

#: Parameters each generator needs (all of them) and takes; `weights` is taken by every one.
GENERATOR_PARAMS: dict[str, tuple[str, ...]] = {
    "complete": (),
    "erdos_renyi": ("p",),
    "watts_strogatz": ("k", "p"),
    "barabasi_albert": ("m",),
    "same_region": (),
}


def _check_date(value: Any) -> int | datetime.date:
    """A calendar date: an integer year or an ISO date (a datetime keeps its date only)."""
    if isinstance(value, bool):
        raise ValueError("expected a year (2007) or an ISO date (2007-06-01), got a boolean")
    if isinstance(value, int):
        if abs(value) > MAX_YEAR:
            raise ValueError(f"year {value} is out of range (|year| <= {MAX_YEAR})")
        return value
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return _check_date(int(text))
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError("expected a year (2007) or an ISO date (2007-06-01)")


def _serialise_date(value: Any, info: SerializationInfo) -> Any:
    if isinstance(value, datetime.date) and info.mode == "json":
        return value.isoformat()
    return value


DateLike = Annotated[
    int | datetime.date,
    PlainValidator(_check_date),
    PlainSerializer(_serialise_date, return_type=Any),
]
"""A calendar date: a year (`2007`) or an ISO date (`2007-06-01`)."""


def _pad_edge(value: Any) -> Any:
    """`[source, target]` means weight 1: the resolved form is always a triple."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return (*value, 1.0)
    return value


Edge = Annotated[tuple[Ident, Ident, NonNeg], BeforeValidator(_pad_edge)]
"""An edge `[source, target, weight]`; the weight defaults to 1."""


def _scalar_or_mapping(value: Any) -> str:
    return "dims" if isinstance(value, dict | BaseModel) else "scalar"


def _list_or_range(value: Any) -> str:
    return "range" if isinstance(value, dict | BaseModel) else "values"


class _Frozen(BaseModel):
    """Base of every scenario model: unknown keys rejected, immutable, finite floats."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        allow_inf_nan=False,
        validate_default=False,
    )


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


class TimeConfig(_Frozen):
    """The time window: step `t` covers the period `[start + t, start + t + 1)`."""

    start: Annotated[int, Field(ge=-MAX_YEAR, le=MAX_YEAR)]
    """Calendar label of step 0 (a year such as 2000, or 0)."""
    steps: Annotated[int, Field(ge=1, le=100_000)]
    """Number of steps."""
    unit: Literal["year"] = "year"
    """Length of one step (only years for now)."""

    @property
    def end(self) -> int:
        """The first calendar label after the window (`start + steps`)."""
        return self.start + self.steps

    def step_of(self, date: int | datetime.date) -> int:
        """The step a date falls in: `floor(year + day_of_year / days_in_year - start)`.

        `day_of_year` counts from 0 (1 January is 0), so an integer year `y` and any date in
        year `y` fall in step `y - start`. The result may lie outside `[0, steps)`.
        """
        if isinstance(date, datetime.date):
            days = 366 if _is_leap(date.year) else 365
            day = date.timetuple().tm_yday - 1
            return math.floor(date.year + day / days - self.start)
        return int(date) - self.start

    def date_of(self, step: int) -> float:
        """The calendar label of a step (`start + step`): adoptions drawn in step t carry it."""
        return float(self.start + step)

    def contains(self, date: int | datetime.date) -> bool:
        """Whether a date falls in the window `[start, start + steps)`."""
        return 0 <= self.step_of(date) < self.steps


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


class Mechanism(_Frozen):
    """A migration-control mechanism that states adopt (unilateral) or conclude (bilateral)."""

    id: Ident
    """Unique identifier, used in events, overrides and results."""
    kind: Literal["unilateral", "bilateral"]
    """`bilateral` mechanisms (readmission agreements) are concluded by a pair of states."""
    label: str = ""
    """Name shown in plots (default: the id)."""
    intercept: Coefficient
    """`alpha_m`, the baseline of the linear predictor."""
    effectiveness: Unit = 0.5
    """Share of the covered flow removed (flows module)."""
    revocable: bool = False
    """Whether an adoption can be revoked."""
    revocation_rate: Unit = 0.0
    """Per-step probability of revoking an adoption (only when `revocable`)."""
    tcn_delay: Annotated[int, Field(ge=0, le=100_000)] | None = None
    """Bilateral only: steps after conclusion before the partner must also take back
    third-country nationals; null = no TCN clause."""
    channels: dict[ChannelName, Coefficient] = {}
    """Per-mechanism override of channel weights (`diffusion.channels.<c>.weight`)."""
    covariates: dict[CovariateName, Coefficient] = {}
    """Per-mechanism override of covariate weights (`diffusion.covariates.<c>`)."""

    @model_validator(mode="before")
    @classmethod
    def _default_label(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("label") is None and isinstance(data.get("id"), str):
            data = {**data, "label": data["id"]}
        return data

    @property
    def bilateral(self) -> bool:
        """Whether the mechanism is concluded by pairs of states."""
        return self.kind == "bilateral"


class Openness(_Frozen):
    """Openness per dimension; the scalar openness is their mean."""

    goods: Unit
    """Openness to trade in goods."""
    capital: Unit
    """Openness to capital flows."""
    services: Unit
    """Openness to trade in services."""

    @property
    def mean(self) -> float:
        """The scalar openness: the mean of the three dimensions."""
        return (self.goods + self.capital + self.services) / 3.0


OpennessValue = Annotated[
    Annotated[Unit, Tag("scalar")] | Annotated[Openness, Tag("dims")],
    Discriminator(_scalar_or_mapping),
]


def _truthy(value: Any) -> bool:
    """Pydantic's lax reading of a boolean, False when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on", "t", "y"}
    return False


class StateSpec(_Frozen):
    """A named state (an agent)."""

    id: Ident
    """Unique short code such as `RUS` or `EU27`."""
    name: str = ""
    """Full name (default: the id)."""
    region: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ] = "all"
    """Region label (free text)."""
    human_rights: Unit
    """Human-rights protection, 1 = strongest."""
    openness: OpennessValue
    """Openness in [0, 1], or per dimension `{goods, capital, services}`."""
    pressure: NonNeg = 0.0
    """Irregular-migration pressure (overwritten by the flows module when it is on)."""
    sponsor: bool = False
    """Pushes mechanisms with incentives (e.g. the EU)."""
    leverage: Annotated[float, Field(ge=0.0, le=1e6)] = 0.0
    """Weight of this state's conditionality over dependent states (default 1 for a sponsor,
    else 0)."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("name") is None and isinstance(data.get("id"), str):
            data["name"] = data["id"]
        if data.get("leverage") is None:
            data["leverage"] = 1.0 if _truthy(data.get("sponsor", False)) else 0.0
        return data

    @property
    def openness_value(self) -> float:
        """The scalar openness (the mean of the dimensions when they are given)."""
        return self.openness.mean if isinstance(self.openness, Openness) else self.openness


class Distribution(_Frozen):
    """A distribution of a generated attribute; each kind takes exactly its own parameters.

    `uniform` takes `low`, `high`; `beta` takes `a`, `b`; `normal` takes `mean`, `sd` (normal
    draws are clipped to the attribute's range).
    """

    distribution: Literal["uniform", "beta", "normal"]
    """The family."""
    low: Annotated[float, Field(ge=-BIG, le=BIG)] | None = None
    """uniform: lower bound."""
    high: Annotated[float, Field(ge=-BIG, le=BIG)] | None = None
    """uniform: upper bound (>= low)."""
    a: Annotated[float, Field(gt=0.0, le=1e6)] | None = None
    """beta: first shape parameter (> 0)."""
    b: Annotated[float, Field(gt=0.0, le=1e6)] | None = None
    """beta: second shape parameter (> 0)."""
    mean: Annotated[float, Field(ge=-BIG, le=BIG)] | None = None
    """normal: mean."""
    sd: Annotated[float, Field(ge=0.0, le=BIG)] | None = None
    """normal: standard deviation (>= 0)."""

    @model_validator(mode="after")
    def _parameters(self) -> Distribution:
        takes = {"uniform": ("low", "high"), "beta": ("a", "b"), "normal": ("mean", "sd")}
        wanted = takes[self.distribution]
        given = [p for p in ("low", "high", "a", "b", "mean", "sd") if getattr(self, p) is not None]
        missing = [p for p in wanted if p not in given]
        extra = [p for p in given if p not in wanted]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if extra:
                parts.append("does not take " + ", ".join(extra))
            raise ValueError(
                f"{self.distribution} distribution takes {' and '.join(wanted)}: "
                + "; ".join(parts)
            )
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(
                f"uniform distribution needs low <= high, got {self.low} > {self.high}"
            )
        return self

    def bounds(self) -> tuple[float, float]:
        """The support of the (unclipped) distribution."""
        if self.distribution == "uniform":
            return (typing.cast(float, self.low), typing.cast(float, self.high))
        if self.distribution == "beta":
            return (0.0, 1.0)
        return (-math.inf, math.inf)


UnitOrDistribution = Annotated[
    Annotated[Unit, Tag("scalar")] | Annotated[Distribution, Tag("dims")],
    Discriminator(_scalar_or_mapping),
]
NonNegOrDistribution = Annotated[
    Annotated[NonNeg, Tag("scalar")] | Annotated[Distribution, Tag("dims")],
    Discriminator(_scalar_or_mapping),
]


class Generate(_Frozen):
    """A synthetic world of `n` states `S0000`, `S0001`, ... drawn once per batch."""

    n: Annotated[int, Field(ge=1, le=1_000_000)]
    """Number of states."""
    regions: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Number of regions `R0`, `R1`, ...; state i is in region `i * regions // n`."""
    human_rights: UnitOrDistribution
    """Human rights: a value in [0, 1] or a distribution."""
    openness: UnitOrDistribution
    """Openness: a value in [0, 1] or a distribution."""
    pressure: NonNegOrDistribution = 0.0
    """Pressure: a value >= 0 or a distribution."""
    sponsors: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    """The first `sponsors` states are sponsors (leverage 1)."""

    @property
    def id_width(self) -> int:
        """Digits in generated ids: max(4, digits of n - 1)."""
        return max(4, len(str(self.n - 1)))

    def state_id(self, i: int) -> str:
        """The id of generated state i (`S0000`, ...)."""
        return f"S{i:0{self.id_width}d}"

    def region_of(self, i: int) -> str:
        """The region label of generated state i."""
        return f"R{i * self.regions // self.n}"

    def region_labels(self) -> list[str]:
        """All region labels `R0` .. `R{regions-1}`."""
        return [f"R{r}" for r in range(self.regions)]

    def has_state(self, ident: str) -> bool:
        """Whether `ident` is the id of a generated state."""
        digits = ident[1:]
        return (
            ident.startswith("S")
            and digits.isdigit()
            and len(digits) == self.id_width
            and int(digits) < self.n
        )


class Range(_Frozen):
    """A closed interval `[low, high]`."""

    low: Annotated[float, Field(ge=-BIG, le=BIG)]
    """Lower bound."""
    high: Annotated[float, Field(ge=-BIG, le=BIG)]
    """Upper bound (>= low)."""

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"needs low <= high, got {self.low} > {self.high}")
        return self


class Network(_Frozen):
    """A weighted network layer, from exactly one source: `edges`, `generator` or `groups`.

    A CSV `file` (with optional `columns`) is read by the loader and becomes `edges`.
    """

    id: Ident
    """Unique layer id, referenced by channels, `flows.layer`, events."""
    directed: bool = False
    """Whether ties are directed; an undirected edge counts both ways."""
    edges: Annotated[list[Edge], Field(min_length=1)] | None = None
    """Inline edge list of `[source, target]` or `[source, target, weight]`."""
    generator: GeneratorName | None = None
    """A networkx generator, seeded from the world seed."""
    groups: dict[Ident, list[Ident]] | None = None
    """Membership layer: co-members of a group are tied with weight 1."""
    p: Unit | None = None
    """erdos_renyi edge probability; watts_strogatz rewiring probability."""
    k: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """watts_strogatz neighbours."""
    m: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """barabasi_albert edges per new node."""
    weights: Range | None = None
    """Generated edge weights drawn uniformly in [low, high] (default: constant 1)."""

    @property
    def source(self) -> str:
        """Which source defines the layer: `edges`, `generator` or `groups`."""
        if self.edges is not None:
            return "edges"
        if self.generator is not None:
            return "generator"
        return "groups"


class EdgeFile(_Frozen):
    """The file form of a layer's edges, inlined by the loader: `networks[].file`."""

    file: str
    """CSV path, relative to the scenario file's folder."""
    columns: dict[EdgeField, str] = {}
    """Maps `source` / `target` / `weight` to the CSV columns holding them."""


class StatesFile(_Frozen):
    """The file form of `states`, inlined by the loader: `states: {file, columns}`."""

    file: str
    """CSV path, relative to the scenario file's folder."""
    columns: dict[StateField, str] = {}
    """Maps a state field to the CSV column holding it (default: the column of the same
    name). Openness is the `openness` column, or the `goods`, `capital`, `services` columns."""


class Channel(_Frozen):
    """A diffusion channel: its weight and the layer its exposure is computed on."""

    weight: Coefficient
    """Coefficient of the channel's exposure in the linear predictor."""
    layer: Ident
    """Network layer id."""


class Bilateral(_Frozen):
    """Coefficients of the bilateral (dyad) hazard."""

    candidates: Ident = "migration"
    """Layer whose ties are the candidate dyads."""
    demand: Coefficient = 0.0
    """b_demand: weight of Q_rs, s's share of r's inflow."""
    conditionality: Coefficient = 0.0
    """b_cond: weight of K_rs, r's leverage over s."""
    chain: Coefficient = 0.0
    """b_chain: weight of R_rs, the relay through an active TCN clause."""
    emulation: Coefficient = 0.0
    """b_emul: weight of E_rs, share of s's partners already holding such agreements."""
    hr_gap: Coefficient = 0.0
    """b_hrgap: weight of max(0, hr_r - hr_s)."""
    openness: Coefficient = 0.0
    """b_open: weight of the dyad's mean openness."""


class Diffusion(_Frozen):
    """The hazard: link function, channels, covariates, bilateral terms."""

    link: LinkName = "logit"
    """logit p = 1/(1+e^-eta); cloglog p = 1-exp(-e^eta); linear p = 1-exp(-max(eta, 0))."""
    channels: dict[ChannelName, Channel] = {}
    """Channels in use; an absent channel has weight 0."""
    covariates: dict[CovariateName, Coefficient] = {}
    """Covariate weights; an absent covariate has weight 0."""
    bilateral: Bilateral | None = None
    """Bilateral hazard terms; required when a bilateral mechanism exists."""


class Flows(_Frozen):
    """The optional migration-flows module."""

    enabled: bool = False
    """Whether flows and pressures are simulated."""
    layer: Ident | None = None
    """Directed layer whose weights are the migration matrix (required when enabled)."""
    deflection: Unit = 0.0
    """Share of every removed flow redirected to the origin's other destinations."""
    agreements: Literal["both", "requester"] = "both"
    """Which flows an agreement in force removes: between its parties in `both` directions
    (readmission obligations bind both parties), or only the flow from the partner into the
    `requester` (DESIGN.md section 1: an agreement r-s removes e*M_sr)."""


class AdoptAction(_Frozen):
    """An exogenous adoption (bilateral: the conclusion of an agreement with `partner`)."""

    mechanism: Ident
    """Mechanism id."""
    state: Ident
    """Adopting (requesting) state."""
    partner: Ident | None = None
    """The other party; required for bilateral mechanisms, forbidden otherwise."""
    tcn_from: DateLike | None = None
    """Bilateral only: date from which the TCN clause applies (default: conclusion plus the
    mechanism's tcn_delay, no clause when that is null)."""
    tcn: bool = True
    """Bilateral only: `false` concludes this agreement without a TCN clause (whatever the
    mechanism's tcn_delay); cannot be combined with `tcn_from`."""


class SetAction(_Frozen):
    """An attribute shock: set the attribute to `value`, or add `add` to it (exactly one)."""

    state: Ident
    """State id."""
    attribute: Attribute
    """The attribute changed."""
    value: Annotated[float, Field(ge=0.0, le=BIG)] | None = None
    """New value (in the attribute's range)."""
    add: Annotated[float, Field(ge=-BIG, le=BIG)] | None = None
    """Increment (the result is clipped to the attribute's range)."""

    @model_validator(mode="after")
    def _one(self) -> SetAction:
        if (self.value is None) == (self.add is None):
            raise ValueError("give exactly one of `value` or `add`")
        return self


class MembershipAction(_Frozen):
    """A state joins or leaves a group of a membership (`groups`) layer."""

    layer: Ident
    """Layer id (a layer defined by `groups`)."""
    group: Ident
    """Group id (declared in the layer's `groups`, possibly empty)."""
    state: Ident
    """State id."""


class BlockAction(_Frozen):
    """Forbid an adoption (unilateral) or an agreement with `partner` (bilateral)."""

    mechanism: Ident
    """Mechanism id."""
    state: Ident
    """State id."""
    partner: Ident | None = None
    """The other party; required for bilateral mechanisms, forbidden otherwise."""


EVENT_ACTIONS: tuple[str, ...] = ("adopt", "set", "join", "leave", "block")


class Event(_Frozen):
    """A scheduled event: a date and exactly one action."""

    date: DateLike
    """Year or ISO date; must fall in the time window."""
    adopt: AdoptAction | None = None
    """An exogenous adoption or agreement."""
    set: SetAction | None = None
    """An attribute shock."""
    join: MembershipAction | None = None
    """A state joins a group."""
    leave: MembershipAction | None = None
    """A state leaves a group."""
    block: BlockAction | None = None
    """A blocked adoption or dyad."""

    @model_validator(mode="after")
    def _one_action(self) -> Event:
        given = [a for a in EVENT_ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(
                "an event takes exactly one action of "
                + ", ".join(EVENT_ACTIONS)
                + (f", got {', '.join(given)}" if given else ", got none")
            )
        return self

    @property
    def action(self) -> str:
        """The action's name (`adopt`, `set`, `join`, `leave` or `block`)."""
        return next(a for a in EVENT_ACTIONS if getattr(self, a) is not None)

    @property
    def payload(self) -> AdoptAction | SetAction | MembershipAction | BlockAction:
        """The action's content."""
        return typing.cast(Any, getattr(self, self.action))


class ObservedAdoption(_Frozen):
    """An observed adoption, for overlays and calibration."""

    mechanism: Ident
    """Mechanism id."""
    state: Ident
    """Adopting (requesting) state."""
    partner: Ident | None = None
    """The other party (bilateral mechanisms only, required there)."""
    date: DateLike
    """Year or ISO date; must fall in the time window."""
    source: str = ""
    """Where the observation comes from."""


class Runs(_Frozen):
    """Replicates and the root seed."""

    replicates: Annotated[int, Field(ge=1, le=10_000_000)] = 100
    """Replicates per sweep point."""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    """Root seed of the batch's SeedSequence."""
    chunk: Annotated[int, Field(ge=1, le=10_000_000)] = 64
    """Replicates per kernel batch (64: as fast per run as larger chunks, and two workers
    stay under 1 GiB together)."""


SweepScalar = bool | int | float | str
SweepValues = Annotated[
    Annotated[list[SweepScalar], Field(min_length=1, max_length=100_000), Tag("values")]
    | Annotated[Range, Tag("range")],
    Discriminator(_list_or_range),
]


class Sweep(_Frozen):
    """Parameters to vary, by dotted path (list items addressed by id)."""

    method: Literal["grid", "random", "lhs", "sobol"] = "grid"
    """`grid` takes value lists; `random`, `lhs` and `sobol` take `{low, high}` ranges."""
    samples: Annotated[int, Field(ge=1, le=1_000_000)] = 16
    """Number of points for random / lhs / sobol (sobol: a power of 2)."""
    parameters: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")], SweepValues],
        Field(min_length=1),
    ]
    """Dotted path -> list of values (grid) or `{low, high}` (sampling methods)."""


#: Figure file formats (scenario ``outputs.formats``, and ``--format`` of the commands).
FigureFormat = Literal["png", "svg", "pdf"]
FIGURE_FORMATS: tuple[str, ...] = typing.get_args(FigureFormat)


class Outputs(_Frozen):
    """Plotting and analysis options."""

    plots: bool = True
    """Whether `run` draws plots."""
    formats: Annotated[list[FigureFormat], Field(min_length=1)] = ["png"]
    """Figure formats."""
    hr_threshold: Unit = 0.4
    """Human-rights level below which a partner counts as a low-protection state."""


class Scenario(_Frozen):
    """A complete scenario (docs/SCENARIO.md), consistent across blocks once constructed.

    Equality and `scenario_hash` ignore where a scenario was read from; the loader records
    the files it read (with their sha256) in a private attribute, see
    `diffusion_sim.loader.scenario_sources`.
    """

    name: Annotated[str, StringConstraints(pattern=_NAME_PATTERN, max_length=100)]
    """Scenario name; results go to `results/<name>/<batch-id>/`."""
    description: str = ""
    """One paragraph for humans."""
    time: TimeConfig
    """The time window."""
    mechanisms: Annotated[list[Mechanism], Field(min_length=1)]
    """The migration-control mechanisms."""
    states: list[StateSpec] | None = None
    """Named states (inline; a CSV file is inlined by the loader). One of states / generate."""
    generate: Generate | None = None
    """A synthetic world. One of states / generate."""
    networks: Annotated[list[Network], Field(min_length=1)]
    """Weighted network layers."""
    diffusion: Diffusion
    """Link, channels, covariates, bilateral terms."""
    flows: Flows = Flows()
    """The optional migration-flows module (off by default)."""
    events: list[Event] = []
    """Scheduled events by calendar date."""
    observed: list[ObservedAdoption] = []
    """An observed adoption timeline."""
    runs: Runs = Runs()
    """Replicates and seed."""
    sweep: Sweep | None = None
    """Parameters to vary."""
    outputs: Outputs = Outputs()
    """Plotting and analysis options."""

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Scenario:
        if isinstance(info.context, dict) and info.context.get("checked"):
            return self
        problems = check_parts(Parts.of(self), resolved=self.model_dump(exclude_none=True))
        if problems:
            raise ValueError(
                "; ".join(f"{format_loc(loc)}: {message}" for loc, message in problems)
            )
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scenario):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def mechanism(self, mechanism_id: str) -> Mechanism:
        """The mechanism with this id (KeyError if none)."""
        for m in self.mechanisms:
            if m.id == mechanism_id:
                return m
        raise KeyError(mechanism_id)

    def network(self, network_id: str) -> Network:
        """The network layer with this id (KeyError if none)."""
        for n in self.networks:
            if n.id == network_id:
                return n
        raise KeyError(network_id)

    def state_ids(self) -> list[str]:
        """State ids in order: the inline ids, or the generated `S0000`, `S0001`, ..."""
        if self.states is not None:
            return [s.id for s in self.states]
        gen = typing.cast(Generate, self.generate)
        return [gen.state_id(i) for i in range(gen.n)]

    def channel_weight(self, mechanism_id: str, channel: str) -> float:
        """A channel's weight for a mechanism: its override, else the diffusion weight, else 0."""
        override = self.mechanism(mechanism_id).channels
        if channel in override:
            return override[channel]  # type: ignore[index]
        spec = self.diffusion.channels.get(channel)  # type: ignore[call-overload]
        return spec.weight if spec is not None else 0.0

    def covariate_weight(self, mechanism_id: str, covariate: str) -> float:
        """A covariate's weight for a mechanism: its override, else the diffusion weight,
        else 0."""
        override = self.mechanism(mechanism_id).covariates
        if covariate in override:
            return override[covariate]  # type: ignore[index]
        return float(self.diffusion.covariates.get(covariate, 0.0))  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------
# Cross-block checks
# --------------------------------------------------------------------------------------------


def format_loc(loc: Iterable[str | int]) -> str:
    """`('mechanisms', 0, 'intercept')` -> `mechanisms[0].intercept` (`<root>` when empty)."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


@dataclass
class Parts:
    """The valid pieces of a possibly invalid scenario, for `check_parts`.

    List blocks keep `(index, item)` for the items that validated; `*_unknown` holds the raw
    ids of items that did not, so that references to them are not reported a second time.
    A block is None when it is absent or invalid; `*_known` says whether every id of that
    kind is known (otherwise references of that kind are not checked).
    """

    time: TimeConfig | None = None
    mechanisms: list[tuple[int, Mechanism]] = field(default_factory=list)
    mechanisms_unknown: set[str] = field(default_factory=set)
    mechanisms_known: bool = True
    states: list[tuple[int, StateSpec]] | None = None
    states_unknown: set[str] = field(default_factory=set)
    states_known: bool = True
    has_states: bool = False
    generate: Generate | None = None
    has_generate: bool = False
    networks: list[tuple[int, Network]] = field(default_factory=list)
    networks_unknown: set[str] = field(default_factory=set)
    networks_known: bool = True
    diffusion: Diffusion | None = None
    flows: Flows | None = None
    events: list[tuple[int, Event]] = field(default_factory=list)
    observed: list[tuple[int, ObservedAdoption]] = field(default_factory=list)
    sweep: Sweep | None = None
    #: (index, id) of every list item with a string id, valid or not (for duplicate ids).
    raw_ids: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    #: generate's distributions that validated, by attribute.
    distributions: dict[str, Distribution] = field(default_factory=dict)
    #: (index, raw edges) of layers that failed validation, to check their endpoints anyway.
    raw_edges: list[tuple[int, list[Any]]] = field(default_factory=list)

    @classmethod
    def of(cls, s: Scenario) -> Parts:
        """The parts of a valid scenario."""
        return cls(
            time=s.time,
            mechanisms=list(enumerate(s.mechanisms)),
            states=None if s.states is None else list(enumerate(s.states)),
            has_states=s.states is not None,
            generate=s.generate,
            has_generate=s.generate is not None,
            networks=list(enumerate(s.networks)),
            diffusion=s.diffusion,
            flows=s.flows,
            events=list(enumerate(s.events)),
            observed=list(enumerate(s.observed)),
            sweep=s.sweep,
            distributions={
                a: getattr(s.generate, a)
                for a in ("human_rights", "openness", "pressure")
                if s.generate is not None and isinstance(getattr(s.generate, a), Distribution)
            },
        )

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Parts:
        """Validate each block (each list item) of a raw scenario on its own, keep the valid."""
        parts = cls()
        for key in ("states", "mechanisms", "networks"):
            value = raw.get(key)
            if isinstance(value, list):
                parts.raw_ids[key] = [
                    (i, item["id"])
                    for i, item in enumerate(value)
                    if isinstance(item, dict) and isinstance(item.get("id"), str)
                ]

        def one(model: type[BaseModel], value: Any) -> Any:
            try:
                return model.model_validate(value)
            except ValidationError:
                return None

        def items(key: str, model: type[BaseModel]) -> tuple[list[tuple[int, Any]], set[str], bool]:
            value = raw.get(key)
            if value is None:
                return [], set(), True
            if not isinstance(value, list):
                return [], set(), False
            good: list[tuple[int, Any]] = []
            bad: set[str] = set()
            known = True
            for i, item in enumerate(value):
                obj = one(model, item)
                if obj is not None:
                    good.append((i, obj))
                elif isinstance(item, dict) and isinstance(item.get("id"), str):
                    bad.add(item["id"])
                else:
                    known = False
            return good, bad, known

        parts.time = one(TimeConfig, raw.get("time"))
        parts.mechanisms, parts.mechanisms_unknown, parts.mechanisms_known = items(
            "mechanisms", Mechanism
        )
        parts.networks, parts.networks_unknown, parts.networks_known = items("networks", Network)
        valid = {j for j, _ in parts.networks}
        raw_networks = raw.get("networks")
        for j, net in enumerate(raw_networks if isinstance(raw_networks, list) else []):
            if j not in valid and isinstance(net, dict) and isinstance(net.get("edges"), list):
                parts.raw_edges.append((j, net["edges"]))
        gen = raw.get("generate")
        if isinstance(gen, dict):
            for attr in ("human_rights", "openness", "pressure"):
                if isinstance(gen.get(attr), dict):
                    dist = one(Distribution, gen[attr])
                    if dist is not None:
                        parts.distributions[attr] = dist
        parts.has_states = raw.get("states") is not None
        parts.has_generate = raw.get("generate") is not None
        if parts.has_states:
            states, parts.states_unknown, parts.states_known = items("states", StateSpec)
            parts.states = states
        if parts.has_generate:
            parts.generate = one(Generate, raw.get("generate"))
            parts.states_known = parts.states_known and parts.generate is not None
        parts.diffusion = one(Diffusion, raw.get("diffusion"))
        parts.flows = one(Flows, raw.get("flows") if raw.get("flows") is not None else {})
        parts.events = items("events", Event)[0]
        parts.observed = items("observed", ObservedAdoption)[0]
        if raw.get("sweep") is not None:
            parts.sweep = one(Sweep, raw.get("sweep"))
        return parts


class _Ids:
    """Membership test for ids of one kind, tolerant of items that failed validation."""

    def __init__(
        self,
        valid: Iterable[str],
        unknown: Iterable[str] = (),
        known: bool = True,
        extra: Callable[[str], bool] | None = None,
    ) -> None:
        self.valid = set(valid)
        self.unknown = set(unknown)
        self.known = known
        self.extra = extra

    def bad(self, ident: str) -> bool:
        """True when `ident` is certainly not an id of this kind."""
        if not self.known or ident in self.valid or ident in self.unknown:
            return False
        return not (self.extra is not None and self.extra(ident))

    def message(self, kind: str, ident: str) -> str:
        from difflib import get_close_matches

        close = get_close_matches(ident, sorted(self.valid), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown {kind} '{ident}'{hint}"


def unsweepable(path: str) -> str | None:
    """Why a dotted path cannot be swept, or ``None``: every point of a batch shares its name,
    root seed, replicates and chunk size, so a sweep over them would be recorded as a
    parameter without taking effect."""
    head = path.split(".")[0]
    if head in ("runs", "sweep", "name", "description"):
        return (
            f"{path} cannot be swept: every point of a batch shares the batch's "
            f"{'seed, replicates and chunk size' if head == 'runs' else head}"
            f"{' (use --seed / --replicates, or separate runs)' if head == 'runs' else ''}"
        )
    return None


def sobol_samples_problem(method: str, samples: int) -> str | None:
    """Sobol' points keep their balance properties only for a power of 2 (scipy warns)."""
    if method != "sobol" or samples < 1 or samples & (samples - 1) == 0:
        return None
    low = 1 << (samples.bit_length() - 1)
    return (
        f"sobol needs a power of 2 samples to keep its balance properties (got {samples}; "
        f"use {low} or {2 * low}), or use the lhs method"
    )


def check_parts(parts: Parts, resolved: Mapping[str, Any] | None = None) -> list[tuple[Loc, str]]:
    """Every cross-block problem of a scenario, each with its location.

    Args:
        parts: the valid pieces of the scenario (see `Parts`).
        resolved: the scenario as plain data, used to check that sweep paths exist; sweep
            paths are not checked when None.
    """
    out: list[tuple[Loc, str]] = []

    def add(loc: Loc, message: str) -> None:
        out.append((loc, message))

    # states / generate
    if parts.has_states and parts.has_generate:
        add(("generate",), "give either `states` or `generate`, not both")
    elif not parts.has_states and not parts.has_generate:
        add(("states",), "missing: give `states` (named states) or `generate` (a synthetic world)")

    # duplicate ids
    for key, items in (
        ("states", parts.states or []),
        ("mechanisms", parts.mechanisms),
        ("networks", parts.networks),
    ):
        first: dict[str, int] = {}
        ids = parts.raw_ids.get(key, [(i, typing.cast(Any, item).id) for i, item in items])
        for i, ident in ids:
            if ident in first:
                add((key, i, "id"), f"duplicate id '{ident}' (first at {key}[{first[ident]}])")
            else:
                first[ident] = i

    generate = parts.generate
    state_ids = _Ids(
        (s.id for _, s in parts.states or []),
        parts.states_unknown,
        parts.states_known and (parts.has_states != parts.has_generate),
        generate.has_state if generate is not None and not parts.has_states else None,
    )
    mechanisms = {m.id: m for _, m in parts.mechanisms}
    mech_ids = _Ids(mechanisms, parts.mechanisms_unknown, parts.mechanisms_known)
    networks = {n.id: n for _, n in parts.networks}
    layer_ids = _Ids(networks, parts.networks_unknown, parts.networks_known)
    n_states: int | None = None
    if parts.states is not None and parts.states_known and not parts.states_unknown:
        n_states = len(parts.states)
    elif generate is not None and not parts.has_states:
        n_states = generate.n

    def state_ref(loc: Loc, ident: str) -> None:
        if state_ids.bad(ident):
            add(loc, state_ids.message("state", ident))

    def layer_ref(loc: Loc, ident: str) -> Network | None:
        if layer_ids.bad(ident):
            add(loc, layer_ids.message("layer", ident))
        return networks.get(ident)

    def mechanism_ref(loc: Loc, ident: str) -> Mechanism | None:
        if mech_ids.bad(ident):
            add(loc, mech_ids.message("mechanism", ident))
        return mechanisms.get(ident)

    # generate
    for attr, (lo, hi) in (
        ("human_rights", (0.0, 1.0)),
        ("openness", (0.0, 1.0)),
        ("pressure", (0.0, math.inf)),
    ):
        dist = parts.distributions.get(attr)
        if dist is not None and dist.distribution == "uniform":
            if typing.cast(float, dist.low) < lo:
                add(("generate", attr, "low"), f"must be >= {lo:g} for {attr}")
            if typing.cast(float, dist.high) > hi:
                add(("generate", attr, "high"), f"must be <= {hi:g} for {attr}")
    if generate is not None:
        if generate.sponsors > generate.n:
            add(
                ("generate", "sponsors"),
                f"more sponsors ({generate.sponsors}) than states ({generate.n})",
            )
        if generate.regions > generate.n:
            add(
                ("generate", "regions"),
                f"more regions ({generate.regions}) than states ({generate.n})",
            )

    # mechanisms
    channels = parts.diffusion.channels if parts.diffusion is not None else None
    for i, m in parts.mechanisms:
        if m.revocation_rate > 0 and not m.revocable:
            add(
                ("mechanisms", i, "revocation_rate"), "revocation_rate > 0 requires revocable: true"
            )
        if m.tcn_delay is not None and not m.bilateral:
            add(("mechanisms", i, "tcn_delay"), "tcn_delay is for bilateral mechanisms only")
        if channels is not None:
            for c in m.channels:
                if c not in channels:
                    add(
                        ("mechanisms", i, "channels", c),
                        f"channel '{c}' has no layer: configure diffusion.channels.{c}",
                    )
    bilateral = [m.id for _, m in parts.mechanisms if m.bilateral]
    if bilateral and parts.diffusion is not None and parts.diffusion.bilateral is None:
        add(
            ("diffusion", "bilateral"),
            f"required because mechanism '{bilateral[0]}' is bilateral",
        )

    # networks
    for j, net in parts.networks:
        given = [s for s in ("edges", "generator", "groups") if getattr(net, s) is not None]
        if len(given) != 1:
            add(
                ("networks", j),
                "a layer takes exactly one source of edges, file, generator, groups"
                + (f"; got {', '.join(given)}" if given else "; got none"),
            )
        needs = GENERATOR_PARAMS.get(net.generator or "", ())
        for param in ("p", "k", "m"):
            value = getattr(net, param)
            if net.generator is not None and param in needs and value is None:
                add(("networks", j, param), f"generator {net.generator} needs `{param}`")
            elif value is not None and param not in needs:
                by = f"generator {net.generator}" if net.generator else "a layer without generator"
                add(("networks", j, param), f"`{param}` is not taken by {by}")
        if net.weights is not None:
            if net.generator is None:
                add(("networks", j, "weights"), "`weights` is for generated layers only")
            if net.weights.low < 0:
                add(("networks", j, "weights", "low"), "edge weights must be >= 0")
        if n_states is not None:
            if net.generator == "watts_strogatz" and net.k is not None and net.k >= n_states:
                add(("networks", j, "k"), f"k must be < the number of states ({n_states})")
            if net.generator == "barabasi_albert" and net.m is not None and net.m >= n_states:
                add(("networks", j, "m"), f"m must be < the number of states ({n_states})")
        for e, (src, dst, _w) in enumerate(net.edges or []):
            state_ref(("networks", j, "edges", e, 0), src)
            state_ref(("networks", j, "edges", e, 1), dst)
            if src == dst:
                add(("networks", j, "edges", e), f"self-loop {src}-{dst}")
        for group, members in (net.groups or {}).items():
            seen: set[str] = set()
            for e, ident in enumerate(members):
                state_ref(("networks", j, "groups", group, e), ident)
                if ident in seen:
                    add(("networks", j, "groups", group, e), f"'{ident}' is listed twice")
                seen.add(ident)

    for j, raw_edges in parts.raw_edges:
        for e, edge in enumerate(raw_edges):
            if isinstance(edge, list) and len(edge) in (2, 3):
                for end in (0, 1):
                    if isinstance(edge[end], str):
                        state_ref(("networks", j, "edges", e, end), edge[end])
                if isinstance(edge[0], str) and edge[0] == edge[1]:
                    add(("networks", j, "edges", e), f"self-loop {edge[0]}-{edge[1]}")

    # diffusion
    if parts.diffusion is not None:
        for c, ch in parts.diffusion.channels.items():
            layer_ref(("diffusion", "channels", c, "layer"), ch.layer)
        if parts.diffusion.bilateral is not None:
            layer_ref(
                ("diffusion", "bilateral", "candidates"), parts.diffusion.bilateral.candidates
            )

    # flows
    if parts.flows is not None and parts.flows.enabled:
        if parts.flows.layer is None:
            add(("flows", "layer"), "required when flows are enabled")
        else:
            net_ = layer_ref(("flows", "layer"), parts.flows.layer)
            if net_ is not None and not net_.directed:
                add(
                    ("flows", "layer"),
                    f"layer '{net_.id}' must be directed (origin -> destination)",
                )

    # events and observations
    time = parts.time

    def in_window(loc: Loc, date: int | datetime.date) -> None:
        if time is not None and not time.contains(date):
            add(
                loc,
                f"date {date} is outside the time window [{time.start}, {time.end})",
            )

    def dyad(loc: Loc, mech: Mechanism | None, state: str, partner: str | None, what: str) -> None:
        state_ref((*loc, "state"), state)
        if partner is not None:
            state_ref((*loc, "partner"), partner)
            if partner == state:
                add((*loc, "partner"), f"a state cannot {what} with itself")
        if mech is None:
            return
        if mech.bilateral and partner is None:
            add((*loc, "partner"), f"required: '{mech.id}' is bilateral")
        elif not mech.bilateral and partner is not None:
            add((*loc, "partner"), f"not allowed: '{mech.id}' is unilateral")

    group_members: dict[tuple[str, str], bool] = {}
    for _j, net in parts.networks:
        for group in net.groups or {}:
            group_members[(net.id, group)] = True

    for i, ev in parts.events:
        loc: Loc = ("events", i)
        in_window((*loc, "date"), ev.date)
        act = ev.action
        pl = ev.payload
        aloc: Loc = (*loc, act)
        if isinstance(pl, AdoptAction | BlockAction):
            mech = mechanism_ref((*aloc, "mechanism"), pl.mechanism)
            dyad(aloc, mech, pl.state, pl.partner, "conclude an agreement")
            if isinstance(pl, AdoptAction) and not pl.tcn:
                if mech is not None and not mech.bilateral:
                    add((*aloc, "tcn"), f"not allowed: '{mech.id}' is unilateral")
                if pl.tcn_from is not None:
                    add((*aloc, "tcn"), "tcn: false cannot be combined with tcn_from")
            if isinstance(pl, AdoptAction) and pl.tcn_from is not None:
                if mech is not None and not mech.bilateral:
                    add((*aloc, "tcn_from"), f"not allowed: '{mech.id}' is unilateral")
                if time is not None and time.step_of(pl.tcn_from) < time.step_of(ev.date):
                    add(
                        (*aloc, "tcn_from"),
                        f"the TCN clause cannot apply before the event ({ev.date})",
                    )
        elif isinstance(pl, SetAction):
            state_ref((*aloc, "state"), pl.state)
            if pl.value is not None:
                hi = (
                    1.0
                    if pl.attribute in ("human_rights", "openness")
                    else (1e6 if pl.attribute == "leverage" else BIG)
                )
                if pl.value > hi:
                    add((*aloc, "value"), f"{pl.attribute} must be <= {hi:g}")
        else:
            state_ref((*aloc, "state"), pl.state)
            net_ = layer_ref((*aloc, "layer"), pl.layer)
            if net_ is not None:
                if net_.groups is None:
                    add((*aloc, "layer"), f"layer '{net_.id}' has no groups")
                elif (net_.id, pl.group) not in group_members:
                    add(
                        (*aloc, "group"),
                        f"unknown group '{pl.group}' in layer '{net_.id}'"
                        " (declare it in the layer's groups, possibly empty)",
                    )

    for i, ob in parts.observed:
        loc = ("observed", i)
        in_window((*loc, "date"), ob.date)
        mech = mechanism_ref((*loc, "mechanism"), ob.mechanism)
        dyad(loc, mech, ob.state, ob.partner, "conclude an agreement")

    # sweep
    if parts.sweep is not None:
        reason = sobol_samples_problem(parts.sweep.method, parts.sweep.samples)
        if reason is not None:
            add(("sweep", "samples"), reason)
        for path, values in parts.sweep.parameters.items():
            loc = ("sweep", "parameters", path)
            reason = unsweepable(path)
            if reason is not None:
                add(loc, reason)
            if parts.sweep.method == "grid" and isinstance(values, Range):
                add(loc, "the grid method takes a list of values, not a range")
            elif parts.sweep.method != "grid" and not isinstance(values, Range):
                add(loc, f"the {parts.sweep.method} method takes a range {{low, high}}")
            if resolved is not None:
                error = resolve_path(resolved, path.split("."))[1]
                if error is not None:
                    add(loc, f"no such parameter: {error}")
    return out


# --------------------------------------------------------------------------------------------
# Schema walking: dotted paths and allowed keys
# --------------------------------------------------------------------------------------------


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    tp = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def allowed_keys(tp: Any) -> list[str] | None:
    """The keys a mapping of type `tp` takes (None when any key goes)."""
    keys: list[str] = []
    for member in _members(tp):
        if _is_model(member):
            keys.extend(member.model_fields)
        elif typing.get_origin(member) is dict:
            key_t = _strip(typing.get_args(member)[0])
            if typing.get_origin(key_t) is Literal:
                keys.extend(str(k) for k in typing.get_args(key_t))
            else:
                return None
    return keys


def child_type(tp: Any, key: str | int, node: Any = None) -> Any:
    """The type of `tp[key]` (None when `tp` has no such key); `node` is the raw value of
    `tp`, used to choose among union members."""
    for member in _members(tp):
        origin = typing.get_origin(member)
        if _is_model(member) and isinstance(key, str) and key in member.model_fields:
            return member.model_fields[key].annotation
        if origin is dict and not isinstance(node, list):
            key_t, value_t = typing.get_args(member)
            key_t = _strip(key_t)
            if typing.get_origin(key_t) is not Literal or key in typing.get_args(key_t):
                return value_t
        if origin is list and isinstance(key, int) and not isinstance(node, dict):
            return typing.get_args(member)[0]
        if origin is tuple and isinstance(key, int):
            args = typing.get_args(member)
            if 0 <= key < len(args):
                return args[key]
    return None


def _find_item(items: list[Any], part: str) -> int | None:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("id") == part:
            return i
    if part.isdigit() and int(part) < len(items):
        return int(part)
    return None


def _suggest(word: str, choices: Iterable[Any]) -> str:
    from difflib import get_close_matches

    names = sorted({str(c) for c in choices})
    close = get_close_matches(word, names, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if names and len(names) <= 12:
        return f" (expected one of: {', '.join(names)})"
    return ""


def resolve_path(
    data: Any, parts: list[str], create: bool = False
) -> tuple[tuple[Loc, Any, str | int] | None, str | None]:
    """Find a dotted path in raw scenario data, list items by `id` or integer index.

    Args:
        data: the raw scenario (plain dicts and lists).
        parts: the path split on dots.
        create: create missing intermediate mappings for keys the schema allows.

    Returns:
        `((loc, container, key), None)` where `container[key]` is the addressed value (the key
        may be absent if the schema allows it), or `(None, message)` when the path does not
        exist, the message naming the first bad component with a suggestion.
    """
    node: Any = data
    tp: Any = Scenario
    loc: Loc = ()
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        where = format_loc(loc)
        if isinstance(node, dict):
            key: str | int = part
            if part not in node:
                matches = [k for k in node if str(k) == part]
                if matches:
                    key = matches[0]
            sub_t = child_type(tp, key, node) if tp is not None else None
            if key not in node and sub_t is None:
                keys = allowed_keys(tp) or list(node)
                return None, f"unknown key '{part}' in {where}" + _suggest(part, keys)
            if last:
                return ((*loc, key), node, key), None
            if key not in node or node[key] is None:
                if not create:
                    return None, f"'{format_loc((*loc, key))}' is not set in the scenario"
                node[key] = {}
            node, tp, loc = node[key], sub_t, (*loc, key)
        elif isinstance(node, list):
            index = _find_item(node, part)
            if index is None:
                ids = [i.get("id") for i in node if isinstance(i, dict) and "id" in i]
                return None, f"no item '{part}' in {where}" + _suggest(part, ids)
            sub_t = child_type(tp, index, node) if tp is not None else None
            if last:
                return ((*loc, index), node, index), None
            node, tp, loc = node[index], sub_t, (*loc, index)
        else:
            return None, f"{where} is a {type(node).__name__}, it has no key '{part}'"
    return None, "empty path"


def iter_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted name, description) for every field of a model, nested models included."""
    for name, info in model.model_fields.items():
        yield prefix + name, info.description or ""
        for member in _members(info.annotation):
            if _is_model(member) and member is not model:
                yield from iter_fields(member, prefix + name + ".")
