"""Run configurations: the shared schema, config files, overrides and validation.

A config file is a Python file with `get_config(arg=None)` returning an
`ml_collections.ConfigDict` built on `base_config()`. The command line selects
it with `--config FILE[:ARG]` and overrides fields with `--config.FIELD=VALUE`,
the convention of `ml_collections.config_flags`.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
from typing import Any, Sequence

import ml_collections
from ml_collections import config_dict


class ConfigError(ValueError):
    """An invalid config field; the message names the field, value and fix."""


def base_config() -> ml_collections.ConfigDict:
    """Return the schema every config fills in, with a comment on each field."""
    c = ml_collections.ConfigDict()

    # Seed of the whole run: splits, JAT initialisation, evolution, fine-tuning.
    c.seed = 0
    # Devices that candidates and fine-tuned members are split over: 0 is every
    # device of every process, N the first N. Results do not depend on it.
    c.devices = 0

    c.data = ml_collections.ConfigDict()
    # Dataset: digits | mnist | fashion_mnist | cifar10 | beijing | nycweather | wmt19.
    c.data.name = "digits"
    # Folder (or file) holding the data; None uses the dataset's default place.
    c.data.path = config_dict.placeholder(str)
    # Loader: auto | tfds | idx | pickle (images), auto | tfds | text (wmt19);
    # ignored for embedded data.
    c.data.source = "auto"
    # Task preset (even_odd, animals_vehicles, clothing_footwear) or a dict
    # task name -> list of class names or indices.
    c.data.tasks = "even_odd"
    # Stations (air quality) or airports (nycweather), one task each.
    c.data.stations = ()
    # The next four fields apply to the hourly domains (beijing, nycweather)
    # only. There val_fraction and test_fraction are shares of the whole time
    # span, cut in the order train, validation, test, and max_test_per_task
    # caps their validation windows too.

    # Input hours per example; the target is the reading in the hour after them.
    c.data.window = 10
    # Maximum run of missing hours (per column) filled by linear interpolation;
    # windows that would need a longer run are dropped.
    c.data.max_gap = 3
    # Variable forecast one hour ahead; None is the domain's default (beijing:
    # PM2.5, its only target; nycweather: temp, or dewp, humid, wind_speed,
    # precip, pressure, visib).
    c.data.target = config_dict.placeholder(str)
    # Share of the time span at its end used as the test period, in (0, 0.5].
    c.data.test_fraction = 0.2
    # Fraction of the training data held out for validation, in (0, 0.5].
    c.data.val_fraction = 0.1
    # Per-task caps on examples, for CPU-sized runs; None keeps everything.
    c.data.max_train_per_task = config_dict.placeholder(int)
    c.data.max_test_per_task = config_dict.placeholder(int)

    c.model = ml_collections.ConfigDict()
    # Architecture: resnet18 | bilstm | m2m100.
    c.model.name = "resnet18"
    # ResNet stem: cifar (3×3 conv, no pooling) or imagenet (7×7 conv, max pool).
    c.model.stem = "cifar"
    # ResNet width multiplier: 1.0 is base width 64.
    c.model.width = 1.0
    # BiLSTM hidden units per direction and layers.
    c.model.hidden = 128
    c.model.layers = 2
    # Adjacent units under one mask bit (sets D); for m2m100, attention heads
    # or rows of one head, by translation.mask_unit.
    c.model.granularity = 1
    # Groups every layer keeps at least.
    c.model.min_active = 1

    c.pretrain = ml_collections.ConfigDict()
    # Local JAT checkpoint to load instead of pretraining: a sosjax model folder,
    # a torchvision ResNet-18 state_dict (.pt, .pth or .safetensors), or for
    # m2m100 a Hugging Face M2M100 folder with its tokenizer.
    c.pretrain.checkpoint = config_dict.placeholder(str)
    # Epochs over the union of all tasks' training data.
    c.pretrain.epochs = 30
    c.pretrain.batch_size = 64
    c.pretrain.learning_rate = 1e-3
    # Decoupled weight decay (AdamW); 0 is Adam.
    c.pretrain.weight_decay = 0.0
    # Epochs between checkpoints of pretraining progress.
    c.pretrain.checkpoint_every = 1

    c.evolution = ml_collections.ConfigDict()
    # Γ: candidates per task; must be even (offspring come in pairs).
    c.evolution.pop_size = 60
    c.evolution.generations = 120
    # Random mating probability: a scalar in [0, 1]; 0 is K independent NSGA-II runs.
    c.evolution.rmp = 0.3
    # MO-MFEA-II: learn the K×K rmp matrix every generation.
    c.evolution.learn_rmp = False
    # uniform | two_point.
    c.evolution.crossover = "uniform"
    # Per-bit flip rate; None is 1/D.
    c.evolution.mutation_rate = config_dict.placeholder(float)
    # Lower end of the initial per-candidate keep-probability range [p_min, 1].
    c.evolution.p_min = 0.1
    # Size objective: params (exact parameter fraction) or mask_l1 (‖B‖₁/D).
    c.evolution.size_objective = "params"
    # Examples per task in a generation's fitness batch.
    c.evolution.fitness_batch_size = 256
    # Distinct fitness batches drawn per task; generation g uses batch g mod this.
    c.evolution.num_fitness_batches = 8
    # Candidates per vmapped chunk of the fitness call; 0 evaluates all at once.
    c.evolution.chunk_size = 0
    # BatchNorm statistics for fitness: batch (adaptive, recomputed on the
    # fitness batch) or running (the JAT's stored statistics).
    c.evolution.batch_stats = "batch"
    # Generations between checkpoints of the evolution state.
    c.evolution.checkpoint_every = 10

    c.finetune = ml_collections.ConfigDict()
    # Epochs of fine-tuning per front member; 0 skips fine-tuning.
    c.finetune.epochs = 10
    c.finetune.batch_size = 64
    # adam | adamw | adafactor.
    c.finetune.optimizer = "adam"
    c.finetune.learning_rate = 5e-4
    # Learning-rate factor applied after every epoch.
    c.finetune.decay = 0.95
    c.finetune.weight_decay = 0.0
    # Stop once no member's validation metric improved for this many epochs; 0 never stops early.
    c.finetune.patience = 0
    # Members fine-tuned per task, spread evenly over the front by size; 0 is all.
    c.finetune.max_members = 0
    # Epochs between checkpoints of fine-tuning progress.
    c.finetune.checkpoint_every = 1
    # Members trained together in one vmapped program; 0 picks 1 on the CPU
    # (where vmapping over different weights is slow) and all on accelerators.
    c.finetune.members_per_call = 0

    c.translation = ml_collections.ConfigDict()
    # Language pairs "source-target", one task each (data.name = wmt19).
    c.translation.pairs = ("de-en", "cs-en")
    # Tokens per source and per target sentence, language token and </s> included.
    c.translation.source_length = 128
    c.translation.target_length = 128
    # Decoding for test BLEU: decoder length (start token included), beams
    # (1 is greedy) and sentences per decoded batch.
    c.translation.max_length = 128
    c.translation.num_beams = 1
    c.translation.eval_batch_size = 32
    # What one mask bit of the M2M100 removes: heads (model.granularity whole
    # heads of one attention layer) or rows (model.granularity adjacent rows of
    # one head, either of q_proj with k_proj or of v_proj with out_proj's input
    # columns).
    c.translation.mask_unit = "heads"
    # The small JAT pretrained offline when pretrain.checkpoint is None (with
    # pretrain.batch_size and pretrain.learning_rate, Adafactor): sentencepiece
    # pieces, width, layers, heads per attention, feed-forward width, steps.
    c.translation.pieces = 1000
    c.translation.d_model = 64
    c.translation.layers = 2
    c.translation.heads = 4
    c.translation.ffn_dim = 256
    c.translation.pretrain_steps = 2000

    c.export = ml_collections.ConfigDict()
    # Float dtypes whose byte sizes the manifest reports.
    c.export.dtypes = ("float32", "float16")
    return c


def load_config(spec: str | None, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Load `FILE[:ARG]` (default: the digits config), apply overrides, validate.

    `overrides` are `config.FIELD=VALUE` strings; a value is parsed as a Python
    literal when the field is not a string.
    """
    path, _, arg = (spec or default_config_path()).partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path!r} not found; pass --config with a path to a config file such as configs/digits_resnet18.py.")
    module_spec = importlib.util.spec_from_file_location("sosjax_user_config", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # A user file can raise anything; report it as a config error.
        raise ConfigError(f"Config file {path!r} failed to load: {type(error).__name__}: {error}.") from error
    if not hasattr(module, "get_config"):
        raise ConfigError(f"Config file {path!r} defines no get_config(arg=None) function.")
    try:
        config = module.get_config(arg or None)
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise ConfigError(f"get_config({arg!r}) of {path!r} failed: {error}") from error
    for override in overrides:
        apply_override(config, override)
    validate(config)
    return config


def default_config_path() -> str:
    """Return `configs/digits_resnet18.py` from the working directory or the checkout."""
    candidates = [
        os.path.join("configs", "digits_resnet18.py"),
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "digits_resnet18.py"),
    ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return candidates[0]


def apply_override(config: ml_collections.ConfigDict, override: str) -> None:
    """Apply one `config.FIELD=VALUE` (or `FIELD=VALUE`) override in place."""
    key, sep, text = override.removeprefix("--").removeprefix("config.").partition("=")
    if not sep:
        raise ConfigError(f"Override {override!r} has no '='; write it as --config.FIELD=VALUE.")
    parent = config
    *parents, leaf = key.split(".")
    for name in parents:
        if name not in parent or not isinstance(parent[name], ml_collections.ConfigDict):
            raise ConfigError(f"Unknown config field {key!r} in override {override!r}.")
        parent = parent[name]
    if leaf not in parent:
        raise ConfigError(f"Unknown config field {key!r}; known fields here: {', '.join(sorted(parent.keys()))}.")

    current = parent[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"{key!r} is a section, not a field; set one of its fields, for example --config.{key}.{sorted(current.keys())[0]}=VALUE.")
    field_type = parent.get_type(leaf) if hasattr(parent, "get_type") else type(current)
    value = _parse_value(text, current, field_type, key)
    with parent.ignore_type():
        parent[leaf] = value


def _parse_value(text: str, current: Any, field_type: type, key: str) -> Any:
    if current is None and text in ("None", "none", "null"):
        return None
    if field_type is str or isinstance(current, str):
        # A name field may also take a dict literal (data.tasks).
        if text.lstrip().startswith("{"):
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ConfigError(f"Field {key!r}: {text!r} is not a valid dict literal.") from None
        return text
    if text in ("None", "none", "null"):
        return None
    if field_type is bool or isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"Field {key!r} must be true or false, got {text!r}.")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None and field_type in (type(None), object):
            return text
        kind = {int: "an integer", float: "a number", tuple: "a tuple", list: "a list"}.get(field_type, getattr(field_type, "__name__", str(field_type)))
        raise ConfigError(f"Field {key!r} expects {kind}, got {text!r}.") from None
    if field_type is float and isinstance(value, int):
        value = float(value)
    if field_type is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def _check(condition: bool, field: str, value: Any, expected: str) -> None:
    if not condition:
        raise ConfigError(f"Invalid config field {field} = {value!r}: expected {expected}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_hourly_data(data: ml_collections.ConfigDict) -> None:
    """Check the fields of the hourly domains (beijing, nycweather)."""
    _check(_is_int(data.window) and data.window >= 1, "data.window", data.window, "an integer >= 1 (input hours)")
    _check(_is_int(data.max_gap) and data.max_gap >= 0, "data.max_gap", data.max_gap, "an integer >= 0 (hours)")
    _check(_is_number(data.test_fraction) and 0 < data.test_fraction <= 0.5, "data.test_fraction", data.test_fraction,
           "a number in (0, 0.5]")
    if data.name in ("beijing", "nycweather"):
        _check(data.val_fraction + data.test_fraction < 1, "data.test_fraction", data.test_fraction,
               f"a number below 1 - data.val_fraction = {1 - data.val_fraction:g}, so that training keeps some hours")
    if data.name == "beijing":
        _check(isinstance(data.path, str) and data.path != "", "data.path", data.path,
               "the folder of PRSA_Data_<Station>_20130301-20170228.csv files or the UCI zip")
        _check(data.target in (None, "PM2.5"), "data.target", data.target, "None or PM2.5 (the only target of beijing)")
        _check(len(data.stations) > 0 and all(isinstance(s, str) for s in data.stations), "data.stations", data.stations,
               "a non-empty list of station names such as ['Dingling', 'Changping']")
    if data.name == "nycweather":
        targets = ("temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib")
        _check(data.target is None or data.target in targets, "data.target", data.target, f"None or one of {', '.join(targets)}")
        _check(all(s in ("EWR", "JFK", "LGA") for s in data.stations), "data.stations", data.stations,
               "an empty list (all three airports) or a list of EWR, JFK, LGA")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ConfigError naming the first invalid field, its value and the accepted range."""
    _check(_is_int(config.seed) and 0 <= config.seed < 2**32, "seed", config.seed, "an integer in [0, 2**32)")
    _check(_is_int(config.devices) and config.devices >= 0, "devices", config.devices, "an integer >= 0 (0 uses every device)")

    data = config.data
    _check(data.name in ("digits", "mnist", "fashion_mnist", "cifar10", "beijing", "nycweather", "wmt19"), "data.name", data.name,
           "one of digits, mnist, fashion_mnist, cifar10, beijing, nycweather, wmt19")
    _check(_is_number(data.val_fraction) and 0 < data.val_fraction <= 0.5, "data.val_fraction", data.val_fraction, "a number in (0, 0.5]")
    for field in ("max_train_per_task", "max_test_per_task"):
        value = data[field]
        _check(value is None or (_is_int(value) and value >= 2), f"data.{field}", value, "None or an integer >= 2")
    _check_hourly_data(data)

    model = config.model
    _check(model.name in ("resnet18", "bilstm", "m2m100"), "model.name", model.name, "one of resnet18, bilstm, m2m100")
    _check(model.stem in ("cifar", "imagenet"), "model.stem", model.stem, "cifar or imagenet")
    _check(_is_number(model.width) and 0 < model.width <= 8, "model.width", model.width, "a number in (0, 8]")
    _check(_is_int(model.hidden) and model.hidden >= 1, "model.hidden", model.hidden, "an integer >= 1")
    _check(_is_int(model.layers) and model.layers >= 1, "model.layers", model.layers, "an integer >= 1")
    _check(_is_int(model.granularity) and model.granularity >= 1, "model.granularity", model.granularity, "an integer >= 1")
    _check(_is_int(model.min_active) and model.min_active >= 1, "model.min_active", model.min_active, "an integer >= 1")

    pretrain = config.pretrain
    _check(_is_int(pretrain.epochs) and pretrain.epochs >= 0, "pretrain.epochs", pretrain.epochs, "an integer >= 0")
    _check(_is_int(pretrain.batch_size) and pretrain.batch_size >= 1, "pretrain.batch_size", pretrain.batch_size, "an integer >= 1")
    _check(_is_number(pretrain.learning_rate) and pretrain.learning_rate > 0, "pretrain.learning_rate", pretrain.learning_rate, "a number > 0")
    _check(_is_number(pretrain.weight_decay) and pretrain.weight_decay >= 0, "pretrain.weight_decay", pretrain.weight_decay, "a number >= 0")
    _check(_is_int(pretrain.checkpoint_every) and pretrain.checkpoint_every >= 1, "pretrain.checkpoint_every",
           pretrain.checkpoint_every, "an integer >= 1")
    if pretrain.checkpoint is not None:
        _check(os.path.exists(pretrain.checkpoint), "pretrain.checkpoint", pretrain.checkpoint, "an existing file or folder (or None to pretrain)")

    evolution = config.evolution
    _check(_is_int(evolution.pop_size) and evolution.pop_size >= 2 and evolution.pop_size % 2 == 0, "evolution.pop_size",
           evolution.pop_size, "an even integer >= 2")
    _check(_is_int(evolution.generations) and evolution.generations >= 0, "evolution.generations", evolution.generations, "an integer >= 0")
    rmp = evolution.rmp
    if isinstance(rmp, (list, tuple)):
        flat = [value for row in rmp for value in (row if isinstance(row, (list, tuple)) else [row])]
        _check(all(_is_number(v) and 0 <= v <= 1 for v in flat), "evolution.rmp", rmp, "a number in [0, 1] or a K×K matrix of them")
    else:
        _check(_is_number(rmp) and 0 <= rmp <= 1, "evolution.rmp", rmp, "a number in [0, 1] or a K×K matrix of them")
    _check(isinstance(evolution.learn_rmp, bool), "evolution.learn_rmp", evolution.learn_rmp, "true or false")
    _check(evolution.crossover in ("uniform", "two_point"), "evolution.crossover", evolution.crossover, "uniform or two_point")
    rate = evolution.mutation_rate
    _check(rate is None or (_is_number(rate) and 0 <= rate <= 1), "evolution.mutation_rate", rate, "None (1/D) or a number in [0, 1]")
    _check(_is_number(evolution.p_min) and 0 <= evolution.p_min <= 1, "evolution.p_min", evolution.p_min, "a number in [0, 1]")
    _check(evolution.size_objective in ("params", "mask_l1"), "evolution.size_objective", evolution.size_objective, "params or mask_l1")
    _check(_is_int(evolution.fitness_batch_size) and evolution.fitness_batch_size >= 1, "evolution.fitness_batch_size",
           evolution.fitness_batch_size, "an integer >= 1")
    _check(_is_int(evolution.num_fitness_batches) and evolution.num_fitness_batches >= 1, "evolution.num_fitness_batches",
           evolution.num_fitness_batches, "an integer >= 1")
    _check(_is_int(evolution.chunk_size) and evolution.chunk_size >= 0, "evolution.chunk_size", evolution.chunk_size,
           "an integer >= 0 (0 evaluates all candidates at once)")
    _check(evolution.batch_stats in ("batch", "running"), "evolution.batch_stats", evolution.batch_stats, "batch or running")
    _check(_is_int(evolution.checkpoint_every) and evolution.checkpoint_every >= 1, "evolution.checkpoint_every",
           evolution.checkpoint_every, "an integer >= 1")

    finetune = config.finetune
    _check(_is_int(finetune.epochs) and finetune.epochs >= 0, "finetune.epochs", finetune.epochs, "an integer >= 0")
    _check(_is_int(finetune.batch_size) and finetune.batch_size >= 1, "finetune.batch_size", finetune.batch_size, "an integer >= 1")
    _check(finetune.optimizer in ("adam", "adamw", "adafactor"), "finetune.optimizer", finetune.optimizer, "adam, adamw or adafactor")
    _check(_is_int(finetune.patience) and finetune.patience >= 0, "finetune.patience", finetune.patience,
           "an integer >= 0 (0 never stops early)")
    _check(_is_number(finetune.learning_rate) and finetune.learning_rate > 0, "finetune.learning_rate", finetune.learning_rate, "a number > 0")
    _check(_is_number(finetune.decay) and 0 < finetune.decay <= 1, "finetune.decay", finetune.decay, "a number in (0, 1]")
    _check(_is_number(finetune.weight_decay) and finetune.weight_decay >= 0, "finetune.weight_decay", finetune.weight_decay, "a number >= 0")
    _check(_is_int(finetune.max_members) and finetune.max_members >= 0, "finetune.max_members", finetune.max_members,
           "an integer >= 0 (0 fine-tunes every front member)")

    _check(_is_int(finetune.checkpoint_every) and finetune.checkpoint_every >= 1, "finetune.checkpoint_every",
           finetune.checkpoint_every, "an integer >= 1")
    _check(_is_int(finetune.members_per_call) and finetune.members_per_call >= 0, "finetune.members_per_call",
           finetune.members_per_call, "an integer >= 0 (0 picks by backend)")

    _validate_translation(config)

    dtypes = tuple(config.export.dtypes)
    _check(len(dtypes) > 0 and all(d in ("float32", "float16", "bfloat16") for d in dtypes), "export.dtypes", dtypes,
           "a non-empty list of float32, float16, bfloat16")


def _validate_translation(config: ml_collections.ConfigDict) -> None:
    translation = config.translation
    if config.data.name == "wmt19":
        _check(config.model.name == "m2m100", "model.name", config.model.name, "m2m100 for data.name = wmt19")
    pairs = tuple(translation.pairs)
    _check(len(pairs) >= 1 and all(isinstance(p, str) and len(p.split("-")) == 2 and all(p.split("-")) for p in pairs),
           "translation.pairs", pairs, 'a non-empty list of "source-target" language pairs such as "de-en"')
    for field in ("source_length", "target_length", "max_length"):
        _check(_is_int(translation[field]) and translation[field] >= 3, f"translation.{field}", translation[field],
               "an integer >= 3 (language token, one token, </s>)")
    for field in ("num_beams", "eval_batch_size", "pieces", "d_model", "layers", "heads", "ffn_dim", "pretrain_steps"):
        _check(_is_int(translation[field]) and translation[field] >= 1, f"translation.{field}", translation[field], "an integer >= 1")
    _check(translation.d_model % translation.heads == 0, "translation.heads", translation.heads,
           f"a divisor of translation.d_model ({translation.d_model})")
    _check(translation.mask_unit in ("heads", "rows"), "translation.mask_unit", translation.mask_unit, "heads or rows")

    # The JAT that a run pretrains has known head sizes, so a granularity that
    # splits no whole number of heads or rows fails here. A checkpoint's head
    # sizes are checked when it is loaded.
    if config.data.name == "wmt19" and config.pretrain.checkpoint is None:
        granularity = config.model.granularity
        if translation.mask_unit == "heads":
            _check(translation.heads % granularity == 0, "model.granularity", granularity,
                   f"a divisor of translation.heads ({translation.heads}) when translation.mask_unit = heads")
        else:
            head_dim = translation.d_model // translation.heads
            _check(head_dim % granularity == 0, "model.granularity", granularity,
                   f"a divisor of the head width translation.d_model / translation.heads ({head_dim}) "
                   "when translation.mask_unit = rows")


def config_to_json(config: ml_collections.ConfigDict) -> str:
    """Serialize a config to stable, sorted JSON (the run folder's config.json)."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


#: Fields that change where a run computes but not what it computes, so a run
#: folder may be resumed with other values of them.
PLACEMENT_FIELDS = ("devices",)


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """List the dotted field names whose values differ between two config dicts.

    `PLACEMENT_FIELDS` are not compared.
    """
    fields = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        if name in PLACEMENT_FIELDS:
            continue
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            fields.extend(config_differences(a, b, name + "."))
        elif _normalize(a) != _normalize(b):
            fields.append(name)
    return fields


def _normalize(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    return value
