"""Run a torchdistill YAML pipeline: train (teacher with cross-entropy, or student by distillation), evaluate on the
validation loader each epoch, keep the best-on-validation checkpoint, and test on the test loader.

The flow is torchdistill's image-classification example (load_yaml_file -> import_dependencies -> models ->
get_training_box / get_distillation_box -> epochs -> test), written against its public API.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision  # noqa: F401  (torchdistill's registries need torchvision imported first)
import yaml
from torch import nn
from torch.utils.data import DataLoader
from torchdistill.common import yaml_util
from torchdistill.common.main_util import import_dependencies, init_distributed_mode, is_main_process, save_ckpt
from torchdistill.core.distillation import get_distillation_box
from torchdistill.core.training import get_training_box
from torchdistill.datasets.util import build_data_loader
from torchdistill.models.official import get_image_classification_model
from torchdistill.models.registry import MODEL_DICT, get_model
from tqdm.auto import tqdm

from zskd_plugin.progress import PROGRESS_LOGGER, format_duration
from zskd_plugin.registry.models import resolve_registry_model
from zskd_plugin.teacher import TeacherSpec, build_model, load_checkpoint_state, select_output

from .config_checks import check_config
from .outputs import check_output_file
from .yaml_tree import yaml_error_message

_logger = logging.getLogger(__name__)
_progress = logging.getLogger(PROGRESS_LOGGER)


@dataclass
class PipelineResult:
    """Figures of one pipeline run (accuracies in %)."""

    config: str
    student_key: str
    student_test_acc: float
    teacher_test_acc: float | None
    student_test_acc_last: float
    best_val_acc: float | None
    num_epochs: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def _load_checked(path: Path) -> dict[str, Any]:
    """torchdistill's load of a config that :func:`check_config` passed (this builds its ``datasets:`` block)."""
    try:
        config = yaml_util.load_yaml_file(str(path))
    except yaml.YAMLError as exc:  # e.g. a tag torchdistill has no constructor for
        raise ValueError(yaml_error_message(path, exc)) from None
    import_dependencies(config.get("dependencies", None))
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    """Check a YAML config without running it (:func:`check_config`), then load it with torchdistill's loader,
    which builds the ``datasets:`` block (synthesising Data Impression stores)."""
    check_config(path)
    return _load_checked(Path(path))


def load_model(model_config: Mapping[str, Any], distributed: bool = False, name: str = "model") -> nn.Module:
    """torchvision name first, then torchdistill's registry (as torchdistill does), then timm and dotted import
    paths (as the Data Impression teacher does, which torchdistill's own lookup does not); checkpoint read weights-only
    unless ``allow_unsafe_checkpoint`` is the boolean true; ``output`` selects the logits of a structured output."""
    key, repo_or_dir, kwargs = model_config["key"], model_config.get("repo_or_dir"), model_config.get("kwargs") or {}
    source = model_config.get("source")
    if source is not None:  # `source:` of a shared teacher anchor: built exactly as the DI teacher was
        model = build_model(TeacherSpec(key=key, kwargs=kwargs, source=source), resolve_registry_model)
    else:
        model = get_image_classification_model(model_config, distributed)
    if model is None:
        if key in MODEL_DICT or repo_or_dir is not None:
            model = get_model(key, repo_or_dir, **kwargs)
        else:  # a bare timm name or a dotted path: resolved as the DI teacher resolves it, so one anchor serves both
            model = build_model(TeacherSpec(key=key, kwargs=kwargs))
    model = select_output(model, model_config.get("output"), name)
    src_ckpt = model_config.get("src_ckpt", None)
    if src_ckpt:
        model.load_state_dict(load_checkpoint_state(src_ckpt, model_config.get("allow_unsafe_checkpoint", False)))
    return model


@torch.inference_mode()
def evaluate(model: nn.Module, data_loader: DataLoader, device: torch.device) -> float:
    """Top-1 accuracy (%) over a loader of (image, int label)."""
    model.eval()
    correct = total = 0
    for batch in data_loader:
        images, labels = batch[0].to(device), batch[1].to(device)
        correct += (model(images).argmax(dim=1) == labels).sum().item()
        total += labels.numel()
    return 100.0 * correct / max(total, 1)


