"""`sosjax run` on the translation domain, end to end on a tiny bitext."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.translation.bitext import sentence_pairs

from sosjax.config import ConfigError, load_config
from sosjax.export import load_member
from sosjax.pipeline import run
from sosjax.translation.bleu import bleu, translate
from sosjax.translation.domain import mask_groups
from sosjax.translation.tokenizer import load_tokenizer

TINY = "configs/wmt19_m2m100.py:tiny"
TASKS = ("de-en", "cs-en")


def write_bitext(folder) -> None:
    """`<folder>/<pair>/{train,validation,test}.{src,en}`: 20 training pairs per
    language, the test pairs taken from them so that the tiny JAT was trained on them."""
    for pair in TASKS:
        source_lang, target_lang = pair.split("-")
        pairs = sentence_pairs(source_lang)
        splits = {"train": pairs, "validation": pairs[1::5], "test": pairs[::3][:6]}
        os.makedirs(os.path.join(folder, pair))
        for split, rows in splits.items():
            for lang, side in ((source_lang, 0), (target_lang, 1)):
                with open(os.path.join(folder, pair, f"{split}.{lang}"), "w", encoding="utf-8") as file:
                    file.write("".join(row[side] + "\n" for row in rows))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    bitext = str(tmp_path_factory.mktemp("bitext"))
    write_bitext(bitext)
    workdir = str(tmp_path_factory.mktemp("run"))
    # Row masks, two rows per bit, so the run exports ragged compacted members.
    config = load_config(TINY, [f"config.data.path={bitext}", "config.translation.mask_unit=rows",
                                "config.model.granularity=2"])
    manifest_path = run(config, workdir, progress=False)
    with open(manifest_path) as file:
        manifest = json.load(file)
    return config, workdir, manifest


def test_config_variants_load():
    paper = load_config("configs/wmt19_m2m100.py")
    assert (paper.evolution.pop_size, paper.evolution.generations) == (20, 120)
    assert paper.finetune.optimizer == "adafactor"
    assert paper.finetune.epochs == 200
    assert paper.finetune.patience > 0
    assert tuple(paper.translation.pairs) == TASKS
    assert load_config("configs/wmt19_m2m100.py:cpu").model.name == "m2m100"


def test_mask_unit_config_checks():
    rows = load_config("configs/wmt19_m2m100.py:cpu", ["config.translation.mask_unit=rows", "config.model.granularity=4"])
    assert mask_groups(rows) == dict(mask_unit="rows", heads_per_group=1, rows_per_group=4)
    assert mask_groups(load_config(TINY)) == dict(mask_unit="heads", heads_per_group=1, rows_per_group=1)

    # The cpu JAT has 4 heads of width 64 / 4 = 16.
    with pytest.raises(ConfigError, match="translation.mask_unit = 'columns'"):
        load_config("configs/wmt19_m2m100.py:cpu", ["config.translation.mask_unit=columns"])
    with pytest.raises(ConfigError, match="model.granularity = 5: expected a divisor of the head width"):
        load_config("configs/wmt19_m2m100.py:cpu", ["config.translation.mask_unit=rows", "config.model.granularity=5"])
    with pytest.raises(ConfigError, match="model.granularity = 3: expected a divisor of translation.heads"):
        load_config("configs/wmt19_m2m100.py:cpu", ["config.model.granularity=3"])


@pytest.mark.slow
def test_run_writes_bleu_manifest(tiny_run):
    config, workdir, manifest = tiny_run
    for name in ("config.json", "metrics.jsonl", "report.md", "jat/config.json", "jat/sentencepiece.bpe.model",
                 "models/tokenizer/sentencepiece.bpe.model", "fronts/de-en.csv", "fronts/cs-en.csv",
                 "plots/front_de-en.png"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "metrics.jsonl")) as file:
        records = [json.loads(line) for line in file]
    assert [r["generation"] for r in records] == [1, 2]
    assert set(records[-1]["hypervolume"]) == set(TASKS)

    assert manifest["metric"] == "bleu"
    jat = manifest["jat"]
    # The tiny JAT was trained on these pairs: it translates them well.
    assert all(jat["test_metric"][task] > 50.0 for task in TASKS)
    assert manifest["translation"]["tasks"]["cs-en"] == {"source_lang": "cs", "target_lang": "en"}
    assert {m["task"] for m in manifest["members"]} == set(TASKS)
    for member in manifest["members"]:
        assert member["metric"] == "bleu"
        assert 0.0 <= member["test_metric"] <= 100.0
        assert 0 < member["params"] <= jat["params"]
        assert member["bytes_fp16"] * 2 == member["bytes_fp32"]
    # Front members prune rows: the smallest of each task is smaller than the JAT.
    for task in TASKS:
        assert min(m["params"] for m in manifest["members"] if m["task"] == task) < jat["params"]
    assert "bleu" in open(os.path.join(workdir, "report.md")).read()


@pytest.mark.slow
def test_front_losses_are_token_nll(tiny_run):
    _, workdir, _ = tiny_run
    for task in TASKS:
        front = np.load(os.path.join(workdir, "fronts", f"{task}.npz"))
        sizes, losses = front["objectives"][:, 0], front["objectives"][:, 1]
        assert np.all((sizes > 0) & (sizes <= 1))
        # NLL in nats per token: positive, and far below a uniform guess over the vocabulary.
        assert np.all(losses > 0)
        assert np.all(losses < np.log(88))  # 80 pieces and 8 language tokens
        # Non-dominated and sorted by size: losses fall as sizes grow.
        assert np.all(np.diff(sizes) >= 0)
        assert np.all(np.diff(losses) <= 0)


@pytest.mark.slow
def test_reloaded_member_reproduces_its_bleu(tiny_run):
    config, workdir, manifest = tiny_run
    tokenizer = load_tokenizer(os.path.join(workdir, manifest["translation"]["tokenizer"]))
    decoding = manifest["translation"]["decoding"]
    bitext = config.data.path
    for task in TASKS:
        member = min((m for m in manifest["members"] if m["task"] == task), key=lambda m: m["params"])
        model, variables = load_member(os.path.join(workdir, member["path"]))
        source_lang, target_lang = task.split("-")
        with open(os.path.join(bitext, task, f"test.{source_lang}"), encoding="utf-8") as file:
            sources = file.read().splitlines()
        with open(os.path.join(bitext, task, f"test.{target_lang}"), encoding="utf-8") as file:
            references = file.read().splitlines()

        hypotheses = translate(model, variables, tokenizer, sources, source_lang, target_lang,
                               max_source_length=decoding["max_source_length"], max_length=decoding["max_length"],
                               num_beams=decoding["num_beams"], batch_size=min(decoding["batch_size"], len(sources)))

        assert model.hparams.mask_unit == "rows"
        assert model.num_params() == member["params"]
        assert bleu(hypotheses, references) == pytest.approx(member["test_metric"], abs=1e-4)


@pytest.mark.slow
def test_select_picks_best_bleu_within_budget(tiny_run):
    _, workdir, manifest = tiny_run
    members = [m for m in manifest["members"] if m["task"] == "de-en"]
    budget = max(m["params"] for m in members)
    expected = max(members, key=lambda m: (m["test_metric"], -m["params"]))

    result = subprocess.run([sys.executable, "-m", "sosjax.cli", "select", "--workdir", workdir, "--task", "de-en",
                             "--max-params", str(budget)], capture_output=True, text=True, check=True)

    chosen = json.loads(result.stdout)
    assert (chosen["id"], chosen["test_metric"]) == (expected["id"], expected["test_metric"])
    assert os.path.isfile(os.path.join(chosen["folder"], "model.json"))
