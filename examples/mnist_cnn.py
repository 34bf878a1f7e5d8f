"""A user's own MNIST CNN, standing in for third-party code the plugin knows nothing about: three 3x3 convolutions
(32-64-128) with pooling, fc 1152-256-10, no BatchNorm, a fixed 1x28x28 input, and a forward that flattens with
``.view`` (so it cannot take channels-last tensors). ``yaml_configs/custom/`` reaches it by its dotted path,
``examples.mnist_cnn.ThreeConvCNN``, from the repository root."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ThreeConvCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 128, 3)
        self.fc1 = nn.Linear(128 * 3 * 3, 256)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 28 -> 26 -> 13
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 13 -> 11 -> 5
        x = F.relu(self.conv3(x))  # 5 -> 3
        return self.fc2(F.relu(self.fc1(x.view(x.size(0), -1))))
