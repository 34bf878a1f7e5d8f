"""The teacher's outputs on the transfer set, computed apart from the student's training step.

Distillation runs the teacher's forward pass on every batch of every epoch. When the transfer set has no random
transform (each read of an item returns the same tensor, as in the MNIST timm pipeline: Data Impressions with only
``Normalize``), the teacher's output on an item is the same every epoch, so it can be computed once before training
and read back with the item (:class:`TeacherOutputDataset`). When the items do change (fresh augmentation on every
pass), :class:`PerBatchTeacherOutputDataset` runs the teacher as each batch is read instead: in a ``DataLoader``
worker process, that is beside the student's step rather than before it. The data flow stays one way: transfer set
-> teacher outputs -> distillation loss.

Both yield ``(sample, target, {"teacher_output": logits})``; the registry layer wires them into torchdistill as a
dataset wrapper and a teacher forward process that returns those logits.
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

__all__ = [
    "SUPP_KEY",
    "PerBatchTeacherOutputDataset",
    "TeacherOutputDataset",
    "check_fixed_items",
    "compute_teacher_outputs",
]

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
        return _with_output(self.dataset[index], self.outputs[index])


def _with_output(item: Sequence[object], output: Tensor) -> tuple[object, object, dict[str, object]]:
    supp = dict(item[2]) if len(item) == 3 else {}
    supp[SUPP_KEY] = output
    return item[0], item[1], supp


class PerBatchTeacherOutputDataset(Dataset):
    """Each item of ``dataset`` with the teacher's output on it, computed when the item's batch is read.

    For transfer sets that change on every read (random augmentation). ``DataLoader`` reads a batch through
    :meth:`__getitems__`: the items (batched too where ``dataset`` has ``__getitems__``, as
    :class:`~zskd_plugin.dataset.DataImpressionDataset` does), then one teacher forward pass on their stacked
    samples, in eval mode and without gradients. With ``num_workers >= 1`` all of that runs in the worker
    processes, beside the student's step in the main one; with ``num_workers: 0`` it is the usual teacher forward
    pass, moved from the training step to the loader.

    Args:
        dataset: the transfer set, yielding ``(sample, target)`` or ``(sample, target, supp_dict)``.
        model: the teacher; switched to eval mode here.
        device: where the teacher runs. Keep ``cpu`` with worker processes: a forked worker cannot use CUDA.
    """

    def __init__(self, dataset: Dataset, model: nn.Module, device: str | torch.device = "cpu") -> None:
        self.dataset = dataset
        self.model = model.eval()
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.dataset)

    def _outputs(self, samples: Tensor) -> Tensor:
        if self.device.type == "cuda" and torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                "per-batch teacher outputs on CUDA cannot run in a DataLoader worker process; set the train loader's "
                "num_workers: 0, or give the dataset wrapper device: 'cpu'"
            )
        with torch.no_grad():  # not inference_mode: the loss saves these outputs for its backward pass
            logits = check_logits(self.model(samples.to(self.device)), "teacher")
        return logits.float().cpu()

    def __getitems__(self, indices: list[int]) -> list[tuple[object, object, dict[str, object]]]:
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(indices) if getitems is not None else [self.dataset[i] for i in indices]
        samples = torch.stack([_sample(item, f"item {i}") for i, item in zip(indices, items)])
        return [_with_output(item, output) for item, output in zip(items, self._outputs(samples))]

    def __getitem__(self, index: int) -> tuple[object, object, dict[str, object]]:
        return self.__getitems__([index])[0]
