"""The MO-MFEA strategy: pairing rules, survival, metrics, determinism, jit/scan/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from sosjax.evolution import MOMFEA, bit_flip_mutation, crossover, initial_population
from sosjax.evolution.bits import pack_bits, unpack_bits

NUM_TASKS, POP_SIZE, NUM_DIMS = 2, 8, 64
STRATEGY = MOMFEA(NUM_TASKS, POP_SIZE, NUM_DIMS)
TARGETS = jnp.asarray(np.random.default_rng(0).random((NUM_TASKS, NUM_DIMS)) < 0.5)


def synthetic_objectives(masks, task_ids):
    """(ones fraction, Hamming distance to the task's target / D), exact in float32."""
    size = jnp.mean(masks, axis=-1)
    loss = jnp.mean(masks != TARGETS[task_ids], axis=-1)
    return jnp.stack([size, loss], axis=-1).astype(jnp.float32)


def evaluate_population(masks):
    task_ids = jnp.repeat(jnp.arange(NUM_TASKS), POP_SIZE)
    flat = masks.reshape(NUM_TASKS * POP_SIZE, NUM_DIMS)
    return synthetic_objectives(flat, task_ids).reshape(NUM_TASKS, POP_SIZE, 2)


def start(key, params, strategy=STRATEGY):
    key_population, key_init = jax.random.split(key)
    masks = strategy.init_population(key_population, params)
    return strategy.init(key_init, masks, evaluate_population(masks), params)


def generation(state, key, params, strategy=STRATEGY):
    key_ask, key_tell = jax.random.split(key)
    offspring, task_ids, state = strategy.ask(key_ask, state, params)
    objectives = synthetic_objectives(offspring, task_ids)
    return strategy.tell(key_tell, offspring, task_ids, objectives, state, params)


def run(key, params, num_generations=5):
    key_start, key_run = jax.random.split(key)
    state = start(key_start, params)
    step = lambda state, key: generation(state, key, params)
    return jax.lax.scan(step, state, jax.random.split(key_run, num_generations))


_run = jax.jit(run, static_argnums=2)


def split_state(params, first_task_bits, second_task_bits):
    """A state whose task 0 masks equal `first_task_bits` and task 1 masks `second_task_bits`."""
    masks = jnp.stack([
        jnp.broadcast_to(first_task_bits, (POP_SIZE, NUM_DIMS)),
        jnp.broadcast_to(second_task_bits, (POP_SIZE, NUM_DIMS)),
    ])
    objectives = jax.random.uniform(jax.random.key(0), (NUM_TASKS, POP_SIZE, 2))
    return STRATEGY.init(jax.random.key(0), masks, objectives, params)


def ask_many(state, params, count=256, strategy=STRATEGY):
    """Call `ask` with `count` keys; stack offspring, task ids and states.

    A Python loop over the jitted `ask` compiles nothing new, where a vmapped
    `ask` would cost a compilation of its own.
    """
    results = [strategy.ask(key, state, params) for key in jax.random.split(jax.random.key(1), count)]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *results)


def test_rmp_zero_never_mixes_tasks():
    params = STRATEGY.default_params.replace(rmp=jnp.float32(0.0), mutation_rate=jnp.float32(0.0))
    state = split_state(params, jnp.zeros(NUM_DIMS, bool), jnp.ones(NUM_DIMS, bool))
    offspring, task_ids, states = ask_many(state, params)
    offspring, task_ids = np.asarray(offspring), np.asarray(task_ids)

    # Task 0 holds only zeros and task 1 only ones, so any mixing would show.
    expected = np.broadcast_to((task_ids == 1)[..., None], offspring.shape)
    np.testing.assert_array_equal(offspring, expected)
    assert not np.asarray(states.offspring_crossed).any()


