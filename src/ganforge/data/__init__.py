"""Datasets: real, offline, held in memory as tensors.

``load_dataset("mnist")``, ``load_dataset("folder:PATH", image_size=(1, 28, 28))`` ...
Every dataset returns a :class:`~ganforge.data.base.TensorData`.
"""

from ganforge.data import captions as _captions  # noqa: F401  (mnist-captions)
from ganforge.data import music as _music  # noqa: F401  (music:bach, music:FOLDER)
from ganforge.data import sequences as _sequences  # noqa: F401  (registers sines, ...)
from ganforge.data import tabular as _tabular  # noqa: F401  (sklearn:, csv:, frame:)
from ganforge.data import translation as _translation  # noqa: F401  (paired/unpaired sets)
from ganforge.data.base import DataLoaderBatcher, IndexBatcher, TensorData
from ganforge.data.registry import DATASETS, load_dataset, load_training_data, register_dataset

__all__ = ["DATASETS", "DataLoaderBatcher", "IndexBatcher", "TensorData", "load_dataset",
           "load_training_data", "register_dataset"]
