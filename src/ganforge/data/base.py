"""In-memory datasets and a batcher that indexes tensors with a seeded permutation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ganforge.errors import DataError


@dataclass
class TensorData:
    """A dataset held as tensors.

    ``x`` has shape ``(N, *shape)``; ``y`` (optional) holds integer labels of shape ``(N,)``.
    ``kind`` is ``image`` (C, H, W in [-1, 1]), ``vector`` (F,) or ``sequence`` (T, F).
    ``info`` carries dataset-specific facts (mixture means and std, scaling, class names).
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor | None = None
    kind: str = "vector"
    split: str = "train"
    num_classes: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])


class IndexBatcher:
    """Yields batches by indexing whole tensors with a shuffled permutation.

    No per-sample Python: one ``randperm`` per epoch and one ``index_select`` per batch. The
    incomplete last batch of an epoch is dropped (as GAN training loops usually do), so every
    batch has the same size. The state (epoch, position, generator) is saved in checkpoints so a
    resumed run sees the exact same sequence of batches.
    """

    def __init__(self, data: TensorData, batch_size: int, seed: int) -> None:
        n = len(data)
        if batch_size > n:
            raise DataError(
                f"batch size {batch_size} is larger than the dataset '{data.name}' "
                f"({n} samples). Lower train.batch_size or use a larger dataset."
            )
        self.data = data
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.position = 0
        self.batches_per_epoch = n // batch_size
        self._perm = torch.randperm(n, generator=self.generator)

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._perm = torch.randperm(len(self.data), generator=self.generator)
        idx = self._perm[self.position * self.batch_size : (self.position + 1) * self.batch_size]
        self.position += 1
        if idx.device != self.data.x.device:  # data moved to the GPU; the permutation stays
            idx = idx.to(self.data.x.device)  # on the CPU generator (same batches everywhere)
        x = self.data.x.index_select(0, idx)
        y = self.data.y.index_select(0, idx) if self.data.y is not None else None
        return x, y

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "perm": self._perm.clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._perm = state["perm"].clone()
        self.generator.set_state(state["generator"])


class DataLoaderBatcher(IndexBatcher):
    """The same batches as ``IndexBatcher`` (same seeded permutations, same state), drawn
    through ``torch.utils.data.DataLoader`` the way hand-written loops do: one ``__getitem__``
    per sample and a collate per batch. Kept to measure and test the fast path against
    (``train.batching: dataloader``)."""

    def __init__(self, data: TensorData, batch_size: int, seed: int) -> None:
        super().__init__(data, batch_size, seed)
        self._iter: Any = None

    def _loader(self) -> Any:
        from torch.utils.data import DataLoader, TensorDataset

        tensors = (self.data.x,) if self.data.y is None else (self.data.x, self.data.y)
        order = self._perm[self.position * self.batch_size:
                           self.batches_per_epoch * self.batch_size].tolist()
        # A private generator: creating the iterator draws a seed, which must not move the
        # global RNG (dropout masks) or the run would differ from the index path.
        return iter(DataLoader(TensorDataset(*tensors), batch_size=self.batch_size,
                               sampler=order, drop_last=True, generator=torch.Generator()))

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._perm = torch.randperm(len(self.data), generator=self.generator)
            self._iter = None
        if self._iter is None:
            self._iter = self._loader()
        batch = next(self._iter)
        self.position += 1
        return batch[0], (batch[1] if len(batch) > 1 else None)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._iter = None
