"""Training members together: a diverging member leaves the others untouched."""

import jax
import jax.numpy as jnp
import numpy as np

from sosjax.fitness import TaskHeads
from sosjax.models import bilstm
from sosjax.train import TrainSettings, stack_members, train_members


def test_diverging_member_spoils_no_other():
    model = bilstm(3, hidden=4, layers=1, outputs=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5, 3)).astype(np.float32)
    y = (x[:, -1, 0] * 0.5).astype(np.float32)
    variables = model.init(jax.random.key(0), jnp.asarray(x[:2]))
    masks = np.ones((3, model.num_dims), bool)
    masks[1, ::2] = False
    heads = TaskHeads("regression", target_scale=1.0)
    settings = TrainSettings(epochs=3, batch_size=16, learning_rate=1e-2)
    key = jax.random.key(1)

    start = stack_members(variables, 3)
    poisoned = jax.tree.map(lambda v: v.at[0].set(jnp.nan) if v.dtype.kind == "f" else v, start)
    together = train_members(model, variables, masks, heads, 0, (x, y), (x, y), settings, key, start=poisoned)
    alone = train_members(model, variables, masks[1:], heads, 0, (x, y), (x, y), settings, key, start=jax.tree.map(lambda v: v[1:], start))

    assert together.diverged.tolist() == [True, False, False]
    np.testing.assert_array_equal(together.val_history[:, 1:], alone.val_history)
    for a, b in zip(jax.tree.leaves(jax.tree.map(lambda v: v[1:], together.variables)), jax.tree.leaves(alone.variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.isfinite(together.val_history[1:, 1:]))
    assert together.best_epoch[1:].min() >= 1
