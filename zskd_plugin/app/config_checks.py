"""Check a torchdistill YAML config before any of it runs.

torchdistill builds the ``datasets:`` block while the YAML loads, so a mistake in the second Data Impression entry
surfaced only after the first entry's store had been synthesised, and a misspelled ``optimizer`` only as
"NoneType is not an Optimizer" once training began. Here the raw tree (tags kept, nothing imported or called) is
checked first: the sections and torchdistill keys by name, and every setting the plugin reads by value, each error
naming the entry and the setting.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torchvision
from torch import nn
from torchdistill.models.registry import MODEL_DICT

from zskd_plugin.augment import ImpressionAugment
from zskd_plugin.builder import check_dataset_kwargs
from zskd_plugin.losses import ZSKDLoss
from zskd_plugin.models import MODEL_ENTRYPOINTS, InputFit
from zskd_plugin.registry.teacher_outputs import FORWARD_PROC_KEY as STORED_OUTPUT_FORWARD_PROC
from zskd_plugin.registry.teacher_outputs import WRAPPER_KEY as STORED_OUTPUTS_WRAPPER
from zskd_plugin.teacher import SOURCES, check_output_selector, model_source
from zskd_plugin.validation import check_bool, check_choice

from .yaml_tree import Tagged, load_config_tree, mappings

__all__ = ["check_config", "TOP_LEVEL_KEYS"]

TOP_LEVEL_KEYS = ("dependencies", "datasets", "models", "train", "test")
MODEL_KEYS = ("teacher_model", "student_model", "model")
# What torchdistill 1.1's training and distillation boxes (and its example script: log_freq) read from `train:`
# or from one of its stages (`stage1:`, `stage2:`, ...).
TRAIN_KEYS = (
    "num_epochs",
    "log_freq",
    "train_data_loader",
    "val_data_loader",
    "model",
    "teacher",
    "student",
    "criterion",
    "optimizer",
    "scheduler",
    "pre_epoch_process",
    "pre_forward_process",
    "post_forward_process",
    "post_epoch_process",
)
OPTIMIZER_KEYS = (
    "key",
    "kwargs",
    "module_wise_configs",
    "module_wise_kwargs",
    "filters_params",
    "max_grad_norm",
    "grad_accum_step",
)
SCHEDULER_KEYS = ("key", "kwargs", "scheduling_step")
# The tags torchdistill 1.1's loader constructs (torchdistill.common.yaml_util.load_yaml_file)
TORCHDISTILL_TAGS = (
    "!join",
    "!pathjoin",
    "!expanduser",
    "!abspath",
    "!import_get",
    "!import_call",
    "!import_call_method",
    "!call_method",
    "!getattr",
    "!setattr",
    "!access_by_index_or_key",
)
_STAGE = re.compile(r"^stage\d+$")
IMPRESSION_BUILDER = "data_impression_dataset"
AUGMENT = "ImpressionAugment"


def _unknown_keys(section: Mapping[str, Any], valid: tuple[str, ...], where: str, extra: str = "") -> None:
    unknown = [k for k in section if k not in valid and not str(k).startswith("_")]
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in `{where}`; valid: {list(valid)}{extra}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"`{where}` must be a mapping, got {value!r}")
    return value


def _tags(value: Any) -> Iterator[str]:
    """Every YAML tag in a raw tree."""
    if isinstance(value, Tagged):
        yield value.tag
        value = value.value
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _tags(v)
    elif isinstance(value, list):
        for v in value:
            yield from _tags(v)


def _plain(value: Any) -> bool:
    """True when ``value`` holds no YAML tag (a call torchdistill has not made yet)."""
    return next(_tags(value), None) is None


def _check_call(factory: Callable[..., Any], kwargs: Any, where: str) -> None:
    """Build ``factory(**kwargs)`` (cheap, side-effect-free objects only) to run its checks; names first."""
    kwargs = _mapping(kwargs if kwargs is not None else {}, f"{where}: kwargs")
    params = inspect.signature(factory).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {list(params)}")
    if all(_plain(v) for v in kwargs.values()):
        try:
            factory(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


def _check_plugin_settings(tree: Mapping[str, Any]) -> None:
    """Every Data Impression dataset, ImpressionAugment and ZSKDLoss in the tree, by value, before any is built."""
    for node, tag in mappings(tree):
        key = str(node.get("key", ""))
        if tag == "!import_call" and key.endswith(IMPRESSION_BUILDER):
            init = _mapping(node.get("init") or {}, f"{key}: init")
            where = f"Data Impression dataset ({key})"
            try:
                check_dataset_kwargs(_mapping(init.get("kwargs") or {}, f"{where}: init.kwargs"))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: {exc}") from None
        elif tag == "!import_call" and key.endswith(AUGMENT):
            init = _mapping(node.get("init") or {}, f"{key}: init")
            _check_call(ImpressionAugment, init.get("kwargs"), key)
        elif tag is None and key == "ZSKDLoss" and "kwargs" in node:
            _check_call(ZSKDLoss, node["kwargs"], "criterion ZSKDLoss")


def _input_fit_settings(model: Any, input_size: Any, fit: Any = "pad", mean: Any = (0.0,), std: Any = (1.0,)) -> None:
    """``input_fit``'s keys (as registry.models.input_fit takes them), its own values checked on a stand-in model."""
    InputFit(nn.Identity(), input_size, fit, mean, std)


