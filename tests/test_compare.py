"""`sosjax compare`: seeds vmapped equal seeds alone, rmp = 0 is independent NSGA-II, one shared reference."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax import compare as cmp
from sosjax import evolution
from sosjax.compare_report import load_comparison, markdown_table, paired_test, summarize
from sosjax.config import load_config
from sosjax.evolve import draw_fitness_batches, initial_state, make_generation, make_strategy
from sosjax.fitness import make_evaluate
from sosjax.pipeline import build_model, load_data, task_heads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = (0, 1, 2)
GENERATIONS = 3


@pytest.fixture(scope="module")
def setup():
    """A tiny digits problem with a randomly initialised JAT (pretraining is not under test)."""
    config = load_config(os.path.join(ROOT, "configs", "digits_resnet18.py:tiny"), ["config.evolution.pop_size=4",
                                                                                     "config.evolution.fitness_batch_size=16",
                                                                                     "config.evolution.num_fitness_batches=2"])
    data = load_data(config)
    model = build_model(config, data)
    variables = model.init(jax.random.key(0), jnp.asarray(data.tasks[0].x_train[:2]))
    strategy, params = make_strategy(config, len(data.tasks), model.num_dims, model.repair)
    evaluate = make_evaluate(model, task_heads(data), chunk_size=0)
    inputs = cmp.seed_inputs(data, config.evolution, SEEDS)
    return dict(config=config, data=data, model=model, variables=variables, strategy=strategy, params=params,
                evaluate=evaluate, inputs=inputs)


def run(setup, variants, inputs=None, **kwargs):
    return cmp.run_variants(setup["strategy"], setup["evaluate"], setup["variables"], inputs or setup["inputs"], variants,
                            GENERATIONS, **kwargs)


def run_alone(setup, params, seed, reference_loss):
    """Run one seed the way the evolution stage of `sosjax run` does: a Python loop over jitted generations."""
    config, data, model, strategy = setup["config"], setup["data"], setup["model"], setup["strategy"]
    batches = draw_fitness_batches(data, config.evolution.fitness_batch_size, config.evolution.num_fitness_batches, seed)
    init_key, run_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), 2))
    state = initial_state(strategy, params, setup["evaluate"], setup["variables"], batches, init_key, model.repair,
                          strategy.num_tasks, strategy.pop_size, strategy.num_dims)
    state = state.replace(reference_loss=jnp.asarray(reference_loss))
    generation = jax.jit(make_generation(strategy, params, setup["evaluate"]))
    curve = [np.asarray(cmp.population_hypervolume(state.objectives, state.reference_loss))]
    for g in range(GENERATIONS):
        state, metrics = generation(state, run_key, setup["variables"], jnp.asarray(batches.xs), jnp.asarray(batches.ys), jnp.int32(g))
        curve.append(np.asarray(metrics["hypervolume"]))
    return state, np.stack(curve)


@pytest.mark.slow
def test_vmapped_seeds_equal_seeds_alone(setup):
    # Chunks of 2 over 3 seeds also exercise the padded last chunk.
    variant = cmp.algorithm_variants(["momfea"], setup["params"])[0]
    together = run(setup, [variant], seed_chunk=2)
    final = together.final["momfea"]
    for row, seed in enumerate(SEEDS):
        alone, curve = run_alone(setup, variant.params, seed, together.reference_loss)
        np.testing.assert_array_equal(final.masks[row], np.asarray(alone.masks))
        # Batching over seeds may reorder float sums inside XLA's convolutions.
        np.testing.assert_allclose(final.objectives[row], np.asarray(alone.objectives), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(together.hypervolume["momfea"][row], curve, rtol=1e-5, atol=1e-6)
        assert together.hypervolume["momfea"][row].shape == (GENERATIONS + 1, 2)


def reversed_task_batches(inputs, task):
    """Give `task` its fitness batches in reverse order, so its losses differ in every generation."""
    xs, ys = inputs.xs.copy(), inputs.ys.copy()
    xs[:, task] = xs[:, task, ::-1]
    ys[:, task] = ys[:, task, ::-1]
    return cmp.SeedInputs(inputs.seeds, xs, ys, inputs.population_keys, inputs.run_keys)


@pytest.mark.slow
def test_zero_rmp_is_independent_nsga2(setup):
    single = cmp.algorithm_variants(["single"], setup["params"])[0]
    mixing = cmp.Variant("rmp=1", setup["params"].replace(rmp=jnp.float32(1.0)), "every cross-task pairing crosses")
    reference = np.array([3.0, 3.0], np.float32)
    base = run(setup, [single, mixing], reference_loss=reference)
    changed = run(setup, [single, mixing], inputs=reversed_task_batches(setup["inputs"], 1), reference_loss=reference)

    # rmp = 0: no offspring mixes two tasks, and task 0 evolves exactly as if task 1 were another problem.
    assert np.all(base.transfers["single"] == 0)
    np.testing.assert_array_equal(base.final["single"].masks[:, 0], changed.final["single"].masks[:, 0])
    np.testing.assert_array_equal(base.final["single"].objectives[:, 0], changed.final["single"].objectives[:, 0])
    np.testing.assert_array_equal(base.hypervolume["single"][..., 0], changed.hypervolume["single"][..., 0])
    assert not np.array_equal(base.hypervolume["single"][..., 1], changed.hypervolume["single"][..., 1])

    # Control: with rmp = 1 tasks exchange offspring, so task 1's data reaches task 0.
    assert np.all(base.transfers["rmp=1"].sum(axis=1) > 0)
    assert not np.array_equal(base.final["rmp=1"].objectives[:, 0], changed.final["rmp=1"].objectives[:, 0])


@pytest.mark.slow
def test_reference_point_is_shared(setup):
    variants = cmp.algorithm_variants(["momfea", "single"], setup["params"])
    comparison = run(setup, variants)
    strategy, data = setup["strategy"], setup["data"]

    # Oracle: every seed's initial population evaluated on its own, then the largest finite loss per task.
    largest = np.zeros(2)
    for row, seed in enumerate(SEEDS):
        init_key, _ = jax.random.split(jax.random.fold_in(jax.random.key(seed), 2))
        batches = draw_fitness_batches(data, 16, 2, seed)
        state = initial_state(strategy, variants[0].params, setup["evaluate"], setup["variables"], batches, init_key,
                              setup["model"].repair, strategy.num_tasks, strategy.pop_size, strategy.num_dims)
        largest = np.maximum(largest, np.asarray(state.reference_loss))
    np.testing.assert_allclose(comparison.reference_loss, largest, rtol=1e-6)
    for variant in variants:
        np.testing.assert_array_equal(comparison.final[variant.name].reference_loss,
                                      np.broadcast_to(comparison.reference_loss, (len(SEEDS), 2)))

    # Same seed, same initial population, same reference: equal hypervolume at generation 0.
    np.testing.assert_array_equal(comparison.hypervolume["momfea"][:, 0], comparison.hypervolume["single"][:, 0])

    # The last curve value is the final population's hypervolume against (1, 1) after dividing loss by the reference.
    final = comparison.final["single"]
    for row in range(len(SEEDS)):
        for k in range(2):
            points = final.objectives[row, k] / np.array([1.0, comparison.reference_loss[k]], np.float32)
            expected = float(evolution.hypervolume(jnp.asarray(points), jnp.ones(2)))
            assert comparison.hypervolume["single"][row, -1, k] == pytest.approx(expected, rel=1e-6)

    summary = summarize(comparison, data.task_names, evaluations_per_generation=strategy.num_offspring)
    assert summary["reference_loss"] == {name: pytest.approx(float(v)) for name, v in zip(data.task_names, largest)}
    assert summary["reference_point"] == [1.0, 1.0]
    assert [t["variant"] for t in summary["tests"]] == ["momfea", "momfea"]
    table = markdown_table(json.loads(json.dumps(summary)))
    assert table.count("| even |") == 2
    assert "(baseline)" in table


def test_shared_reference_loss_ignores_nonfinite():
    # Two arrays of shape [S=1, K=2, Γ=2, 2]: rows with a NaN or infinity and negative losses do not count.
    objectives = [
        np.array([[[[0.5, 2.0], [0.2, np.inf]], [[0.1, 1.0], [np.nan, 9.0]]]], np.float32),
        np.array([[[[0.5, 2.5], [0.2, 1.0]], [[0.3, -1.0], [0.4, -2.0]]]], np.float32),
    ]
    np.testing.assert_array_equal(cmp.shared_reference_loss(objectives), np.array([2.5, 1.0], np.float32))


def test_algorithm_variants_set_rmp(setup):
    params = setup["params"]
    variants = {v.name: v.params for v in cmp.algorithm_variants(["momfea", "momfea2", "single"], params)}
    assert float(variants["momfea"].rmp) == pytest.approx(0.3)
    assert not variants["momfea"].learn_rmp
    assert variants["momfea2"].learn_rmp
    assert float(variants["single"].rmp) == 0.0
    assert not variants["single"].learn_rmp
    with pytest.raises(ValueError, match="Unknown algorithms"):
        cmp.algorithm_variants(["nsga3"], params)


def test_sweep_variants_parse_values(setup):
    variants = cmp.sweep_variants(setup["config"], "evolution.rmp=0,0.1,0.5", 2, setup["model"].num_dims)
    assert [v.name for v in variants] == ["rmp=0", "rmp=0.1", "rmp=0.5"]
    assert [float(v.params.rmp) for v in variants] == pytest.approx([0.0, 0.1, 0.5])
    crossover = cmp.sweep_variants(setup["config"], "evolution.crossover=uniform,two_point", 2, 8)
    assert [v.params.crossover for v in crossover] == ["uniform", "two_point"]
    for bad in ("evolution.pop_size=4,6", "rmp=0,1", "evolution.rmp=0.5", "evolution.rmp=0,2"):
        with pytest.raises(ValueError):
            cmp.sweep_variants(setup["config"], bad, 2, 8)


def test_paired_test_known_answers():
    # Five positive differences: the exact two-sided p-value is 2 / 2**5.
    result = paired_test(np.array([1.5, 2.5, 3.5, 4.5, 5.5]), np.full(5, 0.5))
    assert result["p_value"] == pytest.approx(2 / 32)
    assert (result["wins"], result["losses"], result["ties"]) == (5, 0, 0)
    assert result["mean_difference"] == pytest.approx(3.0)
    same = paired_test(np.ones(4), np.ones(4))
    assert same["p_value"] == 1.0
    assert same["ties"] == 4


@pytest.mark.slow
def test_cli_compare_and_notebook(tmp_path, monkeypatch):
    from tests.test_notebooks import execute, outputs_text

    from sosjax.cli import main

    workdir = str(tmp_path / "comparison")
    code = main(["compare", "--config", os.path.join(ROOT, "configs", "digits_resnet18.py:tiny"), "--workdir", workdir,
                 "--seeds", "2", "--algorithms", "momfea,single", "--no-progress", "--config.evolution.generations=2"])
    assert code == 0
    summary = load_comparison(workdir)
    assert summary["seeds"] == [0, 1] and list(summary["variants"]) == ["momfea", "single"]
    assert len(summary["variants"]["single"]["tasks"]["even"]["curves"]) == 2
    assert len(summary["variants"]["single"]["tasks"]["even"]["mean"]) == 3
    assert os.path.getsize(os.path.join(workdir, "comparison.png")) > 0

    monkeypatch.setenv("SOSJAX_COMPARISON", workdir)
    notebook = execute("compare.ipynb", timeout=300)
    text = outputs_text(notebook)
    assert "| even | single |" in text
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
