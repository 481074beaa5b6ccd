"""Head masks of the Flax M2M100: compaction, sizes, repair, and pruning in PyTorch."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.translation.hf_models import random_batch, random_hf_model, torch, torch_forward

from sosjax.models import build_model
from sosjax.models.m2m100 import m2m100
from sosjax.models.m2m100_loading import load_m2m100

CONFIG = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m2m100")
    return folder, random_hf_model(folder, **CONFIG)


def random_masks(model, seed, count, keep=0.5):
    rng = np.random.default_rng(seed)
    masks = rng.random((count, model.num_dims)) < keep
    keys = jax.random.split(jax.random.key(seed), count)
    return np.asarray(jax.vmap(model.repair)(keys, jnp.asarray(masks)))


def leaf_count(variables):
    return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(variables))


def test_mask_dimension_counts_attention_heads(hf_folder):
    model, _ = load_m2m100(str(hf_folder[0]))

    # 2 encoder self-attentions, 2 decoder self- and 2 cross-attentions, 4 heads each.
    assert model.num_dims == 24
    assert model.group_names[0] == "encoder_layers_0.self_attn.heads[0:1]"
    assert model.group_names[-1] == "decoder_layers_1.encoder_attn.heads[3:4]"


@pytest.mark.slow
def test_compacted_equals_masked(hf_folder):
    model, variables = load_m2m100(str(hf_folder[0]))
    batch = random_batch(5, 3, 7, 6)

    for mask in random_masks(model, 0, 2):
        small, small_variables = model.compact(variables, mask)
        masked = jax.jit(model.apply)(variables, batch, jnp.asarray(mask))
        compacted = jax.jit(small.apply)(small_variables, batch)

        np.testing.assert_allclose(np.asarray(compacted), np.asarray(masked), atol=1e-5, rtol=0)
        assert small.num_params() == model.num_params(mask)
        assert leaf_count(small_variables) == model.num_params(mask)
        assert small.num_params() < model.num_params()


def test_masked_equals_pytorch_with_zeroed_out_proj_columns(hf_folder):
    folder, reference = hf_folder
    model, variables = load_m2m100(str(folder))
    batch = random_batch(6, 3, 8, 5)
    mask = random_masks(model, 1, 1)[0]
    assert not mask.all()

    pruned = type(reference)(reference.config).eval()
    pruned.load_state_dict(reference.state_dict())
    modules = {}
    for i, layer in enumerate(pruned.model.encoder.layers):
        modules[(f"encoder_layers_{i}", "self_attn")] = layer.self_attn
    for i, layer in enumerate(pruned.model.decoder.layers):
        modules[(f"decoder_layers_{i}", "self_attn")] = layer.self_attn
        modules[(f"decoder_layers_{i}", "encoder_attn")] = layer.encoder_attn
    with torch.no_grad():
        for site in model.sites:
            head_keep = mask[site.offset: site.offset + site.groups]
            for head in np.flatnonzero(~head_keep):
                columns = slice(head * site.head_dim, (head + 1) * site.head_dim)
                modules[site.path].out_proj.weight[:, columns] = 0.0

    expected, _ = torch_forward(pruned, batch)
    unpruned, _ = torch_forward(reference, batch)
    masked = np.asarray(jax.jit(model.apply)(variables, batch, jnp.asarray(mask)))

    np.testing.assert_allclose(masked, expected, atol=1e-4, rtol=0)
    assert np.abs(masked - unpruned).max() > 1e-2  # the mask changes the output


def test_num_params_traced_and_param_mask_agree(hf_folder):
    model, variables = load_m2m100(str(hf_folder[0]))
    masks = random_masks(model, 2, 4)

    traced = jax.jit(jax.vmap(model.num_params))(jnp.asarray(masks))
    for mask, count in zip(masks, np.asarray(traced)):
        kept = jax.tree.map(lambda m: float(m.sum()), model.param_mask(jnp.asarray(mask)))
        assert int(count) == model.num_params(mask)
        assert int(round(sum(jax.tree.leaves(kept)))) == model.num_params(mask)

    # Pruning one head of width 8 removes q, k, v (kernel and bias) and out_proj columns.
    one_off = np.ones(model.num_dims, bool)
    one_off[0] = False
    assert model.num_params() - model.num_params(one_off) == 4 * 32 * 8 + 3 * 8
    assert model.num_stored(one_off) == model.num_params(one_off)


def test_param_mask_zeroes_exactly_what_compact_drops(hf_folder):
    model, variables = load_m2m100(str(hf_folder[0]))
    mask = random_masks(model, 3, 1)[0]
    batch = random_batch(7, 2, 5, 4)

    zeroed = jax.tree.map(lambda p, m: p * m, variables["params"], model.param_mask(jnp.asarray(mask)))
    # With the pruned entries zeroed, the unmasked forward equals the masked one:
    # a zeroed out_proj input column silences the head whatever q, k, v hold.
    np.testing.assert_allclose(
        np.asarray(jax.jit(model.apply)({"params": zeroed}, batch)),
        np.asarray(jax.jit(model.apply)(variables, batch, jnp.asarray(mask))),
        atol=1e-5,
        rtol=0,
    )


def test_repair_keeps_min_active_and_valid_masks():
    model = m2m100(vocab_size=50, d_model=16, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4,
                   decoder_attention_heads=4, encoder_ffn_dim=16, decoder_ffn_dim=16, min_active=2)
    empty = jnp.zeros(model.num_dims, bool)
    keys = jax.random.split(jax.random.key(0), 8)

    repaired = np.asarray(jax.jit(jax.vmap(model.repair, in_axes=(0, None)))(keys, empty))
    for mask in repaired:
        for site in model.sites:
            assert mask[site.offset: site.offset + site.groups].sum() == 2
    assert len({tuple(m) for m in repaired}) > 1  # positions are drawn, not fixed

    valid = random_masks(model, 4, 5, keep=0.9)
    again = np.asarray(jax.vmap(model.repair)(keys[:5], jnp.asarray(valid)))
    np.testing.assert_array_equal(again, valid)


def test_groups_of_two_heads_and_empty_layer():
    model = m2m100(vocab_size=50, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                   decoder_attention_heads=4, encoder_ffn_dim=16, decoder_ffn_dim=16, heads_per_group=2,
                   min_active=0)
    batch = {k: jnp.asarray(v) for k, v in random_batch(8, 2, 5, 4, vocab=50).items()}
    variables = jax.jit(model.init)(jax.random.key(1), batch)
    variables = jax.tree.map(lambda x: x * 20.0, variables)  # larger weights, so heads matter

    assert model.num_dims == 6
    # Encoder: both groups off, so the layer keeps no head at all.
    mask = np.array([False, False, True, False, False, True])
    small, small_variables = model.compact(variables, mask)

    assert small.hparams.encoder_heads == (0,)
    assert small.hparams.decoder_self_heads == (2,)
    assert small.num_dims == 2
    np.testing.assert_allclose(
        np.asarray(jax.jit(small.apply)(small_variables, batch)),
        np.asarray(jax.jit(model.apply)(variables, batch, jnp.asarray(mask))),
        atol=1e-5,
        rtol=0,
    )
    assert leaf_count(small_variables) == model.num_params(mask)


def test_config_rebuilds_compacted_model(hf_folder):
    model, variables = load_m2m100(str(hf_folder[0]))
    mask = random_masks(model, 5, 1)[0]
    small, small_variables = model.compact(variables, mask)
    batch = random_batch(9, 2, 4, 4)

    rebuilt = build_model(small.config)

    assert rebuilt.hparams == small.hparams
    np.testing.assert_array_equal(
        np.asarray(jax.jit(rebuilt.apply)(small_variables, batch)),
        np.asarray(jax.jit(small.apply)(small_variables, batch)),
    )
    with pytest.raises(TypeError):
        build_model({**small.config, "dropout": 0.1})
    assert dataclasses.asdict(rebuilt.hparams)["encoder_heads"] == small.hparams.encoder_heads
