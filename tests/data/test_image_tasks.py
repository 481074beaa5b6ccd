"""Label-subset tasks: presets, class names and indices, and invalid task specs."""

import numpy as np
import pytest

from sosjax.data.image_datasets import DATASETS
from sosjax.data.label_tasks import resolve_label_tasks

CIFAR = DATASETS["cifar10"]
FASHION = DATASETS["fashion_mnist"]
DIGITS = DATASETS["digits"]


def resolve(tasks, spec=CIFAR):
    return resolve_label_tasks(tasks, spec.class_names, spec.presets)


def test_preset_even_odd():
    assert resolve("even_odd", DIGITS) == {"even": (0, 2, 4, 6, 8), "odd": (1, 3, 5, 7, 9)}


def test_preset_animals_vehicles():
    assert resolve("animals_vehicles") == {"animals": (2, 3, 4, 5, 6, 7), "vehicles": (0, 1, 8, 9)}


def test_preset_clothing_footwear():
    tasks = resolve("clothing_footwear", FASHION)

    assert tasks == {"clothing": (0, 1, 2, 3, 4, 6), "footwear_and_bags": (5, 7, 8, 9)}


def test_mapping_names_and_indices():
    tasks = resolve({"pets": ["Dog", "cat", np.int64(6)], "road": [9, "automobile"]})

    assert tasks == {"pets": (3, 5, 6), "road": (1, 9)}


def test_preset_of_other_data_set():
    with pytest.raises(ValueError, match="Unknown task preset 'even_odd' for this data set; presets: animals_vehicles"):
        resolve("even_odd")


def test_unknown_class_name():
    with pytest.raises(ValueError, match="Unknown class 'lorry' in task 'road'; use an index in 0..9 or one of"):
        resolve({"road": ["truck", "lorry"]})


@pytest.mark.parametrize("item", [10, -1, True, 2.0])
def test_invalid_class_index(item):
    with pytest.raises(ValueError, match="Unknown class .* in task 'a'"):
        resolve({"a": [item]})


def test_repeated_class():
    with pytest.raises(ValueError, match="Task 'a' lists a class twice"):
        resolve({"a": ["cat", 3]})


@pytest.mark.parametrize("classes", [[], "cat", None])
def test_task_without_class_list(classes):
    with pytest.raises(ValueError, match="Task 'a' must list one or more classes"):
        resolve({"a": classes})


@pytest.mark.parametrize("name", ["a/b", "", ".hidden", 3])
def test_invalid_task_name(name):
    with pytest.raises(ValueError, match="Invalid task name"):
        resolve({name: [1]})


def test_empty_mapping():
    with pytest.raises(ValueError, match="tasks must be a preset name"):
        resolve({})
