"""The step: every rule of DESIGN.md section 1 on arrays batched over replicates.

State arrays have the shape ``(states, replicates, mechanisms)`` (dyads instead of states for
agreements). The hot loops over them are compiled (``fused.py``); this module keeps the state,
the scheduled events, the bookkeeping of events and series, and the order of the step. The
update is synchronous: every exposure is computed from the state at the start of the step,
then all adoptions are drawn at once, so results do not depend on any agent order.

Randomness: replicate ``k`` draws only from its own generator, a fixed number of uniforms per
step, so replicate ``k`` run alone reproduces exactly what it does inside any batch.

Sources of the rules: the discrete-time event-history hazard (Berry & Berry 1990); the
channels emulation, learning, competition and coercion (Simmons, Dobbin & Garrett 2006);
conditionality and external governance (Lavenex & Schimmelfennig 2009); the Bass (1969)
limit of the linear link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from . import fused
from .layers import EdgeLayer, Layer
from .world import ADOPT, BILATERAL_TERMS, CHANNELS, CONTRIBUTIONS, NO_TCN, REVOKE, World

__all__ = [
    "ADOPT",
    "CONTRIBUTIONS",
    "REVOKE",
    "History",
    "Kernel",
    "KernelResult",
    "ZeroProbabilityError",
    "hazard",
]
_INF = np.inf


def hazard(eta: np.ndarray, link: str) -> np.ndarray:
    """Per-step adoption probability from the linear predictor.

    ``logit``: 1/(1+e^-eta); ``cloglog``: 1 - exp(-e^eta); ``linear``: 1 - exp(-max(eta, 0)),
    where eta is a rate (with emulation on a complete network this is the discrete Bass model).
    """
    if link == "logit":
        return expit(eta)
    if link == "cloglog":
        return -np.expm1(-np.exp(np.minimum(eta, 50.0)))
    if link == "linear":
        return -np.expm1(-np.maximum(eta, 0.0))
    raise ValueError(f"unknown link {link!r}")


def _column_sums(layer: Layer) -> np.ndarray:
    if isinstance(layer, EdgeLayer):
        return np.asarray(layer.matrix.sum(axis=0)).ravel()
    return layer.row_sums()


class _Recorder:
    """Collects event rows as arrays, one block per step, and each step's series counts."""

    def __init__(self, mechanisms: np.ndarray) -> None:
        self.mechanisms = mechanisms  # world index of each mechanism
        self.events: list[dict[str, np.ndarray]] = []
        self.series: list[tuple[np.ndarray, np.ndarray]] = []  # (counts, mean pressure)

    def event_columns(self) -> dict[str, np.ndarray]:
        """Join the blocks column by column, dropping each block's column once joined (peak
        memory: the table plus one column), and keep the result as the only block."""
        blocks = self.events
        if not blocks:
            return {}
        joined = {k: np.concatenate([b.pop(k) for b in blocks]) for k in list(blocks[0])}
        blocks[:] = [joined]
        return dict(joined)

    def series_columns(self) -> dict[str, np.ndarray]:
        """Series rows in (replicate, step, mechanism, region) order; region -1 is all."""
        if not self.series:
            return {}
        counts = np.stack([c for c, _ in self.series])  # (T, 3, M, G+1, R)
        pressure = np.stack([p for _, p in self.series])  # (T, G+1, R)
        steps, _, n_mech, rows, reps = counts.shape
        shape = (reps, steps, n_mech, rows)
        grid = np.indices(shape, dtype=np.int32)
        cols = {
            "replicate": grid[0].ravel(),
            "step": grid[1].ravel(),
            "mechanism": self.mechanisms.astype(np.int32)[grid[2].ravel()],
            "region": grid[3].ravel() - 1,
        }
        for q, name in enumerate(("adopters", "agreements", "beyond_sponsor")):
            cols[name] = counts[:, q].transpose(3, 0, 1, 2).ravel()
        cols["mean_pressure"] = np.broadcast_to(
            pressure.transpose(2, 0, 1)[:, :, None, :], shape
        ).ravel()
        return cols


@dataclass
class KernelResult:
    """Index-coded tables of one batch of replicates (see ``tables.py`` for the Parquet form):
    events in (replicate, step, mechanism, state, partner) order, series in (replicate, step,
    mechanism, region) order."""

    events: dict[str, np.ndarray]
    series: dict[str, np.ndarray]


