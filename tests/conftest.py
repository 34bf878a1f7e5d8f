"""Shared fixtures: tiny in-file teachers (no downloads) and real-MNIST helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
DATA_ROOT = Path(os.environ.get("ZSKD_DATA_ROOT", REPO / "data"))


class TinyTeacher(nn.Module):
    """A 1x8x8 -> 4-class CNN with a timm-like ``pretrained_cfg``; final layer at ``head.fc``."""

    def __init__(self, num_classes: int = 4, in_chans: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
        )
        self.hidden = nn.Linear(24, 16)
        self.head = nn.Sequential()
        self.head.add_module("fc", nn.Linear(16, num_classes))
        self.pretrained_cfg = {"input_size": (in_chans, 8, 8), "mean": (0.5,), "std": (0.25,)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(self.body(x))))


def make_tiny_teacher(seed: int = 0, num_classes: int = 4) -> TinyTeacher:
    torch.manual_seed(seed)
    model = TinyTeacher(num_classes=num_classes)
    with torch.no_grad():  # logits spread over tens of units, like a trained classifier's (tau = 20 needs that)
        model.hidden.weight.mul_(3.0)
        model.head.fc.weight.mul_(200.0)
    return model.eval()


@pytest.fixture
def tiny_teacher() -> TinyTeacher:
    return make_tiny_teacher()


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """Real MNIST in torchvision's layout; `bash scripts/test.sh` prepares it before the tests run."""
    from zskd_plugin.app.real_data import DATASETS, _verified

    raw = DATA_ROOT / "MNIST" / "raw"
    if not _verified(raw, DATASETS["mnist"]):
        pytest.fail(f"real MNIST is not prepared in {raw}; run `zskd prepare-data mnist --root {DATA_ROOT}` first")
    return DATA_ROOT
