"""Row masks of the Flax M2M100: query/key and value/output rows, ragged compaction, pruning in PyTorch."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.translation.hf_models import random_batch, random_hf_model, torch, torch_forward

from sosjax.models import build_model
from sosjax.models.m2m100 import m2m100
from sosjax.models.m2m100_loading import load_m2m100

CONFIG = dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4)
HEAD_DIM = 8


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m2m100_rows")
    return folder, random_hf_model(folder, **CONFIG)


def row_model(folder, rows_per_group, min_active=1):
    model, variables = load_m2m100(str(folder))
    return m2m100(model.hparams, mask_unit="rows", rows_per_group=rows_per_group, min_active=min_active), variables


def random_masks(model, seed, count, keep):
    rng = np.random.default_rng(seed)
    masks = rng.random((count, model.num_dims)) < keep
    keys = jax.random.split(jax.random.key(seed), count)
    return np.asarray(jax.vmap(model.repair)(keys, jnp.asarray(masks)))


def leaf_count(variables):
    return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(variables))


def site_bits(model, mask, site_index):
    """The query/key and value/output bits of one attention layer."""
    site = model.sites[site_index]
    bits = mask[site.offset: site.offset + site.groups]
    return bits[: site.qk_groups], bits[site.qk_groups:]


def test_row_groups_layout(hf_folder):
    model, _ = row_model(hf_folder[0], rows_per_group=2)

    # 3 attention layers, each 32 query/key rows and 32 value/output rows in pairs.
    assert model.num_dims == 3 * (32 + 32) // 2
    assert model.sites[0].qk_groups == 16
    assert model.group_names[0] == "encoder_layers_0.self_attn.qk_rows[0:2]"
    assert model.group_names[16] == "encoder_layers_0.self_attn.vo_rows[0:2]"
    assert model.group_names[-1] == "decoder_layers_0.encoder_attn.vo_rows[30:32]"
    with pytest.raises(ValueError, match="rows_per_group \\(3\\) must divide"):
        m2m100(model.hparams, rows_per_group=3)


@pytest.mark.parametrize("rows_per_group, keep", [(1, 0.3), (1, 0.7), (4, 0.5), (2, 0.9)])
def test_row_compacted_equals_masked(hf_folder, rows_per_group, keep):
    model, variables = row_model(hf_folder[0], rows_per_group)
    batch = random_batch(5, 3, 7, 6)
    mask = random_masks(model, 10 * rows_per_group + int(keep * 10), 1, keep)[0]

    small, small_variables = model.compact(variables, mask)
    masked = jax.jit(model.apply)(variables, batch, jnp.asarray(mask))
    compacted = jax.jit(small.apply)(small_variables, batch)

    np.testing.assert_allclose(np.asarray(compacted), np.asarray(masked), atol=1e-5, rtol=0)
    assert small.hparams.vo_dims is not None
    assert len({w for dims in small.hparams.vo_dims for w in dims}) > 1  # ragged heads
    assert leaf_count(small_variables) == model.num_params(mask)
    assert small.num_params() == model.num_params(mask)
    assert small.num_params() < model.num_params()


def test_head_without_value_rows_vanishes(hf_folder):
    model, variables = row_model(hf_folder[0], rows_per_group=4)
    batch = random_batch(6, 2, 5, 4)
    mask = np.ones(model.num_dims, bool)
    site = model.sites[0]
    # Encoder head 1: value/output rows 8..15 (groups 2 and 3) off, its query/key rows on.
    mask[site.offset + site.qk_groups + 2: site.offset + site.qk_groups + 4] = False
    # Encoder head 3: only half of its value/output rows off.
    mask[site.offset + site.qk_groups + 6] = False

    small, small_variables = model.compact(variables, mask)

    assert small.hparams.encoder_heads == (3,)
    assert small.hparams.qk_dims[0] == (8, 8, 8)
    assert small.hparams.vo_dims[0] == (8, 8, 4)
    # Pruned: the dead head's 8 query/key rows and 12 value/output rows (8 + 4).
    row_params = (2 * 32 + 2) * 8 + (2 * 32 + 1) * 12
    assert model.num_params() - model.num_params(mask) == row_params
    assert leaf_count(small_variables) == model.num_params(mask)
    np.testing.assert_allclose(
        np.asarray(jax.jit(small.apply)(small_variables, batch)),
        np.asarray(jax.jit(model.apply)(variables, batch, jnp.asarray(mask))),
        atol=1e-5,
        rtol=0,
    )


def test_head_without_query_rows_averages_values(hf_folder):
    model, variables = row_model(hf_folder[0], rows_per_group=8)
    batch = random_batch(7, 2, 6, 5)
    mask = np.ones(model.num_dims, bool)
    for index in range(len(model.sites)):
        # Query/key rows of head 0 off: its scores are all 0, so it averages the values.
        mask[model.sites[index].offset] = False

    small, small_variables = model.compact(variables, mask)

    assert small.hparams.qk_dims[0] == (0, 8, 8, 8)
    assert small.hparams.vo_dims[0] == (8, 8, 8, 8)
    masked = np.asarray(jax.jit(model.apply)(variables, batch, jnp.asarray(mask)))
    np.testing.assert_allclose(np.asarray(jax.jit(small.apply)(small_variables, batch)), masked, atol=1e-5, rtol=0)
    unmasked = np.asarray(jax.jit(model.apply)(variables, batch))
    assert np.abs(masked - unmasked).max() > 1e-2


def test_row_masked_equals_pytorch_with_zeroed_rows(hf_folder):
    folder, reference = hf_folder
    model, variables = row_model(folder, rows_per_group=2)
    batch = random_batch(8, 3, 8, 5)
    mask = random_masks(model, 1, 1, keep=0.6)[0]

    pruned = type(reference)(reference.config).eval()
    pruned.load_state_dict(reference.state_dict())
    modules = {("encoder_layers_0", "self_attn"): pruned.model.encoder.layers[0].self_attn,
               ("decoder_layers_0", "self_attn"): pruned.model.decoder.layers[0].self_attn,
               ("decoder_layers_0", "encoder_attn"): pruned.model.decoder.layers[0].encoder_attn}
    with torch.no_grad():
        for index, site in enumerate(model.sites):
            qk_bits, vo_bits = site_bits(model, mask, index)
            qk_off = np.flatnonzero(~np.repeat(qk_bits, 2))
            vo_off = np.flatnonzero(~np.repeat(vo_bits, 2))
            attention = modules[site.path]
            for projection, rows in ((attention.q_proj, qk_off), (attention.k_proj, qk_off),
                                     (attention.v_proj, vo_off)):
                projection.weight[rows, :] = 0.0
                projection.bias[rows] = 0.0
            attention.out_proj.weight[:, vo_off] = 0.0

    expected, _ = torch_forward(pruned, batch)
    unpruned, _ = torch_forward(reference, batch)
    masked = np.asarray(jax.jit(model.apply)(variables, batch, jnp.asarray(mask)))

    np.testing.assert_allclose(masked, expected, atol=1e-4, rtol=0)
    assert np.abs(masked - unpruned).max() > 1e-2  # the mask changes the output


def test_row_vmap_equals_loop(hf_folder):
    model, variables = row_model(hf_folder[0], rows_per_group=4)
    batch = {k: jnp.asarray(v) for k, v in random_batch(9, 2, 5, 4).items()}
    masks = random_masks(model, 2, 3, keep=0.5)

    vmapped = jax.jit(jax.vmap(model.apply, in_axes=(None, None, 0)))(variables, batch, jnp.asarray(masks))
    traced = jax.jit(jax.vmap(model.num_params))(jnp.asarray(masks))
    apply = jax.jit(model.apply)
    for i, mask in enumerate(masks):
        np.testing.assert_allclose(np.asarray(vmapped[i]), np.asarray(apply(variables, batch, jnp.asarray(mask))),
                                   atol=1e-5, rtol=0)
        assert int(traced[i]) == model.num_params(mask)
        kept_counts = jax.tree.map(lambda m: float(m.sum()), model.param_mask(jnp.asarray(mask)))
        assert int(round(sum(jax.tree.leaves(kept_counts)))) == model.num_params(mask)


def test_row_repair_keeps_both_kinds():
    model = m2m100(vocab_size=50, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, mask_unit="rows",
                   rows_per_group=2, min_active=3)
    keys = jax.random.split(jax.random.key(0), 6)

    repaired = np.asarray(jax.jit(jax.vmap(model.repair, in_axes=(0, None)))(keys, jnp.zeros(model.num_dims, bool)))

    for mask in repaired:
        for index in range(len(model.sites)):
            qk_bits, vo_bits = site_bits(model, mask, index)
            assert qk_bits.sum() == 3
            assert vo_bits.sum() == 3
        assert model.num_params(mask) > 0
    assert len({tuple(m) for m in repaired}) > 1


def test_ragged_config_survives_json(hf_folder):
    model, variables = row_model(hf_folder[0], rows_per_group=4)
    mask = random_masks(model, 3, 1, keep=0.5)[0]
    small, small_variables = model.compact(variables, mask)
    batch = random_batch(10, 2, 4, 4)

    rebuilt = build_model(json.loads(json.dumps(small.config)))

    assert rebuilt.hparams == small.hparams
    assert rebuilt.num_dims == (sum(map(sum, small.hparams.qk_dims)) + sum(map(sum, small.hparams.vo_dims))) // 4
    np.testing.assert_array_equal(
        np.asarray(jax.jit(rebuilt.apply)(small_variables, batch)),
        np.asarray(jax.jit(small.apply)(small_variables, batch)),
    )
    with pytest.raises(ValueError, match="needs heads of full width"):
        build_model({**small.config, "mask_unit": "heads"})
