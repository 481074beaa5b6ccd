"""Tests of the masked BiLSTM: torch oracle, compaction equals masking, sizes, vmap, repair."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.models import bilstm, build_model
from tests.models.conftest import count_leaves, random_masks


def test_matches_torch_lstm():
    torch = pytest.importorskip("torch")
    features, hidden, layers, steps = 3, 5, 2, 7
    model = bilstm(features, hidden=hidden, layers=layers, outputs=2)
    x = np.random.default_rng(0).normal(size=(4, steps, features)).astype(np.float32)
    variables = model.init(jax.random.key(0), x)
    params = variables["params"]

    # torch.nn.LSTM stores W_ih as [4H, I] and two biases that add up; gate order i, f, g, o.
    lstm = torch.nn.LSTM(features, hidden, num_layers=layers, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for l in range(layers):
            for direction, suffix in (("forward", ""), ("backward", "_reverse")):
                p = params[f"layer{l}"][direction]
                getattr(lstm, f"weight_ih_l{l}{suffix}").copy_(torch.from_numpy(np.array(p["w_ih"]).T))
                getattr(lstm, f"weight_hh_l{l}{suffix}").copy_(torch.from_numpy(np.array(p["w_hh"]).T))
                getattr(lstm, f"bias_ih_l{l}{suffix}").copy_(torch.from_numpy(np.array(p["bias"])))
                getattr(lstm, f"bias_hh_l{l}{suffix}").zero_()
        sequence, _ = lstm(torch.from_numpy(x))
        head = params["head"]
        expected = sequence[:, -1, :].numpy() @ np.asarray(head["kernel"]) + np.asarray(head["bias"])

    np.testing.assert_allclose(model.apply(variables, x), expected, atol=1e-5)


def test_param_count_by_hand():
    model = bilstm(10, hidden=128, layers=2, outputs=1)
    layer0 = 2 * 4 * 128 * (10 + 128 + 1)
    layer1 = 2 * 4 * 128 * (256 + 128 + 1)
    assert model.num_params() == layer0 + layer1 + 256 + 1
    assert model.num_stored() == model.num_params()
    assert model.num_dims == 4 * 128
    assert model.num_bytes(None, jnp.float16) == 2 * model.num_params()
    assert bilstm(10, hidden=128, granularity=8).num_dims == 4 * 16


@pytest.mark.parametrize("granularity, layers", [(1, 2), (3, 2), (2, 1), (4, 3)])
def test_compact_equals_masked(granularity, layers):
    model = bilstm(4, hidden=9, layers=layers, outputs=3, granularity=granularity)
    x = jax.random.normal(jax.random.key(1), (5, 6, 4))
    variables = model.init(jax.random.key(0), x)
    masked_apply = jax.jit(lambda m: model.apply(variables, x, m))
    count_params = jax.jit(model.num_params)
    count_kept = jax.jit(lambda m: sum(jnp.sum(a) for a in jax.tree.leaves(model.param_mask(m))))
    full_output = masked_apply(None)

    for label, mask in random_masks(model, densities=(0.8, 0.4)):
        small, small_vars = model.compact(variables, mask)
        masked = masked_apply(jnp.asarray(mask))
        np.testing.assert_allclose(jax.jit(small.apply)(small_vars, x), masked, atol=1e-5, err_msg=label)
        if label != "all-on":
            assert float(jnp.max(jnp.abs(masked - full_output))) > 1e-4, f"{label}: the mask changed nothing"

        n_small = count_leaves(small_vars["params"])
        assert model.num_params(mask) == n_small, label
        assert int(count_params(jnp.asarray(mask))) == n_small, label
        assert small.num_params() == n_small, label
        assert float(count_kept(jnp.asarray(mask))) == n_small, label
        assert model.num_bytes(mask, jnp.float32) == 4 * n_small, label


def test_compaction_shrinks_every_matrix():
    model = bilstm(4, hidden=6, layers=2, outputs=1)
    variables = model.init(jax.random.key(0), jnp.ones((1, 3, 4)))
    mask = np.ones(model.num_dims, bool)
    mask[[0, 1, 6, 12, 13, 14, 18]] = False  # layer0 forward 0, 1; layer0 backward 0; layer1 f 0-2; layer1 b 0
    small, small_vars = model.compact(variables, mask)
    p = small_vars["params"]
    assert small.hidden_sizes == ((4, 5), (3, 5))
    assert p["layer0"]["forward"]["w_ih"].shape == (4, 16)
    assert p["layer0"]["forward"]["w_hh"].shape == (4, 16)
    assert p["layer0"]["backward"]["bias"].shape == (20,)
    assert p["layer1"]["forward"]["w_ih"].shape == (9, 12)
    assert p["layer1"]["backward"]["w_hh"].shape == (5, 20)
    assert p["head"]["kernel"].shape == (8, 1)

    # Columns of the kept units in all four gate blocks, e.g. layer0 forward keeps units 2..5.
    full = np.asarray(variables["params"]["layer0"]["forward"]["w_hh"])
    cols = np.concatenate([k * 6 + np.arange(2, 6) for k in range(4)])
    np.testing.assert_array_equal(p["layer0"]["forward"]["w_hh"], full[2:6][:, cols])
    # Layer 1 reads [h_forward (units 2..5), h_backward (units 1..5)] of layer 0.
    rows = np.concatenate([np.arange(2, 6), 6 + np.arange(1, 6)])
    full_ih = np.asarray(variables["params"]["layer1"]["forward"]["w_ih"])
    np.testing.assert_array_equal(p["layer1"]["forward"]["w_ih"], full_ih[rows][:, np.concatenate([k * 6 + np.arange(3, 6) for k in range(4)])])


def test_vmap_over_population_equals_loop():
    model = bilstm(3, hidden=8, layers=2, outputs=2, granularity=2)
    xs = jax.random.normal(jax.random.key(2), (4, 5, 6, 3))
    variables = model.init(jax.random.key(0), xs[0])
    masks = jnp.stack([jnp.asarray(m) for _, m in random_masks(model, densities=(0.7, 0.5))][:4])

    batched = jax.jit(jax.vmap(lambda m, x: model.apply(variables, x, m, batch_stats="batch")))(masks, xs)
    single = jax.jit(lambda m, x: model.apply(variables, x, m))
    looped = jnp.stack([single(masks[i], xs[i]) for i in range(4)])
    np.testing.assert_allclose(batched, looped, atol=1e-6)

    sizes = jax.jit(jax.vmap(model.num_params))(masks)
    assert [int(s) for s in sizes] == [model.num_params(np.asarray(m)) for m in masks]


def test_repair_and_train_output():
    model = bilstm(3, hidden=10, layers=2, granularity=3, min_active=2)
    ids = model.layout.layer_ids()
    minimal = np.asarray(model.repair(jax.random.key(0), jnp.zeros(model.num_dims, bool)))
    for i in range(4):
        assert minimal[ids == i].sum() == 2
    np.testing.assert_array_equal(model.repair(jax.random.key(3), jnp.asarray(minimal)), minimal)

    x = jnp.ones((2, 4, 3))
    variables = model.init(jax.random.key(0), x)
    outputs, updates = model.apply(variables, x, jnp.asarray(minimal), train=True)
    assert updates == {}
    np.testing.assert_allclose(outputs, model.apply(variables, x, jnp.asarray(minimal)))


def test_config_round_trip_after_compaction():
    model = bilstm(3, hidden=7, layers=2, outputs=2, granularity=2)
    x = jnp.ones((2, 4, 3))
    variables = model.init(jax.random.key(0), x)
    _, mask = random_masks(model, densities=(0.5,))[1]
    small, small_vars = model.compact(variables, mask)
    rebuilt = build_model(json.loads(json.dumps(small.config)))
    assert rebuilt == small
    assert build_model(model.config) == model
    assert jax.tree.map(jnp.shape, rebuilt.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, small_vars)
    with pytest.raises(ValueError, match="inputs"):
        model.init(jax.random.key(0), jnp.ones((2, 4, 5)))
