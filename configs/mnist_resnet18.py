"""MNIST even and odd digits with ResNet-18, with the settings of
Choong, Ong, Gupta and Lim, "Jack and Masters of All Trades: One-Pass Learning
of a Set of Model Sets from Foundation AI Models".

The data folder comes from `config.data.path`: the four IDX files
(`train-images-idx3-ubyte[.gz]`, ...), `mnist.pkl.gz`, or a prepared TFDS
`mnist`. Paper scale (Γ = 60 per task, 120 generations) is meant for a GPU;
`:cpu` is a variant that finishes in minutes on a laptop:

    sosjax run --config configs/mnist_resnet18.py --config.data.path=DIR --workdir runs/mnist
    sosjax run --config configs/mnist_resnet18.py:cpu --config.data.path=DIR --workdir runs/mnist-cpu
"""

from sosjax.config import base_config


def get_config(arg=None):
    config = base_config()

    config.data.name = "mnist"
    config.data.tasks = "even_odd"
    config.data.val_fraction = 0.1

    # 28×28 inputs: the CIFAR stem (3×3 conv, no pooling) keeps enough resolution.
    config.model.name = "resnet18"
    config.model.stem = "cifar"
    config.model.width = 1.0

    config.pretrain.epochs = 5
    config.pretrain.batch_size = 128
    config.pretrain.learning_rate = 1e-3

    config.evolution.pop_size = 60
    config.evolution.generations = 120
    config.evolution.fitness_batch_size = 256
    config.evolution.num_fitness_batches = 16
    config.evolution.checkpoint_every = 10

    # Fine-tuning as Choong et al.: Adam 5e-4, ×0.95 per epoch, 10 epochs, every front member.
    config.finetune.epochs = 10
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
        config.pretrain.epochs = 5
        config.evolution.pop_size = 16
        config.evolution.generations = 20
        config.evolution.fitness_batch_size = 128
        config.finetune.epochs = 10
        config.finetune.learning_rate = 1e-3
        config.finetune.max_members = 6
    elif arg not in (None, ""):
        raise ValueError(f"Unknown config argument {arg!r}; expected nothing or 'cpu'.")
    return config
