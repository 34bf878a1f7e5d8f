"""Teachers from timm, torchvision, the paper's models or any importable ``nn.Module``, with their input config.

The teacher is described by plain data, deliberately shaped like torchdistill's ``models: teacher_model`` block
(``key``, ``kwargs``, ``src_ckpt``) so one YAML anchor can serve both, plus what synthesis needs to know
(``classifier_path``, ``input_size``, ``mean``, ``std``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .config import config_from_mapping
from .models import MODEL_ENTRYPOINTS

_logger = logging.getLogger(__name__)

__all__ = [
    "InputConfig",
    "TeacherSpec",
    "load_checkpoint_state",
    "load_teacher",
    "resolve_input_config",
    "state_dict_sha256",
    "teacher_fingerprint",
]

SOURCES = ("zskd", "torchvision", "registry", "timm", "import")
# Keys of a torchdistill model block that mean nothing to synthesis; accepted so one YAML anchor serves both
# (repo_or_dir is a TeacherSpec field: it reaches torchdistill's torch.hub lookup).
_TORCHDISTILL_MODEL_KEYS = ("dst_ckpt",)

#: A callable ``(key, kwargs, repo_or_dir) -> nn.Module | None`` for model registries outside this package.
ModelResolver = Callable[[str, dict, "str | None"], "nn.Module | None"]


@dataclass(frozen=True)
class TeacherSpec:
    """What teacher to build and how to feed it.

    Attributes:
        key: model name (``lenet5``, a torchvision or timm name, a torchdistill registry key) or, with
            ``source: import``, a dotted path ``package.module.ClassOrFactory``.
        kwargs: keyword arguments of the model's constructor (``num_classes``, ``in_chans``...).
        source: where ``key`` is looked up; None tries zskd, torchvision, the torchdistill registry, timm, then a
            dotted import, in that order (torchdistill's own order puts torchvision first too).
        src_ckpt: checkpoint file (a torchdistill checkpoint, a state dict, or ``.safetensors``).
        classifier_path: module path of the final linear layer when it cannot be found automatically.
        input_size: (C, H, W); default from the model's ``pretrained_cfg``.
        mean: per-channel input normalisation mean; default from ``pretrained_cfg``.
        std: per-channel input normalisation std; default from ``pretrained_cfg``.
        allow_unsafe_checkpoint: load the checkpoint with ``weights_only=False`` (runs pickled code: only for files
            you trust).
        repo_or_dir: torchdistill's torch.hub argument, passed to registry lookups.
    """

    key: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    src_ckpt: str | None = None
    classifier_path: str | None = None
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    allow_unsafe_checkpoint: bool = False
    repo_or_dir: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"teacher key must be a model name or dotted path, got {self.key!r}")
        if self.source is not None and self.source not in SOURCES:
            raise ValueError(f"teacher source {self.source!r} is unknown; use one of {list(SOURCES)} or leave it out")
        object.__setattr__(self, "kwargs", dict(self.kwargs or {}))
        for name in ("input_size", "mean", "std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if self.input_size is not None and (len(self.input_size) != 3 or any(int(v) <= 0 for v in self.input_size)):
            raise ValueError(f"teacher input_size must be [channels, height, width], got {list(self.input_size)}")

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | TeacherSpec) -> TeacherSpec:
        """Build from a YAML mapping; ``_``-prefixed anchors and torchdistill-only keys are ignored, typos are not."""
        if config is None:
            raise TypeError("teacher must be a mapping with at least `key:`")
        return config_from_mapping(cls, config, "teacher", ignored=_TORCHDISTILL_MODEL_KEYS, allow_anchors=True)


@dataclass(frozen=True)
class InputConfig:
    """The teacher's input: shape and normalisation (pixels in [0, 1] map to ``(x - mean) / std``)."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def mean_tensor(self) -> Tensor:
        return torch.tensor(self.mean, dtype=torch.float32)

    def std_tensor(self) -> Tensor:
        return torch.tensor(self.std, dtype=torch.float32)


def _import_object(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{path!r} is not a dotted path like 'my_package.models.MyNet'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import teacher {path!r}: {exc}") from exc


def _build_model(spec: TeacherSpec, resolver: ModelResolver | None) -> nn.Module:
    kwargs = dict(spec.kwargs)
    sources = [spec.source] if spec.source else list(SOURCES)
    for source in sources:
        if source == "zskd" and spec.key in MODEL_ENTRYPOINTS:
            return MODEL_ENTRYPOINTS[spec.key](**kwargs)
        if source == "torchvision":
            import torchvision

            if spec.key in torchvision.models.list_models():
                return torchvision.models.get_model(spec.key, **kwargs)
        if source == "registry" and resolver is not None:
            model = resolver(spec.key, kwargs, spec.repo_or_dir)
            if model is not None:
                return model
        if source == "timm":
            import timm

            if timm.is_model(spec.key):
                return timm.create_model(spec.key, **kwargs)
        if source == "import" and "." in spec.key:
            return _import_object(spec.key)(**kwargs)
    where = spec.source or "zskd, torchvision, the torchdistill registry, timm or a dotted import path"
    raise ValueError(
        f"no teacher model {spec.key!r} found in {where}; check the name, set `source:` to one of {list(SOURCES)}, "
        "or give a dotted path such as 'my_package.models.MyNet' with `source: import`"
    )


def load_checkpoint_state(path: str | Path, allow_unsafe: bool = False) -> dict[str, Tensor]:
    """Read a model state dict from a torchdistill checkpoint, a plain state dict or a ``.safetensors`` file.

    ``torch.load`` runs with ``weights_only=True`` (``argparse.Namespace`` is allowed, since torchdistill saves its
    command-line args beside the weights) unless ``allow_unsafe`` is set.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"teacher checkpoint {str(path)!r} does not exist; train the teacher first or fix src_ckpt"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        if allow_unsafe:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError or RuntimeError depending on the content
        raise ValueError(
            f"cannot load teacher checkpoint {str(path)!r} with weights_only=True ({exc}). If you trust this file, "
            "set `allow_unsafe_checkpoint: true` in the teacher config; better, re-save it as a state dict"
        ) from exc
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{str(path)!r} holds no state dict (expected tensors, or one under 'model'/'state_dict')")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_teacher(spec: TeacherSpec, resolver: ModelResolver | None = None) -> nn.Module:
    """Build the teacher, load its checkpoint (strictly) and return it in eval mode on the CPU."""
    model = _build_model(spec, resolver)
    if spec.src_ckpt:
        state = load_checkpoint_state(spec.src_ckpt, spec.allow_unsafe_checkpoint)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # missing/unexpected keys or shape mismatches
            raise ValueError(
                f"checkpoint {spec.src_ckpt!r} does not fit teacher {spec.key!r} {dict(spec.kwargs)}: {exc}. "
                "Check that `key` and `kwargs` (e.g. num_classes, in_chans) match the model that was saved"
            ) from None
    return model.eval()


def _per_channel(values: tuple[float, ...], channels: int, name: str) -> tuple[float, ...]:
    if len(values) == channels:
        return tuple(float(v) for v in values)
    if len(values) == 1:
        return (float(values[0]),) * channels
    if channels == 1:
        _logger.warning("teacher %s has %d values for a 1-channel input; using their mean", name, len(values))
        return (sum(values) / len(values),)
    raise ValueError(f"teacher {name} has {len(values)} values but the input has {channels} channels")


def resolve_input_config(model: nn.Module, spec: TeacherSpec) -> InputConfig:
    """Input size and normalisation: the spec first, then the model's ``pretrained_cfg`` (timm and ours)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    input_size = spec.input_size or cfg.get("input_size")
    if input_size is None:
        raise ValueError(
            f"teacher {spec.key!r} does not say its input size; set `input_size: [C, H, W]` in the teacher config"
        )
    in_chans = spec.kwargs.get("in_chans")
    if spec.input_size is None and in_chans is not None:
        input_size = (int(in_chans), *input_size[1:])
    input_size = tuple(int(v) for v in input_size)
    channels = input_size[0]
    if (spec.mean is None) != (spec.std is None):
        raise ValueError("teacher `mean` and `std` go together: set both (per channel) or neither")
    mean = spec.mean or cfg.get("mean")
    std = spec.std or cfg.get("std")
    if mean is None or std is None:
        _logger.warning("teacher %r gives no input mean/std; it is fed raw [0, 1] pixels", spec.key)
        mean, std = (0.0,), (1.0,)
    mean, std = _per_channel(tuple(mean), channels, "mean"), _per_channel(tuple(std), channels, "std")
    if any(not math.isfinite(s) or s <= 0 for s in std):
        raise ValueError(f"teacher input std must be positive, got {list(std)}")
    return InputConfig(input_size=input_size, mean=mean, std=std)


def teacher_fingerprint(model: nn.Module) -> str:
    """sha256 over the class name and every parameter and buffer (name, dtype, shape, bytes)."""
    return state_dict_sha256(model.state_dict(), prefix=type(model).__qualname__.encode())


def state_dict_sha256(state: Mapping[str, Tensor], prefix: bytes = b"") -> str:
    """sha256 over ``prefix`` and every tensor of a state dict (name, dtype, shape, bytes): equal weights, equal
    digest, whatever else the checkpoint file holds."""
    digest = hashlib.sha256(prefix)
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
