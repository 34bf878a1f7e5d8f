"""Max pooling as element-wise maxima of strided views where no gradient is wanted: the same numbers as
``nn.MaxPool2d``, faster on a CPU.

On a CPU, PyTorch's ``max_pool2d`` with few channels and small images runs far below what the memory allows: it
computes the indices of the maxima for a backward pass even when none follows. A chain of ``torch.maximum`` over
the window's k x k strided views gives the same output without them; :class:`MaxPool2d` takes that path when no
gradient flows through the layer (a distillation teacher's forward, evaluation, stored teacher outputs) and keeps
``nn.MaxPool2d``'s own kernel, and so its backward, when one does. Measured: ``benchmarks/kernel_speed.py``
(docs/performance.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MaxPool2d", "max_pool2d_views"]


def max_pool2d_views(
    x: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
) -> Tensor:
    """``F.max_pool2d(x, kernel_size, stride)`` without padding or dilation (floor mode), as the element-wise
    maximum of the window's strided views. Not for gradients: autograd would split a tie's gradient."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    sh, sw = (kh, kw) if stride is None else (stride, stride) if isinstance(stride, int) else stride
    h, w = x.shape[-2:]
    if h < kh or w < kw:
        raise ValueError(f"max pooling a {[h, w]} input with a {[kh, kw]} window: the input is smaller")
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            view = x[..., i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            out = view.clone() if out is None else torch.maximum(out, view, out=out)
    return out


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that runs :func:`max_pool2d_views` when no gradient flows through it and the settings
    allow (no padding, dilation 1, floor mode, no indices returned), and ``nn.MaxPool2d``'s own kernel otherwise.
    Same arguments, no parameters: checkpoints do not change."""

    def _views_apply(self, x: Tensor) -> bool:
        if x.dim() not in (3, 4) or (torch.is_grad_enabled() and x.requires_grad):
            return False
        pairs = (self.padding, self.dilation)
        flat = [v for p in pairs for v in ((p, p) if isinstance(p, int) else p)]
        return flat == [0, 0, 1, 1] and not self.ceil_mode and not self.return_indices

    def forward(self, x: Tensor) -> Tensor:
        if self._views_apply(x):
            return max_pool2d_views(x, self.kernel_size, self.stride)
        return super().forward(x)
