"""Compiled (numba) loops of the kernel's step: each does in one pass what would take numpy a
dozen passes over (states or dyads) x replicates x mechanisms arrays.

A step first lists the units at risk (``open_units``, for state-mechanisms and for
dyad-mechanisms: their indices in C order and their uniforms), then evaluates the linear
predictor of those units only (``unilateral_predictors``, ``dyad_predictors``); the same
loops, run on the units that adopt, give the weighted terms recorded with each event. Every
loop performs the arithmetic of the numpy passes it replaced in the same order, so results
are bit for bit those of the numpy kernel of version 0.1; like that kernel, it agrees with
the per-agent reference (``reference.py``) event for event, while ``eta`` may differ from the
reference's in the last bits (the reference sums and divides in its own order). Hazards are
left to ``kernel.hazard``.

Arrays are unpacked into locals before the loops: numba reference-counts an array each time
it is taken out of a tuple or passed to a function, which inside a loop costs more than the
arithmetic. Where a loop has no condition in its body, its innermost axis is the flattened
(replicate, mechanism) axis, so it vectorises. The loops are compiled on first use (5-10 s,
once) and cached (in ``__pycache__``, or numba's user cache when the package is read-only).
They release the GIL, so threaded executors (Dask workers with several threads) run them in
parallel.

Conventions: a unilateral term is a C-contiguous ``(n or 1, R or 1, Mu or 1)`` array read at
``[i * si, r * sr, k * sk]``, the multipliers ``(si, sr, sk)`` being 0 on a broadcast axis, so
one compiled signature of each loop serves every scenario. Uniforms are the ``(draws, R)`` block of
``Kernel._uniforms``, read from an offset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .world import NO_TCN

#: Order of the unilateral dynamic terms (the order they are added to the linear predictor).
UNILATERAL_DYNAMIC = ("emulation", "learning", "competition", "conditionality", "pressure")


@njit(cache=True, nogil=True)
def open_units(held, blocked, eligible, u, offset):  # type: ignore[no-untyped-def]
    """(row, r, k, uniform) of the units at risk of a (rows, R, M) holding array, in C order:
    the row is eligible (a dyad tied on the candidate layer now; every state), the (row,
    mechanism) is not blocked, and the unit does not hold the mechanism. Unit (row, r, k)
    reads uniform ``u[offset + row * M + k, r]``."""
    rows, reps, mechs = held.shape
    size = rows * reps * mechs
    row_out = np.empty(size, np.int64)
    r_out = np.empty(size, np.int64)
    k_out = np.empty(size, np.int64)
    draw = np.empty(size, np.float32)
    m = 0
    for row in range(rows):
        if not eligible[row]:
            continue
        for r in range(reps):
            for k in range(mechs):
                if held[row, r, k] or blocked[row, k]:
                    continue
                row_out[m], r_out[m], k_out[m] = row, r, k
                draw[m] = u[offset + row * mechs + k, r]
                m += 1
    return row_out[:m], r_out[:m], k_out[:m], draw[:m]


@njit(cache=True, nogil=True)
def unilateral_predictors(static, terms, strides, weights, use, i, r, k, with_terms):  # type: ignore[no-untyped-def]
    """eta = static[i, k] + the used dynamic terms (``UNILATERAL_DYNAMIC`` order) times their
    weights[t, k], for the listed units; with ``with_terms`` also the weighted terms
    (len(i), 5), else an empty (0, 5) array."""
    em, le, co, cd, pr = terms
    s_em, s_le, s_co, s_cd, s_pr = strides[0], strides[1], strides[2], strides[3], strides[4]
    u_em, u_le, u_co, u_cd, u_pr = use[0], use[1], use[2], use[3], use[4]
    eta = np.empty(len(i))
    out = np.zeros((len(i) if with_terms else 0, 5))
    for q in range(len(i)):
        ii, rr, kk = i[q], r[q], k[q]
        x_em = em[ii * s_em[0], rr * s_em[1], kk * s_em[2]] * weights[0, kk] if u_em else 0.0
        x_le = le[ii * s_le[0], rr * s_le[1], kk * s_le[2]] * weights[1, kk] if u_le else 0.0
        x_co = co[ii * s_co[0], rr * s_co[1], kk * s_co[2]] * weights[2, kk] if u_co else 0.0
        x_cd = cd[ii * s_cd[0], rr * s_cd[1], kk * s_cd[2]] * weights[3, kk] if u_cd else 0.0
        x_pr = pr[ii * s_pr[0], rr * s_pr[1], kk * s_pr[2]] * weights[4, kk] if u_pr else 0.0
        e = static[ii, kk]
        if u_em:
            e += x_em
        if u_le:
            e += x_le
        if u_co:
            e += x_co
        if u_cd:
            e += x_cd
        if u_pr:
            e += x_pr
        eta[q] = e
        if with_terms:
            out[q, 0], out[q, 1], out[q, 2], out[q, 3], out[q, 4] = x_em, x_le, x_co, x_cd, x_pr
    return eta, out


class DyadInputs(NamedTuple):
    """What the dyad terms are read from; unused terms hold small zero placeholders.

    ``flow`` (edges, R or 1): current flows, with ``edge_ab[d]`` / ``edge_ba[d]`` the row of
    the flow a -> b / b -> a of dyad d (-1: none); ``inv_in``/``inv_out`` (n, R or 1):
    1 / each state's inflow and outflow (0 without any); ``flows_vary`` is 1 when these have
    a replicate axis. ``cond_a``/``cond_b`` (D,): conditionality; ``bound`` (n, R, Mb): the
    state is bound by an active TCN clause; ``emul`` (n, R, Mb): the share of a state's
    neighbours holding the mechanism; ``hr_a``/``hr_b``/``openness`` (D,).
    """

    flow: np.ndarray
    edge_ab: np.ndarray
    edge_ba: np.ndarray
    inv_in: np.ndarray
    inv_out: np.ndarray
    flows_vary: int
    cond_a: np.ndarray
    cond_b: np.ndarray
    bound: np.ndarray
    emul: np.ndarray
    hr_a: np.ndarray
    hr_b: np.ndarray
    openness: np.ndarray


@njit(cache=True, nogil=True)
def dyad_predictors(alpha, weights, use, dyad_a, dyad_b, d, r, k, x, with_terms):  # type: ignore[no-untyped-def]
    """Both orientations' linear predictors of the listed dyad units (x: ``DyadInputs``).

    Terms in ``world.BILATERAL_TERMS`` order, for "a requests" (b for "b requests"): demand
    Q = flow b->a / a's inflow; conditionality K; chain R = [a bound by a TCN clause] x flow
    b->a / b's outflow (b's emigrants transiting a); emulation E = share of b's neighbours
    holding the mechanism; human-rights gap; openness. Returns (eta = the larger predictor,
    a requests = eta_a >= eta_b, the requester's weighted terms (len(d), 6) if
    ``with_terms`` else (0, 6)).
    """
    flow, edge_ab, edge_ba, vary = x.flow, x.edge_ab, x.edge_ba, x.flows_vary
    inv_in, inv_out = x.inv_in, x.inv_out
    cond_a, cond_b, bound, emul = x.cond_a, x.cond_b, x.bound, x.emul
    hr_a, hr_b, openness = x.hr_a, x.hr_b, x.openness
    w_q, w_k, w_c, w_e, w_h, w_o = (
        weights[0],
        weights[1],
        weights[2],
        weights[3],
        weights[4],
        weights[5],
    )
    u_q, u_k, u_c, u_e, u_h, u_o = use[0], use[1], use[2], use[3], use[4], use[5]
    eta = np.empty(len(d))
    a_requests = np.empty(len(d), np.bool_)
    out = np.zeros((len(d) if with_terms else 0, 6))
    for q in range(len(d)):
        dd, rr, kk = d[q], r[q], k[q]
        a, b, s = dyad_a[dd], dyad_b[dd], rr * vary
        q_a = q_b = k_a = k_b = c_a = c_b = e_a = e_b = h_a = h_b = o = 0.0
        if u_q or u_c:
            e_ab, e_ba = edge_ab[dd], edge_ba[dd]
            fab = flow[e_ab, s] if e_ab >= 0 else 0.0
            fba = flow[e_ba, s] if e_ba >= 0 else 0.0
            if u_q:
                q_a = fba * inv_in[a, s] * w_q
                q_b = fab * inv_in[b, s] * w_q
            if u_c:
                c_a = (1.0 if bound[a, rr, kk] else 0.0) * (fba * inv_out[b, s]) * w_c
                c_b = (1.0 if bound[b, rr, kk] else 0.0) * (fab * inv_out[a, s]) * w_c
        if u_k:
            k_a, k_b = cond_a[dd] * w_k, cond_b[dd] * w_k
        if u_e:
            e_a, e_b = emul[b, rr, kk] * w_e, emul[a, rr, kk] * w_e
        if u_h:
            h_a, h_b = hr_a[dd] * w_h, hr_b[dd] * w_h
        if u_o:
            o = openness[dd] * w_o
        eta_a = alpha[kk]
        eta_b = alpha[kk]
        if u_q:
            eta_a += q_a
            eta_b += q_b
        if u_k:
            eta_a += k_a
            eta_b += k_b
        if u_c:
            eta_a += c_a
            eta_b += c_b
        if u_e:
            eta_a += e_a
            eta_b += e_b
        if u_h:
            eta_a += h_a
            eta_b += h_b
        if u_o:
            eta_a += o
            eta_b += o
        a_req = eta_a >= eta_b
        eta[q] = max(eta_a, eta_b)
        a_requests[q] = a_req
        if with_terms:
            if a_req:
                out[q, 0], out[q, 1], out[q, 2], out[q, 3], out[q, 4] = q_a, k_a, c_a, e_a, h_a
            else:
                out[q, 0], out[q, 1], out[q, 2], out[q, 3], out[q, 4] = q_b, k_b, c_b, e_b, h_b
            out[q, 5] = o
    return eta, a_requests, out


@njit(cache=True, nogil=True)
def update_flows(
    volume, origin, destination, flow_dyad, eff_u, adopted, eff_b, agreement, deflection
):  # type: ignore[no-untyped-def]
    """Flows after this step's controls, with deflection (``Kernel._update_flows`` states the
    rule). Edges are sorted by origin, so each origin's edges are handled together, and every
    sum over an origin's or a destination's edges runs in edge order. Returns (flow (E, R),
    inflow (n, R), outflow (n, R), deflected inflow (n, R))."""
    n_edges = len(volume)
    n, reps, mu = adopted.shape
    mb = len(eff_b)
    flow = np.empty((n_edges, reps))
    inflow = np.zeros((n, reps))
    outflow = np.zeros((n, reps))
    deflected = np.zeros((n, reps))
    starts = np.searchsorted(origin, np.arange(n + 1))
    width = max(1, np.max(starts[1:] - starts[:-1])) if n_edges else 1
    kept = np.empty((width, reps))
    ratio = np.empty((width, reps))
    kept_out = np.empty(reps)
    ratio_sum = np.empty(reps)
    keep_at = np.ones((n, reps))  # what the destination's unilateral controls let through
    for j in range(n):
        for k in range(mu):
            for r in range(reps):
                keep_at[j, r] *= 1.0 - eff_u[k] * (1.0 if adopted[j, r, k] else 0.0)
    for o in range(n):
        first, last = starts[o], starts[o + 1]
        kept_out[:] = 0.0
        for e in range(first, last):
            q, j, dy = e - first, destination[e], flow_dyad[e]
            for r in range(reps):
                kept[q, r] = keep_at[j, r]
            if dy >= 0:
                for k in range(mb):
                    for r in range(reps):
                        kept[q, r] *= 1.0 - eff_b[k] * (1.0 if agreement[dy, r, k] else 0.0)
            for r in range(reps):
                kept[q, r] = volume[e] * kept[q, r]
                kept_out[r] += kept[q, r]
        ratio_sum[:] = 0.0
        for e in range(first, last):
            q = e - first
            for r in range(reps):
                den = kept_out[r] - kept[q, r]
                x = (volume[e] - kept[q, r]) / den if den > 0 else 0.0
                ratio[q, r] = x
                ratio_sum[r] += x
        for e in range(first, last):
            q, j = e - first, destination[e]
            for r in range(reps):
                added = deflection * kept[q, r] * (ratio_sum[r] - ratio[q, r])
                f = kept[q, r] + added
                flow[e, r] = f
                inflow[j, r] += f
                outflow[o, r] += f
                deflected[j, r] += added
    return flow, inflow, outflow, deflected


@njit(cache=True, nogil=True)
def tcn_bound(agreement, tcn_step, t, dyad_a, dyad_b, a_bound, b_bound, n):  # type: ignore[no-untyped-def]
    """(n, R, Mb) bool: the state is bound by a TCN clause in force at step t (its agreement
    is in force, the clause applies from ``tcn_step`` <= t, and its side is bound)."""
    n_dyads, reps, mb = agreement.shape
    width = reps * mb
    flat = agreement.reshape(n_dyads, width)
    since = tcn_step.reshape(n_dyads, width)
    out = np.zeros((n, width), np.bool_)
    for d in range(n_dyads):
        a, b = dyad_a[d], dyad_b[d]
        bind_a, bind_b = a_bound[d], b_bound[d]
        for c in range(width):
            v = flat[d, c] and since[d, c] != NO_TCN and since[d, c] <= t
            out[a, c] |= v and bind_a
            out[b, c] |= v and bind_b
    return out.reshape(n, reps, mb)


@njit(cache=True, nogil=True)
def holds(agreement, dyad_a, dyad_b, n):  # type: ignore[no-untyped-def]
    """(n, R, Mb) bool: the state is party to at least one agreement in force."""
    n_dyads, reps, mb = agreement.shape
    width = reps * mb
    flat = agreement.reshape(n_dyads, width)
    out = np.zeros((n, width), np.bool_)
    for d in range(n_dyads):
        a, b = dyad_a[d], dyad_b[d]
        for c in range(width):
            v = flat[d, c]
            out[a, c] |= v
            out[b, c] |= v
    return out.reshape(n, reps, mb)


@njit(cache=True, nogil=True)
def _region_counts(held, region_of, n_regions, counted):  # type: ignore[no-untyped-def]
    """(1 + regions, width) int32: how many counted states hold each column (row 0: all)."""
    n, width = held.shape
    out = np.zeros((n_regions + 1, width), np.int32)
    for i in range(n):
        if not counted[i]:
            continue
        g = region_of[i] + 1
        for c in range(width):
            v = np.int32(held[i, c])
            out[0, c] += v
            out[g, c] += v
    return out


@njit(cache=True, nogil=True)
def _dyad_region_counts(flat, dyad_a, dyad_b, region_of, n_regions, counted):  # type: ignore[no-untyped-def]
    """(1 + regions, width) int32: how many counted dyads have each column set, in the
    region of each party (once when both parties are in one region; row 0: all)."""
    n_dyads, width = flat.shape
    out = np.zeros((n_regions + 1, width), np.int32)
    for d in range(n_dyads):
        if not counted[d]:
            continue
        ga, gb = region_of[dyad_a[d]] + 1, region_of[dyad_b[d]] + 1
        for c in range(width):
            v = np.int32(flat[d, c])
            out[0, c] += v
            out[ga, c] += v
        if gb != ga:
            for c in range(width):
                out[gb, c] += np.int32(flat[d, c])
    return out


@njit(cache=True, nogil=True)
def series_counts(
    adopted, agreement, region_of, n_regions, dyad_a, dyad_b, sponsor, bilateral, local
):  # type: ignore[no-untyped-def]
    """(3, M, 1 + regions, R) int32 counts of the series table: adopters, agreements and
    agreements beyond the sponsor, over all states (row 0) and per region (row 1 + region).

    A unilateral mechanism's adopters are its "agreements"; "beyond" leaves the sponsors out.
    A bilateral mechanism's adopters are the states party to an agreement in force; an
    agreement counts in the region of each party (once when both are in one region), and is
    beyond the sponsor when neither party is a sponsor.
    """
    n, reps, mu = adopted.shape
    n_dyads, _, mb = agreement.shape
    rows = n_regions + 1
    everyone = np.ones(n, np.bool_)
    flat_u = adopted.reshape(n, reps * mu)
    held_u = _region_counts(flat_u, region_of, n_regions, everyone).reshape(rows, reps, mu)
    beyond_u = _region_counts(flat_u, region_of, n_regions, ~sponsor).reshape(rows, reps, mu)
    party = holds(agreement, dyad_a, dyad_b, n).reshape(n, reps * mb)
    held_b = _region_counts(party, region_of, n_regions, everyone).reshape(rows, reps, mb)
    width = reps * mb
    flat_b = agreement.reshape(n_dyads, width)
    agr = _dyad_region_counts(
        flat_b, dyad_a, dyad_b, region_of, n_regions, np.ones(n_dyads, np.bool_)
    )
    beyond = ~(sponsor[dyad_a] | sponsor[dyad_b])
    agr_beyond = _dyad_region_counts(flat_b, dyad_a, dyad_b, region_of, n_regions, beyond)
    agr_r = agr.reshape(rows, reps, mb)
    beyond_r = agr_beyond.reshape(rows, reps, mb)
    out = np.empty((3, len(local), rows, reps), np.int32)
    for m in range(len(local)):
        k = local[m]
        for g in range(rows):
            for r in range(reps):
                if bilateral[m]:
                    out[0, m, g, r] = held_b[g, r, k]
                    out[1, m, g, r] = agr_r[g, r, k]
                    out[2, m, g, r] = beyond_r[g, r, k]
                else:
                    out[0, m, g, r] = held_u[g, r, k]
                    out[1, m, g, r] = held_u[g, r, k]
                    out[2, m, g, r] = beyond_u[g, r, k]
    return out


@njit(cache=True, nogil=True)
def csr_mean(indptr, indices, data, inverse_row_sums, x):  # type: ignore[no-untyped-def]
    """Row-normalised ``W @ x`` for a CSR matrix W: each row's sum runs over its entries in
    stored order (as scipy's product does), then is scaled by 1 / the row's weight sum."""
    n, width = len(indptr) - 1, x.shape[1]
    out = np.zeros((n, width))
    for i in range(n):
        for jj in range(indptr[i], indptr[i + 1]):
            j, w = indices[jj], data[jj]
            for c in range(width):
                out[i, c] += w * x[j, c]
        s = inverse_row_sums[i]
        for c in range(width):
            out[i, c] *= s
    return out


@njit(cache=True, nogil=True)
def csr_neighbour_min(indptr, indices, values, held, rows, cols):  # type: ignore[no-untyped-def]
    """For each pair (rows[q], cols[q]): the minimum of ``values[j, col]`` over the
    out-neighbours j of the row that hold the column (``held[j, col]``); inf if none."""
    out = np.full(len(rows), np.inf)
    for q in range(len(rows)):
        i, c = rows[q], cols[q]
        best = np.inf
        for jj in range(indptr[i], indptr[i + 1]):
            j = indices[jj]
            if held[j, c] and values[j, c] < best:
                best = values[j, c]
        out[q] = best
    return out


@njit(cache=True, nogil=True)
def learning_weights(adopted, pressure_at_adoption, pressure):  # type: ignore[no-untyped-def]
    """(n, R, Mu): an adopter's relative drop in pressure since adopting, clipped to [0, 1]
    (0 for non-adopters and for adoption at zero pressure)."""
    n, reps, mu = adopted.shape
    out = np.zeros((n, reps, mu))
    for i in range(n):
        for r in range(reps):
            now = pressure[i, r]
            for k in range(mu):
                before = pressure_at_adoption[i, r, k]
                if adopted[i, r, k] and before > 0:
                    out[i, r, k] = min(max((before - now) / before, 0.0), 1.0)
    return out


@njit(cache=True, nogil=True)
def strongest_dependence(dependence, sponsors, adopted):  # type: ignore[no-untyped-def]
    """(n, R, Mu): the largest ``dependence[s, i]`` over the sponsors s (``sponsors[s]`` is
    the state) holding the mechanism; 0 if none holds it."""
    n, reps, mu = adopted.shape
    width = reps * mu
    flat = adopted.reshape(n, width)
    out = np.zeros((n, width))
    for s in range(len(sponsors)):
        j = sponsors[s]
        for i in range(n):
            dep = dependence[s, i]
            for c in range(width):
                out[i, c] = max(out[i, c], dep * (1.0 if flat[j, c] else 0.0))
    return out.reshape(n, reps, mu)
