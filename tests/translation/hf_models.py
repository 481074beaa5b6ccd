"""Small random transformers M2M100 models saved as Hugging Face folders."""

from __future__ import annotations

import numpy as np

torch = __import__("pytest").importorskip("torch")
from transformers import M2M100Config, M2M100ForConditionalGeneration  # noqa: E402


def random_hf_model(folder, seed: int = 0, scale: float = 0.5, **config) -> M2M100ForConditionalGeneration:
    """Save a transformers M2M100 with every parameter drawn from N(0, scale²)
    (layer norms and biases included, so none of them is trivially 1 or 0)."""
    defaults = dict(vocab_size=100, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                    decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64)
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(M2M100Config(**{**defaults, **config})).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, scale)
    model.save_pretrained(str(folder))
    return model


def random_batch(seed: int, batch: int, source_length: int, target_length: int, vocab: int = 100):
    """Token ids with right padding (id 1) in the source and the target, and the
    decoder start token (id 2) in front of each target."""
    rng = np.random.default_rng(seed)
    source_lengths = rng.integers(1, source_length + 1, batch)
    source_lengths[0] = source_length
    target_lengths = rng.integers(1, target_length + 1, batch)
    target_lengths[0] = target_length

    input_ids = rng.integers(3, vocab, (batch, source_length))
    attention_mask = (np.arange(source_length)[None] < source_lengths[:, None]).astype(np.int64)
    input_ids[attention_mask == 0] = 1
    decoder_input_ids = rng.integers(3, vocab, (batch, target_length))
    decoder_input_ids[:, 0] = 2
    decoder_attention_mask = (np.arange(target_length)[None] < target_lengths[:, None]).astype(np.int64)
    decoder_input_ids[decoder_attention_mask == 0] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "decoder_input_ids": decoder_input_ids,
        "decoder_attention_mask": decoder_attention_mask,
    }


def torch_forward(model, batch):
    """Logits and encoder states of the PyTorch model, as numpy."""
    tensors = {k: torch.tensor(v) for k, v in batch.items()}
    with torch.no_grad():
        out = model(**tensors)
    return out.logits.numpy(), out.encoder_last_hidden_state.numpy()