class Kernel:
    """State and step of ``len(seeds)`` replicates of one world."""

    def __init__(
        self,
        world: World,
        seeds: Sequence[np.random.SeedSequence],
        history: History | None = None,
        record: bool = True,
    ) -> None:
        self.world = world
        self._history = history
        self._record = record  # False: no event or series tables (likelihood evaluations)
        self.loglik = 0.0
        self._uni_weight_cache: dict[str, np.ndarray] = {}
        if history is not None:
            if len(seeds) != 1:
                raise ValueError("replaying a history needs exactly one replicate")
            if any(m.revocation_rate > 0 for m in world.mechanisms):
                raise ValueError("the exact likelihood does not cover revocable mechanisms yet")
        self.generators = [np.random.Generator(np.random.PCG64(s)) for s in seeds]
        w = world
        n, r = w.n, len(seeds)
        self.n_replicates = r
        self.uni = w.unilateral
        self.bil = w.bilateral
        mu, mb, d = len(self.uni), len(self.bil), len(w.dyads)
        self.t = 0
        # Attributes shared by all replicates (changed only by scheduled events) ...
        self.human_rights = w.human_rights.copy()
        self.openness = w.openness.copy()
        self.leverage = w.leverage.copy()
        # ... and per replicate (the flows module moves pressure).
        self.pressure = np.repeat(w.pressure[:, None], r, axis=1).astype(np.float64)
        self.layers: dict[str, Layer] = dict(w.layers)

        self.adopted = np.zeros((n, r, mu), dtype=bool)
        self.pressure_at_adoption = np.zeros((n, r, mu))
        self.generation_u = np.full((n, r, mu), _INF)
        self.agreement = np.zeros((d, r, mb), dtype=bool)
        self.tcn_step = np.full((d, r, mb), NO_TCN, dtype=np.int32)
        self.agreement_depth = np.zeros((d, r, mb), dtype=np.int32)  # recorded when revoked
        self.requested_by_a = np.zeros((d, r, mb), dtype=bool)  # the agreement's orientation
        self.generation_b = np.full((n, r, mb), _INF)
        self.generation_b[w.sponsor] = 0.0

        self._uni_index = {m.index: k for k, m in enumerate(self.uni)}
        self._bil_index = {m.index: k for k, m in enumerate(self.bil)}
        self._alpha_u = np.array([m.intercept for m in self.uni])
        self._alpha_b = np.array([m.intercept for m in self.bil])
        self._revoke_u = np.array([m.revocation_rate for m in self.uni])
        self._revoke_b = np.array([m.revocation_rate for m in self.bil])
        self._uni_ids = np.array([m.index for m in self.uni], dtype=np.int64)
        self._bil_ids = np.array([m.index for m in self.bil], dtype=np.int64)
        self._every_state = np.ones(n, dtype=bool)
        # each mechanism of the world: bilateral?, and its index among its kind
        self._series_kind = np.array([m.bilateral for m in w.mechanisms], dtype=bool)
        self._series_local = np.array(
            [(self._bil_index if m.bilateral else self._uni_index)[m.index] for m in w.mechanisms],
            dtype=np.int64,
        )
        self._effectiveness_u = np.array([m.effectiveness for m in self.uni], dtype=np.float64)
        self._effectiveness_b = np.array([m.effectiveness for m in self.bil], dtype=np.float64)
        self._any_revocable = bool((self._revoke_u > 0).any() or (self._revoke_b > 0).any())
        n_blocks = 2 if self._any_revocable else 1
        self._draws = n_blocks * (n * mu + d * mb)

        dy = w.dyads
        # In an agreement with an active TCN clause the non-sponsor side is the one bound to take
        # back third-country nationals (Russia in EU-RUS); between equals both sides are.
        self._a_bound = ~(w.sponsor[dy.a] & ~w.sponsor[dy.b])
        self._b_bound = ~(w.sponsor[dy.b] & ~w.sponsor[dy.a])
        g = len(w.regions)
        self._region_sum = sp.csr_array((np.ones(n), (w.region_of, np.arange(n))), shape=(g, n))
        self._all_sum = sp.csr_array(np.ones((1, n)))
        self._region_size = np.bincount(w.region_of, minlength=g)

        fl = w.flows
        if fl is not None:
            if np.any(np.diff(fl.origin) < 0):
                raise ValueError("flow edges must be sorted by origin")
            self._baseline_inflow = np.bincount(fl.destination, fl.volume, minlength=n)
            self._flow = np.repeat(fl.volume[:, None], r, axis=1)
            self._inflow = np.repeat(self._baseline_inflow[:, None], r, axis=1)
            self._outflow = np.repeat(np.bincount(fl.origin, fl.volume, minlength=n)[:, None], r, 1)
            self._deflected_share = np.zeros((n, r))
            # the migration edge a -> b and b -> a of each dyad (-1: none)
            self._edge_ab = np.full(d, -1, dtype=np.int64)
            self._edge_ba = np.full(d, -1, dtype=np.int64)
            edges = np.flatnonzero(fl.dyad >= 0)
            from_a = fl.origin[edges] == dy.a[fl.dyad[edges]]
            self._edge_ab[fl.dyad[edges[from_a]]] = edges[from_a]
            self._edge_ba[fl.dyad[edges[~from_a]]] = edges[~from_a]
            volume_or_none = np.append(fl.volume, 0.0)  # index -1: no edge
            self.return_flow: np.ndarray | None = (
                volume_or_none[self._edge_ab] + volume_or_none[self._edge_ba]
            )
            # flows.agreements = requester: an agreement cuts only the flow into its requester.
            # Edge e into dy.a of dyad d reads row d, an edge into dy.b row D + d, of an
            # agreement array stacked by direction (``_agreements_by_direction``).
            self._into_requester = fl.agreements == "requester"
            paired = fl.dyad >= 0
            into_b = np.zeros(len(fl.dyad), dtype=bool)
            into_b[paired] = fl.destination[paired] == dy.b[fl.dyad[paired]]
            self._edge_row = np.where(into_b, fl.dyad + d, fl.dyad)
            self._flow_into_a = volume_or_none[self._edge_ba]
            self._flow_into_b = volume_or_none[self._edge_ab]
        else:
            self.return_flow = None  # from the current candidate layer, see _return_flow
            self._into_requester = False
        self.recorder = _Recorder(np.array([m.index for m in w.mechanisms]))
        # Terms that change only with scheduled events (layers, attributes) are cached until
        # the next such event.
        self._static: dict[str, object] = {}

    # -- helpers -------------------------------------------------------------------------------

    def _layer(self, layer_id: str | None) -> Layer | None:
        return None if layer_id is None else self.layers[layer_id]

    def _return_flow(self) -> np.ndarray:
        """(D,) flow an agreement covers: the baseline migration both ways (flows module), or
        the current candidate layer's weights both ways."""
        if self.return_flow is not None:
            return self.return_flow
        if "return_flow" not in self._static:
            dy, cand = self.world.dyads, self.world.candidate_layer
            flow = np.zeros(len(dy))
            if cand is not None and len(dy):
                layer = self.layers[cand]
                flow = layer.weights(dy.a, dy.b) + layer.weights(dy.b, dy.a)
            self._static["return_flow"] = flow
        return cast(np.ndarray, self._static["return_flow"])

    def _covered_flow(self, dyad: np.ndarray, a_requests: np.ndarray) -> np.ndarray:
        """The ``return_flow`` recorded for agreements: the baseline flow they cut, both ways
        (``_return_flow``), or with ``flows.agreements: requester`` the flow from the partner
        into the requesting side."""
        if self.world.flows is None or not self._into_requester:
            return self._return_flow()[dyad]
        return np.where(a_requests, self._flow_into_a[dyad], self._flow_into_b[dyad])

    def _uniforms(self) -> np.ndarray:
        """Each replicate's fixed-size block of float32 uniforms for this step, as the
        columns of a (draws, R) array (the loops read all replicates of one unit at once)."""
        u = np.empty((self.n_replicates, self._draws), dtype=np.float32)
        for k, gen in enumerate(self.generators):
            gen.random(out=u[k], dtype=np.float32)
        return np.ascontiguousarray(u.T)

    def _holds(self) -> np.ndarray:
        """(n, R, Mb) bool: the state is party to at least one agreement in force."""
        dy = self.world.dyads
        return cast(np.ndarray, fused.holds(self.agreement, dy.a, dy.b, self.world.n))

    def _record_events(self, **cols: np.ndarray) -> None:
        if self._record and len(cols["state"]):
            self.recorder.events.append(self._event_block(**cols))

    def _event_block(self, **cols: np.ndarray) -> dict[str, np.ndarray]:
        size = len(cols["state"])
        block = {
            "replicate": cols["replicate"].astype(np.int32),
            "step": np.full(size, self.t, dtype=np.int32),
            "mechanism": cols["mechanism"].astype(np.int32),
            "action": cols.get("action", np.full(size, ADOPT)).astype(np.int8),
            "exogenous": cols.get("exogenous", np.zeros(size, dtype=bool)),
            "state": cols["state"].astype(np.int32),
            "partner": cols.get("partner", np.full(size, -1)).astype(np.int32),
            "state_human_rights": self.human_rights[cols["state"]],
            "partner_human_rights": np.where(
                cols.get("partner", np.full(size, -1)) >= 0,
                self.human_rights[np.maximum(cols.get("partner", np.zeros(size, int)), 0)],
                np.nan,
            ),
            "state_openness": self.openness[cols["state"]],
            "tcn_step": cols.get("tcn_step", np.full(size, NO_TCN)).astype(np.int32),
            "return_flow": cols.get("return_flow", np.zeros(size)).astype(np.float64),
            "depth": cols.get("depth", np.zeros(size)).astype(np.int32),
            "eta": cols.get("eta", np.full(size, np.nan)).astype(np.float64),
        }
        for c in CONTRIBUTIONS:
            block[f"c_{c}"] = cols.get(f"c_{c}", np.full(size, np.nan)).astype(np.float64)
        return block

    # -- the step ------------------------------------------------------------------------------

    def step(self) -> None:
        """One synchronous step (DESIGN.md section 1, process 1-6)."""
        self._apply_events()
        # Replaying a history draws nothing; the compiled loops still read a (zero) block.
        u = (
            self._uniforms()
            if self._history is None
            else np.zeros((self._draws, self.n_replicates), dtype=np.float32)
        )
        revocations = None
        if self._any_revocable and self._history is None:
            r = self.n_replicates
            n, mu, d, mb = self.world.n, len(self.uni), len(self.world.dyads), len(self.bil)
            off = n * mu + d * mb
            revocations = (
                u[off : off + n * mu].reshape(n, mu, r).transpose(0, 2, 1),
                u[off + n * mu :].reshape(d, mb, r).transpose(0, 2, 1),
            )
        # Every hazard is computed from the state at the start of the step (synchronous update).
        new_uni = self._unilateral_step(u) if self.uni else None
        new_bil = self._bilateral_step(u) if self.bil and len(self.world.dyads) else None
        held_at_start = self.adopted.copy()
        if revocations is not None:
            self._revocations(*revocations)
        if new_uni is not None:
            self._commit_unilateral(*new_uni, held_at_start)
        if new_bil is not None:
            self._commit_bilateral(*new_bil)
        if self.world.flows is not None:
            self._update_flows()
        if self._record:
            self._record_series()
        self.t += 1

    def _score(self, p: np.ndarray, index: np.ndarray, new: np.ndarray, what: str) -> np.ndarray:
        """Add this step's log-likelihood of the replayed history (Berry & Berry 1990: each
        unit at risk contributes log p if it adopted, log(1 - p) if not).

        ``p`` holds the hazards of the units at risk, whose flat indices are ``index``;
        ``new`` marks the replayed events. Returns which of the units at risk took place.
        """
        at_risk = np.zeros(new.size, dtype=bool)
        at_risk[index] = True
        impossible = new & ~at_risk.reshape(new.shape)
        if impossible.any():
            raise ZeroProbabilityError(
                self._describe(np.argwhere(impossible)[0], what, "is not at risk")
            )
        took_place = new.ravel()[index]
        took, stay = p[took_place], p[~took_place]
        for bad, units, reason in (
            (took <= 0, index[took_place], "has probability 0"),
            (stay >= 1, index[~took_place], "not happening has probability 0"),
        ):
            if bad.any():
                where = np.array(np.unravel_index(units[bad][0], new.shape))
                raise ZeroProbabilityError(self._describe(where, what, reason))
        self.loglik += float(np.log(took).sum() + np.log1p(-stay).sum())
        return took_place

    def _describe(self, where: np.ndarray, what: str, reason: str) -> str:
        w = self.world
        date = w.date_of(self.t)
        if what == "agreement":
            dyad, _, k = (int(x) for x in where)
            a, b = w.ids[w.dyads.a[dyad]], w.ids[w.dyads.b[dyad]]
            return f"observed {self.bil[k].id} {a}-{b} in {date:g} {reason}"
        i, _, k = (int(x) for x in where)
        return f"observed {self.uni[k].id} by {w.ids[i]} in {date:g} {reason}"

    def run(self, steps: int | None = None) -> KernelResult:
        for _ in range(self.world.steps if steps is None else steps):
            self.step()
        return self.result()

    def result(self) -> KernelResult:
        events = self.recorder.event_columns()
        if not events:
            none = np.zeros(0, dtype=np.int64)
            events = self._event_block(replicate=none, mechanism=none, state=none)
        order = _event_order(
            events, (self.n_replicates, self.t + 1, len(self.world.mechanisms), self.world.n)
        )
        if not (order[1:] > order[:-1]).all():
            for k in list(events):  # column by column: peak memory is the table + one column
                events[k] = events[k][order]
            self.recorder.events[:] = [dict(events)]
        return KernelResult(events, self.recorder.series_columns())

    # -- 1. scheduled events -------------------------------------------------------------------

    def _apply_events(self) -> None:
        w, t = self.world, self.t
        if w.layer_changes.get(t) or w.attribute_changes.get(t):
            self._static.clear()
        for layer in w.layer_changes.get(t, []):
            self.layers[layer.id] = layer
        for ch in w.attribute_changes.get(t, []):
            target = {
                "human_rights": self.human_rights,
                "openness": self.openness,
                "leverage": self.leverage,
            }.get(ch.attribute)
            if ch.attribute == "pressure":
                row = self.pressure[ch.state]
                row[:] = ch.value if ch.value is not None else row + (ch.add or 0.0)
            elif target is not None:
                target[ch.state] = ch.value if ch.value is not None else target[ch.state] + ch.add
            if ch.attribute in ("human_rights", "openness"):
                np.clip(target, 0.0, 1.0, out=target)  # type: ignore[arg-type]
        reps = np.arange(self.n_replicates)
        agreements: list[tuple[Any, int, int, np.ndarray]] = []
        for ev in w.adoptions.get(t, []):
            if ev.partner < 0:
                k = self._uni_index[ev.mechanism]
                fresh = reps[~self.adopted[ev.state, :, k]]
                self.adopted[ev.state, fresh, k] = True
                self.pressure_at_adoption[ev.state, fresh, k] = self.pressure[ev.state, fresh]
                self.generation_u[ev.state, fresh, k] = 0.0
                self._record_events(
                    replicate=fresh,
                    mechanism=np.full(len(fresh), ev.mechanism),
                    state=np.full(len(fresh), ev.state),
                    exogenous=np.ones(len(fresh), dtype=bool),
                )
            else:
                k = self._bil_index[ev.mechanism]
                dyad = w.dyads.index[(min(ev.state, ev.partner), max(ev.state, ev.partner))]
                if all((dyad, k) != (d, kk) for _, d, kk, _ in agreements):
                    agreements.append((ev, dyad, k, reps[~self.agreement[dyad, :, k]]))
        if not agreements:
            return
        # All scheduled agreements of a step are concluded at once, like endogenous ones: their
        # depths come from the generations at the start of the step.
        sizes = [len(fresh) for *_, fresh in agreements]
        depth = self._conclude(
            np.repeat([d for _, d, _, _ in agreements], sizes),
            np.concatenate([fresh for *_, fresh in agreements]),
            np.repeat([k for _, _, k, _ in agreements], sizes),
            np.repeat([ev.tcn_step for ev, *_ in agreements], sizes),
            np.repeat([ev.state == w.dyads.a[d] for ev, d, _, _ in agreements], sizes),
        )
        ends = np.cumsum(sizes)
        for (ev, dyad, _, fresh), end, size in zip(agreements, ends, sizes, strict=True):
            self._record_events(
                replicate=fresh,
                mechanism=np.full(size, ev.mechanism),
                state=np.full(size, ev.state),
                partner=np.full(size, ev.partner),
                exogenous=np.ones(size, dtype=bool),
                tcn_step=np.full(size, ev.tcn_step),
                return_flow=self._covered_flow(
                    np.full(size, dyad), np.full(size, ev.state == w.dyads.a[dyad])
                ),
                depth=depth[end - size : end],
            )

    # -- 2-4. unilateral mechanisms ------------------------------------------------------------

    def _uni_weights(self, name: str) -> np.ndarray:
        if name in self._uni_weight_cache:
            return self._uni_weight_cache[name]
        if name in CHANNELS:
            w = np.array([m.channel_weight[name] for m in self.uni])
        else:
            w = np.array([m.covariate_weight[name] for m in self.uni])
        self._uni_weight_cache[name] = w
        return w

    def _unilateral_terms(self) -> dict[str, np.ndarray]:
        """Unweighted channel exposures E, L, C, K, each broadcastable to (n, R, Mu)."""
        w = self.world
        n, r, mu = self.adopted.shape
        flat = self.adopted.reshape(n, r * mu)
        spec0 = self.uni[0]
        terms: dict[str, np.ndarray] = {}
        layer = self._layer(spec0.channel_layer["emulation"])
        if layer is not None and self._uni_weights("emulation").any():
            terms["emulation"] = layer.mean_over_neighbours(flat).reshape(n, r, mu)
        layer = self._layer(spec0.channel_layer["learning"])
        if layer is not None and self._uni_weights("learning").any():
            weighted = self._learning_weights().reshape(n, r * mu)
            terms["learning"] = layer.mean_over_neighbours(weighted).reshape(n, r, mu)
        if self._uni_weights("competition").any():
            if w.flows is not None:
                terms["competition"] = self._deflected_share[:, :, None]
            else:
                layer = self._layer(spec0.channel_layer["competition"])
                if layer is not None:
                    terms["competition"] = layer.mean_over_neighbours(flat).reshape(n, r, mu)
        layer = self._layer(spec0.channel_layer["conditionality"])
        if layer is not None and self._uni_weights("conditionality").any():
            terms["conditionality"] = self._conditionality(layer, self.adopted)
        terms["openness"] = self.openness[:, None, None]
        terms["human_rights"] = self.human_rights[:, None, None]
        terms["pressure"] = self.pressure[:, :, None]
        return terms

    def _unilateral_step(self, u: np.ndarray) -> tuple[Any, np.ndarray, dict] | None:
        """Hazards of every (state, replicate, mechanism) not yet adopted; draw or replay."""
        n, _, mu = self.adopted.shape
        terms = self._unilateral_terms()
        if "uni_static" not in self._static:
            # alpha + the covariates that do not vary by replicate
            static = np.broadcast_to(self._alpha_u, (n, mu)).copy()
            for name in ("openness", "human_rights"):
                static += self._uni_weights(name) * terms[name][:, :, 0]
            self._static["uni_static"] = static
        dynamic = self._fused_unilateral(terms)
        i, rep, k, draw = fused.open_units(
            self.adopted, self.world.unilateral_blocked_by_step[self.t], self._every_state, u, 0
        )
        fixed = cast(np.ndarray, self._static["uni_static"])
        eta, _ = fused.unilateral_predictors(fixed, *dynamic, i, rep, k, False)  # type: ignore[call-arg]
        p = hazard(eta, self.world.link)
        if self._history is None:
            took_place = draw < p
        else:
            new = self._history.unilateral(self.t, self.adopted.shape)
            index = np.ravel_multi_index((i, rep, k), self.adopted.shape)
            took_place = self._score(p, index, new, "adoption")
        if not took_place.any():
            return None
        idx = (i[took_place], rep[took_place], k[took_place])
        i, k = idx[0], idx[2]
        _, weighted = fused.unilateral_predictors(fixed, *dynamic, *idx, True)  # type: ignore[call-arg]
        contrib = {"c_intercept": self._alpha_u[k]}
        for t, name in enumerate(fused.UNILATERAL_DYNAMIC):
            contrib[f"c_{name}"] = weighted[:, t]
        for name in ("openness", "human_rights"):
            contrib[f"c_{name}"] = self._uni_weights(name)[k] * terms[name][i, 0, 0]
        for name in ("demand", "chain", "hr_gap"):
            contrib[f"c_{name}"] = np.zeros(len(k))
        return idx, eta[took_place], contrib

    def _fused_unilateral(self, terms: dict[str, np.ndarray]) -> tuple:
        """The dynamic terms in ``fused.UNILATERAL_DYNAMIC`` order as the compiled loops take
        them: (arrays, broadcast multipliers, weights (T, Mu), used)."""
        arrays, strides, weights, use = [], [], [], []
        for name in fused.UNILATERAL_DYNAMIC:
            b = self._uni_weights(name)
            x = terms.get(name)
            used = x is not None and bool(b.any())
            x = np.ascontiguousarray(x, dtype=np.float64) if used else np.zeros((1, 1, 1))
            arrays.append(x)
            strides.append([int(size > 1) for size in x.shape])
            weights.append(b)
            use.append(used)
        return (
            tuple(arrays),
            np.array(strides, dtype=np.int64),
            np.array(weights, dtype=np.float64).reshape(len(arrays), len(self.uni)),
            np.array(use),
        )

    def _learning_weights(self) -> np.ndarray:
        """Learning weight of each adopter: its relative drop in pressure since adopting
        (1 when the flows module is off); 0 for non-adopters."""
        if self.world.flows is None:
            return self.adopted
        weights = fused.learning_weights(self.adopted, self.pressure_at_adoption, self.pressure)
        return cast(np.ndarray, weights)

    def _conditionality(self, layer: Layer, adopted: np.ndarray) -> np.ndarray:
        """K_im = max over sponsors j holding m of leverage_j * (i's tie share with j)."""
        n = self.world.n
        if "dependence" not in self._static:
            everyone = np.arange(n)
            sponsors = np.flatnonzero(self.world.sponsor)
            deps = np.zeros((len(sponsors), n))
            for s, j in enumerate(sponsors):
                deps[s] = layer.shares(everyone, np.full(n, j)) * self.leverage[j]
                deps[s, j] = 0.0
            self._static["dependence"] = (deps, sponsors.astype(np.int64))
        deps, sponsors = self._static["dependence"]  # type: ignore[misc]
        return cast(np.ndarray, fused.strongest_dependence(deps, sponsors, adopted))

    def _commit_unilateral(
        self, idx: Any, eta: np.ndarray, contrib: dict, held_at_start: np.ndarray
    ) -> None:
        i, rep, k = idx
        spec0 = self.uni[0]
        layer_id = next(
            (
                spec0.channel_layer[c]
                for c in ("emulation", "learning", "competition")
                if spec0.channel_layer[c] is not None
            ),
            None,
        )
        # Chain depth: 1 + the lowest generation among the neighbours holding the mechanism at
        # the start of the step (1 if none holds it); sponsors are generation 0.
        if layer_id is not None:
            n, r, mu = self.adopted.shape
            nearest = self.layers[layer_id].neighbour_min(
                self.generation_u.reshape(n, r * mu),
                held_at_start.reshape(n, r * mu),
                i,
                rep * mu + k,
            )
            depth = np.where(np.isfinite(nearest), nearest + 1.0, 1.0)
        else:
            depth = np.ones(len(i))
        depth = np.where(self.world.sponsor[i], 0.0, depth)
        self.adopted[idx] = True
        self.pressure_at_adoption[idx] = self.pressure[i, rep]
        self.generation_u[idx] = depth
        mech = self._uni_ids[k]
        self._record_events(replicate=rep, mechanism=mech, state=i, depth=depth, eta=eta, **contrib)

    # -- 2-4. bilateral mechanisms (agreements) ------------------------------------------------

    def _bilateral_inputs(self) -> fused.DyadInputs:
        """The arrays the compiled dyad loop reads its terms from (``fused.dyad_predictors``
        states the rules): demand Q, conditionality K, chain R, emulation E, human-rights gap
        and openness, for both orientations. Unused terms get small zero placeholders."""
        w, t = self.world, self.t
        dy = w.dyads
        _, r, mb = self.agreement.shape
        n = w.n
        weights = w.bilateral_terms
        cand_layer = self.layers[w.candidate_layer] if w.candidate_layer else None
        none1, none2 = np.zeros(1), np.zeros((1, 1))
        flow = inv_in = inv_out = none2
        edge_ab = edge_ba = np.full(len(dy), -1, dtype=np.int64)
        cond_a = cond_b = hr_a = hr_b = openness = none1
        bound = np.zeros((1, 1, 1), dtype=bool)
        emul = np.zeros((1, 1, 1))
        if weights["demand"] or weights["chain"]:
            # current flows, or the candidate layer's weights
            if w.flows is not None:
                flow, edge_ab, edge_ba = self._flow, self._edge_ab, self._edge_ba
                inflow, outflow = self._inflow, self._outflow  # (n, R)
            else:
                assert cand_layer is not None
                if "candidate_flows" not in self._static:
                    # the layer's weights a -> b (rows 0..D-1) and b -> a (rows D..2D-1)
                    weights_ab = cand_layer.weights(dy.a, dy.b)
                    weights_ba = cand_layer.weights(dy.b, dy.a)
                    self._static["candidate_flows"] = (
                        np.concatenate([weights_ab, weights_ba])[:, None],
                        np.arange(len(dy), dtype=np.int64),
                        np.arange(len(dy), 2 * len(dy), dtype=np.int64),
                        _column_sums(cand_layer)[:, None],
                        cand_layer.row_sums()[:, None],
                    )
                flow, edge_ab, edge_ba, inflow, outflow = self._static["candidate_flows"]  # type: ignore[misc]
            inv_in, inv_out = _inverse(inflow), _inverse(outflow)
        if weights["conditionality"]:
            cond_id = self.bil[0].channel_layer["conditionality"]
            if cond_id is not None:
                if "bil_conditionality" not in self._static:
                    cl = self.layers[cond_id]
                    self._static["bil_conditionality"] = (
                        self.leverage[dy.a] * cl.shares(dy.b, dy.a),
                        self.leverage[dy.b] * cl.shares(dy.a, dy.b),
                    )
                cond_a, cond_b = self._static["bil_conditionality"]  # type: ignore[misc]
        if weights["chain"]:
            # the requesting side is bound by an active TCN clause (same mechanism)
            bound = fused.tcn_bound(
                self.agreement, self.tcn_step, t, dy.a, dy.b, self._a_bound, self._b_bound, n
            )
        if weights["emulation"]:
            emul_id = self.bil[0].channel_layer["emulation"] or w.candidate_layer
            assert emul_id is not None
            holds = self._holds().reshape(n, r * mb)
            emul = self.layers[emul_id].mean_over_neighbours(holds).reshape(n, r, mb)
        if weights["hr_gap"]:
            hr_a = np.maximum(0.0, self.human_rights[dy.a] - self.human_rights[dy.b])
            hr_b = np.maximum(0.0, self.human_rights[dy.b] - self.human_rights[dy.a])
        if weights["openness"]:
            openness = 0.5 * (self.openness[dy.a] + self.openness[dy.b])
        return fused.DyadInputs(
            flow=np.ascontiguousarray(flow, dtype=np.float64),
            edge_ab=edge_ab,
            edge_ba=edge_ba,
            inv_in=np.ascontiguousarray(inv_in, dtype=np.float64),
            inv_out=np.ascontiguousarray(inv_out, dtype=np.float64),
            flows_vary=int(flow.shape[1] > 1),
            cond_a=np.ascontiguousarray(cond_a, dtype=np.float64),
            cond_b=np.ascontiguousarray(cond_b, dtype=np.float64),
            bound=np.ascontiguousarray(bound),
            emul=np.ascontiguousarray(emul, dtype=np.float64),
            hr_a=hr_a,
            hr_b=hr_b,
            openness=openness,
        )

    def _bilateral_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, used) of the dyad terms in ``BILATERAL_TERMS`` order; conditionality is
        unused without a conditionality layer."""
        weights = self.world.bilateral_terms
        values = np.array([float(weights[name]) for name in BILATERAL_TERMS])
        used = values != 0
        if self.bil[0].channel_layer["conditionality"] is None:
            used[BILATERAL_TERMS.index("conditionality")] = False
        return values, used

    def _bilateral_step(self, u: np.ndarray) -> tuple | None:
        """Hazards of every open candidate dyad; the requesting side is the orientation with
        the larger linear predictor; draw or replay."""
        w, t = self.world, self.t
        dy = w.dyads
        inputs = self._bilateral_inputs()
        weights, used = self._bilateral_weights()
        d_, rep, k, draw = fused.open_units(
            self.agreement, dy.blocked_by_step[t], dy.candidate_by_step[t], u, w.n * len(self.uni)
        )
        eta, a_requests, _ = fused.dyad_predictors(
            self._alpha_b, weights, used, dy.a, dy.b, d_, rep, k, inputs, False
        )
        p = hazard(eta, w.link)
        if self._history is None:
            took_place = draw < p
        else:
            new = self._history.bilateral(t, self.agreement.shape)
            index = np.ravel_multi_index((d_, rep, k), self.agreement.shape)
            took_place = self._score(p, index, new, "agreement")
        if not took_place.any():
            return None
        idx = (d_[took_place], rep[took_place], k[took_place])
        req = a_requests[took_place]
        _, _, weighted = fused.dyad_predictors(
            self._alpha_b, weights, used, dy.a, dy.b, *idx, inputs, True
        )
        contrib = {"c_intercept": self._alpha_b[idx[2]]}
        for q, name in enumerate(BILATERAL_TERMS):
            contrib[f"c_{name}"] = weighted[:, q]
        for name in ("learning", "competition", "human_rights", "pressure"):
            contrib[f"c_{name}"] = np.zeros(len(req))
        return idx, eta[took_place], req, contrib

    def _conclude(
        self,
        dyad: np.ndarray,
        rep: np.ndarray,
        k: np.ndarray,
        tcn_step: int | np.ndarray,
        a_requests: np.ndarray,
    ) -> np.ndarray:
        """Put agreements in force and return their chain depth.

        depth = 1 + the lower generation of the two parties (sponsors 0; a party without a
        generation does not count, and two such parties start a chain of depth 1). A party's
        generation is fixed at its first agreement: the lowest depth among its agreements of
        that step.
        """
        dy = self.world.dyads
        a, b = dy.a[dyad], dy.b[dyad]
        gen = self.generation_b
        low = np.minimum(gen[a, rep, k], gen[b, rep, k])
        depth = np.where(np.isfinite(low), low + 1.0, 1.0)
        fresh = np.full(gen.shape, _INF)
        for party in (a, b):
            unset = ~np.isfinite(gen[party, rep, k])
            np.minimum.at(fresh, (party[unset], rep[unset], k[unset]), depth[unset])
        np.minimum(gen, fresh, out=gen, where=~np.isfinite(gen))
        self.agreement[dyad, rep, k] = True
        self.tcn_step[dyad, rep, k] = tcn_step
        self.agreement_depth[dyad, rep, k] = depth
        self.requested_by_a[dyad, rep, k] = a_requests
        return depth

    def _commit_bilateral(self, idx, eta, a_requests, contrib) -> None:
        dyad, rep, k = idx
        dy = self.world.dyads
        mech = self._bil_ids[k]
        delay = np.array([m.tcn_delay for m in self.bil])[k]
        tcn = np.where(delay == NO_TCN, NO_TCN, self.t + delay)
        depth = self._conclude(dyad, rep, k, tcn, a_requests)
        state = np.where(a_requests, dy.a[dyad], dy.b[dyad])
        partner = np.where(a_requests, dy.b[dyad], dy.a[dyad])
        self._record_events(
            replicate=rep,
            mechanism=mech,
            state=state,
            partner=partner,
            tcn_step=tcn,
            return_flow=self._covered_flow(dyad, a_requests),
            depth=depth,
            eta=eta,
            **contrib,
        )

    def _revocations(self, rev_uni: np.ndarray, rev_bil: np.ndarray) -> None:
        """Revocable adoptions end with probability ``revocation_rate`` per step; a revocation
        row carries the depth of the adoption it ends."""
        gone = self.adopted & (rev_uni < self._revoke_u)
        i, rep, k = np.nonzero(gone)
        if len(i):
            self.adopted[i, rep, k] = False
            mech = self._uni_ids[k]
            self._record_events(
                replicate=rep,
                mechanism=mech,
                state=i,
                action=np.full(len(i), REVOKE),
                depth=self.generation_u[i, rep, k],
            )
        if not len(self.bil):
            return
        gone_b = self.agreement & (rev_bil < self._revoke_b)
        dyad, rep, k = np.nonzero(gone_b)
        if len(dyad):
            dy = self.world.dyads
            self.agreement[dyad, rep, k] = False
            self.tcn_step[dyad, rep, k] = NO_TCN
            mech = self._bil_ids[k]
            self._record_events(
                replicate=rep,
                mechanism=mech,
                state=dy.a[dyad],
                partner=dy.b[dyad],
                action=np.full(len(dyad), REVOKE),
                return_flow=self._covered_flow(dyad, self.requested_by_a[dyad, rep, k]),
                depth=self.agreement_depth[dyad, rep, k],
            )

    # -- 5. flows ------------------------------------------------------------------------------

    def _update_flows(self) -> None:
        """Controls remove flows; a share ``deflection`` of every removed flow goes to the
        origin's *other* destinations in proportion to their current (kept) flows.

        For origin o, the flow removed on edge e' is spread over o's edges e != e' with weights
        kept_e / (K_o - kept_e'), K_o = sum of o's kept flows, so edge e receives
        ``deflection * kept_e * (S_o - ratio_e)`` with ratio_e' = removed_e' / (K_o - kept_e')
        and S_o the sum of o's ratios. Flow removed from an origin's only destination is lost.
        An agreement cuts the flows between its parties both ways, or with
        ``flows.agreements: requester`` only the flow from the partner into the requester.
        """
        fl = self.world.flows
        assert fl is not None
        edge_row, agreement = fl.dyad, self.agreement
        if self._into_requester:
            edge_row, agreement = self._edge_row, self._agreements_by_direction()
        self._flow, self._inflow, self._outflow, deflected = fused.update_flows(
            fl.volume,
            fl.origin,
            fl.destination,
            edge_row,
            self._effectiveness_u,
            self.adopted,
            self._effectiveness_b,
            agreement,
            float(fl.deflection),
        )
        self.pressure = self._inflow / fl.scale
        self._deflected_share = np.minimum(1.0, _ratio(deflected, self._baseline_inflow[:, None]))

    def _agreements_by_direction(self) -> np.ndarray:
        """(2D, R, Mb): rows 0..D-1 the agreements requested by side a (they cut the flow into
        a), rows D..2D-1 those requested by side b (they cut the flow into b)."""
        return np.concatenate(
            [self.agreement & self.requested_by_a, self.agreement & ~self.requested_by_a]
        )

    # -- 6. observables ------------------------------------------------------------------------

    def _record_series(self) -> None:
        """This step's series: counts per mechanism over all states and per region, and the
        mean pressure."""
        w = self.world
        counts = fused.series_counts(
            self.adopted,
            self.agreement,
            w.region_of,
            len(w.regions),
            w.dyads.a,
            w.dyads.b,
            w.sponsor,
            self._series_kind,
            self._series_local,
        )
        mean_p = (self._region_sum @ self.pressure) / np.maximum(self._region_size, 1)[:, None]
        # Summed per replicate by a sparse product, as the regions are: the same sum order
        # whatever the number of replicates in the batch.
        mean_p_all = (self._all_sum @ self.pressure)[0] / w.n
        self.recorder.series.append((counts, np.vstack([mean_p_all[None], mean_p])))


class ZeroProbabilityError(ValueError):
    """A replayed history that the model gives probability zero."""


@dataclass
class History:
    """An observed adoption history to replay instead of drawing (the exact likelihood).

    ``unilateral[t]`` lists ``(state, k)`` (k indexes the unilateral mechanisms),
    ``bilateral[t]`` lists ``(dyad, k)`` (k indexes the bilateral mechanisms).
    """

    unilateral_by_step: dict[int, list[tuple[int, int]]]
    bilateral_by_step: dict[int, list[tuple[int, int]]]

    def unilateral(self, t: int, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape, dtype=bool)
        for i, k in self.unilateral_by_step.get(t, []):
            out[i, 0, k] = True
        return out

    def bilateral(self, t: int, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape, dtype=bool)
        for dyad, k in self.bilateral_by_step.get(t, []):
            out[dyad, 0, k] = True
        return out


def _inverse(x: np.ndarray) -> np.ndarray:
    """1/x where x > 0, else 0."""
    out = np.zeros(x.shape)
    np.divide(1.0, x, out=out, where=x > 0)
    return out


def _event_order(events: dict[str, np.ndarray], sizes: tuple[int, int, int, int]) -> np.ndarray:
    """Stable order of event rows by (replicate, step, mechanism, state, partner): one int64
    key sorted once (a fifth of the time of a five-key lexsort)."""
    n_rep, n_steps, n_mech, n = sizes
    if n_rep * n_steps * n_mech * n * (n + 1) >= 2**62:
        keys = ("partner", "state", "mechanism", "step", "replicate")
        return np.lexsort([events[k] for k in keys])
    key = events["replicate"].astype(np.int64)
    for column, size in (("step", n_steps), ("mechanism", n_mech), ("state", n)):
        key = key * size + events[column]
    key = key * (n + 1) + (events["partner"] + 1)
    return np.argsort(key, kind="stable")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den where den > 0, else 0."""
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den > 0)
    return out