def test_rmp_one_crosses_every_cross_task_pairing():
    params = STRATEGY.default_params.replace(rmp=jnp.float32(1.0), mutation_rate=jnp.float32(0.0))
    state = split_state(params, jnp.zeros(NUM_DIMS, bool), jnp.ones(NUM_DIMS, bool))
    offspring, task_ids, states = ask_many(state, params)
    offspring, task_ids = np.asarray(offspring), np.asarray(task_ids)
    crossed = np.asarray(states.offspring_crossed)

    # With 64 uniform-crossover bits, a mixed child is all zeros or all ones with
    # probability 2^-63, so "mixed" identifies children of a cross-task crossover.
    mixed = offspring.any(-1) & ~offspring.all(-1)
    np.testing.assert_array_equal(mixed, crossed)

    pair_tasks = task_ids.reshape(len(task_ids), -1, 2)
    pair_crossed = crossed.reshape(len(crossed), -1, 2)
    assert np.all(pair_crossed[..., 0] == pair_crossed[..., 1])
    # A crossed pairing sends one child to each task; an uncrossed one keeps both children
    # with a parent of their own task, which here means all-zero (task 0) or all-one (task 1).
    assert np.all(pair_tasks[pair_crossed[..., 0]].min(-1) == 0)
    assert np.all(pair_tasks[pair_crossed[..., 0]].max(-1) == 1)
    unmixed = ~mixed
    np.testing.assert_array_equal(offspring[unmixed].all(-1), task_ids[unmixed] == 1)

    # Two parents drawn without replacement from 2 × 8 pool slots come from
    # different tasks with probability 8/15; with rmp = 1 all such pairings cross.
    np.testing.assert_allclose(pair_crossed[..., 0].mean(), 8 / 15, atol=0.03)


def test_rmp_half_crosses_half_the_cross_task_pairings():
    params = STRATEGY.default_params.replace(rmp=jnp.float32(0.5), mutation_rate=jnp.float32(0.0))
    state = split_state(params, jnp.zeros(NUM_DIMS, bool), jnp.ones(NUM_DIMS, bool))
    crossed = np.asarray(ask_many(state, params)[2].offspring_crossed)
    # 2,048 pairings: standard error of the crossed share about 0.01.
    np.testing.assert_allclose(crossed.mean(), 0.5 * 8 / 15, atol=0.04)


def test_rmp_matrix_controls_each_pair():
    strategy = MOMFEA(3, 4, NUM_DIMS)
    rmp = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    params = strategy.default_params.replace(rmp=rmp, mutation_rate=jnp.float32(0.0))
    masks = jnp.broadcast_to(jnp.arange(NUM_DIMS) % 3 == jnp.arange(3)[:, None, None], (3, 4, NUM_DIMS))
    state = strategy.init(jax.random.key(0), masks, jnp.zeros((3, 4, 2)), params)
    offspring, task_ids, states = ask_many(state, params, count=128, strategy=strategy)
    offspring, task_ids = np.asarray(offspring), np.asarray(task_ids)

    # Task t's masks set exactly the bits d with d % 3 == t; a child of task 2 never
    # mixes, and children of tasks 0 and 1 never carry task 2's bits.
    carries = np.stack([offspring[..., t::3].any(-1) for t in range(3)], axis=-1)
    assert not carries[task_ids == 2][:, :2].any()
    assert not carries[task_ids != 2][:, 2].any()
    assert carries[task_ids == 0][:, 1].any()
    np.testing.assert_array_equal(np.asarray(states.rmp[0]), np.asarray(rmp))


def test_offspring_counts_and_shapes():
    params = STRATEGY.default_params
    offspring, task_ids, _ = ask_many(start(jax.random.key(3), params), params)
    assert offspring.shape == (256, NUM_TASKS * POP_SIZE, NUM_DIMS)
    assert offspring.dtype == bool
    assert task_ids.dtype == jnp.int32
    counts = np.stack([(np.asarray(task_ids) == t).sum(-1) for t in range(NUM_TASKS)], -1)
    np.testing.assert_array_equal(counts.sum(-1), NUM_TASKS * POP_SIZE)
    assert len(np.unique(counts[:, 0])) > 1, "the number of offspring per task should vary"


def pymoo_fronts(objectives):
    return NonDominatedSorting().do(np.asarray(objectives, np.float64), return_rank=True)


