"""`sosjax run` on the hourly domains: a tiny nycweather run and a tiny Beijing run.

Every RMSE the run reports must be in the target's own units (°F, µg/m³). The
checks recompute RMSEs from un-standardized predictions and targets, so a
missing or doubled `target_scale` anywhere shows up as a factor of the
target's standard deviation (about 19 °F for temperature).
"""

import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.config import ConfigError, load_config
from sosjax.data.airquality import prepare_beijing
from sosjax.data.nycweather import prepare_nycweather
from sosjax.evolve import draw_fitness_batches
from sosjax.export import load_member, select
from sosjax.pipeline import Front, build_context, finetune_stage, run
from uci_airquality_files import station_table, write_station

TINY = "configs/nycweather_bilstm.py:tiny"
AIRPORTS = ("EWR", "JFK", "LGA")


def read_manifest(workdir):
    with open(os.path.join(workdir, "set_of_sets.json")) as file:
        return json.load(file)


@functools.lru_cache(maxsize=None)
def _jitted_apply(model, masked):
    if masked:
        return jax.jit(jax.vmap(lambda variables, mask, x: model.apply(variables, x, mask)[:, 0], in_axes=(None, 0, None)))
    return jax.jit(lambda variables, x: model.apply(variables, x)[:, 0])


def predictions(model, variables, x, masks=None):
    """Standardized predictions `f32[n]`, or `f32[M, n]` for the JAT under masks `bool[M, D]`."""
    if masks is None:
        return np.asarray(_jitted_apply(model, False)(variables, jnp.asarray(x)))
    return np.asarray(_jitted_apply(model, True)(variables, jnp.asarray(masks), jnp.asarray(x)))


def rmse_in_units(standardized_predictions, standardized_targets, mean, std):
    """RMSE after turning both sides back into the target's units."""
    predicted = standardized_predictions.astype(np.float64) * std + mean
    observed = standardized_targets.astype(np.float64) * std + mean
    return math.sqrt(np.mean((predicted - observed) ** 2))


@pytest.fixture(scope="module")
def nyc_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("nycweather"))
    config = load_config(TINY)
    run(config, workdir, progress=False)
    context = build_context(config, workdir, progress=False)
    prepared = prepare_nycweather(target="temp", seed=config.seed)
    temp = prepared.feature_names.index("temp")
    units = (float(prepared.standardizer.mean[temp]), float(prepared.standardizer.std[temp]))
    return config, workdir, context, units


@pytest.mark.slow
def test_nyc_run_folder_layout(nyc_run):
    config, workdir, _, _ = nyc_run
    names = ["config.json", "metrics.jsonl", "report.md", "plots/hypervolume.png", "plots/rmp.png", "models/jat/model.json"]
    for airport in AIRPORTS:
        names += [f"fronts/{airport}.csv", f"fronts/{airport}.npz", f"plots/front_{airport}.png"]
    for name in names:
        assert os.path.isfile(os.path.join(workdir, name)), name

    with open(os.path.join(workdir, "metrics.jsonl")) as file:
        records = [json.loads(line) for line in file]
    assert [r["generation"] for r in records] == list(range(1, config.evolution.generations + 1))
    assert set(records[-1]["hypervolume"]) == set(AIRPORTS)


@pytest.mark.slow
def test_nyc_manifest_fields(nyc_run):
    _, workdir, _, _ = nyc_run
    manifest = read_manifest(workdir)
    assert manifest["metric"] == "rmse"
    assert manifest["unit"] == "°F"
    assert set(manifest["jat"]["test_metric"]) == set(AIRPORTS)
    assert {m["task"] for m in manifest["members"]} == set(AIRPORTS)
    for member in manifest["members"]:
        assert member["metric"] == "rmse"
        assert 0 < member["params"] <= manifest["jat"]["params"]
        assert member["test_metric"] > 0


