import pytest

from sosjax.config import ConfigError, apply_override, config_differences, load_config, validate

DIGITS = "configs/digits_resnet18.py"


def test_default_config_is_valid():
    config = load_config(DIGITS)
    assert config.data.name == "digits"
    assert config.evolution.pop_size % 2 == 0


def test_overrides_parse_field_types():
    config = load_config(DIGITS, ["config.evolution.generations=7", "--config.evolution.rmp=0.5", "config.evolution.learn_rmp=true",
                                  "config.data.path=/tmp/data", "config.evolution.mutation_rate=0.01"])
    assert config.evolution.generations == 7
    assert config.evolution.rmp == 0.5
    assert config.evolution.learn_rmp is True
    assert config.data.path == "/tmp/data"
    assert config.evolution.mutation_rate == 0.01


def test_override_rmp_matrix():
    config = load_config(DIGITS, ["config.evolution.rmp=[[1, 0.2], [0.2, 1]]"])
    assert config.evolution.rmp == [[1, 0.2], [0.2, 1]]


def test_config_argument_selects_variant():
    tiny = load_config(DIGITS + ":tiny")
    assert tiny.evolution.generations < load_config(DIGITS).evolution.generations


@pytest.mark.parametrize(
    "override, field",
    [
        ("config.evolution.pop_size=7", "evolution.pop_size"),
        ("config.evolution.pop_size=0", "evolution.pop_size"),
        ("config.evolution.generations=-1", "evolution.generations"),
        ("config.evolution.rmp=1.5", "evolution.rmp"),
        ("config.evolution.rmp=[[0.1, 2.0], [0.1, 0.1]]", "evolution.rmp"),
        ("config.evolution.crossover=one_point", "evolution.crossover"),
        ("config.evolution.mutation_rate=-0.1", "evolution.mutation_rate"),
        ("config.evolution.size_objective=flops", "evolution.size_objective"),
        ("config.evolution.batch_stats=none", "evolution.batch_stats"),
        ("config.evolution.fitness_batch_size=0", "evolution.fitness_batch_size"),
        ("config.evolution.chunk_size=-3", "evolution.chunk_size"),
        ("config.data.name=imagenet", "data.name"),
        ("config.data.val_fraction=0.9", "data.val_fraction"),
        ("config.data.max_train_per_task=1", "data.max_train_per_task"),
        ("config.model.name=vgg", "model.name"),
        ("config.model.stem=tiny", "model.stem"),
        ("config.model.width=0", "model.width"),
        ("config.model.granularity=0", "model.granularity"),
        ("config.model.min_active=0", "model.min_active"),
        ("config.pretrain.learning_rate=0", "pretrain.learning_rate"),
        ("config.pretrain.checkpoint=/no/such/file.pt", "pretrain.checkpoint"),
        ("config.finetune.optimizer=sgd", "finetune.optimizer"),
        ("config.finetune.decay=0", "finetune.decay"),
        ("config.finetune.max_members=-1", "finetune.max_members"),
        ("config.seed=-1", "seed"),
    ],
)
def test_invalid_field_names_field_and_value(override, field):
    with pytest.raises(ConfigError) as error:
        load_config(DIGITS, [override])
    message = str(error.value)
    assert field in message
    assert "expected" in message


def test_unknown_field_is_rejected():
    with pytest.raises(ConfigError, match="evolution.popsize"):
        load_config(DIGITS, ["config.evolution.popsize=10"])


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigError, match="evolution.generations"):
        load_config(DIGITS, ["config.evolution.generations=many"])


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/no_such_config.py")


def test_config_differences_lists_dotted_fields():
    a = {"seed": 0, "evolution": {"pop_size": 20, "rmp": 0.3}, "export": {"dtypes": ["float32"]}}
    b = {"seed": 0, "evolution": {"pop_size": 30, "rmp": 0.3}, "export": {"dtypes": ("float32",)}}
    assert config_differences(a, b) == ["evolution.pop_size"]


@pytest.mark.parametrize("spec", ["configs/mnist_resnet18.py", "configs/mnist_resnet18.py:cpu",
                                  "configs/cifar10_resnet18.py", "configs/cifar10_resnet18.py:cpu"])
def test_paper_configs_are_valid(spec):
    config = load_config(spec)
    if spec.endswith(":cpu"):
        assert config.evolution.pop_size < 60
    else:
        assert config.evolution.pop_size == 60
        assert config.evolution.generations == 120
        assert "float16" in config.export.dtypes
