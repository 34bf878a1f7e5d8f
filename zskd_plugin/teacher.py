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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .models import MODEL_ENTRYPOINTS
from .validation import (
    check_bool,
    check_choice,
    check_int,
    check_numbers,
    check_optional_str,
    config_from_mapping,
)

_logger = logging.getLogger(__name__)

__all__ = [
    "InputConfig",
    "TeacherSpec",
    "build_model",
    "model_source",
    "check_logits",
    "check_output_selector",
    "load_checkpoint_state",
    "load_teacher",
    "resolve_input_config",
    "select_output",
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
            you trust). Only a YAML boolean ``true`` switches it on; any other value is a config error.
        repo_or_dir: torchdistill's torch.hub argument, passed to registry lookups.
        output: where the logits are when the model's ``forward`` returns a tuple, list or dict: an index or a key
            (e.g. ``0`` or ``'logits'``). None: the output is the logits tensor itself.
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
    output: int | str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"teacher key must be a model name or dotted path, got {self.key!r}")
        if self.source is not None:
            check_choice(self.source, "teacher source (or leave it out)", SOURCES)
        if self.kwargs is not None and (
            not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs)
        ):
            raise ValueError(f"teacher kwargs must be a mapping of constructor arguments, got {self.kwargs!r}")
        object.__setattr__(self, "kwargs", dict(self.kwargs or {}))
        for name in ("src_ckpt", "classifier_path", "repo_or_dir"):
            check_optional_str(getattr(self, name), f"teacher {name}")
        check_bool(self.allow_unsafe_checkpoint, "teacher allow_unsafe_checkpoint")
        check_output_selector(self.output, "teacher output")
        if self.input_size is not None:
            if isinstance(self.input_size, (str, Mapping)) or not isinstance(self.input_size, Sequence):
                raise ValueError(f"teacher input_size must be [channels, height, width], got {self.input_size!r}")
            size = tuple(self.input_size)
            if len(size) != 3:
                raise ValueError(f"teacher input_size must be [channels, height, width], got {list(size)}")
            object.__setattr__(self, "input_size", tuple(check_int(v, "teacher input_size", least=1) for v in size))
        if (self.mean is None) != (self.std is None):
            raise ValueError(
                f"teacher {'std' if self.std is None else 'mean'} is missing: teacher mean and std go together; set "
                "both (per channel) or neither"
            )
        if self.mean is not None:
            object.__setattr__(self, "mean", check_numbers(self.mean, "teacher mean"))
        if self.std is not None:
            object.__setattr__(self, "std", check_numbers(self.std, "teacher std", low=0, low_open=True))

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


def check_output_selector(selector: Any, name: str) -> int | str | None:
    """None, an integer index or a non-empty string key: where the logits sit in a model's structured output."""
    if selector is None or (isinstance(selector, int) and not isinstance(selector, bool)):
        return selector
    if isinstance(selector, str) and selector:
        return selector
    raise ValueError(
        f"{name} must be an index (e.g. 0) or a key (e.g. 'logits') of the model's output, got {selector!r}"
    )


def describe_output(out: Any) -> str:
    """A short description of a model output: ``Tensor(1, 10)``, ``tuple of 2 [Tensor(1, 10), Tensor(1, 84)]``."""
    if isinstance(out, Tensor):
        return f"Tensor{tuple(out.shape)}"
    if isinstance(out, Mapping):
        return f"{type(out).__name__} with keys {list(out)}"
    if isinstance(out, (tuple, list)):
        return f"{type(out).__name__} of {len(out)} [{', '.join(describe_output(o) for o in out)}]"
    return type(out).__name__


def select_output(model: nn.Module, selector: int | str | None, name: str = "teacher") -> nn.Module:
    """Make ``model`` return ``forward(...)[selector]`` (a forward hook: its modules, names and weights are
    unchanged, so ``classifier_path`` and checkpoints read the same); ``model`` as it is for ``None``."""
    check_output_selector(selector, f"{name} output")
    if selector is None:
        return model

    def pick(module: nn.Module, args: Any, out: Any) -> Any:
        try:
            return out[selector]
        except (IndexError, KeyError, TypeError):
            raise ValueError(
                f"{name} `output: {selector!r}` does not select anything in its output, which is a "
                f"{describe_output(out)}; set `output:` to the index or key of the logits"
            ) from None

    model.register_forward_hook(pick)
    return model


