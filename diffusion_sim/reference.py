"""A plain per-agent reference of the model's rules: readable, slow, used only to check the kernel.

Each state is an object with its own attributes and adoptions; every rule of DESIGN.md
section 1 is written as loops over states, neighbours and dyads. The update is synchronous, as
in the kernel (Mesa's random-order activation would spread faster and not be comparable), and
each step consumes the same block of uniforms in the same layout as the kernel, so on the same
seed both give the same events up to floating-point ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernel import hazard
from .layers import EdgeLayer, Layer
from .world import NO_TCN, World


@dataclass
class RefState:
    index: int
    human_rights: float
    openness: float
    pressure: float
    leverage: float
    sponsor: bool
    adopted: dict[int, bool] = field(default_factory=dict)  # unilateral position -> held
    pressure_at_adoption: dict[int, float] = field(default_factory=dict)
    generation_u: dict[int, float] = field(default_factory=dict)
    generation_b: dict[int, float] = field(default_factory=dict)


def _ties(layer: Layer) -> list[dict[int, float]]:
    """Each state's out-ties ``{neighbour: weight}``."""
    n = layer.n
    if isinstance(layer, EdgeLayer):
        m = layer.matrix
        return [
            {
                int(j): float(w)
                for j, w in zip(
                    m.indices[m.indptr[i] : m.indptr[i + 1]],
                    m.data[m.indptr[i] : m.indptr[i + 1]],
                    strict=True,
                )
            }
            for i in range(n)
        ]
    g = layer.membership
    groups_of = [set(g.indices[g.indptr[i] : g.indptr[i + 1]].tolist()) for i in range(n)]
    members: dict[int, list[int]] = {}
    for i, gs in enumerate(groups_of):
        for x in gs:
            members.setdefault(x, []).append(i)
    out: list[dict[int, float]] = []
    for i, gs in enumerate(groups_of):
        ties: dict[int, float] = {}
        for x in gs:
            for j in members[x]:
                if j != i:
                    ties[j] = ties.get(j, 0.0) + 1.0
        out.append(ties)
    return out


def _share(ties: list[dict[int, float]], i: int, value) -> float:
    total = sum(ties[i].values())
    if total <= 0:
        return 0.0
    return sum(w * value(j) for j, w in ties[i].items()) / total


