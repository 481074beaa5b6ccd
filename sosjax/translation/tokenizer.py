"""M2M100 tokenizer folders: training one with sentencepiece, loading and batching.

An M2M100 tokenizer folder contains `sentencepiece.bpe.model`, `vocab.json` (piece
to id, with `<s>`, `<pad>`, `</s>`, `<unk>` at 0 to 3) and
`tokenizer_config.json`. transformers' `M2M100Tokenizer` appends one token
`__xx__` per language of its language-code set after the vocabulary; a source
is `__src__ tokens </s>` and a target `__tgt__ tokens </s>`.
"""

from __future__ import annotations

import io
import json
import os
from typing import Sequence

import numpy as np

SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>")


def train_tokenizer(
    texts: Sequence[str],
    folder: str,
    vocab_size: int = 1000,
    language_codes: str = "wmt21",
    seed_sentencepiece_size: int = 100_000,
) -> None:
    """Train a BPE sentencepiece model on `texts` and write an M2M100 tokenizer folder.

    Args:
      texts: sentences of every language the model will see.
      folder: output folder; created if missing.
      vocab_size: pieces, the four special ones included; language tokens come on top.
      language_codes: transformers' language-code set, `"wmt21"` (8 languages:
        en, ha, is, ja, cs, ru, zh, de) or `"m2m100"` (100 languages).
    """
    import sentencepiece as spm

    os.makedirs(folder, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        character_coverage=1.0,
        seed_sentencepiece_size=seed_sentencepiece_size,
        num_threads=1,
        minloglevel=2,
    )
    with open(os.path.join(folder, "sentencepiece.bpe.model"), "wb") as f:
        f.write(model.getvalue())

    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    for i, piece in enumerate(SPECIAL_PIECES):
        vocab[piece] = i
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=0)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "M2M100Tokenizer", "language_codes": language_codes,
                   "num_madeup_words": 0, "model_max_length": 1024}, f, indent=2)


def load_tokenizer(folder: str, src_lang: str = "en", tgt_lang: str = "en"):
    """transformers' `M2M100Tokenizer` read from a local folder."""
    from transformers import M2M100Tokenizer

    if not os.path.exists(os.path.join(folder, "sentencepiece.bpe.model")):
        raise FileNotFoundError(f"No sentencepiece.bpe.model in {folder}; it is not an M2M100 tokenizer folder.")
    return M2M100Tokenizer.from_pretrained(folder, src_lang=src_lang, tgt_lang=tgt_lang)


def _pad(rows: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(rows), length), pad_id, np.int32)
    mask = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        row = list(row)[:length]
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def encode_pairs(
    tokenizer,
    sources: Sequence[str],
    targets: Sequence[str],
    src_lang: str,
    tgt_lang: str,
    source_length: int,
    target_length: int,
    decoder_start_token_id: int = 2,
) -> dict[str, np.ndarray]:
    """Encode sentence pairs as a fixed-shape training batch.

    Sources become `__src__ x </s>` and targets `__tgt__ y </s>`, truncated
    (cutting the final `</s>` of over-long sentences) and right-padded.
    `decoder_input_ids` are the labels shifted right behind the decoder start
    token, as transformers' `shift_tokens_right` builds them.

    Returns:
      `input_ids, attention_mask: int32[N, source_length]`;
      `decoder_input_ids, decoder_attention_mask, labels: int32[N, target_length]`,
      with padding labels set to -100.
    """
    tokenizer.src_lang = src_lang
    tokenizer.tgt_lang = tgt_lang
    source_rows = tokenizer(list(sources))["input_ids"]
    target_rows = tokenizer(text_target=list(targets))["input_ids"]
    pad = tokenizer.pad_token_id

    input_ids, attention_mask = _pad(source_rows, source_length, pad)
    labels, label_mask = _pad(target_rows, target_length, pad)
    decoder_input_ids = np.concatenate(
        [np.full((len(targets), 1), decoder_start_token_id, np.int32), labels[:, :-1]], axis=1
    )
    decoder_attention_mask = np.concatenate([np.ones((len(targets), 1), np.int32), label_mask[:, :-1]], axis=1)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "decoder_input_ids": decoder_input_ids,
        "decoder_attention_mask": decoder_attention_mask,
        "labels": np.where(label_mask == 1, labels, -100).astype(np.int32),
    }


def model_vocab_size(tokenizer) -> int:
    """Rows the model's embedding needs: the pieces plus the language tokens,
    which `M2M100Tokenizer` numbers after the pieces but leaves out of `len()`."""
    return max(tokenizer.vocab_size, max(tokenizer.lang_code_to_id.values()) + 1)


def decode_tokens(tokenizer, tokens: np.ndarray) -> list[str]:
    """Texts of generated token rows, with special and language tokens removed.

    The language tokens are dropped by id because transformers 5.25 does not
    count them as special tokens of a tokenizer read from a folder.
    """
    special = set(tokenizer.all_special_ids) | set(tokenizer.lang_code_to_id.values())
    rows = [[int(t) for t in row if int(t) not in special] for row in np.asarray(tokens)]
    return [tokenizer.decode(row) for row in rows]
