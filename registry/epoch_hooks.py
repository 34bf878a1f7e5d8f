"""Training-loop hooks for torchdistill's DistillationBox.

torchdistill 1.1 calls ``student.train()`` before each epoch and never changes the teacher's mode, so a teacher
loaded in training mode keeps dropout active and lets BatchNorm use batch statistics and overwrite its running
statistics with those of the transfer set (Data Impressions are far from the teacher's training data). Select
this hook in the ``train:`` block::

    train:
      pre_epoch_process: 'zskd_pre_epoch_process_teacher_eval'
"""

from __future__ import annotations

import torchvision  # noqa: F401  (torchdistill's registries need torchvision imported first)
from torchdistill.core.interfaces.pre_epoch_proc import default_pre_epoch_process_with_teacher
from torchdistill.core.interfaces.registry import PRE_EPOCH_PROC_FUNC_DICT, register_pre_epoch_proc_func

from .unique_keys import register_unique


def zskd_pre_epoch_process_teacher_eval(self, epoch: int | None = None, **kwargs) -> None:
    """torchdistill's default pre-epoch process, then the teacher in eval mode for the whole epoch."""
    default_pre_epoch_process_with_teacher(self, epoch=epoch, **kwargs)
    self.teacher_model.eval()


register_unique(
    PRE_EPOCH_PROC_FUNC_DICT,
    register_pre_epoch_proc_func,
    "zskd_pre_epoch_process_teacher_eval",
    zskd_pre_epoch_process_teacher_eval,
)
