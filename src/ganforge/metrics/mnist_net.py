"""The small MNIST CNN behind the ``mnist`` feature extractor.

Input: (N, 1, 28, 28) in [-1, 1] (ganforge's image convention). Five 3x3 convolutions with
batch norm, two max-pools, global average pooling to a 128-d feature vector, dropout, and a
linear layer to 10 logits. About 140k parameters (~560 KB as float32 safetensors). The weights
are trained by ``scripts/train_mnist_classifier.py`` on the bundled MNIST train split.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURE_DIM = 128
NUM_CLASSES = 10


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class MnistNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_block(1, 32), *_block(32, 32), nn.MaxPool2d(2),
            *_block(32, 64), *_block(64, 64), nn.MaxPool2d(2),
            *_block(64, FEATURE_DIM), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [-1, 1] -> (N, 128) pooled features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))