def run_pipeline(
    config_path: str | Path,
    device: str = "cpu",
    seed: int | None = None,
    progress: bool = True,
) -> PipelineResult:
    """Train and test the pipeline of one YAML config; returns its figures."""
    config_path = Path(config_path)
    tree = check_config(config_path, training=True)
    student_name = "student_model" if "student_model" in tree["models"] else "model"
    raw_dst = (tree["models"].get(student_name) or {}).get("dst_ckpt")
    if isinstance(raw_dst, str):  # a plain path (not a YAML call): checked before anything runs
        check_output_file(raw_dst, f"models.{student_name}.dst_ckpt")
    distributed, world_size, device_ids = init_distributed_mode(1, "env://")
    if seed is not None:
        torch.manual_seed(seed)
    config = _load_checked(config_path)
    torch_device = torch.device(device)
    models_config = config["models"]
    teacher_config = models_config.get("teacher_model", None)
    teacher = load_model(teacher_config, distributed, "teacher").to(torch_device) if teacher_config else None
    student_config = models_config.get(student_name)
    if student_config is None:
        raise ValueError("models: needs `student_model` (or `model` for teacher training)")
    student = load_model(student_config, distributed, "student").to(torch_device)
    dst_ckpt = student_config.get("dst_ckpt")
    if not dst_ckpt:
        raise ValueError(f"models: {student_name} needs `dst_ckpt`, the checkpoint path to write")
    if not isinstance(raw_dst, str):  # a YAML call: its path is known only now
        check_output_file(dst_ckpt, f"models.{student_name}.dst_ckpt")
    dataset_dict = config["datasets"]
    train_config = config["train"]

    box = (
        get_training_box(student, dataset_dict, train_config, torch_device, device_ids, distributed, 1)
        if teacher is None
        else get_distillation_box(
            teacher, student, dataset_dict, train_config, torch_device, device_ids, distributed, 1
        )
    )
    if box.num_epochs < 1:
        raise ValueError(f"train: num_epochs is {box.num_epochs}; a run needs at least 1 epoch to save a checkpoint")
    trained = box.model if teacher is None else box.student_model
    # the best epoch is saved beside dst_ckpt and moved onto it once training ends: until then a checkpoint already
    # there stays whole for whatever reads it (a DI store's teacher, a benchmark row), and an interrupted run keeps it
    partial_ckpt = Path(f"{dst_ckpt}.partial")
    history: list[dict[str, float]] = []
    best_val = None
    start = time.time()
    for epoch in range(box.num_epochs):
        box.pre_epoch_process(epoch=epoch)
        t0, losses = time.time(), []
        batches = tqdm(
            box.train_data_loader,
            desc=f"epoch {epoch + 1}/{box.num_epochs}",
            leave=False,
            disable=None if progress and is_main_process() else True,
        )
        for sample_batch, targets, supp_dict in batches:
            loss = box.forward_process(sample_batch.to(torch_device), targets.to(torch_device), supp_dict)
            value = loss.item()
            if not math.isfinite(value):  # before the optimiser step, so the saved weights stay clean
                raise FloatingPointError(f"training loss became {value} at epoch {epoch}; lower the learning rate")
            box.post_forward_process(loss=loss)
            losses.append(value)
        val_acc = evaluate(trained, box.val_data_loader, torch_device)
        entry = {
            "epoch": epoch,
            "loss": sum(losses) / max(len(losses), 1),
            "val_acc": val_acc,
            "seconds": time.time() - t0,
        }
        history.append(entry)
        if progress and is_main_process():
            left = (time.time() - start) / (epoch + 1) * (box.num_epochs - epoch - 1)
            _progress.info(
                "epoch %d/%d: loss %.4f, val acc %.2f%%, %.1f s, about %s left",
                epoch + 1,
                box.num_epochs,
                entry["loss"],
                val_acc,
                entry["seconds"],
                format_duration(left),
            )
        if best_val is None or val_acc > best_val:
            best_val = val_acc
            save_ckpt(trained, box.optimizer, box.lr_scheduler, best_val, {"config": str(config_path)}, partial_ckpt)
        box.post_epoch_process()
    train_seconds = time.time() - start
    if is_main_process():  # the one process that saved
        partial_ckpt.replace(dst_ckpt)
    box.clean_modules()

    test_config = config["test"]["test_data_loader"]
    test_loader = build_data_loader(dataset_dict[test_config["dataset_id"]], test_config, distributed)
    last_acc = evaluate(student, test_loader, torch_device)  # the last epoch's model, before the best-on-val reload
    student.load_state_dict(load_checkpoint_state(dst_ckpt))
    teacher_acc = evaluate(teacher, test_loader, torch_device) if teacher is not None else None
    student_acc = evaluate(student, test_loader, torch_device)
    _logger.info(
        "test accuracy: student %.2f%% (best on val; last epoch %.2f%%), teacher %s", student_acc, last_acc, teacher_acc
    )
    return PipelineResult(
        config=str(config_path),
        student_key=student_config["key"],
        student_test_acc=student_acc,
        teacher_test_acc=teacher_acc,
        student_test_acc_last=last_acc,
        best_val_acc=best_val,
        num_epochs=box.num_epochs,
        train_seconds=train_seconds,
        history=history,
    )
