"""The teacher's outputs on a transfer set whose items never change, computed once instead of every epoch.

Distillation runs the teacher's forward pass on every batch of every epoch. When the transfer set has no random
transform (each read of an item returns the same tensor, as in the MNIST timm pipeline: Data Impressions with only
``Normalize``), the teacher's output on an item is the same every epoch, so it can be computed once before training
and read back with the item. The data flow stays one way: transfer set -> teacher outputs -> distillation loss.

:class:`TeacherOutputDataset` yields ``(sample, target, {"teacher_output": logits})``; the registry layer wires it
into torchdistill as a dataset wrapper and a teacher forward process that returns those stored logits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .progress import ProgressBar
from .teacher import check_logits
from .validation import check_int

__all__ = ["SUPP_KEY", "TeacherOutputDataset", "check_fixed_items", "compute_teacher_outputs"]

_logger = logging.getLogger(__name__)

SUPP_KEY = "teacher_output"  # the supplementary-dict key a stored output travels under
_PROBES = 8  # items read twice to tell a fixed transfer set from one with a random transform


def _sample(item: Sequence[object], where: str) -> Tensor:
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3) or not isinstance(item[0], Tensor):
        raise TypeError(f"{where} must be (sample tensor, target) or (sample, target, supp_dict), got {type(item)}")
    return item[0]


def check_fixed_items(dataset: Dataset, probes: int = _PROBES) -> None:
    """Read up to ``probes`` items, spread over ``dataset``, twice each; raise if any read differs.

    A random transform (augmentation, or :class:`~zskd_plugin.dataset.DataImpressionDataset`'s ``batch_transform``)
    gives a new tensor on each read, and outputs stored once would go stale.
    """
    n = len(dataset)
    for index in torch.linspace(0, n - 1, min(probes, n)).round().long().unique().tolist():
        first = _sample(dataset[index], f"item {index}").clone()
        again = _sample(dataset[index], f"item {index}")
        if first.shape != again.shape or not torch.equal(first, again):
            raise ValueError(
                f"item {index} of the transfer set changed between two reads (a random transform such as "
                "augmentation, or a Data Impression batch_transform); the teacher's outputs cannot be stored once "
                "for it. Either drop the stored teacher outputs (the train loader's dataset_wrapper and the "
                "teacher's forward_proc), or fix the inputs: for a Data Impression batch_transform, draw it as "
                "fixed views (fixed_views: k)"
            )


@torch.inference_mode()
def compute_teacher_outputs(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Tensor:
    """The (N, K) float32 outputs of ``model`` (in eval mode) on every item of ``dataset``, in index order, on the CPU.

    Raises:
        ValueError: the dataset's items change between reads (see :func:`check_fixed_items`), or it is empty.
    """
    check_int(batch_size, "batch_size", least=1)
    n = len(dataset)
    if n == 0:
        raise ValueError("the transfer set is empty; there is nothing to compute teacher outputs for")
    check_fixed_items(dataset)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    outputs: list[Tensor] = []
    try:
        with ProgressBar(n, "Teacher outputs", "image", enabled=progress) as bar:
            for start in range(0, n, batch_size):
                indices = range(start, min(start + batch_size, n))
                batch = torch.stack([_sample(dataset[i], f"item {i}") for i in indices])
                logits = check_logits(model(batch.to(device)), "teacher")
                outputs.append(logits.float().cpu())
                bar.update(batch.shape[0])
    finally:
        model.train(was_training)
    result = torch.cat(outputs)
    _logger.info("stored the teacher's outputs on %d transfer-set items (%d classes)", n, result.shape[1])
    return result


class TeacherOutputDataset(Dataset):
    """Each item of ``dataset`` with the teacher's stored output: ``(sample, target, {"teacher_output": (K,)})``.

    An item that already carries a supplementary dict keeps its entries; ``teacher_output`` is added to a copy.

    Args:
        dataset: the transfer set, yielding ``(sample, target)`` or ``(sample, target, supp_dict)``.
        outputs: (N, K) teacher outputs, row ``i`` for item ``i`` (:func:`compute_teacher_outputs`).
    """

    def __init__(self, dataset: Dataset, outputs: Tensor) -> None:
        if outputs.dim() != 2 or outputs.shape[0] != len(dataset):
            raise ValueError(
                f"teacher outputs of shape {tuple(outputs.shape)} do not fit a transfer set of {len(dataset)} items; "
                "expected (items, classes)"
            )
        self.dataset = dataset
        self.outputs = outputs

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[object, object, dict[str, object]]:
        item = self.dataset[index]
        sample, target = item[0], item[1]
        supp = dict(item[2]) if len(item) == 3 else {}
        supp[SUPP_KEY] = self.outputs[index]
        return sample, target, supp
