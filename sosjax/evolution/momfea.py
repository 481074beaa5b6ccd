"""MO-MFEA over binary masks: K tasks, one population of Γ masks per task.

Evolutionary multitasking after A. Gupta, Y.-S. Ong, L. Feng, K. C. Tan,
"Multiobjective multifactorial optimization in evolutionary multitasking",
IEEE Trans. Cybernetics 47(7), 2017, with separate per-task populations: one
generation draws ΓK/2 pairings from the union of the K mating pools, so tasks
exchange genetic material with probability rmp[k, l], and each task keeps Γ
survivors by NSGA-II. rmp = 0 gives K independent NSGA-II runs with the same
number of evaluations.

The API follows evosax (`init` / `ask` / `tell`, frozen `flax.struct` state and
params, `tell` returning metrics), but evosax's `EvolutionaryAlgorithm` base class
assumes one population with a scalar fitness, so only its `State` and `Params`
types are reused.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
from evosax import types as evosax_types
from flax import struct

from sosjax.evolution.bits import pack_bits, unpack_bits
from sosjax.evolution.hypervolume import hypervolume
from sosjax.evolution.nsga2 import rank_and_crowd, rank_and_crowd_groups, survival_order
from sosjax.evolution.operators import (
    CROSSOVER_KINDS,
    binary_tournament,
    crossover_words,
    distinct_pair,
    mutation_words,
)
from sosjax.evolution.population import RepairFn, initial_population, repair_all
from sosjax.evolution.rmp import learn_rmp


@struct.dataclass
class MOMFEAParams(evosax_types.Params):
    """Hyperparameters. Array fields may be batched with `jax.vmap` in a study."""

    #: `f32[]` per-bit flip probability of the mutation.
    mutation_rate: jax.Array
    #: `f32[]` or `f32[K, K]` random mating probability between tasks. With
    #: `learn_rmp`, it is used only until the first `ask`.
    rmp: jax.Array
    #: `f32[]` lower end of the initial keep-probability range [p_min, 1].
    p_min: jax.Array
    #: `f32[]` standard deviation of the noise added to each learned rmp.
    rmp_noise_std: jax.Array
    #: `f32[]` smoothing pseudo-count of the Bernoulli models behind learned rmp.
    rmp_prior_count: jax.Array
    #: Crossover operator, one of `CROSSOVER_KINDS`.
    crossover: str = struct.field(pytree_node=False, default="uniform")
    #: Learn rmp every generation (MO-MFEA-II) instead of using `rmp` as given.
    learn_rmp: bool = struct.field(pytree_node=False, default=False)


@struct.dataclass
class MOMFEAState(evosax_types.State):
    """Populations and bookkeeping of one run."""

    #: `bool[K, Γ, D]` current population of each task.
    masks: jax.Array
    #: `f32[K, Γ, 2]` (size, loss) of each member.
    objectives: jax.Array
    #: `int32[K, Γ]` front index of each member within its task.
    ranks: jax.Array
    #: `f32[K, Γ]` crowding distance of each member within its front.
    crowding: jax.Array
    #: `f32[K, K]` rmp used by the latest `ask` (ones on the diagonal).
    rmp: jax.Array
    #: `f32[K]` loss that normalizes each task's hypervolume, fixed at `init`.
    reference_loss: jax.Array
    #: `bool[K·Γ]` whether each offspring of the latest `ask` mixes two tasks.
    offspring_crossed: jax.Array
    #: `int32[]` number of completed `tell` calls.
    generation: jax.Array


def _rmp_matrix(rmp: jax.Array, num_tasks: int) -> jax.Array:
    """Broadcast a scalar or `[K, K]` rmp to `f32[K, K]` with ones on the diagonal."""
    matrix = jnp.broadcast_to(jnp.asarray(rmp, jnp.float32), (num_tasks, num_tasks))
    return jnp.where(jnp.eye(num_tasks, dtype=bool), 1.0, matrix)


def _reference_losses(objectives: jax.Array) -> jax.Array:
    """Return `f32[K]`: each task's largest finite positive loss, or 1 if none."""
    loss = objectives[..., 1]
    usable = jnp.isfinite(loss) & jnp.all(jnp.isfinite(objectives), axis=-1)
    largest = jnp.max(jnp.where(usable, loss, -jnp.inf), axis=-1)
    return jnp.where(largest > 0, largest, 1.0).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class MOMFEA:
    """Multiobjective multifactorial evolution of binary masks.

    The instance is frozen and hashable, because its methods are jitted with the
    instance as a static argument.

    Attributes:
      num_tasks: K.
      pop_size: Γ, members per task. K·Γ must be even.
      num_dims: D, bits per mask.
      repair: optional `repair(key, mask bool[D]) -> bool[D]`, applied to every
        offspring inside `ask` and by `init_population`.
    """

    num_tasks: int
    pop_size: int
    num_dims: int
    repair: RepairFn | None = None

    def __post_init__(self):
        if self.num_tasks < 1 or self.pop_size < 2 or self.num_dims < 1:
            raise ValueError(
                "MOMFEA needs num_tasks >= 1, pop_size >= 2 and num_dims >= 1, got "
                f"{self.num_tasks}, {self.pop_size} and {self.num_dims}."
            )
        if (self.num_tasks * self.pop_size) % 2:
            raise ValueError(
                f"num_tasks * pop_size must be even so that offspring come in pairs, got "
                f"{self.num_tasks} * {self.pop_size}."
            )

    @property
    def num_offspring(self) -> int:
        """K·Γ, the offspring of one generation."""
        return self.num_tasks * self.pop_size

    @property
    def default_params(self) -> MOMFEAParams:
        """Uniform crossover, mutation rate 1/D, rmp 0.3, p_min 0.1, rmp fixed."""
        return MOMFEAParams(
            mutation_rate=jnp.float32(1.0 / self.num_dims),
            rmp=jnp.float32(0.3),
            p_min=jnp.float32(0.1),
            rmp_noise_std=jnp.float32(0.01),
            rmp_prior_count=jnp.float32(1.0),
        )

    @partial(jax.jit, static_argnames=("self",))
    def init_population(self, key: jax.Array, params: MOMFEAParams) -> jax.Array:
        """Draw the first `bool[K, Γ, D]` masks (see `initial_population`), repaired."""
        return initial_population(
            key, self.num_tasks, self.pop_size, self.num_dims, params.p_min, self.repair
        )

    @partial(jax.jit, static_argnames=("self",))
    def init(
        self,
        key: jax.Array,
        masks: jax.Array,
        objectives: jax.Array,
        params: MOMFEAParams,
        reference_loss: jax.Array | None = None,
    ) -> MOMFEAState:
        """Start a run from evaluated masks.

        Args:
          key: PRNG key (unused; kept for the evosax signature).
          masks: `bool[K, Γ, D]`.
          objectives: `f32[K, Γ, 2]` (size, loss) of each mask.
          params: hyperparameters.
          reference_loss: optional `f32[K]` loss that maps to 1 in the hypervolume.
            Defaults to each task's largest finite loss in `objectives`. Give the
            same value to runs whose hypervolumes will be compared.
        """
        del key
        self._check_crossover(params)
        masks = jnp.asarray(masks, bool)
        objectives = jnp.asarray(objectives, jnp.float32)
        ranks, crowding = jax.vmap(rank_and_crowd)(objectives)

        if reference_loss is None:
            reference_loss = _reference_losses(objectives)
        reference_loss = jnp.broadcast_to(jnp.asarray(reference_loss, jnp.float32), (self.num_tasks,))

        return MOMFEAState(
            masks=masks,
            objectives=objectives,
            ranks=ranks,
            crowding=crowding,
            rmp=_rmp_matrix(params.rmp, self.num_tasks),
            reference_loss=reference_loss,
            offspring_crossed=jnp.zeros(self.num_offspring, bool),
            generation=jnp.int32(0),
        )

    @partial(jax.jit, static_argnames=("self",))
    def ask(
        self, key: jax.Array, state: MOMFEAState, params: MOMFEAParams
    ) -> tuple[jax.Array, jax.Array, MOMFEAState]:
        """Breed K·Γ offspring.

        Each task fills a mating pool of Γ binary-tournament winners. Each of ΓK/2
        pairings draws two distinct slots of the union of the K pools, holding
        parents of tasks k and l:
        - k = l: crossover and mutation give two offspring for task k;
        - k ≠ l and u < rmp[k, l]: crossover and mutation give two offspring, one
          for task k and one for task l, assigned at random;
        - otherwise each parent is crossed with a second parent from its own
          task's pool, giving one offspring for k and one for l.

        Returns:
          `(offspring bool[K·Γ, D], task_ids int32[K·Γ], state)`. Offspring are
          already repaired; `state.rmp` holds the matrix used.
        """
        self._check_crossover(params)
        key_rmp, key_tournament, key_pairs, key_repair = jax.random.split(key, 4)
        num_tasks, pop_size = self.num_tasks, self.pop_size

        if params.learn_rmp:
            rmp = learn_rmp(key_rmp, state.masks, params.rmp_noise_std, params.rmp_prior_count)
        else:
            rmp = _rmp_matrix(params.rmp, num_tasks)

        tournament_keys = jax.random.split(key_tournament, (num_tasks, pop_size))
        per_pool = jax.vmap(binary_tournament, in_axes=(0, None, None))
        pools = jax.vmap(per_pool)(tournament_keys, state.ranks, state.crowding)

        # Each pairing draws two distinct slots of the union of the pools, so the
        # number of offspring per task varies from one generation to the next.
        pool_task = jnp.repeat(jnp.arange(num_tasks, dtype=jnp.int32), pop_size)
        pool_member = pools.reshape(-1)
        slot_keys, mate_keys = jax.random.split(key_pairs, (2, self.num_offspring // 2))
        slots = jax.vmap(distinct_pair, in_axes=(0, None))(slot_keys, self.num_offspring)

        packed = pack_bits(state.masks)
        mate = partial(self._mate, packed, pools, rmp, params)
        children, child_tasks, crossed = jax.vmap(mate)(
            mate_keys, pool_task[slots[:, 0]], pool_member[slots[:, 0]], pool_task[slots[:, 1]], pool_member[slots[:, 1]]
        )

        offspring = unpack_bits(children.reshape(self.num_offspring, -1), self.num_dims)
        offspring = repair_all(key_repair, offspring, self.repair).astype(bool)
        task_ids = child_tasks.reshape(self.num_offspring)
        state = state.replace(rmp=rmp, offspring_crossed=jnp.repeat(crossed, 2))
        return offspring, task_ids, state

    def _mate(self, packed, pools, rmp, params, key, task_a, member_a, task_b, member_b):
        """Produce `(uint32[2, W] children, int32[2] tasks, bool[] crossed)` from one pairing.

        Works on packed masks (`sosjax.evolution.bits`). Two crossovers run side by
        side: (a, b) when the pairing crosses, else (a, a second parent from a's
        task), and (b, a second parent from b's task), whose child is used only
        when the pairing does not cross. With the same keys, the children equal
        `crossover` and `bit_flip_mutation` applied to the unpacked parents.
        """
        keys = jax.random.split(key, 5)
        draws = jax.random.uniform(keys[0], (4,))

        same_task = task_a == task_b
        crosses = same_task | (draws[0] < rmp[task_a, task_b])
        swap_tasks = crosses & ~same_task & (draws[1] < 0.5)

        pool_slot = jnp.minimum(jnp.floor(draws[2:] * self.pop_size), self.pop_size - 1).astype(jnp.int32)
        parent_a = packed[task_a, member_a]
        parent_b = packed[task_b, member_b]
        mate_of_a = packed[task_a, pools[task_a, pool_slot[0]]]
        mate_of_b = packed[task_b, pools[task_b, pool_slot[1]]]

        # A crossing pairing's second child is the complement of its first: parent
        # b where the first child took a, with the first child's crossover words.
        from_first = jax.vmap(crossover_words, in_axes=(0, None, None))(keys[1:3], self.num_dims, params.crossover)
        first_parents = jnp.stack([parent_a, parent_b])
        second_parents = jnp.stack([jnp.where(crosses, parent_b, mate_of_a), jnp.where(crosses, parent_a, mate_of_b)])
        from_first = from_first.at[1].set(jnp.where(crosses, from_first[0], from_first[1]))
        children = (first_parents & from_first) | (second_parents & ~from_first)

        flips = jax.vmap(mutation_words, in_axes=(0, None, None))(keys[3:5], self.num_dims, params.mutation_rate)
        children = children ^ flips

        tasks = jnp.where(swap_tasks, jnp.stack([task_b, task_a]), jnp.stack([task_a, task_b]))
        return children, tasks.astype(jnp.int32), crosses & ~same_task

    @partial(jax.jit, static_argnames=("self",))
    def tell(
        self,
        key: jax.Array,
        offspring: jax.Array,
        task_ids: jax.Array,
        objectives: jax.Array,
        state: MOMFEAState,
        params: MOMFEAParams,
    ) -> tuple[MOMFEAState, dict[str, jax.Array]]:
        """Keep Γ survivors per task by NSGA-II over its parents and all offspring.

        Offspring of other tasks are ranked behind every row of the task, so the
        shapes stay fixed while the number of offspring per task varies.

        Args:
          key: PRNG key (unused; selection breaks ties by row order).
          offspring: `bool[K·Γ, D]` from `ask`.
          task_ids: `int32[K·Γ]` from `ask`.
          objectives: `f32[K·Γ, 2]` (size, loss) of each offspring on its task.
          state: the state returned by `ask`.
          params: hyperparameters.

        Returns:
          `(state, metrics)` with metrics `hypervolume f32[K]` (size and
          loss / reference_loss against the point (1, 1)), `front_size int32[K]`,
          `rmp f32[K, K]`, `transfers int32[]` (offspring that mix two tasks),
          `nonfinite int32[]` (offspring rows with a NaN or infinite objective) and
          `generation int32[]`.
        """
        del key, params
        num_tasks, pop_size, num_offspring = self.num_tasks, self.pop_size, self.num_offspring
        objectives = jnp.asarray(objectives, jnp.float32)
        task_ids = jnp.asarray(task_ids, jnp.int32)

        all_masks = jnp.concatenate([state.masks.reshape(num_offspring, self.num_dims), offspring])
        all_objectives = jnp.concatenate([state.objectives.reshape(num_offspring, 2), objectives])
        offspring_rows = num_offspring + jnp.arange(num_offspring)

        # Each task ranks its own Γ members and all K·Γ offspring. The rows of
        # other tasks' offspring are invalid there.
        tasks = jnp.arange(num_tasks)
        member_rows = tasks[:, None] * pop_size + jnp.arange(pop_size)
        rows = jnp.concatenate([member_rows, jnp.broadcast_to(offspring_rows, (num_tasks, num_offspring))], axis=1)
        valid = jnp.concatenate([jnp.ones((num_tasks, pop_size), bool), task_ids == tasks[:, None]], axis=1)
        ranks, crowding = rank_and_crowd_groups(all_objectives[rows], valid)
        keep = jax.vmap(survival_order)(ranks, crowding)[:, :pop_size]
        rows, ranks, crowding = (jnp.take_along_axis(values, keep, axis=1) for values in (rows, ranks, crowding))
        survivors = all_objectives[rows]
        state = state.replace(
            masks=all_masks[rows],
            objectives=survivors,
            ranks=ranks,
            crowding=crowding,
            generation=state.generation + 1,
        )
        return state, self._metrics(state, objectives)

    def _metrics(self, state: MOMFEAState, offspring_objectives: jax.Array) -> dict[str, jax.Array]:
        finite = jnp.all(jnp.isfinite(state.objectives), axis=-1)
        scale = jnp.stack([jnp.ones_like(state.reference_loss), state.reference_loss], axis=-1)
        normalized = state.objectives / scale[:, None, :]
        return {
            "hypervolume": jax.vmap(hypervolume, in_axes=(0, None))(normalized, jnp.ones(2, jnp.float32)),
            "front_size": jnp.sum((state.ranks == 0) & finite, axis=-1, dtype=jnp.int32),
            "rmp": state.rmp,
            "transfers": jnp.sum(state.offspring_crossed, dtype=jnp.int32),
            "nonfinite": jnp.sum(~jnp.all(jnp.isfinite(offspring_objectives), axis=-1), dtype=jnp.int32),
            "generation": state.generation,
        }

    @staticmethod
    def _check_crossover(params: MOMFEAParams) -> None:
        if params.crossover not in CROSSOVER_KINDS:
            raise ValueError(
                f"Unknown crossover kind {params.crossover!r}; expected one of {CROSSOVER_KINDS}."
            )
