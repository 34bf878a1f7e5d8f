"""Data Impression synthesis: optimise inputs until the frozen teacher outputs the sampled soft targets.

Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019 (PMLR v97), Sec. 3.2:

.. math::
    \\bar{x} = \\arg\\min_x \\; L_{CE}\\big(y, \\; \\mathrm{softmax}(T(x; \\theta) / \\tau)\\big)

with the teacher's parameters ``theta`` fixed and ``tau = 20``. Images live in pixel space ``[0, 1]`` and reach the
teacher through its input normalisation ``(x - mean) / std``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SynthesisConfig", "SynthesisResult", "frozen_teacher", "module_device", "synthesize_batch"]


@dataclass(frozen=True)
class SynthesisConfig:
    """Settings of the optimisation that makes Data Impressions.

    Attributes:
        num_iters: Adam steps per batch (the paper's release: 1500).
        lr: Adam learning rate in pixel units (the release: 0.001 with 1500 steps; 0.05 converges in ~200).
        batch_size: Data Impressions optimised together; also the size of one store part.
        temperature: softmax temperature ``tau`` of the teacher (paper: 20).
        minmax_rescale: rescale the whole batch to [0, 1] by its min and max after every step, as the authors'
            release does (not in the paper); off by default, which clamps to [0, 1] instead.
        warm_start: start each batch of a (class, beta) row from the previous batch's images, as the release does.
    """

    num_iters: int = 200
    lr: float = 0.05
    batch_size: int = 200
    temperature: float = 20.0
    minmax_rescale: bool = False
    warm_start: bool = False

    def __post_init__(self) -> None:
        for name in ("num_iters", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"synthesis {name} must be a positive integer, got {value!r}")
        for name in ("lr", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"synthesis {name} must be a positive finite number, got {value!r}")


@dataclass
class SynthesisResult:
    """One optimised batch.

    Attributes:
        images: (B, C, H, W) float32 pixel-space images in [0, 1].
        losses: (B,) final cross-entropy between each target and the teacher's tempered softmax.
        agreement: (B,) bool, teacher argmax equals target argmax.
    """

    images: Tensor
    losses: Tensor
    agreement: Tensor


@contextlib.contextmanager
def frozen_teacher(teacher: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients for the duration; the teacher's previous state is restored after."""
    was_training = teacher.training
    flags = [(p, p.requires_grad) for p in teacher.parameters()]
    teacher.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield teacher
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        teacher.train(was_training)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    return next(iter(module.parameters()), torch.empty(0)).device


def _tempered_ce(logits: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """Per-sample soft-target cross-entropy ``-sum_k y_k log softmax(z / tau)_k``."""
    return -(targets * F.log_softmax(logits / temperature, dim=1)).sum(dim=1)


def synthesize_batch(
    teacher: nn.Module,
    targets: Tensor,
    input_size: tuple[int, int, int],
    mean: Tensor,
    std: Tensor,
    config: SynthesisConfig,
    generator: torch.Generator,
    init: Tensor | None = None,
) -> SynthesisResult:
    """Optimise one batch of Data Impressions for ``targets``.

    Args:
        teacher: frozen classifier (wrap the call in :func:`frozen_teacher`).
        targets: (B, K) soft labels on the simplex.
        input_size: (C, H, W) of the teacher's input.
        mean: (C,) input normalisation mean.
        std: (C,) input normalisation std.
        config: optimisation settings.
        generator: CPU generator for the uniform [0, 1] initialisation (ignored when ``init`` is given).
        init: optional (B, C, H, W) pixel-space starting images (warm start).

    Returns:
        The optimised images with their final per-sample losses.

    Raises:
        FloatingPointError: the loss became NaN or Inf.
    """
    device = module_device(teacher)
    batch = targets.shape[0]
    targets = targets.to(device)
    if init is None:
        init = torch.rand((batch, *input_size), generator=generator)
    x = init.to(device=device, dtype=torch.float32).clone().requires_grad_(True)
    mean_ = mean.to(device).view(1, -1, 1, 1)
    std_ = std.to(device).view(1, -1, 1, 1)
    optimizer = torch.optim.Adam([x], lr=config.lr)
    for _ in range(config.num_iters):
        optimizer.zero_grad(set_to_none=True)
        loss = _tempered_ce(teacher((x - mean_) / std_), targets, config.temperature).sum()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"synthesis loss became {loss.item()} (NaN or Inf)")
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            if config.minmax_rescale:
                lo, hi = x.min(), x.max()
                x.sub_(lo).div_((hi - lo).clamp_min(1e-12))
            else:
                x.clamp_(0.0, 1.0)
    with torch.no_grad():
        logits = teacher((x - mean_) / std_)
        losses = _tempered_ce(logits, targets, config.temperature)
        if not torch.isfinite(losses).all():
            raise FloatingPointError("teacher output is NaN or Inf on the synthesised images")
        agreement = logits.argmax(dim=1) == targets.argmax(dim=1)
    return SynthesisResult(images=x.detach().cpu(), losses=losses.cpu(), agreement=agreement.cpu())
