"""The Flax M2M100 port against transformers' PyTorch M2M100ForConditionalGeneration."""

import json

import jax
import numpy as np
import pytest

from tests.translation.hf_models import random_batch, random_hf_model, torch, torch_forward

from sosjax.models.m2m100_loading import load_m2m100, save_m2m100

CASES = [
    # (HF config overrides, batch, source length, target length)
    (dict(), 2, 5, 4),
    (dict(d_model=32, encoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=8), 3, 9, 6),
    (dict(decoder_layers=2, encoder_attention_heads=1, decoder_attention_heads=4, decoder_ffn_dim=24), 3, 3, 7),
    (dict(activation_function="gelu", scale_embedding=False, tie_word_embeddings=False), 2, 6, 5),
]


@pytest.mark.parametrize("overrides, batch_size, source_length, target_length", CASES)
def test_logits_and_encoder_match_transformers(tmp_path, overrides, batch_size, source_length, target_length):
    reference = random_hf_model(tmp_path, **overrides)
    model, variables = load_m2m100(str(tmp_path))
    batch = random_batch(1, batch_size, source_length, target_length)

    expected_logits, expected_states = torch_forward(reference, batch)
    logits = np.asarray(jax.jit(model.apply)(variables, batch))
    states = np.asarray(model.encode(variables, batch["input_ids"], batch["attention_mask"]))

    assert logits.shape == (batch_size, target_length, 100)
    assert np.abs(expected_logits).max() > 1.0  # the comparison is not between near-zero outputs
    np.testing.assert_allclose(states, expected_states, atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-4, rtol=0)


def test_without_decoder_mask_matches_transformers(tmp_path):
    reference = random_hf_model(tmp_path, encoder_attention_heads=4, decoder_attention_heads=4)
    model, variables = load_m2m100(str(tmp_path))
    batch = random_batch(2, 3, 6, 5)
    batch.pop("decoder_attention_mask")

    expected_logits, _ = torch_forward(reference, batch)

    np.testing.assert_allclose(np.asarray(jax.jit(model.apply)(variables, batch)), expected_logits, atol=1e-4, rtol=0)


def test_num_params_matches_transformers(tmp_path):
    for overrides in (dict(), dict(tie_word_embeddings=False, encoder_layers=2, decoder_attention_heads=4)):
        reference = random_hf_model(tmp_path, **overrides)
        model, variables = load_m2m100(str(tmp_path))
        stored = sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(variables))

        # Untied, transformers 5 keeps `model.shared` although no forward pass uses it.
        unused = 0 if reference.config.tie_word_embeddings else reference.model.shared.weight.numel()
        assert model.num_params() == sum(p.numel() for p in reference.parameters()) - unused
        assert model.num_params() == stored


def test_pytorch_bin_loads_like_safetensors(tmp_path):
    reference = random_hf_model(tmp_path / "st", encoder_attention_heads=4)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    torch.save(reference.state_dict(), tmp_path / "bin" / "pytorch_model.bin")

    _, from_safetensors = load_m2m100(str(tmp_path / "st"))
    _, from_bin = load_m2m100(str(tmp_path / "bin"))

    for a, b in zip(jax.tree.leaves(from_safetensors), jax.tree.leaves(from_bin)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_save_roundtrip_through_transformers(tmp_path):
    random_hf_model(tmp_path / "a", decoder_layers=2)
    model, variables = load_m2m100(str(tmp_path / "a"))
    save_m2m100(str(tmp_path / "b"), model, variables)

    from transformers import M2M100ForConditionalGeneration

    reloaded = M2M100ForConditionalGeneration.from_pretrained(str(tmp_path / "b")).eval()
    batch = random_batch(3, 2, 4, 4)
    expected_logits, _ = torch_forward(reloaded, batch)

    np.testing.assert_allclose(np.asarray(jax.jit(model.apply)(variables, batch)), expected_logits, atol=1e-4, rtol=0)


def test_missing_folder_and_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_m2m100(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_m2m100(str(tmp_path))

    random_hf_model(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="No weights"):
        load_m2m100(str(tmp_path))


def test_wrong_architecture_raises(tmp_path):
    random_hf_model(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_type"] = "bart"
    (tmp_path / "config.json").write_text(json.dumps(config))

    with pytest.raises(ValueError, match="'bart', not 'm2m_100'"):
        load_m2m100(str(tmp_path))


def test_mismatched_shapes_raise(tmp_path):
    random_hf_model(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["encoder_ffn_dim"] = 48
    (tmp_path / "config.json").write_text(json.dumps(config))

    with pytest.raises(ValueError, match=r"shape mismatches.*encoder\.layers\.0\.fc1\.weight"):
        load_m2m100(str(tmp_path))
