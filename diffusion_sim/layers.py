"""Weighted network layers as linear operators.

Two kinds of layer cover every source a scenario can name:

* :class:`EdgeLayer` holds a sparse weight matrix ``W`` (``W[i, j]`` is the tie from ``i`` to
  ``j``; an undirected layer is stored symmetric). Edge lists, CSV files and the random
  generators (Erdős–Rényi, Watts–Strogatz, Barabási–Albert) become edge layers.
* :class:`MembershipLayer` holds a membership matrix ``G`` (states x groups). Co-members are tied
  with weight equal to the number of groups they share, ``W = G Gᵀ - diag(G Gᵀ)``, without ever
  building ``W``: a complete network is one group, ``same_region`` one group per region, and
  ``groups:`` layers (organisations) change membership through ``join``/``leave`` events.

A state's neighbourhood is its row of ``W`` (its out-ties on a directed layer). Channels use the
row-normalised product ``mean_over_neighbours``: the weighted share of neighbours in a state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp


def _safe_inverse(x: np.ndarray) -> np.ndarray:
    """1/x where x > 0, else 0 (a state without ties has no exposure)."""
    out = np.zeros_like(x, dtype=np.float64)
    np.divide(1.0, x, out=out, where=x > 0)
    return out


@dataclass(frozen=True)
class EdgeLayer:
    """A layer given by an explicit sparse weight matrix."""

    id: str
    directed: bool
    matrix: sp.csr_array

    @classmethod
    def from_edges(
        cls, layer_id: str, n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray, directed: bool
    ) -> EdgeLayer:
        """Build from edge arrays; duplicate edges add up, undirected edges count both ways."""
        if not directed:
            src, dst, w = np.concatenate([src, dst]), np.concatenate([dst, src]), np.tile(w, 2)
        m = sp.coo_array((w.astype(np.float64), (src, dst)), shape=(n, n)).tocsr()
        m.sum_duplicates()
        return cls(layer_id, directed, m)

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])

    def row_sums(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=1)).ravel()

    @cached_property
    def _inverse_row_sums(self) -> np.ndarray:
        return _safe_inverse(self.row_sums())

    @cached_property
    def _csr_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """indptr and indices as int64 (scipy picks int32 or int64; one compiled loop)."""
        m = self.matrix
        return m.indptr.astype(np.int64), m.indices.astype(np.int64)

    def mean_over_neighbours(self, x: np.ndarray) -> np.ndarray:
        """Row-normalised ``W @ x`` for ``x`` of shape (n, k): weighted neighbour averages
        (``x`` may be boolean)."""
        from .fused import csr_mean

        indptr, indices = self._csr_indices
        x = np.ascontiguousarray(x)
        return csr_mean(indptr, indices, self.matrix.data, self._inverse_row_sums, x)  # type: ignore[no-any-return]

    def weights(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``W[i, j]`` for paired index arrays."""
        return np.asarray(self.matrix[i, j]).ravel().astype(np.float64)

    def shares(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``W[i, j] / sum_k W[i, k]``: j's share of i's ties."""
        return self.weights(i, j) * self._inverse_row_sums[i]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Unordered tied pairs ``(a, b)`` with ``a < b``, a tie in either direction."""
        coo = self.matrix.tocoo()
        a, b = np.minimum(coo.row, coo.col), np.maximum(coo.row, coo.col)
        keep = a != b
        key = np.unique(a[keep].astype(np.int64) * self.n + b[keep])
        return (key // self.n).astype(np.int64), (key % self.n).astype(np.int64)

    def neighbour_min(
        self, values: np.ndarray, held: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        """For each pair ``(rows[q], cols[q])``: the minimum of ``values[j, cols[q]]`` over the
        out-neighbours j of ``rows[q]`` with ``held[j, cols[q]]`` (``inf`` when none)."""
        from .fused import csr_neighbour_min

        indptr, indices = self._csr_indices
        return csr_neighbour_min(indptr, indices, values, held, rows, cols)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class MembershipLayer:
    """A layer where co-members of a group are tied (complete, same-region, organisations)."""

    id: str
    membership: sp.csr_array  # (n, groups), 0/1

    directed = False

    @classmethod
    def from_groups(
        cls, layer_id: str, n: int, group_of: Sequence[Sequence[int] | np.ndarray]
    ) -> MembershipLayer:
        """``group_of[g]`` lists the member indices of group g."""
        empty = np.zeros(0, dtype=np.int64)
        rows = np.concatenate([np.asarray(g, dtype=np.int64) for g in group_of] or [empty])
        cols = np.concatenate(
            [np.full(len(g), k, dtype=np.int64) for k, g in enumerate(group_of)] or [empty]
        )
        g = sp.coo_array(
            (np.ones(len(rows)), (rows.astype(np.int64), cols.astype(np.int64))),
            shape=(n, max(len(group_of), 1)),
        ).tocsr()
        g.data[:] = 1.0  # a state listed twice in a group is still one member
        return cls(layer_id, g)

    @property
    def n(self) -> int:
        return int(self.membership.shape[0])

    def _groups_per_state(self) -> np.ndarray:
        return np.asarray(self.membership.sum(axis=1)).ravel()

    def row_sums(self) -> np.ndarray:
        sizes = np.asarray(self.membership.sum(axis=0)).ravel()
        return self.membership @ sizes - self._groups_per_state()

    def mean_over_neighbours(self, x: np.ndarray) -> np.ndarray:
        """``(G (Gᵀ x) - diag(G Gᵀ) x)`` row-normalised; never forms ``W``."""
        x = np.asarray(x, dtype=np.float64)
        totals = self.membership @ (self.membership.T @ x)
        totals -= self._groups_per_state()[:, None] * x
        return totals * _safe_inverse(self.row_sums())[:, None]

    def weights(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        shared = np.asarray(self.membership[i].multiply(self.membership[j]).sum(axis=1)).ravel()
        return np.where(i == j, 0.0, shared)

    def shares(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return self.weights(i, j) * _safe_inverse(self.row_sums())[i]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        keys: list[np.ndarray] = []
        gt = self.membership.T.tocsr()
        for g in range(gt.shape[0]):
            members = np.sort(gt.indices[gt.indptr[g] : gt.indptr[g + 1]]).astype(np.int64)
            a, b = np.triu_indices(len(members), k=1)
            keys.append(members[a] * self.n + members[b])
        key = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
        return key // self.n, key % self.n

    def neighbour_min(
        self, values: np.ndarray, held: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        """As :meth:`EdgeLayer.neighbour_min`, through per-group minima (a row's own value is
        excluded only when it is not held, which holds for the non-adopters this is asked
        about)."""
        values = np.where(held, values, np.inf)
        gt = self.membership.T.tocsr()
        group_min = np.full((gt.shape[0], values.shape[1]), np.inf)
        for g in range(gt.shape[0]):
            members = gt.indices[gt.indptr[g] : gt.indptr[g + 1]]
            if len(members):
                group_min[g] = values[members].min(axis=0)
        out = np.full(len(rows), np.inf)
        for q, (i, k) in enumerate(zip(rows, cols, strict=True)):
            groups = self.membership.indices[
                self.membership.indptr[i] : self.membership.indptr[i + 1]
            ]
            if len(groups):
                out[q] = group_min[groups, k].min()
        return out


Layer = EdgeLayer | MembershipLayer
