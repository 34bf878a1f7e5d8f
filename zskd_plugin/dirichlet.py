"""Dirichlet soft targets over the teacher's output space.

Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019 (PMLR v97), Sec. 3.1-3.2: for class
``k`` the softmax vector ``y`` is drawn from ``Dir(beta * c_k)`` where ``c_k`` is row ``k`` of the class similarity
matrix; two scales, ``beta = 1.0`` (dense, typical targets) and ``beta = 0.1`` (sparse, confident targets), each for
half of the Data Impressions.

Unlike the authors' release, where the 0.1 scale is undone by a second min-max normalisation, both betas here
change the concentration and so the spread of the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .validation import check_number, check_numbers

__all__ = ["DirichletConfig", "sample_soft_targets", "split_counts"]


@dataclass(frozen=True)
class DirichletConfig:
    """How soft targets are drawn.

    Attributes:
        betas: concentration scales ``beta``.
        beta_shares: fraction of the Data Impressions drawn at each beta; sums to 1.
        epsilon: added to the normalised similarity so every concentration is positive.
    """

    betas: tuple[float, ...] = (1.0, 0.1)
    beta_shares: tuple[float, ...] = (0.5, 0.5)
    epsilon: float = 1e-4

    def __post_init__(self) -> None:
        betas = check_numbers(self.betas, "dirichlet betas", low=0, low_open=True)
        shares = check_numbers(self.beta_shares, "dirichlet beta_shares", low=0)
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "beta_shares", shares)
        if len(shares) != len(betas):
            raise ValueError(
                f"dirichlet beta_shares must have the same length as betas (one share per beta), got {len(betas)} "
                f"betas {list(betas)} and {len(shares)} shares {list(shares)}"
            )
        if abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError(
                f"dirichlet beta_shares must sum to 1, got {list(shares)} (sum {sum(shares):.6g}); "
                "e.g. beta_shares: [0.5, 0.5]"
            )
        check_number(self.epsilon, "dirichlet epsilon", low=0, low_open=True)


def split_counts(total: int, shares: tuple[float, ...]) -> list[int]:
    """Split ``total`` into integer counts proportional to ``shares`` (largest remainder), summing to ``total``."""
    raw = [total * s for s in shares]
    counts = [int(np.floor(r)) for r in raw]
    order = sorted(range(len(shares)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def sample_soft_targets(concentration: Tensor, beta: float, num_samples: int, rng: np.random.Generator) -> Tensor:
    """Draw ``num_samples`` soft labels ``y ~ Dir(beta * concentration)``.

    Args:
        concentration: (K,) positive prior, a row of the class similarity matrix.
        beta: concentration scale.
        num_samples: how many targets.
        rng: numpy generator; the same generator state gives the same targets.

    Returns:
        (num_samples, K) float32 tensor whose rows lie on the probability simplex.
    """
    alpha = beta * concentration.detach().to(torch.float64).cpu().numpy()
    if np.any(alpha <= 0) or not np.all(np.isfinite(alpha)):
        raise ValueError(f"Dirichlet concentration must be positive and finite, got {alpha}")
    y = rng.dirichlet(alpha, size=num_samples)
    # Very small concentrations can give rows that are exactly one-hot; renormalise against rounding.
    y = y / y.sum(axis=1, keepdims=True)
    return torch.from_numpy(y).to(torch.float32)
