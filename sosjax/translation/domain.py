"""The translation domain of `sosjax run`: bitext, the M2M100 JAT and its tokenizer, test BLEU.

A run with `data.name = "wmt19"` has one task per language pair of
`config.translation.pairs`. Its JAT is the Hugging Face M2M100 folder given as
`config.pretrain.checkpoint` or, without one, a small M2M100 pretrained offline
on the union of the tasks' training pairs into `<workdir>/jat/`, with a
sentencepiece tokenizer trained on the same text. Every split is encoded once
into fixed-length token arrays: the inputs are dicts of `int32[n, S]` and
`int32[n, T]` arrays, the targets `int32[n, T]` tokens with -100 at padding.
Fitness and validation use the NLL per target token; the test metric is
corpus BLEU of decoded translations.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from typing import Any

import numpy as np

from sosjax.data.tasks import MultiTaskData, TaskData
from sosjax.data.translation import TranslationTask, load_folder_task, load_wmt19
from sosjax.io import atomic_write_json
from sosjax.models.m2m100 import M2M100, m2m100
from sosjax.translation.evaluate import members_bleu

log = logging.getLogger(__name__)

#: Files of a Hugging Face M2M100 folder that make up its tokenizer.
TOKENIZER_FILES = ("sentencepiece.bpe.model", "vocab.json", "tokenizer_config.json", "special_tokens_map.json")
#: Folder, inside the workdir, of the JAT that a run pretrains when `config.pretrain.checkpoint` is None.
JAT_FOLDER = "jat"
MODEL_INPUTS = ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask")


@dataclasses.dataclass(frozen=True)
class TranslationDomain:
    """Everything a translation run needs beyond the generic `RunContext`.

    Attributes:
      tasks: the sentence pairs of every task, in task order.
      folder: the JAT's Hugging Face folder (weights and tokenizer).
      tokenizer: transformers' `M2M100Tokenizer` read from `folder`.
      data: the token arrays of every task and split.
      model: the JAT with the mask groups of `mask_groups(config)`.
      variables: the JAT's variables.
      decoding: keyword arguments of `translate` for test BLEU.
    """

    tasks: tuple[TranslationTask, ...]
    folder: str
    tokenizer: Any
    data: MultiTaskData
    model: M2M100
    variables: dict
    decoding: dict


def build_translation(config, workdir: str) -> TranslationDomain:
    """Read the bitext, get the JAT folder (pretraining it if needed) and encode every split."""
    from sosjax.models.m2m100_loading import load_m2m100
    from sosjax.translation.tokenizer import load_tokenizer

    tasks = load_bitext(config)
    folder = jat_folder(config, workdir, tasks)
    tokenizer = load_tokenizer(folder)
    jat, variables = load_m2m100(folder)
    model = m2m100(jat.hparams, min_active=config.model.min_active, **mask_groups(config))

    settings = config.translation
    data = MultiTaskData(
        tasks=tuple(_encode_task(tokenizer, task, settings, model.hparams.decoder_start_token_id) for task in tasks),
        kind="translation",
        num_outputs=model.hparams.vocab_size,
        input_shape=(settings.source_length,),
        labels=tuple(task.name for task in tasks),
    )
    decoding = dict(max_source_length=settings.source_length, max_length=settings.max_length,
                    num_beams=settings.num_beams, batch_size=settings.eval_batch_size)
    return TranslationDomain(tuple(tasks), folder, tokenizer, data, model, variables, decoding)


def mask_groups(config) -> dict:
    """`M2M100Config` fields of the mask groups that `config.translation.mask_unit` and
    `config.model.granularity` select."""
    if config.translation.mask_unit == "rows":
        return dict(mask_unit="rows", heads_per_group=1, rows_per_group=config.model.granularity)
    return dict(mask_unit="heads", heads_per_group=config.model.granularity, rows_per_group=1)


def load_bitext(config) -> tuple[TranslationTask, ...]:
    """Read every pair of `config.translation.pairs`, capped by `config.data`'s per-task limits.

    `data.source = "text"` reads `{train,validation,test}.{src,tgt}` files from
    `data.path/<pair>/` or from `data.path` itself. `"tfds"` reads a prepared
    TFDS `wmt19_translate/<pair>` under `data.path`. `"auto"` uses the files
    when they exist and TFDS otherwise.
    """
    data = config.data
    tasks = []
    for pair in config.translation.pairs:
        source_lang, target_lang = pair.split("-")
        folder = _text_folder(data.path, pair, source_lang)
        if data.source == "text" or (data.source == "auto" and folder is not None):
            if folder is None:
                raise FileNotFoundError(
                    f"No bitext for {pair} under data.path = {data.path!r}: expected train.{source_lang}, "
                    f"train.{target_lang}, validation.* and test.* in {os.path.join(str(data.path), pair)} or in data.path."
                )
            task = load_folder_task(folder, source_lang, target_lang)
        elif data.source in ("tfds", "auto"):
            task = load_wmt19(pair, data_dir=data.path, max_pairs=data.max_train_per_task)
        else:
            raise ValueError(f"Invalid data.source = {data.source!r} for translation data; use auto, text or tfds.")
        tasks.append(_cap(task, data.max_train_per_task, data.max_test_per_task))
    return tuple(tasks)


def _text_folder(path: str | None, pair: str, source_lang: str) -> str | None:
    if path is None:
        return None
    for folder in (os.path.join(path, pair), path):
        if os.path.isfile(os.path.join(folder, f"train.{source_lang}")):
            return folder
    return None


def _cap(task: TranslationTask, max_train: int | None, max_test: int | None) -> TranslationTask:
    for name, split in (("train", task.train), ("validation", task.validation), ("test", task.test)):
        if not split:
            raise ValueError(f"Task {task.name} has no {name} pairs; add sentence pairs to its {name} split.")
    return dataclasses.replace(task, train=task.train[:max_train], validation=task.validation[:max_test],
                               test=task.test[:max_test])


def jat_folder(config, workdir: str, tasks) -> str:
    """Return the JAT's Hugging Face folder: `config.pretrain.checkpoint`, or `<workdir>/jat`,
    pretrained there on the tasks' training pairs unless an earlier run did it."""
    if config.pretrain.checkpoint:
        return config.pretrain.checkpoint
    folder = os.path.join(workdir, JAT_FOLDER)
    if all(os.path.isfile(os.path.join(folder, name)) for name in ("config.json", "model.safetensors", TOKENIZER_FILES[0])):
        return folder

    from sosjax.translation.pretrain import PretrainConfig, pretrain_m2m100

    settings = config.translation
    pretrain = PretrainConfig(
        pieces=settings.pieces,
        d_model=settings.d_model,
        layers=settings.layers,
        heads=settings.heads,
        ffn_dim=settings.ffn_dim,
        source_length=settings.source_length,
        target_length=settings.target_length,
        batch_size=config.pretrain.batch_size,
        steps=settings.pretrain_steps,
        learning_rate=config.pretrain.learning_rate,
        seed=config.seed,
    )
    log.info("Pretraining a %d-layer M2M100 JAT for %d steps in %s.", settings.layers, settings.pretrain_steps, folder)
    # Written beside the final folder and renamed, so a killed run never leaves half a JAT.
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    _, _, losses = pretrain_m2m100(tasks, partial, pretrain)
    atomic_write_json(os.path.join(partial, "pretrain_losses.json"), [float(v) for v in losses])
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    log.info("JAT pretrained: NLL %.3f over the first 10 steps, %.3f over the last 10.", losses[:10].mean(), losses[-10:].mean())
    return folder


