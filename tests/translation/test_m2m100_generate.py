"""Greedy and beam-search decoding against transformers' `generate`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.translation.hf_models import random_batch, random_hf_model, torch

from sosjax.models.m2m100 import m2m100
from sosjax.models.m2m100_generate import beam_search, generate, greedy_generate
from sosjax.models.m2m100_loading import load_m2m100

MAX_LENGTH = 16
FORCED = 7  # used as the target-language token


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A random model whose end-of-sequence logit is raised, so that some
    sequences end early and others run to the maximum length."""
    folder = tmp_path_factory.mktemp("generate")
    reference = random_hf_model(folder, scale=0.3, d_model=32, encoder_attention_heads=4, decoder_attention_heads=4)
    with torch.no_grad():
        reference.model.shared.weight[2] *= 3.0
    reference.save_pretrained(str(folder))
    model, variables = load_m2m100(str(folder))
    return reference, model, variables


def hf_generate(reference, batch, **kwargs):
    out = reference.generate(
        input_ids=torch.tensor(batch["input_ids"]),
        attention_mask=torch.tensor(batch["attention_mask"]),
        do_sample=False,
        max_length=MAX_LENGTH,
        forced_bos_token_id=FORCED,
        return_dict_in_generate=True,
        output_scores=True,
        **kwargs,
    )
    sequences = out.sequences.numpy()
    # transformers stops at the longest sequence; sosjax pads to max_length.
    padded = np.full((sequences.shape[0], MAX_LENGTH), 1, sequences.dtype)
    padded[:, : sequences.shape[1]] = sequences
    return padded, out


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_matches_transformers(models, use_cache):
    reference, model, variables = models
    batch = random_batch(0, 4, 6, 2)
    expected, _ = hf_generate(reference, batch, num_beams=1)

    tokens = np.asarray(greedy_generate(model, variables, batch["input_ids"], batch["attention_mask"],
                                        max_length=MAX_LENGTH, forced_bos_token_id=FORCED, use_cache=use_cache))

    assert (tokens[:, 1] == FORCED).all()
    assert (tokens == 2)[:, 1:].any(axis=1).sum() >= 1  # some sequence ends early
    np.testing.assert_array_equal(tokens, expected)


@pytest.mark.parametrize("use_cache", [True, False])
def test_beam_search_matches_transformers(models, use_cache):
    reference, model, variables = models
    batch = random_batch(0, 4, 6, 2)
    expected, out = hf_generate(reference, batch, num_beams=3)

    tokens, scores = beam_search(model, variables, batch["input_ids"], batch["attention_mask"],
                                 max_length=MAX_LENGTH, num_beams=3, forced_bos_token_id=FORCED, use_cache=use_cache)

    np.testing.assert_array_equal(np.asarray(tokens), expected)
    np.testing.assert_allclose(np.asarray(scores), out.sequences_scores.numpy(), atol=1e-4)
    greedy, _ = hf_generate(reference, batch, num_beams=1)
    assert (expected != greedy).any()  # beams find something greedy does not


@pytest.mark.slow
def test_masked_generation_equals_compacted(models):
    _, model, variables = models
    batch = random_batch(1, 3, 5, 2)
    mask = np.ones(model.num_dims, bool)
    mask[::3] = False
    small, small_variables = model.compact(variables, mask)

    for num_beams in (1, 2):
        masked = generate(model, variables, batch["input_ids"], batch["attention_mask"], jnp.asarray(mask),
                          max_length=10, num_beams=num_beams, forced_bos_token_id=FORCED)
        compacted = generate(small, small_variables, batch["input_ids"], batch["attention_mask"],
                             max_length=10, num_beams=num_beams, forced_bos_token_id=FORCED)
        np.testing.assert_array_equal(np.asarray(masked), np.asarray(compacted))
        assert masked.shape == (3, 10)


def test_cache_holds_decoder_keys_and_values(models):
    _, model, variables = models
    batch = random_batch(2, 2, 5, 6)
    tokens = jnp.asarray(batch["decoder_input_ids"])
    encoder_states = model.encode(variables, batch["input_ids"], batch["attention_mask"])
    cross = model.cross_key_values(variables, encoder_states)
    cache = model.init_cache(2, MAX_LENGTH)
    assert cache[0][0].shape == (2, MAX_LENGTH, 32)
    full = model.decode(variables, tokens, encoder_states, batch["attention_mask"],
                        decoder_positions=jnp.arange(6)[None] + 2)

    step = jax.jit(model.decode_step)
    for index in range(6):
        logits, cache = step(variables, tokens[:, index], jnp.full(2, index + 2), index, cache, cross,
                             batch["attention_mask"])
        np.testing.assert_allclose(np.asarray(logits), np.asarray(full[:, index]), atol=1e-4, rtol=0)
    assert np.abs(np.asarray(cache[0][0][:, 6:])).max() == 0.0  # later positions not written


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cached_ragged_model_equals_uncached(models, num_beams):
    _, model, variables = models
    rows = m2m100(model.hparams, mask_unit="rows", rows_per_group=2)
    batch = random_batch(3, 3, 5, 2)
    rng = np.random.default_rng(num_beams)
    mask = np.asarray(rows.repair(jax.random.key(0), jnp.asarray(rng.random(rows.num_dims) < 0.6)))
    small, small_variables = rows.compact(variables, mask)
    assert len({w for dims in small.hparams.vo_dims for w in dims}) > 1  # ragged heads

    runs = [
        generate(rows, variables, batch["input_ids"], batch["attention_mask"], jnp.asarray(mask), use_cache=use_cache,
                 max_length=MAX_LENGTH, num_beams=num_beams, forced_bos_token_id=FORCED)
        for use_cache in (True, False)
    ] + [
        generate(small, small_variables, batch["input_ids"], batch["attention_mask"], use_cache=True,
                 max_length=MAX_LENGTH, num_beams=num_beams, forced_bos_token_id=FORCED)
    ]

    np.testing.assert_array_equal(np.asarray(runs[0]), np.asarray(runs[1]))
    np.testing.assert_array_equal(np.asarray(runs[2]), np.asarray(runs[1]))
    assert (np.asarray(runs[0])[:, 2:] != 1).sum() > 3  # more than a few tokens were generated
