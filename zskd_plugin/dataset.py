"""The Data Impression dataset: pixel-space images with their soft targets, split into train and held-out parts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["DataImpressionDataset", "split_indices"]

LABEL_MODES = ("soft", "argmax")


def split_indices(num_items: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded random split of ``range(num_items)`` into (train, val) index tensors."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))
    num_val = int(round(num_items * val_fraction))
    if val_fraction > 0 and not 1 <= num_val < num_items:
        raise ValueError(
            f"val_fraction={val_fraction} of {num_items} Data Impressions leaves {num_val} for validation and "
            f"{num_items - num_val} for training; choose a val_fraction that keeps both splits non-empty"
        )
    return order[num_val:].sort().values, order[:num_val].sort().values


class DataImpressionDataset(Dataset):
    """Data Impressions as a map-style dataset.

    Args:
        images: (N, C, H, W) float32 pixel-space images in [0, 1].
        targets: (N, K) soft targets the images were optimised for.
        transform: applied to each image tensor (e.g. augmentation, then ``Normalize`` with the teacher's statistics;
            no ``ToTensor``: items are already tensors).
        label_mode: ``soft`` yields the (K,) soft target (for the ZSKD loss); ``argmax`` yields its class index as
            an int (for torchdistill's accuracy on a held-out split).
        store_path: the store the items were read from, for reference.
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        transform: Callable[[Tensor], Tensor] | None = None,
        label_mode: str = "soft",
        store_path: Path | None = None,
    ) -> None:
        if images.shape[0] != targets.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {targets.shape[0]} targets")
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
        self.images = images
        self.targets = targets
        self.transform = transform
        self.label_mode = label_mode
        self.store_path = store_path

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor | int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        target = self.targets[index]
        return image, (int(target.argmax()) if self.label_mode == "argmax" else target)