@pytest.mark.slow
def test_nyc_jat_test_rmse_in_fahrenheit(nyc_run):
    _, workdir, context, (mean, std) = nyc_run
    manifest = read_manifest(workdir)
    model, variables = load_member(os.path.join(workdir, "models", "jat"))
    for task in context.data.tasks:
        # The un-standardized targets are real New York temperatures.
        fahrenheit = task.y_test * std + mean
        assert fahrenheit.min() > -20
        assert fahrenheit.max() < 110
        expected = rmse_in_units(predictions(model, variables, task.x_test), task.y_test, mean, std)
        assert manifest["jat"]["test_metric"][task.name] == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_nyc_reloaded_member_reproduces_rmse(nyc_run):
    _, workdir, context, (mean, std) = nyc_run
    manifest = read_manifest(workdir)
    for airport in AIRPORTS:
        member = next(m for m in manifest["members"] if m["task"] == airport)
        model, variables = load_member(os.path.join(workdir, member["path"]))
        assert model.num_params() == member["params"]
        task = context.data.tasks[context.data.task_names.index(airport)]
        expected = rmse_in_units(predictions(model, variables, task.x_test), task.y_test, mean, std)
        assert member["test_metric"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_nyc_fitness_rmse_in_fahrenheit(nyc_run):
    config, workdir, context, (mean, std) = nyc_run
    model, jat = load_member(os.path.join(workdir, "models", "jat"))
    settings = config.evolution
    batches = draw_fitness_batches(context.data, settings.fitness_batch_size, settings.num_fitness_batches, config.seed)
    for k, airport in enumerate(AIRPORTS):
        front = np.load(os.path.join(workdir, "fronts", f"{airport}.npz"))
        outputs = [predictions(model, jat, batches.xs[k, b], front["masks"]) for b in range(settings.num_fitness_batches)]
        for i, (_, loss) in enumerate(front["objectives"]):
            # A survivor keeps the loss of the generation that evaluated it, so it
            # matches the RMSE on one of the rotating fitness batches.
            candidates = [rmse_in_units(outputs[b][i], batches.ys[k, b], mean, std) for b in range(settings.num_fitness_batches)]
            assert min(abs(loss - c) / c for c in candidates) < 1e-4, (airport, loss, candidates)


@pytest.mark.slow
def test_nyc_finetune_validation_rmse_in_fahrenheit(nyc_run, caplog):
    _, workdir, context, (mean, std) = nyc_run
    manifest = read_manifest(workdir)
    model, jat = load_member(os.path.join(workdir, "models", "jat"))
    fronts = {}
    for airport in AIRPORTS:
        saved = np.load(os.path.join(workdir, "fronts", f"{airport}.npz"))
        fronts[airport] = Front(saved["masks"], saved["objectives"])

    # Restored from the run's checkpoints, not trained again.
    tuned = finetune_stage(context, jat, fronts)
    assert not [r for r in caplog.records if "unreadable" in r.getMessage()]
    for k, airport in enumerate(AIRPORTS):
        task = context.data.tasks[k]
        members = [m for m in manifest["members"] if m["task"] == airport]
        val_outputs = predictions(model, jat, task.x_val, tuned[airport].masks)
        test_outputs = predictions(model, jat, task.x_test, tuned[airport].masks)
        for i in range(len(tuned[airport].masks)):
            start = rmse_in_units(val_outputs[i], task.y_val, mean, std)
            assert tuned[airport].val_history[0, i] == pytest.approx(start, rel=1e-4)
            before = rmse_in_units(test_outputs[i], task.y_test, mean, std)
            assert members[i]["test_metric_before_finetune"] == pytest.approx(before, rel=1e-4)


@pytest.mark.slow
def test_nyc_select_lowest_rmse_in_budget(nyc_run):
    _, workdir, _, _ = nyc_run
    members = [m for m in read_manifest(workdir)["members"] if m["task"] == "JFK"]
    budget = sorted(m["params"] for m in members)[len(members) // 2]
    chosen = select(workdir, "JFK", max_params=budget)
    fitting = [m for m in members if m["params"] <= budget]
    assert chosen["params"] <= budget
    assert chosen["test_metric"] == min(m["test_metric"] for m in fitting)


def daily_pm25(hours, phase):
    """PM2.5 in µg/m³ with a daily cycle and a slow trend, with some NA runs."""
    index = np.arange(hours)
    values = 80.0 + 40.0 * np.sin(2 * np.pi * (index + phase) / 24) + 0.05 * index
    readings = [round(float(v)) for v in values]
    for start, length in ((100, 2), (300, 6)):  # a gap that is filled, one that is not
        readings[start : start + length] = [None] * length
    return readings


@pytest.mark.slow
def test_beijing_run_in_micrograms(tmp_path):
    folder = tmp_path / "PRSA_Data_20130301-20170228"
    folder.mkdir()
    stations = ("Dingling", "Changping")
    for phase, station in enumerate(stations):
        write_station(folder, station, station_table(720, **{"PM2.5": daily_pm25(720, 3 * phase)}))
    workdir = str(tmp_path / "run")
    overrides = [
        f"config.data.path={folder}",
        f"config.data.stations={list(stations)}",
        "config.model.hidden=4",
        "config.model.granularity=1",
        "config.pretrain.epochs=2",
        "config.pretrain.batch_size=64",
        "config.evolution.pop_size=4",
        "config.evolution.generations=2",
        "config.evolution.fitness_batch_size=32",
        "config.evolution.num_fitness_batches=1",
        "config.finetune.epochs=1",
        "config.finetune.batch_size=64",
        "config.finetune.max_members=2",
    ]
    config = load_config("configs/beijing_bilstm.py:cpu", overrides)
    run(config, workdir, progress=False)

    manifest = read_manifest(workdir)
    assert manifest["metric"] == "rmse"
    assert manifest["unit"] == "µg/m³"
    assert set(manifest["jat"]["test_metric"]) == set(stations)
    for station in stations:
        assert os.path.isfile(os.path.join(workdir, "plots", f"front_{station}.png"))

    prepared = prepare_beijing(folder, stations, seed=config.seed)
    pm25 = prepared.feature_names.index("PM2.5")
    mean, std = float(prepared.standardizer.mean[pm25]), float(prepared.standardizer.std[pm25])
    model, variables = load_member(os.path.join(workdir, "models", "jat"))
    written = set(v for v in daily_pm25(720, 0) + daily_pm25(720, 3) if v is not None)
    for task in prepared.data.tasks:
        # Un-standardized targets are the readings written to the files.
        micrograms = np.rint(task.y_test * std + mean).astype(int)
        assert set(micrograms.tolist()) <= written
        expected = rmse_in_units(predictions(model, variables, task.x_test), task.y_test, mean, std)
        assert manifest["jat"]["test_metric"][task.name] == pytest.approx(expected, rel=1e-4)


def test_beijing_config_paper_settings():
    config = load_config("configs/beijing_bilstm.py", ["config.data.path=/data/beijing"])
    assert "Dingling" in config.data.stations
    assert len(config.data.stations) == 4
    assert config.evolution.pop_size == 60
    assert config.evolution.generations == 120
    assert (config.finetune.optimizer, config.finetune.learning_rate, config.finetune.decay, config.finetune.epochs) == ("adamw", 1e-3, 0.99, 15)
    assert config.model.hidden == 128
    assert config.model.layers == 2
    assert config.data.window == 10


def test_beijing_config_needs_path():
    with pytest.raises(ConfigError, match="data.path"):
        load_config("configs/beijing_bilstm.py")


@pytest.mark.parametrize(
    "override, field",
    [
        ("config.data.window=0", "data.window"),
        ("config.data.max_gap=-1", "data.max_gap"),
        ("config.data.test_fraction=0.6", "data.test_fraction"),
        ("config.data.target=PM10", "data.target"),
        ("config.data.stations=[]", "data.stations"),
    ],
)
def test_beijing_config_rejects(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config("configs/beijing_bilstm.py", ["config.data.path=/data/beijing", override])


@pytest.mark.parametrize(
    "override, field",
    [
        ("config.data.target=rain", "data.target"),
        ("config.data.stations=['JFK', 'ORD']", "data.stations"),
        ("config.data.val_fraction=0.5", "data.test_fraction"),
    ],
)
def test_nycweather_config_rejects(override, field):
    overrides = [override] + (["config.data.test_fraction=0.5"] if "val_fraction" in override else [])
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config("configs/nycweather_bilstm.py", overrides)


def test_nycweather_config_targets_match_loader():
    from sosjax.data.nycweather import TARGET_UNITS

    for target in TARGET_UNITS:
        assert load_config("configs/nycweather_bilstm.py", [f"config.data.target={target}"]).data.target == target
