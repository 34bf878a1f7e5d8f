"""The paper's models in torchdistill's model registry: lenet5, lenet5_half, alexnet_cifar, alexnet_cifar_half; any
timm architecture (timm_model); any model behind an input pad or resize (input_fit)."""

from __future__ import annotations

import torchvision  # noqa: F401  (torchdistill's registries need torchvision imported first)
from torchdistill.models.registry import MODEL_DICT, register_model

from zskd_plugin.models import MODEL_ENTRYPOINTS, InputFit
from zskd_plugin.teacher import TeacherSpec, load_teacher

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


def input_fit(
    model: dict, input_size: list[int], fit: str = "pad", mean: list[float] = (0.0,), std: list[float] = (1.0,)
) -> InputFit:
    """A model block behind a pad or resize of its input, for a student (or teacher) whose input size differs
    from the batch's: ``key: 'input_fit'``, ``kwargs: {model: {key: 'lenet5_half', kwargs: {num_classes: 10}},
    input_size: [32, 32], fit: 'pad', mean: [0.1307], std: [0.3081]}``. ``model`` takes what a Data Impression
    teacher takes (a name, a timm name, a dotted path; ``src_ckpt`` for trained weights)."""
    if not isinstance(model, dict):
        raise ValueError(f"input_fit model must be a model block such as {{key: 'lenet5_half'}}, got {model!r}")
    inner = load_teacher(TeacherSpec.from_dict(model), resolve_registry_model)
    return InputFit(inner.train(), input_size, fit, mean, std)


register_unique(MODEL_DICT, register_model, "input_fit", input_fit)