def test_tell_keeps_nsga2_survivors_of_own_task():
    params = STRATEGY.default_params
    state = start(jax.random.key(4), params)
    offspring, task_ids, state = STRATEGY.ask(jax.random.key(5), state, params)
    # Distinct continuous objectives identify every row; task 1's offspring are made
    # excellent so that selecting them into task 0 would show.
    objectives = jax.random.uniform(jax.random.key(6), (NUM_TASKS * POP_SIZE, 2))
    objectives = jnp.where((task_ids == 1)[:, None], objectives * 0.01, objectives)
    new_state, metrics = STRATEGY.tell(jax.random.key(7), offspring, task_ids, objectives, state, params)

    for task in range(NUM_TASKS):
        union = np.concatenate([np.asarray(state.objectives[task]), np.asarray(objectives)[np.asarray(task_ids) == task]])
        fronts, ranks = pymoo_fronts(union)
        survivors = np.asarray(new_state.objectives[task])
        rows = [int(np.flatnonzero(np.all(union == row, axis=1))[0]) for row in survivors]
        assert len(set(rows)) == POP_SIZE

        # Whole fronts survive first; the split front gives the remaining rows.
        taken = 0
        for front in fronts:
            if taken + len(front) > POP_SIZE:
                assert set(rows) - set(range(len(union))) == set()
                assert len(set(rows) & set(front.tolist())) == POP_SIZE - taken
                break
            assert set(front.tolist()) <= set(rows)
            taken += len(front)
        np.testing.assert_array_equal(np.asarray(new_state.ranks[task]), ranks[rows])

        union_masks = np.concatenate([np.asarray(state.masks[task]), np.asarray(offspring)[np.asarray(task_ids) == task]])
        np.testing.assert_array_equal(np.asarray(new_state.masks[task]), union_masks[rows])

        reference = np.array([1.0, float(state.reference_loss[task])])
        normalized = survivors / reference
        expected_hv = HV(ref_point=np.ones(2)).do(normalized.astype(np.float64))
        np.testing.assert_allclose(float(metrics["hypervolume"][task]), expected_hv, rtol=1e-5)
        assert int(metrics["front_size"][task]) == int((ranks[rows] == 0).sum())

    assert int(metrics["generation"]) == 1
    assert int(metrics["transfers"]) == int(state.offspring_crossed.sum())
    assert int(metrics["nonfinite"]) == 0
    np.testing.assert_array_equal(np.asarray(metrics["rmp"]), np.asarray(state.rmp))


def test_reference_loss_defaults_to_largest_finite_initial_loss():
    params = STRATEGY.default_params
    masks = STRATEGY.init_population(jax.random.key(8), params)
    objectives = evaluate_population(masks).at[0, 3, 1].set(jnp.nan).at[1, 0, 1].set(jnp.inf)
    state = STRATEGY.init(jax.random.key(0), masks, objectives, params)
    finite = np.where(np.isfinite(np.asarray(objectives)), np.asarray(objectives), -np.inf)
    np.testing.assert_allclose(np.asarray(state.reference_loss), finite[..., 1].max(axis=1))

    given = STRATEGY.init(jax.random.key(0), masks, objectives, params, jnp.array([2.0, 3.0]))
    np.testing.assert_allclose(np.asarray(given.reference_loss), [2.0, 3.0])


def test_nonfinite_objectives_never_survive_over_finite():
    params = STRATEGY.default_params
    state = start(jax.random.key(9), params)
    offspring, task_ids, state = STRATEGY.ask(jax.random.key(10), state, params)
    objectives = synthetic_objectives(offspring, task_ids)
    # Below every finite loss, so a NaN that leaked into selection would win.
    broken = jnp.arange(NUM_TASKS * POP_SIZE) % 3 == 0
    objectives = jnp.where(broken[:, None], jnp.array([-1.0, jnp.nan]), objectives)
    new_state, metrics = STRATEGY.tell(jax.random.key(11), offspring, task_ids, objectives, state, params)
    assert np.all(np.isfinite(np.asarray(new_state.objectives)))
    assert int(metrics["nonfinite"]) == int(broken.sum())
    assert np.all(np.isfinite(np.asarray(metrics["hypervolume"])))


def test_run_deterministic_per_key():
    params = STRATEGY.default_params
    first, first_metrics = _run(jax.random.key(12), params, 5)
    again, again_metrics = _run(jax.random.key(12), params, 5)
    other, _ = _run(jax.random.key(13), params, 5)
    np.testing.assert_array_equal(np.asarray(first.masks), np.asarray(again.masks))
    np.testing.assert_array_equal(np.asarray(first_metrics["hypervolume"]), np.asarray(again_metrics["hypervolume"]))
    assert not np.array_equal(np.asarray(first.masks), np.asarray(other.masks))


