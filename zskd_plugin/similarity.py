"""Class similarity from the teacher's final linear layer.

Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019 (PMLR v97), Sec. 3.1: the weights
``w_k`` of the final layer act as class templates; their cosine similarities, min-max normalised per row, are the
Dirichlet concentration priors of the output space.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["class_similarity", "find_classifier"]


def _linear_paths(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def find_classifier(model: nn.Module, num_classes: int | None = None, module_path: str | None = None) -> nn.Linear:
    """Find the teacher's final ``nn.Linear`` layer.

    Order: the module named by ``module_path``; else timm's ``get_classifier()`` when it returns an ``nn.Linear``;
    else the last ``nn.Linear`` (in registration order) whose ``out_features`` equals ``num_classes`` (any size
    when ``num_classes`` is None).

    Raises:
        ValueError: the path does not exist or is not a linear layer, or no candidate layer exists; the message
            lists the model's linear layers and how to name one with ``classifier_path``.
    """
    linears = _linear_paths(model)
    hint = (
        f"linear layers in this model: {linears or 'none'}. Name the final layer with "
        "`classifier_path: '<module path>'`"
        " in the teacher config (a dotted path as in model.named_modules())"
    )
    if module_path:
        try:
            module = model.get_submodule(module_path)
        except AttributeError:
            raise ValueError(
                f"classifier_path {module_path!r} does not exist in {type(model).__name__}; {hint}"
            ) from None
        if not isinstance(module, nn.Linear):
            raise ValueError(
                f"classifier_path {module_path!r} is a {type(module).__name__}, not nn.Linear; ZSKD builds its class "
                f"similarity from a linear layer's weight; {hint}"
            )
        layer = module
    else:
        layer = None
        get_classifier = getattr(model, "get_classifier", None)
        if callable(get_classifier):
            candidate = get_classifier()
            if isinstance(candidate, nn.Linear):
                layer = candidate
        if layer is None:
            for name in reversed(linears):
                module = model.get_submodule(name)
                if num_classes is None or module.out_features == num_classes:
                    layer = module
                    break
        if layer is None:
            wanted = f" with out_features={num_classes}" if num_classes is not None else ""
            raise ValueError(f"{type(model).__name__} has no final nn.Linear layer{wanted}; {hint}")
    if num_classes is not None and layer.out_features != num_classes:
        raise ValueError(
            f"the teacher's final layer has {layer.out_features} outputs but num_classes={num_classes}; set "
            f"num_classes to {layer.out_features} or name another layer with classifier_path; {hint}"
        )
    return layer


def class_similarity(weight: Tensor, epsilon: float = 1e-4) -> Tensor:
    """Class similarity matrix ``C`` (K x K) from final-layer weights ``W`` (K x D), bias ignored.

    .. math::
        C_{ij} = \\frac{w_i^\\top w_j}{\\lVert w_i\\rVert \\lVert w_j\\rVert}, \\quad
        C_{i\\cdot} \\leftarrow \\frac{C_{i\\cdot} - \\min_j C_{ij}}{\\max_j C_{ij} - \\min_j C_{ij}} + \\epsilon

    Each row lies in ``[epsilon, 1 + epsilon]`` with its own class at the maximum; ``epsilon`` keeps every
    Dirichlet concentration strictly positive (the authors' release adds 1e-4).

    Example:
        >>> C = class_similarity(torch.eye(3))
        >>> bool(torch.allclose(C.diagonal(), torch.full((3,), 1 + 1e-4)))
        True
    """
    if weight.dim() != 2 or weight.shape[0] < 2:
        raise ValueError(f"expected a (num_classes >= 2, features) weight matrix, got shape {tuple(weight.shape)}")
    w = weight.detach().to(torch.float64)
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = w @ w.T
    lo = cos.min(dim=1, keepdim=True).values
    hi = cos.max(dim=1, keepdim=True).values
    return ((cos - lo) / (hi - lo).clamp_min(1e-12) + epsilon).to(torch.float32)
