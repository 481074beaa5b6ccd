"""Reading bitext from local files and from TFDS."""

import importlib.util
import json
import os

import pytest

from sosjax.data.translation import load_folder_task, load_wmt19, read_parallel_files, read_tsv


def test_parallel_files_skip_blank_pairs(tmp_path):
    (tmp_path / "a.de").write_text("Hallo Welt.\n\nGuten Morgen.\nNur hier.\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("Hello world.\nEmpty source.\nGood morning.\n \n", encoding="utf-8")

    pairs = read_parallel_files(str(tmp_path / "a.de"), str(tmp_path / "a.en"))

    assert pairs == [("Hallo Welt.", "Hello world."), ("Guten Morgen.", "Good morning.")]
    assert read_parallel_files(str(tmp_path / "a.de"), str(tmp_path / "a.en"), max_pairs=1) == pairs[:1]


def test_parallel_files_of_unequal_length_raise(tmp_path):
    (tmp_path / "a.cs").write_text("Ahoj.\nDobrý den.\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("Hello.\n", encoding="utf-8")

    with pytest.raises(ValueError, match="2 lines but .* has 1"):
        read_parallel_files(str(tmp_path / "a.cs"), str(tmp_path / "a.en"))


def test_tsv_reads_pairs_and_rejects_bad_lines(tmp_path):
    (tmp_path / "ok.tsv").write_text("Straße\tstreet\n\nÜber\tover\n", encoding="utf-8")
    (tmp_path / "bad.tsv").write_text("eins\tone\nzwei one two\n", encoding="utf-8")

    assert read_tsv(str(tmp_path / "ok.tsv")) == [("Straße", "street"), ("Über", "over")]
    with pytest.raises(ValueError, match="bad.tsv:2"):
        read_tsv(str(tmp_path / "bad.tsv"))


def test_folder_task_reads_three_splits(tmp_path):
    for split, n in (("train", 3), ("validation", 2), ("test", 1)):
        (tmp_path / f"{split}.de").write_text("".join(f"Satz {i}.\n" for i in range(n)), encoding="utf-8")
        (tmp_path / f"{split}.en").write_text("".join(f"Sentence {i}.\n" for i in range(n)), encoding="utf-8")

    task = load_folder_task(str(tmp_path), "de", "en")

    assert task.name == "de-en"
    assert (len(task.train), len(task.validation), len(task.test)) == (3, 2, 1)
    assert task.test[0] == ("Satz 0.", "Sentence 0.")
    (tmp_path / "test.en").unlink()
    with pytest.raises(FileNotFoundError, match="test.en"):
        load_folder_task(str(tmp_path), "de", "en")


def test_unprepared_wmt19_raises_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="not prepared"):
        load_wmt19("de-en", data_dir=str(tmp_path))
    assert not any(tmp_path.rglob("*.tfrecord*"))


def test_freedict_examples_keep_sentences_once(tmp_path):
    import gzip

    from sosjax.data.translation import read_freedict_examples

    text = (
        "Aal /ˈɑːl/ <masc, n, sg>\n"
        ' [cook.] Eel <n>\n'
        '      "Aal in Aspik"  - Jellied Eel\n'
        '      "Es gibt sie in allen Varianten."  - They come in all shapes and sizes.\n'
        '      "Es gibt sie in allen Varianten."  - They come in all shapes and sizes.\n'
        '      "Kommst du mit?"  - Are you coming along?\n'
    )
    path = tmp_path / "freedict-deu-eng.dict.dz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)

    pairs = read_freedict_examples(str(path))

    assert pairs == [("Es gibt sie in allen Varianten.", "They come in all shapes and sizes."),
                     ("Kommst du mit?", "Are you coming along?")]
    assert read_freedict_examples(str(path), max_pairs=1) == pairs[:1]
    with pytest.raises(FileNotFoundError, match="dict-freedict-deu-eng"):
        read_freedict_examples(str(tmp_path / "absent.dict.dz"))


def write_prepared_wmt19(data_dir, pair: str, splits: dict, shuffle: bool) -> str:
    """Prepare `wmt19_translate/<pair>/1.0.0` under `data_dir` with TFDS's own writer, in
    array_record files, from `splits`: split name -> list of (source, target) pairs.

    The builder has the name, config, version and features (a `Translation`
    of the two languages) of TFDS's WMT19 builder, but generates the given
    pairs instead of downloading. With `shuffle`, TFDS orders the examples by
    the hash of their keys, as a real preparation does.
    """
    import tensorflow_datasets as tfds

    source_lang, target_lang = pair.split("-")

    class Wmt19Translate(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = "wmt19_translate"
        VERSION = tfds.core.Version("1.0.0")
        BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=pair)]

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.Translation(languages=(source_lang, target_lang)),
                supervised_keys=(source_lang, target_lang),
                disable_shuffling=not shuffle,
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(pairs) for split, pairs in splits.items()}

        def _generate_examples(self, pairs):
            for key, (source, target) in enumerate(pairs):
                yield key, {source_lang: source, target_lang: target}

    builder = Wmt19Translate(data_dir=str(data_dir), config=pair, file_format="array_record")
    builder.download_and_prepare()
    return str(builder.data_dir)


