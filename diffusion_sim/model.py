"""The Mesa model: states as agents whose attributes are views over the kernel's arrays.

``DiffusionModel`` is a :class:`mesa.Model` built from a validated scenario and a seed. It owns
one :class:`~diffusion_sim.kernel.Kernel` with a single replicate; ``step()`` advances the
kernel once (a synchronous update of every state), and each :class:`StateAgent` reads its
human rights, openness, pressure and adopted mechanisms straight from the kernel, so the agent
view and the batched kernel can never disagree.
"""

from __future__ import annotations

import mesa
import numpy as np
import pyarrow as pa

from .config import Scenario
from .kernel import Kernel
from .seeds import run_seed, world_seed
from .tables import event_table, series_table
from .world import World, build_world


class StateAgent(mesa.Agent):
    """A state: ``code`` (e.g. ``RUS``), ``region``, ``sponsor`` flag, and views of its
    attributes and adoptions in the model's kernel (replicate 0)."""

    def __init__(self, model: DiffusionModel, index: int) -> None:
        super().__init__(model)
        self.index = index
        self.code = model.world.ids[index]
        self.name = model.world.names[index]
        self.region = model.world.regions[model.world.region_of[index]]
        self.sponsor = bool(model.world.sponsor[index])

    @property
    def _kernel(self) -> Kernel:
        return self.model.kernel  # type: ignore[attr-defined]

    @property
    def human_rights(self) -> float:
        return float(self._kernel.human_rights[self.index])

    @property
    def openness(self) -> float:
        return float(self._kernel.openness[self.index])

    @property
    def pressure(self) -> float:
        return float(self._kernel.pressure[self.index, 0])

    @property
    def adopted(self) -> set[str]:
        """Ids of the unilateral mechanisms this state holds now."""
        k = self._kernel
        return {m.id for j, m in enumerate(k.uni) if k.adopted[self.index, 0, j]}

    @property
    def partners(self) -> dict[str, set[str]]:
        """For each bilateral mechanism, the codes of the states it has an agreement with."""
        k = self._kernel
        dy = k.world.dyads
        out: dict[str, set[str]] = {}
        for j, m in enumerate(k.bil):
            active = np.flatnonzero(k.agreement[:, 0, j])
            mine = active[(dy.a[active] == self.index) | (dy.b[active] == self.index)]
            other = np.where(dy.a[mine] == self.index, dy.b[mine], dy.a[mine])
            out[m.id] = {k.world.ids[i] for i in other}
        return out


class DiffusionModel(mesa.Model):
    """Policy diffusion of migration controls among states (DESIGN.md section 1).

    Args:
        scenario: a validated scenario.
        seed: the root seed (defaults to ``scenario.runs.seed``).
        replicate: which replicate's random stream to use; replicate ``k`` of a batch with the
            same root seed gives the same events as this model.
        point: the sweep point (0 without a sweep).
        world: a prebuilt world (else built from the scenario and the root seed).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        replicate: int = 0,
        point: int = 0,
        world: World | None = None,
    ) -> None:
        root = scenario.runs.seed if seed is None else seed
        stream = run_seed(root, point, replicate)
        # Mesa's own generators get a child stream: the kernel alone draws the model's randomness.
        super().__init__(rng=stream.spawn(1)[0])
        # (not `self.scenario`: Mesa 3.4+ reserves it for its own Scenario objects)
        self.config = scenario
        self.world = world if world is not None else build_world(scenario, world_seed(root))
        self.kernel = Kernel(self.world, [stream])
        self.point, self.replicate = point, replicate
        for i in range(self.world.n):
            StateAgent(self, i)
        self.running = True

    @property
    def time_step(self) -> int:
        return self.kernel.t

    def step(self) -> None:
        """One synchronous step of every state."""
        self.kernel.step()
        if self.kernel.t >= self.world.steps:
            self.running = False

    def run(self) -> DiffusionModel:
        """Step to the end of the scenario's time window."""
        while self.running:
            self.step()
        return self

    def _ids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.array([0]), np.array([self.point]), np.array([self.replicate])

    def events(self) -> pa.Table:
        """The events table so far (docs/INTERNALS.md)."""
        return event_table(self.world, self.kernel.result(), *self._ids())

    def series(self) -> pa.Table:
        """The series table so far (docs/INTERNALS.md)."""
        return series_table(self.world, self.kernel.result(), *self._ids())
