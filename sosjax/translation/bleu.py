"""Translating sentence lists and scoring them with sacrebleu."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from sosjax.models.m2m100_generate import generate
from sosjax.translation.tokenizer import decode_tokens


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenization, exponential smoothing), 0 to 100."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"Got {len(hypotheses)} hypotheses for {len(references)} references.")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def translate(
    model,
    variables,
    tokenizer,
    sources: Sequence[str],
    src_lang: str,
    tgt_lang: str,
    mask=None,
    *,
    max_source_length: int = 128,
    max_length: int = 128,
    num_beams: int = 1,
    batch_size: int = 32,
) -> list[str]:
    """Translate `sources` from `src_lang` to `tgt_lang`, forcing the target
    language token after the decoder start token as transformers does.

    Batches are padded to `batch_size` rows and `max_source_length` tokens so
    that every batch reuses one compiled decoder.
    """
    tokenizer.src_lang = src_lang
    forced = tokenizer.get_lang_id(tgt_lang)
    outputs = []
    for start in range(0, len(sources), batch_size):
        chunk = list(sources[start: start + batch_size])
        rows = len(chunk)
        chunk += [""] * (batch_size - rows)
        encoded = tokenizer(chunk, padding="max_length", truncation=True, max_length=max_source_length,
                            return_tensors="np")
        tokens = generate(model, variables, jnp.asarray(encoded["input_ids"], jnp.int32),
                          jnp.asarray(encoded["attention_mask"], jnp.int32), mask, max_length=max_length,
                          num_beams=num_beams, forced_bos_token_id=forced)
        outputs += decode_tokens(tokenizer, tokens[:rows])
    return outputs
