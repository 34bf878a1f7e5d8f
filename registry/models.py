"""The paper's models in torchdistill's model registry: lenet5, lenet5_half, alexnet_cifar, alexnet_cifar_half."""

from __future__ import annotations

import torchvision  # noqa: F401  (torchdistill's registries need torchvision imported first)
from torchdistill.models.registry import MODEL_DICT, register_model

from zskd_plugin.models import MODEL_ENTRYPOINTS

from .unique_keys import register_unique

for _key, _factory in MODEL_ENTRYPOINTS.items():
    register_unique(MODEL_DICT, register_model, _key, _factory)


def resolve_registry_model(key: str, kwargs: dict, repo_or_dir: str | None = None):
    """Model resolver for teacher lookup: torchdistill's registry (and torch.hub via ``repo_or_dir``)."""
    if key in MODEL_DICT or repo_or_dir is not None:
        from torchdistill.models.registry import get_model

        return get_model(key, repo_or_dir, **kwargs)
    return None


def timm_model(model_name: str, **kwargs):
    """Any timm architecture in a torchdistill ``models:`` block: ``key: 'timm_model'``,
    ``kwargs: {model_name: 'resnet10t', num_classes: 10, in_chans: 1}`` (``pretrained`` defaults to False)."""
    import timm

    return timm.create_model(model_name, **kwargs)


register_unique(MODEL_DICT, register_model, "timm_model", timm_model)
