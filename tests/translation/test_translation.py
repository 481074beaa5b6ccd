"""Tokenizer folders, the NLL loss, BLEU, and the small pretrained JAT."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.translation.bitext import tiny_tasks
from tests.translation.hf_models import random_hf_model, torch

from sosjax.models.m2m100_loading import load_m2m100
from sosjax.translation.bleu import bleu, translate
from sosjax.translation.loss import loss, token_nll
from sosjax.translation.pretrain import PretrainConfig, pretrain_m2m100
from sosjax.translation.tokenizer import encode_pairs, load_tokenizer, model_vocab_size, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    texts = [text for task in tiny_tasks() for pair in task.train for text in pair]
    train_tokenizer(texts, str(folder), vocab_size=80)
    return str(folder)


def test_tokenizer_folder_encodes_like_m2m100(tokenizer_folder):
    tokenizer = load_tokenizer(tokenizer_folder)
    batch = encode_pairs(tokenizer, ["Der Hund ist alt.", "Pes je malý."], ["The dog is old.", "The dog is small."],
                         "de", "en", source_length=24, target_length=20)
    de, en = tokenizer.get_lang_id("de"), tokenizer.get_lang_id("en")

    assert model_vocab_size(tokenizer) == 80 + 8  # the wmt21 set has 8 languages
    assert batch["input_ids"][0, 0] == de
    assert batch["labels"][0, 0] == en
    last = batch["attention_mask"][0].sum() - 1
    assert batch["input_ids"][0, last] == tokenizer.eos_token_id
    assert (batch["input_ids"][0, last + 1:] == tokenizer.pad_token_id).all()
    # decoder inputs are the labels shifted right behind the start token </s>
    assert batch["decoder_input_ids"][0, 0] == 2
    valid = batch["labels"][0] >= 0
    n = valid.sum()
    np.testing.assert_array_equal(batch["decoder_input_ids"][0, 1:n], batch["labels"][0, : n - 1])
    assert (batch["labels"][0][~valid] == -100).all()
    assert tokenizer.decode([t for t in batch["labels"][0] if t >= 0], skip_special_tokens=True).endswith(
        "The dog is old.")


def test_token_nll_hand_computed():
    logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]]))
    labels = jnp.array([[0, 1, -100]])

    expected = -(np.log(0.5) + np.log(0.8)) / 2

    np.testing.assert_allclose(float(token_nll(logits, labels)), expected, rtol=1e-6)
    assert float(token_nll(logits, jnp.full((1, 3), -100))) == 0.0


def test_loss_matches_transformers_label_loss(tmp_path):
    reference = random_hf_model(tmp_path, encoder_attention_heads=4, decoder_attention_heads=4)
    model, variables = load_m2m100(str(tmp_path))
    rng = np.random.default_rng(0)
    labels = rng.integers(3, 100, (3, 6))
    labels[1, 4:] = -100
    batch = {
        "input_ids": rng.integers(3, 100, (3, 5)),
        "attention_mask": np.ones((3, 5), np.int64),
        # transformers' own shift: start token 2, -100 replaced by padding
        "decoder_input_ids": np.concatenate([np.full((3, 1), 2), np.where(labels < 0, 1, labels)[:, :-1]], 1),
        "labels": labels,
    }

    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(batch["input_ids"]),
                             attention_mask=torch.tensor(batch["attention_mask"]),
                             labels=torch.tensor(labels)).loss.item()

    np.testing.assert_allclose(float(jax.jit(loss, static_argnums=0)(model, variables, batch)), expected, atol=1e-5)


def test_bleu_known_values():
    assert bleu(["The dog is old."], ["The dog is old."]) == pytest.approx(100.0)
    assert bleu(["xyz"], ["The dog is old."]) == pytest.approx(0.0)
    import sacrebleu

    hypotheses, references = ["the cat is big", "a house"], ["the cat is small", "the house"]
    assert bleu(hypotheses, references) == pytest.approx(sacrebleu.BLEU().corpus_score(hypotheses, [references]).score)
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        bleu(hypotheses, references[:1])


@pytest.mark.slow
def test_pretrained_small_jat_translates_its_bitext(tmp_path):
    tasks = tiny_tasks()
    config = PretrainConfig(pieces=80, d_model=32, layers=1, heads=4, ffn_dim=64, source_length=16,
                            target_length=16, batch_size=20, steps=250, learning_rate=1e-2)

    model, variables, losses = pretrain_m2m100(tasks, str(tmp_path), config)

    assert losses[-20:].mean() < 0.25 * losses[:5].mean()

    # The folder is a complete Hugging Face M2M100 folder.
    reloaded, reloaded_variables = load_m2m100(str(tmp_path))
    tokenizer = load_tokenizer(str(tmp_path))
    from transformers import M2M100ForConditionalGeneration

    hf_model = M2M100ForConditionalGeneration.from_pretrained(str(tmp_path)).eval()
    batch = encode_pairs(tokenizer, ["Das Auto ist neu."], ["The car is new."], "de", "en", 16, 16)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "decoder_input_ids")}
    with torch.no_grad():
        expected = hf_model(**{k: torch.tensor(v.astype(np.int64)) for k, v in inputs.items()}).logits.numpy()
    np.testing.assert_allclose(np.asarray(reloaded.apply(reloaded_variables, inputs)), expected, atol=1e-4)

    sources = [s for s, _ in tasks[0].train]
    references = [t for _, t in tasks[0].train]
    hypotheses = translate(model, variables, tokenizer, sources, "de", "en", max_source_length=16, max_length=16,
                           batch_size=20)
    assert bleu(hypotheses, references) > 60.0