class ReferenceModel:
    """One replicate of ``world`` driven by ``seed``, rule by rule."""

    def __init__(self, world: World, seed: np.random.SeedSequence) -> None:
        self.w = world
        self.gen = np.random.Generator(np.random.PCG64(seed))
        self.t = 0
        self.states = [
            RefState(
                i,
                float(world.human_rights[i]),
                float(world.openness[i]),
                float(world.pressure[i]),
                float(world.leverage[i]),
                bool(world.sponsor[i]),
            )
            for i in range(world.n)
        ]
        self.uni = world.unilateral
        self.bil = world.bilateral
        for s in self.states:
            for k in range(len(self.uni)):
                s.adopted[k] = False
                s.generation_u[k] = math.inf
            for k in range(len(self.bil)):
                s.generation_b[k] = 0.0 if s.sponsor else math.inf
        self.ties = {lid: _ties(layer) for lid, layer in world.layers.items()}
        d = len(world.dyads)
        self.agreement = [[False] * len(self.bil) for _ in range(d)]
        self.tcn = [[NO_TCN] * len(self.bil) for _ in range(d)]
        self.depth = [[0] * len(self.bil) for _ in range(d)]  # of each agreement in force
        self.requester = [[-1] * len(self.bil) for _ in range(d)]  # its requesting side
        self.events: list[tuple] = []  # (step, mechanism index, state, partner, depth, action)
        fl = world.flows
        self.flow = list(fl.volume) if fl is not None else []
        self.deflected_share = [0.0] * world.n
        revocable = any(m.revocation_rate > 0 for m in world.mechanisms)
        self.draws = (2 if revocable else 1) * (world.n * len(self.uni) + d * len(self.bil))

    # -- per-state quantities --------------------------------------------------------------------

    def _holds(self, i: int, k: int) -> bool:
        dy = self.w.dyads
        return any(self.agreement[d][k] for d in range(len(dy)) if dy.a[d] == i or dy.b[d] == i)

    def _success(self, j: int, k: int) -> float:
        if self.w.flows is None:
            return 1.0
        before = self.states[j].pressure_at_adoption.get(k, 0.0)
        if before <= 0:
            return 0.0
        return min(1.0, max(0.0, (before - self.states[j].pressure) / before))

    def _unilateral_eta(self, i: int, k: int) -> float:
        m, s = self.uni[k], self.states[i]
        eta = m.intercept
        held = lambda j: 1.0 if self.states[j].adopted[k] else 0.0  # noqa: E731
        if m.channel_layer["emulation"] and m.channel_weight["emulation"]:
            eta += m.channel_weight["emulation"] * _share(
                self.ties[m.channel_layer["emulation"]], i, held
            )
        if m.channel_layer["learning"] and m.channel_weight["learning"]:
            eta += m.channel_weight["learning"] * _share(
                self.ties[m.channel_layer["learning"]], i, lambda j: held(j) * self._success(j, k)
            )
        if m.channel_weight["competition"]:
            if self.w.flows is not None:
                eta += m.channel_weight["competition"] * self.deflected_share[i]
            elif m.channel_layer["competition"]:
                eta += m.channel_weight["competition"] * _share(
                    self.ties[m.channel_layer["competition"]], i, held
                )
        if m.channel_layer["conditionality"] and m.channel_weight["conditionality"]:
            ties = self.ties[m.channel_layer["conditionality"]][i]
            total = sum(ties.values())
            best = 0.0
            for j in range(self.w.n):
                if self.states[j].sponsor and j != i and self.states[j].adopted[k] and total > 0:
                    best = max(best, self.states[j].leverage * ties.get(j, 0.0) / total)
            eta += m.channel_weight["conditionality"] * best
        eta += m.covariate_weight["openness"] * s.openness
        eta += m.covariate_weight["human_rights"] * s.human_rights
        eta += m.covariate_weight["pressure"] * s.pressure
        return eta

    # -- bilateral quantities --------------------------------------------------------------------

    def _candidate_ties(self) -> list[dict[int, float]]:
        assert self.w.candidate_layer is not None
        return self.ties[self.w.candidate_layer]

    def _flow_between(self, src: int, dst: int) -> float:
        fl = self.w.flows
        if fl is not None:
            return sum(
                self.flow[e]
                for e in range(len(self.flow))
                if fl.origin[e] == src and fl.destination[e] == dst
            )
        return self._candidate_ties()[src].get(dst, 0.0)

    def _inflow(self, r: int) -> float:
        fl = self.w.flows
        if fl is not None:
            return sum(self.flow[e] for e in range(len(self.flow)) if fl.destination[e] == r)
        return float(sum(t.get(r, 0.0) for t in self._candidate_ties()))

    def _outflow(self, s: int) -> float:
        fl = self.w.flows
        if fl is not None:
            return sum(self.flow[e] for e in range(len(self.flow)) if fl.origin[e] == s)
        return float(sum(self._candidate_ties()[s].values()))

    def _bound(self, r: int, k: int) -> bool:
        """r is bound by an active TCN clause (the non-sponsor side, or both between equals)."""
        dy = self.w.dyads
        for d in range(len(dy)):
            if not self.agreement[d][k] or self.tcn[d][k] == NO_TCN or self.tcn[d][k] > self.t:
                continue
            a, b = int(dy.a[d]), int(dy.b[d])
            if r not in (a, b):
                continue
            other = b if r == a else a
            if not (self.states[r].sponsor and not self.states[other].sponsor):
                return True
        return False

    def _bilateral_eta(self, r: int, s: int, k: int) -> float:
        terms = self.w.bilateral_terms
        m = self.bil[k]
        ratio = lambda x, y: x / y if y > 0 else 0.0  # noqa: E731
        q = ratio(self._flow_between(s, r), self._inflow(r))
        cond = 0.0
        if m.channel_layer["conditionality"]:
            ties = self.ties[m.channel_layer["conditionality"]][s]
            cond = self.states[r].leverage * ratio(ties.get(r, 0.0), sum(ties.values()))
        chain = (1.0 if self._bound(r, k) else 0.0) * ratio(
            self._flow_between(s, r), self._outflow(s)
        )
        emul_layer = m.channel_layer["emulation"] or self.w.candidate_layer
        assert emul_layer is not None
        emul = _share(self.ties[emul_layer], s, lambda j: 1.0 if self._holds(j, k) else 0.0)
        hr_gap = max(0.0, self.states[r].human_rights - self.states[s].human_rights)
        openness = 0.5 * (self.states[r].openness + self.states[s].openness)
        return (
            m.intercept
            + terms["demand"] * q
            + terms["conditionality"] * cond
            + terms["chain"] * chain
            + terms["emulation"] * emul
            + terms["hr_gap"] * hr_gap
            + terms["openness"] * openness
        )

    def _conclude(self, concluded: list[tuple[int, int, int]], tcn_of) -> list[float]:
        """Depth = 1 + the lower generation of the parties (none: 1); generations are set at a
        party's first agreement, all agreements of the step seen from the start of the step."""
        dy = self.w.dyads
        depths = []
        before = {
            (i, k): self.states[i].generation_b[k]
            for i in range(self.w.n)
            for k in range(len(self.bil))
        }
        for d, k, _ in concluded:
            low = min(before[(int(dy.a[d]), k)], before[(int(dy.b[d]), k)])
            depths.append(low + 1.0 if math.isfinite(low) else 1.0)
        for (d, k, requester), depth in zip(concluded, depths, strict=True):
            self.requester[d][k] = requester
            for party in (int(dy.a[d]), int(dy.b[d])):
                if not math.isfinite(before[(party, k)]):
                    g = self.states[party].generation_b
                    g[k] = min(g[k], depth)
            self.agreement[d][k] = True
            self.tcn[d][k] = tcn_of(d, k)
            self.depth[d][k] = int(depth)
        return depths

    # -- the step --------------------------------------------------------------------------------

    def step(self) -> None:
        w, t = self.w, self.t
        for layer in w.layer_changes.get(t, []):
            self.ties[layer.id] = _ties(layer)
        for ch in w.attribute_changes.get(t, []):
            for s in [self.states[ch.state]]:
                old = getattr(s, ch.attribute)
                new = ch.value if ch.value is not None else old + ch.add
                if ch.attribute in ("human_rights", "openness"):
                    new = min(1.0, max(0.0, new))
                setattr(s, ch.attribute, new)
        scheduled: list[tuple[int, int, Any]] = []
        scheduled_tcn: dict[tuple[int, int], int] = {}
        for ev in w.adoptions.get(t, []):
            if ev.partner < 0:
                k = next(j for j, m in enumerate(self.uni) if m.index == ev.mechanism)
                s = self.states[ev.state]
                if not s.adopted[k]:
                    s.adopted[k] = True
                    s.pressure_at_adoption[k] = s.pressure
                    s.generation_u[k] = 0.0
                    self.events.append((t, ev.mechanism, ev.state, -1, 0, "adopt"))
            else:
                k = next(j for j, m in enumerate(self.bil) if m.index == ev.mechanism)
                d = w.dyads.index[(min(ev.state, ev.partner), max(ev.state, ev.partner))]
                if not self.agreement[d][k] and (d, k) not in scheduled_tcn:
                    scheduled.append((d, k, ev))
                    scheduled_tcn[(d, k)] = ev.tcn_step
        # Scheduled agreements of a step are concluded together (start-of-step generations).
        depths = self._conclude(
            [(d, k, ev.state) for d, k, ev in scheduled], lambda d, k: scheduled_tcn[(d, k)]
        )
        for (_, _, ev), depth in zip(scheduled, depths, strict=True):
            self.events.append((t, ev.mechanism, ev.state, ev.partner, int(depth), "adopt"))

        u = self.gen.random(self.draws, dtype=np.float32)
        n, mu, nd, mb = w.n, len(self.uni), len(w.dyads), len(self.bil)
        adopt_u: list[tuple[int, int]] = []
        for i in range(n):
            for k in range(mu):
                if self.states[i].adopted[k] or w.unilateral_blocked_by_step[t][i, k]:
                    continue
                p = float(hazard(np.array(self._unilateral_eta(i, k)), w.link))
                if u[i * mu + k] < p:
                    adopt_u.append((i, k))
        adopt_b: list[tuple[int, int, int]] = []
        dy = w.dyads
        for d in range(nd):
            for k in range(mb):
                if self.agreement[d][k] or not dy.candidate_by_step[t][d]:
                    continue
                if dy.blocked_by_step[t][d, k]:
                    continue
                a, b = int(dy.a[d]), int(dy.b[d])
                eta_a, eta_b = self._bilateral_eta(a, b, k), self._bilateral_eta(b, a, k)
                p = float(hazard(np.array(max(eta_a, eta_b)), w.link))
                if u[n * mu + d * mb + k] < p:
                    adopt_b.append((d, k, a if eta_a >= eta_b else b))
        held_at_start = {(i, k) for i in range(n) for k in range(mu) if self.states[i].adopted[k]}
        if self.draws > n * mu + nd * mb:
            off = n * mu + nd * mb
            for i in range(n):
                for k in range(mu):
                    s = self.states[i]
                    if s.adopted[k] and u[off + i * mu + k] < self.uni[k].revocation_rate:
                        s.adopted[k] = False
                        self.events.append(
                            (t, self.uni[k].index, i, -1, int(s.generation_u[k]), "revoke")
                        )
            for d in range(nd):
                for k in range(mb):
                    if (
                        self.agreement[d][k]
                        and u[off + n * mu + d * mb + k] < self.bil[k].revocation_rate
                    ):
                        self.agreement[d][k] = False
                        self.tcn[d][k] = NO_TCN
                        self.events.append(
                            (
                                t,
                                self.bil[k].index,
                                int(dy.a[d]),
                                int(dy.b[d]),
                                self.depth[d][k],
                                "revoke",
                            )
                        )

        # Unilateral depth: 1 + the lowest generation among neighbours holding the mechanism
        # at the start of the step (1 if none); sponsors are generation 0. Depths first, then
        # commit.
        first = next(
            (
                c
                for c in ("emulation", "learning", "competition")
                if self.uni and self.uni[0].channel_layer[c]
            ),
            None,
        )
        depths_u = []
        for i, k in adopt_u:
            if self.states[i].sponsor:
                depths_u.append(0.0)
                continue
            low = math.inf
            first_layer = self.uni[0].channel_layer[first] if first is not None else None
            if first_layer is not None:
                ties = self.ties[first_layer][i]
                low = min(
                    (self.states[j].generation_u[k] for j in ties if (j, k) in held_at_start),
                    default=math.inf,
                )
            depths_u.append(low + 1.0 if math.isfinite(low) else 1.0)
        for (i, k), depth in zip(adopt_u, depths_u, strict=True):
            s = self.states[i]
            s.generation_u[k] = depth
            s.adopted[k] = True
            s.pressure_at_adoption[k] = s.pressure
            self.events.append((t, self.uni[k].index, i, -1, int(depth), "adopt"))
        delays = [m.tcn_delay for m in self.bil]
        depths = self._conclude(
            adopt_b, lambda d, k: NO_TCN if delays[k] == NO_TCN else t + delays[k]
        )
        for (d, k, req), depth in zip(adopt_b, depths, strict=True):
            other = int(dy.b[d]) if req == int(dy.a[d]) else int(dy.a[d])
            self.events.append((t, self.bil[k].index, req, other, int(depth), "adopt"))
        if w.flows is not None:
            self._update_flows()
        self.t += 1

    def _update_flows(self) -> None:
        fl = self.w.flows
        assert fl is not None
        n_e = len(fl.volume)
        kept = []
        for e in range(n_e):
            keep = 1.0
            dest = int(fl.destination[e])
            for k, m in enumerate(self.uni):
                if self.states[dest].adopted[k]:
                    keep *= 1.0 - m.effectiveness
            d = int(fl.dyad[e])
            if d >= 0:
                for k, m in enumerate(self.bil):
                    cuts = fl.agreements == "both" or self.requester[d][k] == dest
                    if self.agreement[d][k] and cuts:
                        keep *= 1.0 - m.effectiveness
            kept.append(fl.volume[e] * keep)
        added = [0.0] * n_e
        for o in range(self.w.n):
            mine = [e for e in range(n_e) if fl.origin[e] == o]
            total_kept = sum(kept[e] for e in mine)
            for source in mine:  # the flow removed on `source` goes to o's other destinations
                removed = fl.volume[source] - kept[source]
                others = total_kept - kept[source]
                if removed <= 0 or others <= 0:
                    continue
                for e in mine:
                    if e != source:
                        added[e] += fl.deflection * removed * kept[e] / others
        self.flow = [kept[e] + added[e] for e in range(n_e)]
        for i, s in enumerate(self.states):
            inflow = sum(self.flow[e] for e in range(n_e) if fl.destination[e] == i)
            base = sum(fl.volume[e] for e in range(n_e) if fl.destination[e] == i)
            s.pressure = inflow / fl.scale
            extra = sum(added[e] for e in range(n_e) if fl.destination[e] == i)
            self.deflected_share[i] = min(1.0, extra / base) if base > 0 else 0.0

    def run(self) -> list[tuple]:
        """Step to the end of the window; return the events (step, mechanism, state, partner,
        depth, action)."""
        while self.t < self.w.steps:
            self.step()
        return self.events
