"""Helpers to run the shipped YAML configs at test size: a SafeLoader view of the raw YAML, and size overrides."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import yaml


class _RawLoader(yaml.SafeLoader):
    """Reads torchdistill YAML without running its tags (configs are code: never execute them to inspect)."""


def _construct_tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_RawLoader.add_multi_constructor("!", _construct_tagged)


def load_raw(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_RawLoader)


def shrink_config(src: Path, dst_dir: Path, data_root: Path, overrides: dict[str, str] | None = None) -> Path:
    """Copy a config with test sizes (few impressions and steps, one epoch) and paths under ``dst_dir``.

    ``overrides`` (regex -> replacement) are applied after the defaults and may replace a default pattern.
    """
    text = src.read_text()
    subs = {
        r"num_impressions: \d+": "num_impressions: 60",
        r"num_iters: \d+": "num_iters: 3",
        r"num_epochs: \d+": "num_epochs: 1",
        r"'\./resource/": f"'{dst_dir}/resource/",
        r"'\./data'": f"'{data_root}'",
        r"'~/datasets/cifar10'": f"'{dst_dir}/cifar10'",
    }
    subs.update(overrides or {})
    for pattern, replacement in subs.items():
        text = re.sub(pattern, replacement, text)
    dst = dst_dir / src.name
    dst.write_text(text)
    return dst


def write_random_teacher(config_path: Path) -> None:
    """Save a randomly initialised teacher where the config's teacher ``src_ckpt`` points."""
    from zskd_plugin.registry.models import resolve_registry_model

    from zskd_plugin.teacher import TeacherSpec, load_teacher

    teacher = load_raw(config_path)["models"].get("teacher_model")
    if not teacher or not teacher.get("src_ckpt"):
        return
    spec = TeacherSpec.from_dict({k: v for k, v in teacher.items() if k != "src_ckpt"})
    path = Path(teacher["src_ckpt"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": load_teacher(spec, resolve_registry_model).state_dict()}, path)
