"""Every random stream of a batch derives from one root seed (numpy SeedSequence).

The world (generated states and networks) uses spawn key ``(0,)`` at every sweep point (common
random numbers: points that do not change the generator's parameters share one world); run
``(p, k)`` uses ``(1, p, k)``. Keys depend only on (point, replicate), never on the worker,
the chunk or the order in which runs execute, so results do not depend on them either.
"""

from __future__ import annotations

import numpy as np


def world_seed(root: int) -> np.random.SeedSequence:
    """The stream that draws the generated world."""
    return np.random.SeedSequence(root, spawn_key=(0,))


def run_seed(root: int, point: int, replicate: int) -> np.random.SeedSequence:
    """The stream of replicate ``replicate`` at sweep point ``point``."""
    return np.random.SeedSequence(root, spawn_key=(1, point, replicate))


def describe(seed: np.random.SeedSequence) -> str:
    """A printable, reproducible description of a seed (entropy and spawn key)."""
    return f"{seed.entropy}:{'.'.join(str(k) for k in seed.spawn_key)}"
