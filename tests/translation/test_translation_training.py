"""Translation heads in the generic stages: NLL over padded batches, Adafactor fine-tuning, early stopping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.fitness import TaskHeads, task_loss
from sosjax.models.m2m100 import m2m100
from sosjax.train import TrainSettings, evaluate_members, train_members
from sosjax.translation.loss import loss

VOCAB = 40


def token_batch(seed, n, source_length=6, target_length=5):
    """Random source and target tokens with right padding, as `encode_pairs` lays them out."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, target_length + 1, n)
    labels = rng.integers(3, VOCAB, (n, target_length)).astype(np.int32)
    valid = np.arange(target_length)[None] < lengths[:, None]
    labels = np.where(valid, labels, -100)
    x = {
        "input_ids": rng.integers(3, VOCAB, (n, source_length)).astype(np.int32),
        "attention_mask": np.ones((n, source_length), np.int32),
        "decoder_input_ids": np.concatenate([np.full((n, 1), 2), np.where(valid, labels, 1)[:, :-1]], 1).astype(np.int32),
        "decoder_attention_mask": np.concatenate([np.ones((n, 1)), valid[:, :-1]], 1).astype(np.int32),
    }
    return x, labels


@pytest.fixture(scope="module")
def small_model():
    model = m2m100(vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                   decoder_attention_heads=4, encoder_ffn_dim=16, decoder_ffn_dim=16)
    x, _ = token_batch(0, 2)
    variables = model.init(jax.random.key(0), jax.tree.map(jnp.asarray, x))
    masks = np.ones((2, model.num_dims), bool)
    masks[1, ::2] = False
    return model, variables, masks


@pytest.mark.slow
def test_members_nll_padded_corpus_mean(small_model):
    model, variables, masks = small_model
    x, labels = token_batch(1, 7)
    batch = {**x, "labels": labels}

    # 7 examples in batches of 3: the last batch is padded with a repeated row.
    scores = evaluate_members(model, variables, jnp.asarray(masks), TaskHeads("translation"), 0, x, labels,
                              batch_size=3, stacked=False)

    expected = [float(loss(model, variables, batch, jnp.asarray(mask))) for mask in masks]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert abs(expected[0] - expected[1]) > 1e-4  # the mask matters
    logits = model.apply(variables, x, jnp.asarray(masks[0]))
    np.testing.assert_allclose(float(task_loss(TaskHeads("translation"), logits, labels, 0)), expected[0], rtol=1e-6)


@pytest.mark.slow
def test_adafactor_pruned_zero_early_stop(small_model):
    model, variables, masks = small_model
    train = token_batch(2, 16)
    # Half seen pairs, half unrelated ones: memorizing the training pairs first
    # helps and then, as predictions grow confident, hurts the unrelated half.
    unseen = token_batch(3, 8)
    val = jax.tree.map(lambda a, b: np.concatenate([a[:8], b]), train, unseen)
    settings = TrainSettings(epochs=40, batch_size=8, learning_rate=1e-2, optimizer="adafactor", patience=2)

    result = train_members(model, variables, masks, TaskHeads("translation"), 0, train, val, settings,
                           jax.random.key(0))

    pruned = jax.tree.map(lambda m: m == 0, model.param_mask(jnp.asarray(masks[1])))
    member = jax.tree.map(lambda v: v[1], result.variables["params"])
    assert all(np.all(np.asarray(v)[p] == 0) for v, p in zip(jax.tree.leaves(member), jax.tree.leaves(pruned)))
    assert sum(int(p.sum()) for p in jax.tree.leaves(pruned)) > 0

    # Stopped `patience` epochs after the last improvement of any member; later rows never ran.
    ran = int(np.sum(~np.isnan(result.val_history[:, 0]))) - 1
    assert ran == int(result.best_epoch.max()) + settings.patience < settings.epochs
    assert np.isnan(result.val_history[ran + 1:]).all()
    # Each member keeps its best-validation variables: better than at the start.
    best = result.val_history[result.best_epoch, np.arange(2)]
    assert np.all(best < result.val_history[0])