@pytest.mark.slow
def test_loop_scan_vmap_agree():
    params = STRATEGY.default_params
    seeds = jax.random.split(jax.random.key(14), 3)
    scanned, scanned_metrics = _run(seeds[1], params, 5)

    # One call vmapped over seeds and over rmp in {0, 0.3, 1}; index [1, 1] is the
    # scanned run above (default rmp 0.3).
    rmp_values = jnp.array([0.0, 0.3, 1.0], jnp.float32)
    axes = jax.tree.map(lambda _: None, params).replace(rmp=0)
    over_seeds = jax.vmap(run, in_axes=(0, None, None))
    over_rmp = jax.vmap(over_seeds, in_axes=(None, axes, None))
    batched, batched_metrics = jax.jit(over_rmp, static_argnums=2)(seeds, params.replace(rmp=rmp_values), 5)

    key_start, key_run = jax.random.split(seeds[1])
    state = start(key_start, params)
    looped_hypervolumes = []
    for key in jax.random.split(key_run, 5):
        state, metrics = generation(state, key, params)
        looped_hypervolumes.append(metrics["hypervolume"])

    np.testing.assert_array_equal(np.asarray(state.masks), np.asarray(scanned.masks))
    np.testing.assert_array_equal(np.asarray(batched.masks[1, 1]), np.asarray(scanned.masks))
    np.testing.assert_allclose(np.stack(looped_hypervolumes), np.asarray(scanned_metrics["hypervolume"]))
    np.testing.assert_allclose(np.asarray(batched_metrics["hypervolume"][1, 1]), np.asarray(scanned_metrics["hypervolume"]))
    assert int(state.generation) == 5

    transfers = np.asarray(batched_metrics["transfers"])
    assert np.all(transfers[0] == 0)
    assert np.all(transfers[2] > 0)
    np.testing.assert_array_equal(np.asarray(batched_metrics["rmp"][2, :, -1]), np.ones((3, 2, 2)))


def test_generations_do_not_recompile():
    params = STRATEGY.default_params
    state = start(jax.random.key(15), params)
    state, _ = generation(state, jax.random.key(16), params)
    sizes = (MOMFEA.ask._cache_size(), MOMFEA.tell._cache_size())
    for step in range(4):
        state, _ = generation(state, jax.random.key(17 + step), params)
    assert (MOMFEA.ask._cache_size(), MOMFEA.tell._cache_size()) == sizes


def first_bit_and_one_random_bit(key, mask):
    """Repair that switches on bit 0 and one random bit chosen by its key."""
    position = jax.random.randint(key, (), 0, mask.shape[0])
    return mask.at[0].set(True).at[position].set(True)


def test_repair_runs_on_initial_masks_and_offspring():
    strategy = MOMFEA(NUM_TASKS, POP_SIZE, NUM_DIMS, repair=first_bit_and_one_random_bit)
    params = strategy.default_params.replace(p_min=jnp.float32(0.0))
    masks = strategy.init_population(jax.random.key(19), params)
    assert np.asarray(masks[..., 0]).all()

    # `init` does not use the repair, so the plain strategy's compiled `init` serves.
    state = STRATEGY.init(jax.random.key(0), masks, evaluate_population(masks), params)
    params = params.replace(mutation_rate=jnp.float32(1.0))  # flips every bit, bit 0 included
    offspring, _, _ = strategy.ask(jax.random.key(20), state, params)
    assert np.asarray(offspring[:, 0]).all()


def test_repair_gets_one_key_per_candidate():
    def only_random_bit(key, mask):
        position = jax.random.randint(key, (), 0, mask.shape[0])
        return jnp.zeros_like(mask).at[position].set(True)

    masks = jax.jit(initial_population, static_argnums=(1, 2, 3, 5))(jax.random.key(21), 2, 30, 500, 0.5, only_random_bit)
    positions = np.argmax(np.asarray(masks).reshape(60, 500), axis=1)
    assert len(np.unique(positions)) > 50


def test_initial_keep_probabilities_spread_over_range():
    p_min = 0.2
    masks = jax.jit(initial_population, static_argnums=(1, 2, 3))(jax.random.key(22), 4, 500, 2000, p_min)
    density = np.asarray(masks).mean(-1).ravel()
    # Uniform keep-probabilities on [0.2, 1]; 2000 bits add a binomial error below 0.012.
    np.testing.assert_allclose(np.quantile(density, [0.1, 0.5, 0.9]), [0.28, 0.6, 0.92], atol=0.03)
    assert density.min() > p_min - 0.05


