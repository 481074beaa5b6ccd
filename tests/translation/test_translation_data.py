"""Reading bitext from local files and from TFDS."""

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
