"""Tests of the masked ResNet-18: compaction equals masking, exact sizes, vmap, repair."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.models import build_model, resnet18
from tests.models.conftest import count_leaves, random_masks

TORCHVISION_RESNET18_PARAMS = 11_689_512


def perturbed_variables(model, inputs, seed=0):
    """Initialize, then randomize BatchNorm affine parameters and running statistics
    so that running-statistics mode is not the identity."""
    variables = model.init(jax.random.key(seed), inputs)
    rng = np.random.default_rng(seed)

    def perturb(path, leaf):
        name = path[-1].key
        shape = leaf.shape
        if name == "scale":
            return jnp.asarray(rng.uniform(0.5, 1.5, shape), jnp.float32)
        if name == "mean":
            return jnp.asarray(rng.normal(0.0, 0.2, shape), jnp.float32)
        if name == "var":
            return jnp.asarray(rng.uniform(0.5, 2.0, shape), jnp.float32)
        if name == "bias" and len(shape) == 1:
            return jnp.asarray(rng.normal(0.0, 0.2, shape), jnp.float32)
        return leaf

    return jax.tree_util.tree_map_with_path(perturb, variables)


def test_param_count_matches_torchvision():
    model = resnet18(1000, stem="imagenet", width=1.0, in_channels=3)
    assert model.num_params() == TORCHVISION_RESNET18_PARAMS
    assert model.num_params(np.ones(model.num_dims, bool)) == TORCHVISION_RESNET18_PARAMS

    # The CIFAR stem swaps the 7×7×3×64 conv for a 3×3×3×64 one.
    cifar = resnet18(1000, stem="cifar", width=1.0, in_channels=3)
    assert cifar.num_params() == TORCHVISION_RESNET18_PARAMS - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64

    # Stored numbers add a running mean and variance per BatchNorm channel: 4800 channels.
    assert model.num_stored() == TORCHVISION_RESNET18_PARAMS + 2 * 4800
    assert model.num_bytes(None, jnp.float16) == 2 * model.num_stored()


def test_num_dims_and_group_names():
    model = resnet18(10, width=1.0)
    # Residual streams 64+128+256+512 plus two inner sets per stage.
    assert model.num_dims == 960 + 2 * 960
    assert model.group_names[0] == "layer1.residual[0:1]"
    assert model.group_names[64] == "layer1.0.conv1[0:1]"

    coarse = resnet18(10, width=1.0, granularity=4)
    assert coarse.num_dims == 2880 // 4
    assert coarse.group_names[16] == "layer1.0.conv1[0:4]"

    unmasked = resnet18(10, width=1.0, residual="unmasked")
    assert unmasked.num_dims == 2 * 960
    assert all("residual" not in name for name in unmasked.group_names)


def both_modes(model, variables, x, mask):
    """Outputs with running statistics and with batch statistics."""
    return tuple(model.apply(variables, x, mask, batch_stats=mode) for mode in ("running", "batch"))


CASES = [
    # (stem, granularity, residual, input shape)
    ("cifar", 1, "shared", (6, 8, 8, 1)),
    ("cifar", 3, "shared", (6, 8, 8, 1)),
    ("imagenet", 2, "shared", (8, 16, 16, 3)),
    ("cifar", 2, "unmasked", (6, 8, 8, 1)),
]


@pytest.mark.parametrize("stem, granularity, residual, shape", CASES)
def test_compact_equals_masked(stem, granularity, residual, shape):
    model = resnet18(5, stem=stem, width=0.125, in_channels=shape[-1], granularity=granularity, residual=residual)
    x = jax.random.normal(jax.random.key(1), shape)
    variables = perturbed_variables(model, x)
    masked_apply = jax.jit(lambda m: both_modes(model, variables, x, m))
    count_params = jax.jit(model.num_params)
    count_kept = jax.jit(lambda m: sum(jnp.sum(a) for a in jax.tree.leaves(model.param_mask(m))))
    full_output = masked_apply(None)[1]

    for label, mask in random_masks(model, densities=(0.8, 0.4)):
        small, small_vars = model.compact(variables, mask)
        masked = masked_apply(jnp.asarray(mask))
        compacted = jax.jit(lambda v: both_modes(small, v, x, None))(small_vars)
        for mode, got, want in zip(("running", "batch"), compacted, masked):
            # rtol covers float32 rounding that batch statistics over few samples amplify:
            # with stage 4 at 1×1 even the all-on mask differs by about 1e-5 between programs.
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4, err_msg=f"{label} {mode}")
        if label != "all-on":
            assert float(jnp.max(jnp.abs(masked[1] - full_output))) > 1e-3, f"{label}: the mask changed nothing"

        # Size objective: exact, as int for numpy masks and traced under jit for jax masks.
        n_small = count_leaves(small_vars["params"])
        assert model.num_params(mask) == n_small, label
        assert int(count_params(jnp.asarray(mask))) == n_small, label
        assert small.num_params() == n_small, label
        assert float(count_kept(jnp.asarray(mask))) == n_small, label
        assert model.num_stored(mask) == count_leaves(small_vars), label
        assert model.num_bytes(mask, jnp.float16) == 2 * count_leaves(small_vars), label


def test_train_mode_updates_match_compacted():
    model = resnet18(4, width=0.125, in_channels=1, granularity=2)
    x = jax.random.normal(jax.random.key(2), (8, 8, 8, 1))
    variables = perturbed_variables(model, x, seed=3)
    _, mask = random_masks(model, densities=(0.5,))[1]

    logits, updates = jax.jit(lambda m: model.apply(variables, x, m, train=True))(jnp.asarray(mask))
    small, small_vars = model.compact(variables, mask)
    small_logits, small_updates = jax.jit(lambda v: small.apply(v, x, train=True))(small_vars)
    np.testing.assert_allclose(small_logits, logits, atol=1e-5, rtol=1e-5)

    # Compacting the masked model's updated statistics gives the compacted model's update.
    _, updated_then_compacted = model.compact({"params": variables["params"], **updates}, mask)
    for got, want in zip(jax.tree.leaves(small_updates["batch_stats"]), jax.tree.leaves(updated_then_compacted["batch_stats"])):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)

    # Train mode normalizes with batch statistics, and the update moves the running mean by 10% of the batch mean.
    batch_logits = jax.jit(lambda m: model.apply(variables, x, m, batch_stats="batch"))(jnp.asarray(mask))
    np.testing.assert_allclose(logits, batch_logits, atol=1e-6)
    stem_out = jax.lax.conv_general_dilated(
        x, variables["params"]["stem"]["conv"]["kernel"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    expected_mean = 0.9 * variables["batch_stats"]["stem"]["bn"]["mean"] + 0.1 * stem_out.mean(axis=(0, 1, 2))
    np.testing.assert_allclose(updates["batch_stats"]["stem"]["bn"]["mean"], expected_mean, atol=1e-6)


def test_vmap_over_population_equals_loop():
    model = resnet18(10, width=0.125, in_channels=1)
    population = 4
    xs = jax.random.normal(jax.random.key(4), (population, 5, 8, 8, 1))
    variables = perturbed_variables(model, xs[0])
    masks = jnp.stack([jnp.asarray(m) for _, m in random_masks(model, densities=(0.9, 0.6))][:population])

    single = jax.jit(lambda m, x: both_modes(model, variables, x, m))
    batched = jax.jit(jax.vmap(lambda m, x: both_modes(model, variables, x, m)))(masks, xs)
    looped = [single(masks[i], xs[i]) for i in range(population)]
    for j, mode in enumerate(("running", "batch")):
        want = jnp.stack([out[j] for out in looped])
        np.testing.assert_allclose(batched[j], want, atol=1e-5, rtol=1e-5, err_msg=mode)

    # One shared batch for every candidate.
    shared = jax.jit(jax.vmap(lambda m: model.apply(variables, xs[0], m, batch_stats="batch")))(masks)
    np.testing.assert_allclose(shared[1], single(masks[1], xs[0])[1], atol=1e-5)

    sizes = jax.jit(jax.vmap(model.num_params))(masks)
    assert [int(s) for s in sizes] == [model.num_params(np.asarray(m)) for m in masks]


def test_repair_minimal_mask_per_layer():
    model = resnet18(10, width=0.25, in_channels=1, granularity=2, min_active=3)
    ids = model.layout.layer_ids()
    minimal = np.asarray(model.repair(jax.random.key(0), jnp.zeros(model.num_dims, bool)))
    for i in range(len(model.layout.layers)):
        assert minimal[ids == i].sum() == 3

    valid = np.asarray(model.repair(jax.random.key(1), jax.random.bernoulli(jax.random.key(2), 0.5, (model.num_dims,))))
    np.testing.assert_array_equal(model.repair(jax.random.key(5), jnp.asarray(valid)), valid)


def test_config_round_trip_after_compaction():
    model = resnet18(10, width=0.125, in_channels=1, granularity=2)
    x = jnp.ones((2, 8, 8, 1))
    variables = model.init(jax.random.key(0), x)
    _, mask = random_masks(model, densities=(0.5,))[1]
    small, small_vars = model.compact(variables, mask)

    config = json.loads(json.dumps(small.config))
    rebuilt = build_model(config)
    assert rebuilt == small
    assert build_model(model.config) == model
    np.testing.assert_allclose(jax.jit(rebuilt.apply)(small_vars, x), jax.jit(small.apply)(small_vars, x))
    assert jax.tree.map(jnp.shape, rebuilt.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, small_vars)


def test_invalid_arguments_rejected():
    model = resnet18(10, width=0.125, in_channels=1)
    x = jnp.ones((2, 8, 8, 1))
    with pytest.raises(ValueError, match="batch_stats"):
        model.apply(model.init(jax.random.key(0), x), x, batch_stats="mean")
    with pytest.raises(ValueError, match="inputs"):
        model.init(jax.random.key(0), jnp.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="stem"):
        resnet18(10, stem="tiny")
    with pytest.raises(ValueError, match="mask of shape"):
        model.compact(model.init(jax.random.key(0), x), np.ones(3, bool))
