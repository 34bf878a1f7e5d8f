"""Stored teacher outputs in torchdistill: a dataset wrapper that computes them once, and a teacher forward process
that returns them instead of running the teacher (:mod:`zskd_plugin.teacher_outputs`).

For a transfer set without random transforms; the two go together in the ``train:`` block::

    train:
      train_data_loader:
        dataset_id: 'zskd/train'
        dataset_wrapper: {key: 'zskd_teacher_outputs', kwargs: {teacher: *teacher_model}}
        ...
      teacher:
        forward_proc: 'zskd_forward_stored_teacher_output'

``teacher`` takes what a Data Impression teacher takes (the shared teacher anchor); optional ``batch_size`` (256)
and ``device`` (``auto``: CUDA when available) say how the outputs are computed.

For a transfer set with random transforms (fresh augmentation on every pass), ``per_batch: true`` computes the
outputs as each batch is read instead of once; with the loader's ``num_workers: 1`` (and ``persistent_workers:
true``) a worker process then does the augmentation and the teacher's forward pass beside the student's step::

        dataset_wrapper: {key: 'zskd_teacher_outputs', kwargs: {teacher: *teacher_model, per_batch: true}}
        kwargs: {batch_size: 256, num_workers: 1, persistent_workers: true, prefetch_factor: 4}

``device`` then defaults to ``cpu`` (a forked worker cannot use CUDA).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torchvision  # noqa: F401  (torchdistill's registries need torchvision imported first)
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchdistill.core.interfaces.registry import FORWARD_PROC_FUNC_DICT, register_forward_proc_func
from torchdistill.datasets.registry import DATASET_WRAPPER_DICT, register_dataset_wrapper

from zskd_plugin.builder import resolve_device
from zskd_plugin.teacher import TeacherSpec, load_teacher
from zskd_plugin.teacher_outputs import (
    SUPP_KEY,
    PerBatchTeacherOutputDataset,
    TeacherOutputDataset,
    compute_teacher_outputs,
)

from .models import resolve_registry_model
from .unique_keys import register_unique

WRAPPER_KEY = "zskd_teacher_outputs"
FORWARD_PROC_KEY = "zskd_forward_stored_teacher_output"


def zskd_teacher_outputs(
    dataset: Dataset,
    teacher: Mapping[str, Any],
    batch_size: int = 256,
    device: str | None = None,
    per_batch: bool = False,
) -> TeacherOutputDataset | PerBatchTeacherOutputDataset:
    """``dataset`` with the outputs of ``teacher`` (a Data Impression teacher block) on each item: computed now, or
    with ``per_batch`` as each batch is read. ``device``: ``auto`` (CUDA when available) by default, ``cpu`` with
    ``per_batch``."""
    if not isinstance(teacher, Mapping):
        raise ValueError(
            f"dataset_wrapper {WRAPPER_KEY}: `teacher` must be the teacher block (key, kwargs, src_ckpt), as in "
            f"models.teacher_model; got {teacher!r}"
        )
    if not isinstance(per_batch, bool):
        raise ValueError(f"dataset_wrapper {WRAPPER_KEY}: per_batch must be true or false, got {per_batch!r}")
    torch_device = resolve_device(device or ("cpu" if per_batch else "auto"))
    with torch.random.fork_rng(devices=[]):  # building the model draws its initial weights: keep the run's RNG stream
        model = load_teacher(TeacherSpec.from_dict(teacher), resolve_registry_model).to(torch_device)
    if per_batch:
        return PerBatchTeacherOutputDataset(dataset, model, torch_device)
    return TeacherOutputDataset(dataset, compute_teacher_outputs(model, dataset, batch_size, torch_device))


def zskd_forward_stored_teacher_output(
    model: nn.Module, sample_batch: Tensor, targets: Any = None, supp_dict: Mapping[str, Any] | None = None, **kwargs
) -> Tensor:
    """The teacher's stored outputs for this batch (``model`` is not run)."""
    if not supp_dict or SUPP_KEY not in supp_dict:
        raise ValueError(
            f"teacher forward_proc {FORWARD_PROC_KEY!r} found no stored teacher outputs in the batch; give the train "
            f"loader `dataset_wrapper: {{key: {WRAPPER_KEY}, kwargs: {{teacher: <the teacher block>}}}}`, or use "
            "forward_proc 'forward_batch_only' to run the teacher on every batch"
        )
    return supp_dict[SUPP_KEY].to(sample_batch.device, non_blocking=True)


register_unique(DATASET_WRAPPER_DICT, register_dataset_wrapper, WRAPPER_KEY, zskd_teacher_outputs)
register_unique(
    FORWARD_PROC_FUNC_DICT, register_forward_proc_func, FORWARD_PROC_KEY, zskd_forward_stored_teacher_output
)
