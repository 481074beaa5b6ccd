"""Tests of the mask layout: bit order, names, counts and repair."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.models.groups import GroupLayout


@pytest.fixture
def layout():
    # 10 units at g=4 give groups of 4, 4 and 2 units; 3 units give one group.
    return GroupLayout.build([("a", 10), ("b", 3), ("c", 8)], granularity=4)


def test_layout_offsets_and_names(layout):
    assert layout.num_dims == 3 + 1 + 2
    assert [l.offset for l in layout.layers] == [0, 3, 4]
    assert layout.group_names() == ("a[0:4]", "a[4:8]", "a[8:10]", "b[0:3]", "c[0:4]", "c[4:8]")
    np.testing.assert_array_equal(layout.group_sizes(layout.layers[0]), [4, 4, 2])
    np.testing.assert_array_equal(layout.unit_to_bit(layout.layers[2]), [4, 4, 4, 4, 5, 5, 5, 5])


def test_active_units_numpy_and_traced(layout):
    mask = np.array([True, False, True, False, False, True])
    expected = [6, 0, 4]
    for layer, count in zip(layout.layers, expected):
        assert layout.active_units(mask, layer) == count
        assert isinstance(layout.active_units(mask, layer), int)
        traced = jax.jit(lambda m, layer=layer: layout.active_units(m, layer))(jnp.asarray(mask))
        assert int(traced) == count
    assert layout.active_units(None, layout.layers[0]) == 10
    np.testing.assert_array_equal(layout.kept_units(mask, layout.layers[0]), [0, 1, 2, 3, 8, 9])


def test_unit_mask_expands_groups(layout):
    mask = jnp.array([False, True, True, True, True, False])
    np.testing.assert_array_equal(layout.unit_mask(mask, layout.layers[0]), [0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    assert layout.unit_mask(None, layout.layers[0]) is None


@pytest.mark.parametrize("min_active", [1, 2, 5])
def test_repair_reaches_min_active(layout, min_active):
    keys = jax.random.split(jax.random.key(0), 64)
    masks = jax.random.bernoulli(jax.random.key(1), 0.2, (64, layout.num_dims))
    repaired = np.asarray(jax.jit(jax.vmap(lambda k, m: layout.repair(k, m, min_active)))(keys, masks))
    ids = layout.layer_ids()
    for i, layer in enumerate(layout.layers):
        on = repaired[:, ids == i].sum(axis=1)
        assert on.min() >= min(min_active, layer.num_groups)

    # Repair only switches bits on, and only as many as a layer lacks.
    assert np.all(repaired >= np.asarray(masks))
    for i, layer in enumerate(layout.layers):
        before = np.asarray(masks)[:, ids == i].sum(axis=1)
        after = repaired[:, ids == i].sum(axis=1)
        np.testing.assert_array_equal(after, np.maximum(before, min(min_active, layer.num_groups)))


def test_repair_leaves_valid_mask_unchanged(layout):
    mask = jnp.array([True, False, False, True, False, True])
    for seed in range(5):
        np.testing.assert_array_equal(layout.repair(jax.random.key(seed), mask, 1), mask)


def test_repair_picks_random_positions(layout):
    empty = jnp.zeros(layout.num_dims, bool)
    picks = {tuple(np.asarray(layout.repair(jax.random.key(s), empty, 1))[:3]) for s in range(30)}
    assert len(picks) == 3


def test_invalid_layout_rejected():
    with pytest.raises(ValueError, match="granularity"):
        GroupLayout.build([("a", 4)], granularity=0)
    with pytest.raises(ValueError, match="at least one"):
        GroupLayout.build([("a", 0)], granularity=1)
