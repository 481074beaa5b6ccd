"""Data: image sets as label-subset tasks, hourly station series as windowed
regression tasks, and the task data types."""

from sosjax.data.cifar import read_cifar10_batches
from sosjax.data.idx import read_idx, read_idx_folder
from sosjax.data.image_datasets import DATASETS, ImageDatasetSpec
from sosjax.data.images import load_image_data
from sosjax.data.label_tasks import PRESETS
from sosjax.data.pickled import read_mnist_pickle
from sosjax.data.raw_images import RawImageSplits
from sosjax.data.tasks import MultiTaskData, TaskData
from sosjax.data.tfds_source import read_prepared_tfds
from sosjax.data.airquality import load_beijing, prepare_beijing
from sosjax.data.nycweather import load_nycweather, prepare_nycweather
from sosjax.data.windows import Periods, Standardizer, StationSeries, WindowedTasks, prepare_windows
