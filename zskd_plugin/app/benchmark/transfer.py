"""The benchmark's control transfer set: real training images in place of the Data Impressions, without labels.

A row that distils on it is the same pipeline as a ZSKD row (augmentation, loss, optimiser, held-out DIs) with only
the training images changed, so the gap between the two is what the DIs lack against as many real images, apart
from how many there are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ...dataset import DataImpressionDataset

__all__ = ["REAL_TRANSFER", "real_transfer_set"]

REAL_TRANSFER = "zskd_plugin.app.benchmark.transfer.real_transfer_set"  # the YAML key of the builder below


def real_transfer_set(
    dataset: Dataset,
    num_images: int,
    seed: int,
    num_classes: int,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_transform: Callable[[Tensor], Tensor] | None = None,
    fixed_views: int = 0,
) -> DataImpressionDataset:
    """``num_images`` of ``dataset``'s images (a seeded random choice), in pixel space as the DIs are stored, each
    with the uniform distribution as its target: the ZSKD loss reads the teacher's outputs, never the labels.

    Args:
        dataset: real training images as (C, H, W) tensors in [0, 1] (``ToTensor`` and any padding, no ``Normalize``).
        num_images: how many to take: the DI rows' training-split size.
        seed: picks the images.
        num_classes: width of the (uniform) targets.
        transform: per-image transform, as the DI dataset's (e.g. ``Normalize``).
        batch_transform: batch transform, as the DI dataset's (augmentation, then ``Normalize``).
        fixed_views: views of each image drawn once with ``batch_transform``, as the DI dataset's.
    """
    if not 0 < num_images <= len(dataset):
        raise ValueError(f"num_images must be in [1, {len(dataset)}] (the data set's size), got {num_images}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:num_images]
    images = torch.stack([dataset[i][0] for i in order.tolist()])
    if images.min() < 0 or images.max() > 1:
        raise ValueError("real_transfer_set takes images in [0, 1]: leave Normalize out of the data set's transform")
    targets = torch.full((num_images, num_classes), 1.0 / num_classes)
    return DataImpressionDataset(
        images, targets, transform, label_mode="soft", batch_transform=batch_transform, fixed_views=fixed_views
    )
