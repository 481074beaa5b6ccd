"""CIFAR-10 animals and vehicles with ResNet-18, with the settings of
Choong, Ong, Gupta and Lim, "Jack and Masters of All Trades: One-Pass Learning
of a Set of Model Sets from Foundation AI Models".

The data folder comes from `config.data.path`: the python-pickle batches
(`data_batch_1` … `data_batch_5`, `test_batch`, optionally inside
`cifar-10-batches-py/`) or a prepared TFDS `cifar10`. `:cpu` is a variant that
finishes in minutes on a laptop:

    sosjax run --config configs/cifar10_resnet18.py --config.data.path=DIR --workdir runs/cifar10
    sosjax run --config configs/cifar10_resnet18.py:cpu --config.data.path=DIR --workdir runs/cifar10-cpu
"""

from sosjax.config import base_config


def get_config(arg=None):
    config = base_config()

    config.data.name = "cifar10"
    config.data.tasks = "animals_vehicles"
    config.data.val_fraction = 0.1

    config.model.name = "resnet18"
    config.model.stem = "cifar"
    config.model.width = 1.0

    # Without a pretrained checkpoint the JAT is trained here; give one with
    # --config.pretrain.checkpoint=FILE to skip this.
    config.pretrain.epochs = 30
    config.pretrain.batch_size = 128
    config.pretrain.learning_rate = 1e-3
    config.pretrain.weight_decay = 5e-4

    config.evolution.pop_size = 60
    config.evolution.generations = 120
    config.evolution.fitness_batch_size = 256
    config.evolution.num_fitness_batches = 16
    config.evolution.checkpoint_every = 10

    # Fine-tuning as Choong et al.: Adam 5e-4, ×0.95 per epoch, 25 epochs, every front member.
    config.finetune.epochs = 25
    config.finetune.batch_size = 128
    config.finetune.optimizer = "adam"
    config.finetune.learning_rate = 5e-4
    config.finetune.decay = 0.95
    config.finetune.max_members = 0

    config.export.dtypes = ("float32", "float16")

    if arg == "cpu":
        config.data.max_train_per_task = 2000
        config.data.max_test_per_task = 1000
        config.model.width = 0.25
        config.pretrain.epochs = 10
        config.evolution.pop_size = 16
        config.evolution.generations = 20
        config.evolution.fitness_batch_size = 128
        config.finetune.epochs = 10
        config.finetune.learning_rate = 1e-3
        config.finetune.max_members = 6
    elif arg not in (None, ""):
        raise ValueError(f"Unknown config argument {arg!r}; expected nothing or 'cpu'.")
    return config
