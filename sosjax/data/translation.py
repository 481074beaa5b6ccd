"""Bitext for the translation tasks: local parallel text files, or TFDS WMT19 where prepared.

Nothing here downloads: TFDS is read only from a data folder in which
`wmt19_translate/<pair>` was prepared beforehand.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import os
import re

Pair = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class TranslationTask:
    """One language pair's sentence pairs, `(source, target)`, per split."""

    name: str
    source_lang: str
    target_lang: str
    train: tuple[Pair, ...]
    validation: tuple[Pair, ...]
    test: tuple[Pair, ...]


def read_parallel_files(source_path: str, target_path: str, max_pairs: int | None = None) -> list[Pair]:
    """Line-aligned pairs from two UTF-8 files, one sentence per line.

    Pairs where either side is blank are skipped. Raises ValueError when the
    files have different numbers of lines.
    """
    with open(source_path, encoding="utf-8") as f:
        sources = f.read().splitlines()
    with open(target_path, encoding="utf-8") as f:
        targets = f.read().splitlines()
    if len(sources) != len(targets):
        raise ValueError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; "
            "parallel files must be line-aligned."
        )
    pairs = [(s.strip(), t.strip()) for s, t in zip(sources, targets) if s.strip() and t.strip()]
    return pairs[:max_pairs] if max_pairs is not None else pairs


def read_tsv(path: str, max_pairs: int | None = None) -> list[Pair]:
    """Pairs from a UTF-8 file of `source<TAB>target` lines; other lines raise ValueError."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(f"{path}:{number}: expected 2 tab-separated fields, found {len(fields)}.")
            pairs.append((fields[0].strip(), fields[1].strip()))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    return pairs


FREEDICT_DEU_ENG = "/usr/share/dictd/freedict-deu-eng.dict.dz"
_FREEDICT_EXAMPLE = re.compile(r'^\s+"(?P<source>[^"]+)"\s+-\s+(?P<target>.+?)\s*$')


def read_freedict_examples(path: str = FREEDICT_DEU_ENG, max_pairs: int | None = None) -> list[Pair]:
    """German–English example sentences from a FreeDict dictd file (Debian's
    `dict-freedict-deu-eng`), in file order without duplicates.

    An example line reads `      "Deutscher Satz."  - English sentence.`; only
    examples whose German side starts with a capital letter and ends with `.`,
    `!` or `?` are kept, which leaves whole sentences and drops phrases.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"FreeDict file not found: {path}; install the Debian package dict-freedict-deu-eng.")
    opener = gzip.open if path.endswith((".dz", ".gz")) else open
    pairs, seen = [], set()
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            match = _FREEDICT_EXAMPLE.match(line)
            if match is None:
                continue
            source, target = match["source"].strip(), match["target"].strip()
            if not (source[:1].isupper() and source.endswith((".", "!", "?"))) or (source, target) in seen:
                continue
            seen.add((source, target))
            pairs.append((source, target))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    return pairs


def load_folder_task(folder: str, source_lang: str, target_lang: str, max_pairs: int | None = None) -> TranslationTask:
    """Read a task from `{train,validation,test}.{source_lang},{target_lang}` files in
    `folder` (`train.de` with `train.en`, ...)."""
    splits = {}
    for split in ("train", "validation", "test"):
        source_path = os.path.join(folder, f"{split}.{source_lang}")
        target_path = os.path.join(folder, f"{split}.{target_lang}")
        for path in (source_path, target_path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"Missing bitext file {path}.")
        splits[split] = tuple(read_parallel_files(source_path, target_path, max_pairs))
    return TranslationTask(f"{source_lang}-{target_lang}", source_lang, target_lang, **splits)


def _prepared_wmt19_folder(pair: str, data_dir: str | None) -> str:
    """The newest prepared version folder of `wmt19_translate/<pair>`."""
    root = data_dir or os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
    infos = sorted(glob.glob(os.path.join(root, "wmt19_translate", pair, "*", "dataset_info.json")), key=_version_key)
    if not infos:
        raise FileNotFoundError(
            f"TFDS wmt19_translate/{pair} is not prepared in {root}. Prepare it on a machine with internet "
            "access (`tfds build wmt19_translate`) and copy the data folder, or use local parallel files."
        )
    return os.path.dirname(infos[-1])


def _version_key(info_path: str) -> tuple:
    """Sort key of a `<version>/dataset_info.json` path: numeric parts as numbers, so 10.0.0 follows 2.0.0."""
    version = os.path.basename(os.path.dirname(info_path))
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in version.split("."))


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _tfrecord_examples(tfds, builder, split: str):
    """Examples of a split that TFDS cannot serve as a data source (tfrecord files), read through TensorFlow."""
    # NOTE: reading tfrecord files through TensorFlow is untested, because
    # the test environment has no TensorFlow. Tests cover array_record
    # preparations and the error below.
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:
        file_format = getattr(builder.info.file_format, "value", builder.info.file_format)
        raise ImportError(
            f"{builder.data_dir} stores {file_format} files, which only TensorFlow reads. Install tensorflow-cpu, "
            "or prepare the data set as array_record (`tfds build wmt19_translate --file_format=array_record`)."
        ) from error
    return tfds.as_numpy(builder.as_dataset(split=split))


def load_wmt19(
    pair: str,
    data_dir: str | None = None,
    max_pairs: int | None = None,
    train_split: str = "train",
    test_split: str = "validation",
) -> TranslationTask:
    """Read a WMT19 task from a prepared TFDS `wmt19_translate/<pair>` folder
    (`"de-en"` or `"cs-en"`), translating into English.

    TFDS's WMT19 has no test split, so `test_split` defaults to its validation
    split. The task's validation pairs are the last
    `max(1, n // 20)` of the first `max_pairs` training pairs.

    Raises:
      FileNotFoundError: the data set is not prepared under `data_dir` (default
        `$TFDS_DATA_DIR` or `~/tensorflow_datasets`); preparing it needs a
        download, which sosjax never starts.
    """
    import tensorflow_datasets as tfds

    source_lang, target_lang = pair.split("-")
    builder = tfds.builder_from_directory(_prepared_wmt19_folder(pair, data_dir))

    def read(split: str) -> list[Pair]:
        try:
            examples = builder.as_data_source(split=split)
        except (NotImplementedError, ValueError, ImportError):
            examples = _tfrecord_examples(tfds, builder, split)
        pairs = []
        for example in examples:
            pairs.append((_text(example[source_lang]), _text(example[target_lang])))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
        return pairs

    train = read(train_split)
    held_out = max(1, len(train) // 20)
    return TranslationTask(pair, source_lang, target_lang, tuple(train[:-held_out]), tuple(train[-held_out:]),
                           tuple(read(test_split)))
