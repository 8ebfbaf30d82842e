"""Compile a validated scenario into arrays: the world the kernel steps through.

Everything here is deterministic given the scenario and the world seed: state attributes,
network layers (and their versions after membership events), the bilateral candidate dyads,
the migration matrix of the flows module and the schedule of exogenous events. The world is
shared by every replicate of a sweep point; replicates differ only in their adoption draws.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from .config import Scenario
from .layers import EdgeLayer, Layer, MembershipLayer

CHANNELS = ("emulation", "learning", "competition", "conditionality")
COVARIATES = ("openness", "human_rights", "pressure")
BILATERAL_TERMS = ("demand", "conditionality", "chain", "emulation", "hr_gap", "openness")
ATTRIBUTES = ("human_rights", "openness", "pressure", "leverage")
NO_TCN = -1
#: The terms of a linear predictor recorded with each event (``c_<term>``), in table order.
CONTRIBUTIONS = (
    "intercept",
    *CHANNELS,
    "demand",
    "chain",
    "hr_gap",
    *COVARIATES,
)
#: Event actions (the ``action`` column).
ADOPT, REVOKE = 0, 1


@dataclass(frozen=True)
class MechanismSpec:
    """A mechanism's resolved parameters (per-mechanism overrides already applied)."""

    index: int
    id: str
    label: str
    kind: str
    intercept: float
    effectiveness: float
    revocation_rate: float
    tcn_delay: int  # NO_TCN when the mechanism has no TCN clause
    channel_weight: dict[str, float]
    channel_layer: dict[str, str | None]
    covariate_weight: dict[str, float]

    @property
    def bilateral(self) -> bool:
        return self.kind == "bilateral"


@dataclass(frozen=True)
class ScheduledAdoption:
    """An exogenous adoption (or agreement) applied at the start of ``step``."""

    step: int
    mechanism: int
    state: int
    partner: int  # -1 for unilateral
    tcn_step: int  # NO_TCN when no clause applies


@dataclass(frozen=True)
class AttributeChange:
    """``attribute[state] = value`` (or ``+= add``) at the start of ``step``."""

    step: int
    attribute: str
    state: int
    value: float | None
    add: float | None


@dataclass
class Dyads:
    """Candidate dyads ``(a, b)``, ``a < b``, of the bilateral mechanisms."""

    a: np.ndarray
    b: np.ndarray
    index: dict[tuple[int, int], int]
    candidate_by_step: list[np.ndarray]  # bool (D,) per step: tied on the candidate layer now
    blocked_by_step: list[np.ndarray]  # bool (D, Mb) per step

    def __len__(self) -> int:
        return len(self.a)


@dataclass
class Flows:
    """The migration matrix as edges ``origin -> destination`` with baseline volumes, sorted
    by origin (the matrix's row-major order; the flows update relies on it)."""

    origin: np.ndarray
    destination: np.ndarray
    volume: np.ndarray
    deflection: float
    dyad: np.ndarray  # candidate dyad index of each edge's pair, -1 if none
    scale: float  # pressure = inflow / scale (the largest baseline inflow)
    agreements: str = "both"  # an agreement cuts "both" directions or only into the "requester"


@dataclass
class World:
    """All arrays of one sweep point."""

    ids: list[str]
    names: list[str]
    regions: list[str]
    region_of: np.ndarray  # (n,) region index
    human_rights: np.ndarray
    openness: np.ndarray
    pressure: np.ndarray
    sponsor: np.ndarray  # bool
    leverage: np.ndarray
    start: int
    steps: int
    link: str
    mechanisms: list[MechanismSpec]
    layers: dict[str, Layer]
    layer_changes: dict[int, list[Layer]]
    bilateral_terms: dict[str, float]
    candidate_layer: str | None
    dyads: Dyads
    flows: Flows | None
    adoptions: dict[int, list[ScheduledAdoption]]
    unilateral_blocked_by_step: list[np.ndarray]  # bool (n, Mu) per step
    attribute_changes: dict[int, list[AttributeChange]]
    index: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def unilateral(self) -> list[MechanismSpec]:
        return [m for m in self.mechanisms if not m.bilateral]

    @property
    def bilateral(self) -> list[MechanismSpec]:
        return [m for m in self.mechanisms if m.bilateral]

    def date_of(self, step: int) -> float:
        return float(self.start + step)


