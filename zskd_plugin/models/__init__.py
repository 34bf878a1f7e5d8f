"""The ZSKD paper's models, built by name through :func:`create_model` (timm style)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .alexnet import AlexNetCifar, alexnet_cifar, alexnet_cifar_half
from .input_fit import InputFit
from .lenet import LeNet5, lenet5, lenet5_half

MODEL_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {
    "alexnet_cifar": alexnet_cifar,
    "alexnet_cifar_half": alexnet_cifar_half,
    "lenet5": lenet5,
    "lenet5_half": lenet5_half,
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(MODEL_ENTRYPOINTS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build one of the paper's models by name, e.g. ``create_model('lenet5_half', num_classes=10)``."""
    if name not in MODEL_ENTRYPOINTS:
        raise ValueError(f"Unknown ZSKD model {name!r}; available: {', '.join(list_models())}")
    return MODEL_ENTRYPOINTS[name](**kwargs)


__all__ = [
    "AlexNetCifar",
    "InputFit",
    "LeNet5",
    "MODEL_ENTRYPOINTS",
    "alexnet_cifar",
    "alexnet_cifar_half",
    "create_model",
    "lenet5",
    "lenet5_half",
    "list_models",
]