def numbered_pairs(source_word: str, target_word: str, count: int, start: int = 0) -> list:
    return [(f"{source_word} {i}, Straße ü.", f"{target_word} {i}.") for i in range(start, start + count)]


def test_prepared_wmt19_reads_written_pairs(tmp_path):
    train = numbered_pairs("Satz", "Sentence", 45)
    validation = numbered_pairs("Prüfung", "Check", 3)
    folder = write_prepared_wmt19(tmp_path, "de-en", {"train": train, "validation": validation}, shuffle=True)

    assert folder == str(tmp_path / "wmt19_translate" / "de-en" / "1.0.0")
    assert sorted(p.name for p in (tmp_path / "wmt19_translate" / "de-en" / "1.0.0").glob("*.array_record*")) == [
        "wmt19_translate-train.array_record-00000-of-00001",
        "wmt19_translate-validation.array_record-00000-of-00001",
    ]

    task = load_wmt19("de-en", data_dir=str(tmp_path))

    assert (task.name, task.source_lang, task.target_lang) == ("de-en", "de", "en")
    # 45 training pairs: the last 45 // 20 = 2 in stored order become validation pairs.
    assert (len(task.train), len(task.validation)) == (43, 2)
    assert sorted(task.train + task.validation) == sorted(train)
    assert sorted(task.test) == sorted(validation)
    assert all(isinstance(text, str) for pair in task.train for text in pair)


def test_prepared_wmt19_max_pairs_and_order(tmp_path):
    train = numbered_pairs("Věta", "Sentence", 30)
    validation = numbered_pairs("Zkouška", "Check", 4)
    write_prepared_wmt19(tmp_path, "cs-en", {"train": train, "validation": validation}, shuffle=False)

    task = load_wmt19("cs-en", data_dir=str(tmp_path), max_pairs=10)
    everything = load_wmt19("cs-en", data_dir=str(tmp_path))

    # Unshuffled files keep the written order, so max_pairs takes the first pairs.
    assert task.train == tuple(train[:9])
    assert task.validation == (train[9],)
    assert task.test == tuple(validation)
    assert everything.train == tuple(train[:29])
    assert everything.validation == (train[29],)
    with pytest.raises(FileNotFoundError, match="wmt19_translate/de-en is not prepared"):
        load_wmt19("de-en", data_dir=str(tmp_path))


def test_run_config_reads_prepared_wmt19(tmp_path):
    from sosjax.config import load_config
    from sosjax.translation.domain import load_bitext

    for pair, word in (("de-en", "Satz"), ("cs-en", "Věta")):
        write_prepared_wmt19(tmp_path, pair, {"train": numbered_pairs(word, "Sentence", 12),
                                              "validation": numbered_pairs(word, "Check", 5, start=100)}, shuffle=True)
    config = load_config("configs/wmt19_m2m100.py:tiny", ["config.data.source=tfds", f"config.data.path={tmp_path}",
                                                          "config.data.max_train_per_task=8",
                                                          "config.data.max_test_per_task=3"])

    tasks = load_bitext(config)

    assert [task.name for task in tasks] == ["de-en", "cs-en"]
    for task, word in zip(tasks, ("Satz", "Věta")):
        # max_train_per_task caps the pairs read: 8, of which 8 // 20 -> 1 is held out.
        assert (len(task.train), len(task.validation), len(task.test)) == (7, 1, 3)
        assert all(source.startswith(word) and target.startswith("Sentence") for source, target in task.train)
        assert all(target.startswith("Check") for _, target in task.test)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow reads tfrecord files")
def test_tfrecord_wmt19_without_tensorflow_raises(tmp_path):
    folder = write_prepared_wmt19(tmp_path, "de-en", {"train": numbered_pairs("Satz", "Sentence", 4),
                                                      "validation": numbered_pairs("Satz", "Check", 2)}, shuffle=False)
    info_path = os.path.join(folder, "dataset_info.json")
    with open(info_path) as file:
        info = json.load(file)
    info["fileFormat"] = "tfrecord"
    with open(info_path, "w") as file:
        json.dump(info, file)

    with pytest.raises(ImportError, match="stores tfrecord files, which only TensorFlow reads"):
        load_wmt19("de-en", data_dir=str(tmp_path))


def test_newest_wmt19_version_sorts_numerically(tmp_path):
    from sosjax.data.translation import _prepared_wmt19_folder

    for version in ("2.0.0", "10.0.0", "9.1.0"):
        folder = tmp_path / "wmt19_translate" / "de-en" / version
        folder.mkdir(parents=True)
        (folder / "dataset_info.json").write_text("{}")
    assert _prepared_wmt19_folder("de-en", str(tmp_path)).endswith("10.0.0")