def check_logits(out: Any, name: str) -> Tensor:
    """``out`` when it looks like a batch of logits; a clear error for structured outputs and probabilities."""
    if not isinstance(out, Tensor):
        raise ValueError(
            f"teacher {name!r} returns a {describe_output(out)}, not a logits tensor; set `output:` in the teacher "
            "config to the index (e.g. 0) or key (e.g. 'logits') where its logits are"
        )
    if out.dim() == 2 and out.shape[1] > 1 and bool((out >= 0).all()):
        if bool(((out.double().sum(dim=1) - 1).abs() < 1e-4).all()):
            raise ValueError(
                f"teacher {name!r} returns probabilities (every row non-negative and summing to 1), not logits; "
                "synthesis and the ZSKD loss apply their own tempered softmax. Remove the final softmax from its "
                "forward (or return the scores before it, with `output:` if the model returns both)"
            )
    return out


def _import_object(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{path!r} is not a dotted path like 'my_package.models.MyNet'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import model {path!r}: {exc}") from exc


def _found_in(source: str, key: str) -> bool:
    """Whether ``key`` names a model in ``source`` (not ``registry``, which only a resolver can answer)."""
    if source == "zskd":
        return key in MODEL_ENTRYPOINTS
    if source == "torchvision":
        import torchvision

        return key in torchvision.models.list_models()
    if source == "timm":
        import timm

        return timm.is_model(key)
    if source == "import" and "." in key:
        _import_object(key)  # raises, naming the import error, when the path is wrong
        return True
    return False


def _create(source: str, key: str, kwargs: dict[str, Any]) -> nn.Module:
    if source == "zskd":
        return MODEL_ENTRYPOINTS[key](**kwargs)
    if source == "torchvision":
        import torchvision

        return torchvision.models.get_model(key, **kwargs)
    if source == "timm":
        import timm

        return timm.create_model(key, **kwargs)
    return _import_object(key)(**kwargs)


def model_source(key: str, source: str | None = None) -> str | None:
    """Where :func:`build_model` would find ``key`` without a registry resolver (``zskd``, ``torchvision``,
    ``timm`` or ``import``), without building it; None when nowhere. A dotted path is imported to check it."""
    return next((where for where in ([source] if source else SOURCES) if _found_in(where, key)), None)


def build_model(spec: TeacherSpec, resolver: ModelResolver | None = None) -> nn.Module:
    """The model ``spec.key`` names, untrained: looked up in ``spec.source``, else in the paper's models,
    torchvision, ``resolver`` (torchdistill's registry), timm, then as a dotted import path."""
    kwargs = dict(spec.kwargs)
    for source in [spec.source] if spec.source else SOURCES:
        if source == "registry":
            model = resolver(spec.key, kwargs, spec.repo_or_dir) if resolver is not None else None
            if model is not None:
                return model
        elif _found_in(source, spec.key):
            return _create(source, spec.key, kwargs)
    where = spec.source or "zskd, torchvision, the torchdistill registry, timm or a dotted import path"
    raise ValueError(
        f"no model {spec.key!r} found in {where}; check the name, set `source:` to one of {list(SOURCES)}, "
        "or give a dotted path such as 'my_package.models.MyNet' with `source: import`"
    )


def load_checkpoint_state(path: str | Path, allow_unsafe: bool = False) -> dict[str, Tensor]:
    """Read a model state dict from a torchdistill checkpoint, a plain state dict or a ``.safetensors`` file.

    ``torch.load`` runs with ``weights_only=True`` (``argparse.Namespace`` is allowed, since torchdistill saves its
    command-line args beside the weights) unless ``allow_unsafe`` is the boolean ``True``; any other value (the
    string ``'false'`` included) is refused before the file is opened.
    """
    allow_unsafe = check_bool(allow_unsafe, "allow_unsafe_checkpoint")
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
    model = select_output(build_model(spec, resolver), spec.output)
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