@pytest.mark.parametrize(
    "second_task_bits, expected", [(jnp.zeros(NUM_DIMS, bool), 1.0), (jnp.ones(NUM_DIMS, bool), 0.0)],
    ids=["identical tasks", "opposite tasks"],
)
def test_learned_rmp_is_used_and_logged(second_task_bits, expected):
    params = STRATEGY.default_params.replace(learn_rmp=True, rmp=jnp.float32(0.3))
    state = split_state(params, jnp.zeros(NUM_DIMS, bool), second_task_bits)
    offspring, task_ids, state = STRATEGY.ask(jax.random.key(23), state, params)
    rmp = np.asarray(state.rmp)
    np.testing.assert_array_equal(np.diag(rmp), 1.0)
    # The learned value plus N(0, 0.01^2) noise, clipped to [0, 1].
    assert abs(rmp[0, 1] - expected) < 0.05
    assert rmp[0, 1] == rmp[1, 0]

    # `tell` ignores params; the default ones reuse its compiled version.
    objectives = synthetic_objectives(offspring, task_ids)
    _, metrics = STRATEGY.tell(jax.random.key(0), offspring, task_ids, objectives, state, STRATEGY.default_params)
    np.testing.assert_array_equal(np.asarray(metrics["rmp"]), rmp)


def test_invalid_configuration_raises():
    with pytest.raises(ValueError, match="even"):
        MOMFEA(3, 5, 10)
    with pytest.raises(ValueError, match="crossover"):
        STRATEGY.ask(jax.random.key(0), start(jax.random.key(0), STRATEGY.default_params),
                     STRATEGY.default_params.replace(crossover="three_point"))


@pytest.mark.parametrize("kind", ["uniform", "two_point"])
@pytest.mark.parametrize("rmp", [0.0, 1.0])
def test_packed_mating_equals_the_boolean_operators(kind, rmp):
    # `ask` mates packed masks; with the same keys, the children must equal the
    # public operators applied to the boolean parents.
    num_dims = 70
    strategy = MOMFEA(NUM_TASKS, POP_SIZE, num_dims)
    params = strategy.default_params.replace(crossover=kind, mutation_rate=jnp.float32(0.05))
    masks = jnp.asarray(np.random.default_rng(1).random((NUM_TASKS, POP_SIZE, num_dims)) < 0.5)
    pools = jnp.asarray(np.random.default_rng(2).integers(0, POP_SIZE, (NUM_TASKS, POP_SIZE)), jnp.int32)
    rmp_matrix = jnp.where(jnp.eye(NUM_TASKS, dtype=bool), 1.0, rmp)
    mate = jax.jit(lambda *args: strategy._mate(pack_bits(masks), pools, rmp_matrix, params, *args))

    for seed, (task_a, member_a, task_b, member_b) in enumerate([(0, 1, 1, 2), (1, 3, 1, 5), (0, 7, 1, 0)]):
        key = jax.random.key(seed)
        children, tasks, crossed = mate(key, task_a, member_a, task_b, member_b)

        keys = jax.random.split(key, 5)
        draws = np.asarray(jax.random.uniform(keys[0], (4,)))
        crosses = task_a == task_b or draws[0] < rmp
        slot = np.minimum(np.floor(draws[2:] * POP_SIZE), POP_SIZE - 1).astype(int)
        parent_a, parent_b = masks[task_a, member_a], masks[task_b, member_b]
        if crosses:
            first, second = crossover(keys[1], parent_a, parent_b, kind)
        else:
            first, _ = crossover(keys[1], parent_a, masks[task_a, pools[task_a, slot[0]]], kind)
            second, _ = crossover(keys[2], parent_b, masks[task_b, pools[task_b, slot[1]]], kind)
        expected = [bit_flip_mutation(keys[3 + i], child, params.mutation_rate) for i, child in enumerate((first, second))]

        np.testing.assert_array_equal(np.asarray(unpack_bits(children, num_dims)), np.stack(expected))
        mixes_tasks = bool(crosses) and task_a != task_b
        assert bool(crossed) == mixes_tasks
        assert sorted(np.asarray(tasks).tolist()) == sorted([task_a, task_b])
