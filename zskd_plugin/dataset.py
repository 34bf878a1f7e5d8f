"""The Data Impression dataset: pixel-space images with their soft targets, split into train and held-out parts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .validation import check_choice, check_int, check_number

__all__ = ["DataImpressionDataset", "check_fixed_views", "num_held_out", "split_indices"]

LABEL_MODES = ("soft", "argmax")
_REFRESH_CHUNK = 4096  # images per batch_transform call: bounds the transform's temporary memory


def num_held_out(num_items: int, val_fraction: float) -> int:
    """How many of ``num_items`` the held-out split gets; both splits must be non-empty when it gets any."""
    check_number(val_fraction, "val_fraction", low=0, high=1, high_open=True)
    num_val = int(round(num_items * val_fraction))
    if val_fraction > 0 and not 1 <= num_val < num_items:
        raise ValueError(
            f"val_fraction={val_fraction} of {num_items} Data Impressions leaves {num_val} for validation and "
            f"{num_items - num_val} for training; choose a val_fraction that keeps both splits non-empty"
        )
    return num_val


def check_fixed_views(fixed_views: object, has_batch_transform: bool) -> int:
    """``fixed_views`` as an int >= 0; views need a ``batch_transform`` to draw them."""
    if check_int(fixed_views, "fixed_views", least=0) and not has_batch_transform:
        raise ValueError(
            "fixed_views draws batch_transform's random views once; it needs a batch_transform (e.g. "
            "ImpressionAugment then Normalize), or set fixed_views: 0"
        )
    return fixed_views


def split_indices(num_items: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded random split of ``range(num_items)`` into (train, val) index tensors."""
    num_val = num_held_out(num_items, val_fraction)
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))
    return order[num_val:].sort().values, order[:num_val].sort().values


class DataImpressionDataset(Dataset):
    """Data Impressions as a map-style dataset.

    Two ways to transform images, usable together (``batch_transform`` first):

    * ``transform`` runs on one image each time an item is read, as in any torchvision dataset;
    * ``batch_transform`` runs on many images at once, with fresh random draws on every read. A ``DataLoader``
      on this dataset reads a whole batch at a time (:meth:`__getitems__`) and the transform runs on that batch.
      Single reads (``dataset[i]``, as through torchdistill's default dataset wrapper) share a transformed copy of
      every image: each copy is served once, and reading an item whose copy was already served first
      re-transforms, in one batched call, every image whose copy was served (one call per epoch when each item is
      read once per epoch). It must accept a (B, C, H, W) batch and draw independently per image
      (:class:`~zskd_plugin.augment.ImpressionAugment` does; torchvision's ``Normalize`` accepts batches too).

    Args:
        images: (N, C, H, W) float32 pixel-space images in [0, 1].
        targets: (N, K) soft targets the images were optimised for.
        transform: applied to each image tensor (e.g. ``Normalize`` with the teacher's statistics; no ``ToTensor``:
            items are already tensors).
        label_mode: ``soft`` yields the (K,) soft target (for the ZSKD loss); ``argmax`` yields its class index as
            an int (for torchdistill's accuracy on a held-out split).
        store_path: the store the items were read from, for reference.
        batch_transform: applied to (B, C, H, W) batches of images, as described above (e.g. augmentation, then
            ``Normalize``).
        fixed_views: 0 (default) draws ``batch_transform`` afresh on every pass, as above. ``k > 0`` draws it ``k``
            times per image once, here, and serves those ``N * k`` views (view-major: item ``v * N + i`` is view
            ``v`` of image ``i``) as fixed items: a finite pool of augmentations, on which a teacher's outputs can be
            computed once (:mod:`zskd_plugin.teacher_outputs`) instead of on every batch.
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        transform: Callable[[Tensor], Tensor] | None = None,
        label_mode: str = "soft",
        store_path: Path | None = None,
        batch_transform: Callable[[Tensor], Tensor] | None = None,
        fixed_views: int = 0,
    ) -> None:
        if images.shape[0] != targets.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {targets.shape[0]} targets")
        check_choice(label_mode, "label_mode", LABEL_MODES)
        if check_fixed_views(fixed_views, batch_transform is not None):
            images = torch.cat([self._transform_all(batch_transform, images) for _ in range(fixed_views)])
            targets = targets.repeat(fixed_views, 1)
            batch_transform = None
        self.images = images  # with fixed_views: the views, transformed
        self.targets = targets
        self.fixed_views = fixed_views
        self.transform = transform
        self.batch_transform = batch_transform
        self.label_mode = label_mode
        self.store_path = store_path
        self._transformed: Tensor | None = None  # batch_transform's copy of every image
        self._served = torch.ones(images.shape[0], dtype=torch.bool)  # copies already handed out (or never made)

    def __len__(self) -> int:
        return self.images.shape[0]

    @staticmethod
    def _transform_all(batch_transform: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
        return torch.cat([batch_transform(chunk) for chunk in images.split(_REFRESH_CHUNK)])

    def _refresh(self) -> None:
        """Re-transform, in batches, every image whose transformed copy was already served."""
        index = self._served.nonzero().squeeze(1)
        fresh = self._transform_all(self.batch_transform, self.images[index])
        if self._transformed is None:
            self._transformed = torch.empty((len(self), *fresh.shape[1:]), dtype=fresh.dtype)
        self._transformed[index] = fresh
        self._served[index] = False

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, Tensor | int]]:
        """The items at ``indices``, read as one batch (PyTorch's ``DataLoader`` calls this for each batch).

        With a ``batch_transform`` drawn afresh (``fixed_views: 0``), it runs on this batch's images alone, with new
        draws: each read of an item still gets its own random view, the whole-set copy is not kept, and the work is
        done where the batch is read, so a ``DataLoader`` worker process (``num_workers``) can do it while the
        model trains. Otherwise the same as reading each item.
        """
        if self.batch_transform is None:
            return [self[index] for index in indices]
        index = torch.as_tensor(indices, dtype=torch.long)
        images = self.batch_transform(self.images[index])
        if self.transform is not None:
            images = torch.stack([self.transform(image) for image in images])
        targets = self.targets[index]
        labels = targets.argmax(1).tolist() if self.label_mode == "argmax" else targets
        return list(zip(images, labels))

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor | int]:
        if self.batch_transform is None:
            image = self.images[index]
        else:
            if self._served[index]:
                self._refresh()
            image = self._transformed[index].clone()  # a later refresh rewrites this row in place
            self._served[index] = True
        if self.transform is not None:
            image = self.transform(image)
        target = self.targets[index]
        return image, (int(target.argmax()) if self.label_mode == "argmax" else target)