def _encode_task(tokenizer, task: TranslationTask, settings, decoder_start_token_id: int) -> TaskData:
    from sosjax.translation.tokenizer import encode_pairs

    def encode(pairs):
        batch = encode_pairs(tokenizer, [s for s, _ in pairs], [t for _, t in pairs], task.source_lang,
                             task.target_lang, settings.source_length, settings.target_length, decoder_start_token_id)
        return {k: batch[k] for k in MODEL_INPUTS}, batch["labels"]

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(encode, (task.train, task.validation, task.test))
    return TaskData(task.name, x_train, y_train, x_val, y_val, x_test, y_test)


def test_bleu(domain: TranslationDomain, variables, masks, task_index: int, *, stacked: bool = True) -> np.ndarray:
    """Return the corpus BLEU `f32[M]` of each member on task `task_index`'s test pairs.

    Args:
      variables: stacked on a leading axis M, or shared with `stacked=False`.
      masks: `bool[M, D]`.
    """
    task = domain.tasks[task_index]
    decoding = dict(domain.decoding, batch_size=min(domain.decoding["batch_size"], len(task.test)))
    return members_bleu(domain.model, variables, masks, domain.tokenizer, [s for s, _ in task.test],
                        [t for _, t in task.test], task.source_lang, task.target_lang, stacked=stacked, **decoding)


def export_tokenizer(domain: TranslationDomain, workdir: str) -> dict:
    """Copy the tokenizer to `<workdir>/models/tokenizer/`; return the manifest's `translation` entry.

    The entry names the tokenizer folder, each task's languages and the
    decoding settings that gave the test BLEU, so that a member can be used
    from the run folder alone.
    """
    relative = os.path.join("models", "tokenizer")
    os.makedirs(os.path.join(workdir, relative), exist_ok=True)
    for name in TOKENIZER_FILES:
        path = os.path.join(domain.folder, name)
        if os.path.isfile(path):
            shutil.copyfile(path, os.path.join(workdir, relative, name))
    return {
        "tokenizer": relative,
        "tasks": {task.name: {"source_lang": task.source_lang, "target_lang": task.target_lang} for task in domain.tasks},
        "decoding": dict(domain.decoding),
    }