def _check_model_key(model: Mapping[str, Any], where: str, other_dependencies: bool) -> None:
    """A model block's key names a model `zskd train` can build: torchdistill's registry (or torch.hub with
    ``repo_or_dir``), the paper's models, torchvision, timm or an importable dotted path. A config that imports
    other dependencies may register more keys when they load, so an unknown key passes there."""
    key = model.get("key")
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}.key must be a model name or a dotted path, got {key!r}")
    if key == "input_fit":  # the wrapper's own settings, then the model block it wraps
        kwargs = _mapping(model.get("kwargs") or {}, f"{where}.kwargs")
        _check_call(_input_fit_settings, kwargs, f"{where} (input_fit)")
        inner = f"{where}.kwargs.model"
        _check_model_key(_mapping(kwargs["model"], inner), inner, other_dependencies)
        return
    if "source" in model:
        check_choice(model["source"], f"{where}.source (or leave it out)", SOURCES)
    # torchdistill's own lookups: torchvision's models namespace (classes too), its registry, torch.hub
    if key in torchvision.models.__dict__ or key in MODEL_DICT or model.get("repo_or_dir") is not None:
        return
    try:
        found = model_source(key, model.get("source"))
    except ValueError as exc:
        if other_dependencies:  # the path may import only once those dependencies have loaded
            return
        raise ValueError(f"{where}.key: {exc}") from None
    if found is None and not other_dependencies:
        raise ValueError(
            f"{where}.key {key!r} is no model in torchdistill's registry, the paper's models, torchvision or timm, "
            "nor a dotted path such as 'my_package.models.MyNet'; check the spelling"
        )


def _check_stored_teacher_outputs(section: Mapping[str, Any], where: str) -> None:
    """The stored-teacher-output dataset wrapper and forward process come together: one without the other either
    fails at the first batch or computes the outputs for nothing."""
    loader = section.get("train_data_loader")
    wrapper = (loader.get("dataset_wrapper") if isinstance(loader, Mapping) else None) or {}
    wrapped = isinstance(wrapper, Mapping) and wrapper.get("key") == STORED_OUTPUTS_WRAPPER
    teacher = section.get("teacher")
    stored = isinstance(teacher, Mapping) and teacher.get("forward_proc") == STORED_OUTPUT_FORWARD_PROC
    if stored and not wrapped:
        raise ValueError(
            f"{where}.teacher.forward_proc {STORED_OUTPUT_FORWARD_PROC!r} reads stored teacher outputs, but "
            f"{where}.train_data_loader has no `dataset_wrapper: {{key: {STORED_OUTPUTS_WRAPPER}, kwargs: {{teacher: "
            "<the teacher block>}}`; add it, or use forward_proc 'forward_batch_only'"
        )
    if wrapped and not stored:
        raise ValueError(
            f"{where}.train_data_loader stores the teacher's outputs ({STORED_OUTPUTS_WRAPPER}), but "
            f"{where}.teacher.forward_proc does not read them; set it to {STORED_OUTPUT_FORWARD_PROC!r}, or drop the "
            "dataset_wrapper"
        )


def _check_training_sections(tree: Mapping[str, Any]) -> None:
    """What `zskd train` needs from torchdistill's sections, by name (a missing section reads as a KeyError)."""
    for section in ("models", "train", "test"):
        if section not in tree:
            raise KeyError(section)
    models = _mapping(tree["models"], "models")
    _unknown_keys(models, MODEL_KEYS, "models")
    dependencies = tree.get("dependencies") or []
    other_dependencies = any(
        not isinstance(d, Mapping) or str(d.get("name", "")).split(".")[0] != "zskd_plugin" for d in dependencies
    )
    for name, model in models.items():
        model = _mapping(model, f"models.{name}")
        _check_model_key(model, f"models.{name}", other_dependencies)
        if model.get("key") in MODEL_ENTRYPOINTS:  # the paper's models: cheap to build, so built to check
            _check_call(MODEL_ENTRYPOINTS[model["key"]], model.get("kwargs"), f"models.{name} ({model['key']})")
        if "allow_unsafe_checkpoint" in model:
            check_bool(model["allow_unsafe_checkpoint"], f"models.{name}.allow_unsafe_checkpoint")
        check_output_selector(model.get("output"), f"models.{name}.output")
    train = _mapping(tree["train"], "train")
    stages = [(f"train.{k}", _mapping(v, f"train.{k}")) for k, v in train.items() if _STAGE.match(str(k))]
    _unknown_keys(train, TRAIN_KEYS + tuple(k for k in train if _STAGE.match(str(k))), "train", " or stage1, stage2...")
    for where, section in [("train", train), *stages]:
        _unknown_keys(section, TRAIN_KEYS, where)
        _check_stored_teacher_outputs(section, where)
        for key, valid in (("optimizer", OPTIMIZER_KEYS), ("scheduler", SCHEDULER_KEYS)):
            if section.get(key) is not None:
                _unknown_keys(_mapping(section[key], f"{where}.{key}"), valid, f"{where}.{key}")
    if "test_data_loader" not in _mapping(tree["test"], "test"):
        raise KeyError("test_data_loader")


def check_config(path: str | Path, training: bool = False) -> dict[str, Any]:
    """Check the config at ``path`` without running any of it and return its raw tree.

    Args:
        path: the YAML file.
        training: also check what ``zskd train`` needs (models, train and test sections, torchdistill's keys).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a YAML syntax error (file, line, column), a number YAML 1.1 reads as text, an unknown key or a
            bad value, named.
        KeyError: a section or key that ``zskd train`` needs is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {str(path)!r} does not exist")
    tree = load_config_tree(path)
    unknown_tags = sorted(set(_tags(tree)) - set(TORCHDISTILL_TAGS))
    if unknown_tags:
        raise ValueError(f"{path}: unknown YAML tag(s) {unknown_tags}; torchdistill knows {list(TORCHDISTILL_TAGS)}")
    _unknown_keys(tree, TOP_LEVEL_KEYS, f"{path} (top level)")
    _check_plugin_settings(tree)
    if training:
        _check_training_sections(tree)
    return tree
