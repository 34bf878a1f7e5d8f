"""The ZSKD distillation loss.

Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019 (PMLR v97), Sec. 3.3: the student is
trained on the Data Impressions with the soft-target cross-entropy between the teacher's and the student's
tempered softmax, with no hard-label term; as in Hinton et al. (2015) and the authors' release, the loss is scaled
by ``tau^2`` so its gradients keep their size across temperatures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .validation import check_choice, check_number, check_optional_str

__all__ = ["ZSKDLoss", "tempered_cross_entropy", "zskd_kd_loss"]


def tempered_cross_entropy(logits: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """Per-sample soft-target cross-entropy ``-sum_k y_k log softmax(z / tau)_k`` of (B, K) logits against (B, K)
    probability targets: the synthesis objective (Sec. 3.2) and the distillation loss (Sec. 3.3) of ZSKD both."""
    return -(targets * F.log_softmax(logits / temperature, dim=1)).sum(dim=1)


def zskd_kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 20.0,
    soft_targets: Tensor | None = None,
    target_weight: float = 0.0,
) -> Tensor:
    """Soft-target distillation loss of ZSKD, averaged over the batch.

    .. math::
        L = \\tau^2 \\, \\frac{1}{B} \\sum_b \\Big[ -\\sum_k p^T_{bk} \\log p^S_{bk}
            \\; + \\; \\lambda \\big(-\\sum_k y_{bk} \\log p^S_{bk}\\big) \\Big],
        \\quad p^T = \\mathrm{softmax}(z^T/\\tau), \\; p^S = \\mathrm{softmax}(z^S/\\tau)

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K), from the same (augmented) batch.
        temperature: ``tau`` (paper: 20).
        soft_targets: (B, K) stored Dirichlet targets ``y``; needed when ``target_weight`` > 0.
        target_weight: ``lambda``, weight of the term on the stored targets (0: the paper's loss).

    Example:
        >>> import torch
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> round(float(zskd_kd_loss(z, z, temperature=1.0)), 4)  # the entropy of softmax([2, 0])
        0.3653
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            f"expected student and teacher logits of the same (B, K) shape, got {tuple(student_logits.shape)} and "
            f"{tuple(teacher_logits.shape)}; check student_module_path/teacher_module_path point at the logits"
        )
    p_teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    loss = tempered_cross_entropy(student_logits, p_teacher, temperature).mean()
    if target_weight:
        if soft_targets is None or soft_targets.shape != student_logits.shape or not soft_targets.is_floating_point():
            raise ValueError(
                "target_weight > 0 needs the dataset's (B, K) soft targets as the batch targets (the Data Impression "
                f"dataset with label_mode 'soft'), got {None if soft_targets is None else tuple(soft_targets.shape)}"
            )
        loss = loss + target_weight * tempered_cross_entropy(student_logits, soft_targets, temperature).mean()
    return temperature**2 * loss


class ZSKDLoss(nn.Module):
    """ZSKD loss over torchdistill-style io dicts (``io_dict[module_path][io]``); the math is :func:`zskd_kd_loss`.

    Registered in torchdistill as the mid-level loss ``ZSKDLoss``::

        criterion:
          key: 'WeightedSumLoss'
          kwargs:
            sub_terms:
              zskd:
                criterion:
                  key: 'ZSKDLoss'
                  kwargs:
                    student_module_path: '.'
                    student_module_io: 'output'
                    teacher_module_path: '.'
                    teacher_module_io: 'output'
                    temperature: 20.0
                    target_weight: 0.0
                weight: 1.0

    Args:
        student_module_path: module whose io holds the student logits ('.' is the model itself).
        student_module_io: 'output' or 'input' of that module.
        teacher_module_path: likewise for the teacher.
        teacher_module_io: likewise for the teacher.
        temperature: ``tau``; must be positive.
        target_weight: weight of the extra term on the stored Dirichlet targets; must be non-negative.
    """

    def __init__(
        self,
        student_module_path: str = ".",
        student_module_io: str = "output",
        teacher_module_path: str = ".",
        teacher_module_io: str = "output",
        temperature: float = 20.0,
        target_weight: float = 0.0,
    ) -> None:
        super().__init__()
        for name, path in (("student_module_path", student_module_path), ("teacher_module_path", teacher_module_path)):
            check_optional_str(path, f"ZSKDLoss {name}")
        for name, io in (("student_module_io", student_module_io), ("teacher_module_io", teacher_module_io)):
            check_choice(io, f"ZSKDLoss {name}", ("output", "input"))
        check_number(temperature, "ZSKDLoss temperature", low=0, low_open=True)
        check_number(target_weight, "ZSKDLoss target_weight", low=0)
        self.student_module_path = student_module_path
        self.student_module_io = student_module_io
        self.teacher_module_path = teacher_module_path
        self.teacher_module_io = teacher_module_io
        self.temperature = float(temperature)
        self.target_weight = float(target_weight)

    @staticmethod
    def _lookup(io_dict: Mapping[str, Any], path: str, io: str, who: str) -> Tensor:
        try:
            return io_dict[path][io]
        except KeyError:
            raise KeyError(
                f"{who} io_dict has no {path!r}/{io!r}; available: {sorted(io_dict)}. Set {who}_module_path to a "
                f"module the {who} forward hooks record ('.' for the model output)"
            ) from None

    def forward(
        self, student_io_dict: Mapping[str, Any], teacher_io_dict: Mapping[str, Any], targets: Tensor | None = None
    ) -> Tensor:
        student = self._lookup(student_io_dict, self.student_module_path, self.student_module_io, "student")
        teacher = self._lookup(teacher_io_dict, self.teacher_module_path, self.teacher_module_io, "teacher")
        return zskd_kd_loss(student, teacher, self.temperature, targets, self.target_weight)

    def __str__(self) -> str:
        extra = f" + {self.target_weight} * CE(y_dirichlet, p_S)" if self.target_weight else ""
        return f"ZSKDLoss(tau^2 * [CE(p_T, p_S){extra}], tau={self.temperature})"
