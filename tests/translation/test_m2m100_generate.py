"""Greedy and beam-search decoding against transformers' `generate`."""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.translation.hf_models import random_batch, random_hf_model, torch

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


def test_greedy_matches_transformers(models):
    reference, model, variables = models
    batch = random_batch(0, 4, 6, 2)
    expected, _ = hf_generate(reference, batch, num_beams=1)

    tokens = np.asarray(greedy_generate(model, variables, batch["input_ids"], batch["attention_mask"],
                                        max_length=MAX_LENGTH, forced_bos_token_id=FORCED))

    assert (tokens[:, 1] == FORCED).all()
    assert (tokens == 2)[:, 1:].any(axis=1).sum() >= 1  # some sequence ends early
    np.testing.assert_array_equal(tokens, expected)


def test_beam_search_matches_transformers(models):
    reference, model, variables = models
    batch = random_batch(0, 4, 6, 2)
    expected, out = hf_generate(reference, batch, num_beams=3)

    tokens, scores = beam_search(model, variables, batch["input_ids"], batch["attention_mask"],
                                 max_length=MAX_LENGTH, num_beams=3, forced_bos_token_id=FORCED)

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