def calendar_year(date: Any) -> float:
    """A year (int) or a date as a fractional calendar year (1 January = the year itself)."""
    if isinstance(date, int | float):
        return float(date)
    days = 366 if calendar.isleap(date.year) else 365
    return date.year + (date.timetuple().tm_yday - 1) / days


def _draw(spec: Any, n: int, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A constant or a distribution drawn for n states, clipped to [low, high]."""
    if spec is None:
        return np.zeros(n)
    if isinstance(spec, int | float):
        return np.full(n, float(spec))
    kind = spec.distribution
    if kind == "uniform":
        x = rng.uniform(spec.low, spec.high, n)
    elif kind == "beta":
        x = rng.beta(spec.a, spec.b, n)
    elif kind == "normal":
        x = rng.normal(spec.mean, spec.sd, n)
    else:  # pragma: no cover - the schema admits no other kind
        raise ValueError(f"unknown distribution {kind!r}")
    return np.clip(x, low, high)


def _openness_scalar(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    dims = [v for v in (value.goods, value.capital, value.services) if v is not None]
    return float(np.mean(dims))


def _states(scenario: Scenario, rng: np.random.Generator) -> dict[str, Any]:
    gen = scenario.generate
    if gen is not None:
        n = gen.n
        ids = scenario.state_ids()
        n_regions = gen.regions
        region_names = gen.region_labels()
        region_of = (np.arange(n) * n_regions) // n  # as Generate.region_of
        sponsor = np.zeros(n, dtype=bool)
        sponsor[: gen.sponsors] = True
        return {
            "ids": ids,
            "names": list(ids),
            "regions": region_names,
            "region_of": region_of.astype(np.int64),
            "human_rights": _draw(gen.human_rights, n, rng, 0.0, 1.0),
            "openness": _draw(gen.openness, n, rng, 0.0, 1.0),
            "pressure": _draw(gen.pressure, n, rng, 0.0, np.inf),
            "sponsor": sponsor,
            "leverage": sponsor.astype(np.float64),
        }
    states = list(scenario.states or [])
    regions: list[str] = []
    for s in states:
        if s.region not in regions:
            regions.append(s.region)
    return {
        "ids": [s.id for s in states],
        "names": [s.name or s.id for s in states],
        "regions": regions,
        "region_of": np.array([regions.index(s.region) for s in states], dtype=np.int64),
        "human_rights": np.array([s.human_rights for s in states], dtype=np.float64),
        "openness": np.array([_openness_scalar(s.openness) for s in states], dtype=np.float64),
        "pressure": np.array([s.pressure for s in states], dtype=np.float64),
        "sponsor": np.array([s.sponsor for s in states], dtype=bool),
        "leverage": np.array([s.leverage for s in states], dtype=np.float64),
    }


def _edge_tuple(edge: Any) -> tuple[str, str, float]:
    if isinstance(edge, list | tuple):
        return str(edge[0]), str(edge[1]), float(edge[2]) if len(edge) > 2 else 1.0
    weight = getattr(edge, "weight", None)
    return str(edge.source), str(edge.target), 1.0 if weight is None else float(weight)


def _generated_layer(net: Any, n: int, region_of: np.ndarray, rng: np.random.Generator) -> Layer:
    """networkx generators seeded from the world generator (never global state)."""
    kind = net.generator
    if kind == "complete":
        return MembershipLayer.from_groups(net.id, n, [list(range(n))])
    if kind == "same_region":
        groups = [np.flatnonzero(region_of == r) for r in range(int(region_of.max()) + 1)]
        return MembershipLayer.from_groups(net.id, n, groups)
    seed = int(rng.integers(2**32))
    if kind == "erdos_renyi":
        g = nx.fast_gnp_random_graph(n, net.p, seed=seed, directed=bool(net.directed))
    elif kind == "watts_strogatz":
        g = nx.watts_strogatz_graph(n, net.k, net.p, seed=seed)
    elif kind == "barabasi_albert":
        g = nx.barabasi_albert_graph(n, net.m, seed=seed)
    else:  # pragma: no cover - the schema admits no other generator
        raise ValueError(f"unknown generator {kind!r}")
    edges = np.array(list(g.edges()), dtype=np.int64).reshape(-1, 2)
    if net.weights is None:
        w = np.ones(len(edges))
    else:
        w = rng.uniform(net.weights.low, net.weights.high, len(edges))
    directed = bool(net.directed) and kind == "erdos_renyi"
    return EdgeLayer.from_edges(net.id, n, edges[:, 0], edges[:, 1], w, directed)


def _layer(net: Any, n: int, index: dict[str, int], region_of: np.ndarray, rng) -> Layer:
    if net.generator is not None:
        return _generated_layer(net, n, region_of, rng)
    if net.groups is not None:
        return MembershipLayer.from_groups(
            net.id, n, [[index[s] for s in members] for members in net.groups.values()]
        )
    triples = [_edge_tuple(e) for e in (net.edges or [])]
    src = np.array([index[s] for s, _, _ in triples], dtype=np.int64)
    dst = np.array([index[t] for _, t, _ in triples], dtype=np.int64)
    w = np.array([x for _, _, x in triples], dtype=np.float64)
    return EdgeLayer.from_edges(net.id, n, src, dst, w, bool(net.directed))


def resolve_mechanisms(scenario: Scenario) -> list[MechanismSpec]:
    """Each mechanism's parameters with per-mechanism channel/covariate overrides applied."""
    channels = scenario.diffusion.channels or {}
    out = []
    for k, m in enumerate(scenario.mechanisms):
        out.append(
            MechanismSpec(
                index=k,
                id=m.id,
                label=m.label or m.id,
                kind=m.kind,
                intercept=float(m.intercept),
                effectiveness=float(m.effectiveness),
                revocation_rate=float(m.revocation_rate) if m.revocable else 0.0,
                tcn_delay=NO_TCN if m.tcn_delay is None else int(m.tcn_delay),
                channel_weight={c: scenario.channel_weight(m.id, c) for c in CHANNELS},
                channel_layer={c: (channels[c].layer if c in channels else None) for c in CHANNELS},
                covariate_weight={c: scenario.covariate_weight(m.id, c) for c in COVARIATES},
            )
        )
    return out


def build_world(scenario: Scenario, seed: np.random.SeedSequence) -> World:
    """Compile ``scenario`` into a :class:`World`, drawing generated parts from ``seed``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    st = _states(scenario, rng)
    n = len(st["ids"])
    index = {s: i for i, s in enumerate(st["ids"])}
    mechanisms = resolve_mechanisms(scenario)
    mech_index = {m.id: m.index for m in mechanisms}
    time = scenario.time

    layers: dict[str, Layer] = {}
    groups: dict[str, dict[str, set[int]]] = {}
    for net in scenario.networks:
        layers[net.id] = _layer(net, n, index, st["region_of"], rng)
        if net.groups is not None:
            groups[net.id] = {g: {index[s] for s in members} for g, members in net.groups.items()}

    adoptions: dict[int, list[ScheduledAdoption]] = defaultdict(list)
    changes: dict[int, list[AttributeChange]] = defaultdict(list)
    membership_events: dict[int, list[tuple[str, str, int, bool]]] = defaultdict(list)
    blocks: list[tuple[int, int, int, int, int]] = []  # from, until, mech, a, b (-1: unilateral)
    for ev in scenario.events or []:
        step = time.step_of(ev.date)
        if ev.adopt is not None:
            a = ev.adopt
            mech = mechanisms[mech_index[a.mechanism]]
            if not a.tcn:
                tcn = NO_TCN
            elif a.tcn_from is not None:
                tcn = time.step_of(a.tcn_from)
            elif mech.bilateral and mech.tcn_delay != NO_TCN:
                tcn = step + mech.tcn_delay
            else:
                tcn = NO_TCN
            partner = index[a.partner] if a.partner is not None else -1
            adoptions[step].append(
                ScheduledAdoption(step, mech.index, index[a.state], partner, tcn)
            )
        elif ev.set is not None:
            s = ev.set
            changes[step].append(
                AttributeChange(step, s.attribute, index[s.state], s.value, getattr(s, "add", None))
            )
        elif ev.join is not None or ev.leave is not None:
            j = ev.join if ev.join is not None else ev.leave
            assert j is not None
            membership_events[step].append((j.layer, j.group, index[j.state], ev.join is not None))
        elif ev.block is not None:
            b = ev.block
            if b.partner is None:
                blocks.append((step, time.steps, mech_index[b.mechanism], index[b.state], -1))
            else:
                x, y = sorted((index[b.state], index[b.partner]))
                blocks.append((step, time.steps, mech_index[b.mechanism], x, y))
    # A scheduled adoption is exogenous: it cannot happen endogenously before its date.
    for step, scheduled in adoptions.items():
        for ad in scheduled:
            if ad.partner < 0:
                blocks.append((0, step, ad.mechanism, ad.state, -1))
            else:
                x, y = sorted((ad.state, ad.partner))
                blocks.append((0, step, ad.mechanism, x, y))

    layer_changes: dict[int, list[Layer]] = {}
    versions: dict[str, list[tuple[int, Layer]]] = {k: [(0, v)] for k, v in layers.items()}
    # Events dated at step 0 shape the initial layers, later ones give new versions.
    for step in sorted(membership_events):
        touched: set[str] = set()
        for layer_id, group, state, joining in membership_events[step]:
            members = groups.setdefault(layer_id, {}).setdefault(group, set())
            (members.add if joining else members.discard)(state)
            touched.add(layer_id)
        new_layers: list[Layer] = []
        for layer_id in sorted(touched):
            layer = MembershipLayer.from_groups(
                layer_id, n, [sorted(m) for m in groups[layer_id].values()]
            )
            versions[layer_id].append((step, layer))
            if step == 0:
                layers[layer_id] = layer
            else:
                new_layers.append(layer)
        if step > 0:
            layer_changes[step] = new_layers

    bilateral = scenario.diffusion.bilateral
    candidate_layer = bilateral.candidates if bilateral is not None else None
    dyads = _dyads(
        n, time.steps, candidate_layer, versions, blocks, adoptions, len(mechanisms), mechanisms
    )
    flows = _flows(scenario, layers, dyads, n)
    if flows is not None:
        st["pressure"] = _baseline_pressure(flows, n)
    terms = {t: float(getattr(bilateral, t)) for t in BILATERAL_TERMS} if bilateral else {}
    mu = {m.index: k for k, m in enumerate(m for m in mechanisms if not m.bilateral)}
    uni_windows = [(s0, s1, (x, mu[mech])) for s0, s1, mech, x, y in blocks if y < 0]
    uni_blocked = block_masks((n, len(mu)), time.steps, uni_windows)
    return World(
        ids=st["ids"],
        names=st["names"],
        regions=st["regions"],
        region_of=st["region_of"],
        human_rights=st["human_rights"],
        openness=st["openness"],
        pressure=st["pressure"],
        sponsor=st["sponsor"],
        leverage=st["leverage"],
        start=int(time.start),
        steps=int(time.steps),
        link=scenario.diffusion.link,
        mechanisms=mechanisms,
        layers=layers,
        layer_changes=layer_changes,
        bilateral_terms=terms,
        candidate_layer=candidate_layer,
        dyads=dyads,
        flows=flows,
        adoptions=dict(adoptions),
        unilateral_blocked_by_step=uni_blocked,
        attribute_changes=dict(changes),
        index=index,
    )


def _dyads(
    n: int,
    steps: int,
    candidate_layer: str | None,
    versions: dict[str, list[tuple[int, Layer]]],
    blocks: list[tuple[int, int, int, int, int]],
    adoptions: dict[int, list[ScheduledAdoption]],
    n_mech: int,
    mechanisms: list[MechanismSpec],
) -> Dyads:
    """Candidate dyads: every pair tied on any version of the candidate layer, plus every pair
    named by a scheduled agreement (an exogenous agreement needs no migration tie)."""
    bilateral_ids = [m.index for m in mechanisms if m.bilateral]
    keys: list[np.ndarray] = []
    layer_versions = versions.get(candidate_layer, []) if candidate_layer else []
    for _, layer in layer_versions:
        a, b = layer.pairs()
        keys.append(a * n + b)
    scheduled = [
        min(s.state, s.partner) * n + max(s.state, s.partner)
        for events in adoptions.values()
        for s in events
        if s.partner >= 0
    ]
    keys.append(np.asarray(scheduled, dtype=np.int64))
    keys.append(np.asarray([a * n + b for *_, a, b in blocks if b >= 0], dtype=np.int64))
    key = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
    a, b = key // n, key % n
    index = {(int(x), int(y)): k for k, (x, y) in enumerate(zip(a, b, strict=True))}

    candidate_by_step: list[np.ndarray] = []
    current = np.zeros(len(key), dtype=bool)
    version_steps = {s: layer for s, layer in layer_versions}
    for step in range(steps):
        if step in version_steps:
            pa, pb = version_steps[step].pairs()
            current = np.isin(key, pa * n + pb)
        candidate_by_step.append(current)

    mb = {m: k for k, m in enumerate(bilateral_ids)}
    windows = [
        (start, until, (index[(x, y)], mb[mech])) for start, until, mech, x, y in blocks if y >= 0
    ]
    blocked_by_step = block_masks((len(key), len(bilateral_ids)), steps, windows)
    return Dyads(a, b, index, candidate_by_step, blocked_by_step)


def block_masks(
    shape: tuple[int, ...], steps: int, windows: Sequence[tuple[int, int, tuple[int, ...]]]
) -> list[np.ndarray]:
    """Per step, a bool mask of the positions blocked in ``[start, until)`` by some window
    (steps without a change share one array)."""
    changes: dict[int, list[tuple[tuple[int, ...], int]]] = defaultdict(list)
    for start, until, pos in windows:
        if start < until:
            changes[start].append((pos, 1))
            changes[until].append((pos, -1))
    count = np.zeros(shape, dtype=np.int64)
    current = np.zeros(shape, dtype=bool)
    out = []
    for step in range(steps):
        if step in changes:
            count = count.copy()
            for pos, delta in changes[step]:
                count[pos] += delta
            current = count > 0
        out.append(current)
    return out


def _flows(scenario: Scenario, layers: dict[str, Layer], dyads: Dyads, n: int) -> Flows | None:
    cfg = scenario.flows
    if cfg is None or not cfg.enabled or cfg.layer is None:
        return None
    layer = layers[cfg.layer]
    if not isinstance(layer, EdgeLayer):
        raise ValueError(f"flows.layer: layer {cfg.layer!r} must be an edge layer (not groups)")
    coo = layer.matrix.tocoo()
    keep = (coo.row != coo.col) & (coo.data > 0)
    origin, dest, vol = coo.row[keep], coo.col[keep], coo.data[keep].astype(np.float64)
    lo, hi = np.minimum(origin, dest), np.maximum(origin, dest)
    dyad = np.array([dyads.index.get((int(x), int(y)), -1) for x, y in zip(lo, hi, strict=True)])
    inflow = np.bincount(dest, weights=vol, minlength=n)
    scale = float(inflow.max()) if inflow.size and inflow.max() > 0 else 1.0
    return Flows(
        origin.astype(np.int64),
        dest.astype(np.int64),
        vol,
        float(cfg.deflection),
        dyad.astype(np.int64),
        scale,
        cfg.agreements,
    )


def _baseline_pressure(flows: Flows, n: int) -> np.ndarray:
    """pressure_i = inflow_i / largest baseline inflow (DESIGN.md section 1, flows module)."""
    return np.bincount(flows.destination, weights=flows.volume, minlength=n) / flows.scale
