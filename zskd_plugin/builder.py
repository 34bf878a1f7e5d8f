"""Plain-data configuration to a Data Impression dataset: teacher -> store -> dataset.

This is the one entry point that a YAML pipeline, the command line and Python code share; it knows nothing of
torchdistill (the registry layer passes in a model resolver for torchdistill's registry).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from .augment import IMAGE_FITS, fit_to_size
from .dataset import LABEL_MODES, DataImpressionDataset, check_fixed_views, num_held_out, split_indices
from .dirichlet import DirichletConfig
from .impressions import ImpressionConfig, synthesize_impressions
from .store import ImpressionStore
from .synthesis import SynthesisConfig
from .teacher import ModelResolver, TeacherSpec, load_teacher, resolve_input_config
from .validation import (
    check_bool,
    check_choice,
    check_image_size,
    check_int,
    check_number,
    check_optional_str,
    config_from_mapping,
)

_logger = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "StoreSettings",
    "build_impression_dataset",
    "check_dataset_kwargs",
    "make_impression_store",
    "resolve_device",
]

SPLITS = ("train", "val", "all")
DEFAULT_STORE_ROOT = "./resource/zskd_store"
DATASET_KEYS = (
    "split",
    "val_fraction",
    "label_mode",
    "transform",
    "batch_transform",
    "fixed_views",
    "image_size",
    "image_fit",
)


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto``: CUDA when available, else the CPU; otherwise the torch device named (a clear error if none)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    try:
        return torch.device(check_optional_str(device, "device"))
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto' or a torch device such as 'cpu' or 'cuda:0', got {device!r}") from None


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


@dataclass(frozen=True)
class StoreSettings:
    """What makes (or finds) one Data Impression store, checked on construction without touching teacher or disk.

    Attributes:
        teacher: the teacher (:class:`~zskd_plugin.teacher.TeacherSpec`, or a mapping of its fields).
        impressions: DI count, seed, Dirichlet and synthesis settings.
        store_root: folder holding stores; each store gets its own sub-folder.
        num_classes: expected number of classes; checked against the teacher's final layer.
        device: where synthesis runs (``auto``: CUDA when available).
        progress: show progress while synthesising.
    """

    teacher: TeacherSpec
    impressions: ImpressionConfig
    store_root: str | os.PathLike = DEFAULT_STORE_ROOT
    num_classes: int | None = None
    device: str | torch.device = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "teacher", TeacherSpec.from_dict(self.teacher))
        if not isinstance(self.impressions, ImpressionConfig):
            raise TypeError(f"impressions must be an ImpressionConfig, got {type(self.impressions).__name__}")
        if isinstance(self.store_root, str):
            check_optional_str(self.store_root, "store_root")
        elif not isinstance(self.store_root, os.PathLike):
            raise ValueError(f"store_root must be a folder path, got {self.store_root!r}")
        if self.num_classes is not None:
            check_int(self.num_classes, "num_classes", least=2)
        resolve_device(self.device)
        check_bool(self.progress, "progress")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> StoreSettings:
        """From the flat keys a YAML gives (``teacher``, ``num_impressions``, ``store_root``, ``seed``,
        ``synthesis``, ``dirichlet``, ``targets``, ``num_classes``, ``device``, ``progress``); unknown keys are
        named."""
        unknown = [k for k in settings if k not in STORE_KEYS]
        if unknown:
            raise TypeError(f"unknown Data Impression store key(s) {unknown}; valid keys: {list(STORE_KEYS)}")
        missing = [k for k in ("teacher", "num_impressions") if k not in settings]
        if missing:
            raise TypeError(f"the Data Impression store needs {missing}; valid keys: {list(STORE_KEYS)}")
        impressions = ImpressionConfig(
            num_impressions=settings["num_impressions"],
            seed=settings.get("seed", 0),
            dirichlet=config_from_mapping(DirichletConfig, settings.get("dirichlet"), "dirichlet"),
            synthesis=config_from_mapping(SynthesisConfig, settings.get("synthesis"), "synthesis"),
            targets=settings.get("targets", "dirichlet"),
        )
        rest = {k: settings[k] for k in ("store_root", "num_classes", "device", "progress") if k in settings}
        return cls(teacher=settings["teacher"], impressions=impressions, **rest)


STORE_KEYS = ("teacher", "num_impressions", "store_root", "seed", "synthesis", "dirichlet", "targets", "num_classes",
              "device", "progress")  # fmt: skip


def make_impression_store(
    settings: StoreSettings | Mapping[str, Any], resolver: ModelResolver | None = None
) -> ImpressionStore:
    """Load the teacher and make (or reuse) its complete Data Impression store.

    Args:
        settings: a :class:`StoreSettings`, or the flat mapping a YAML gives (:meth:`StoreSettings.from_mapping`).
        resolver: extra model registry for the teacher lookup (torchdistill's, from the registry layer).

    Under ``torch.distributed`` (e.g. ``torchrun --nproc_per_node N``; gloo on CPU, NCCL on GPU) every rank makes
    its share of the parts, rank 0 writes the manifest once all are done, and then every rank opens the store.
    """
    if not isinstance(settings, StoreSettings):
        settings = StoreSettings.from_mapping(settings)
    spec = settings.teacher
    model = load_teacher(spec, resolver)
    input_config = resolve_input_config(model, spec)
    rank, world_size = _distributed()
    kwargs = dict(
        teacher=model,
        input_config=input_config,
        config=settings.impressions,
        store_root=settings.store_root,
        num_classes=settings.num_classes,
        classifier_path=spec.classifier_path,
        output=spec.output,
        name=spec.key.rsplit(".", 1)[-1],
        device=resolve_device(settings.device),
    )
    progress = settings.progress
    if world_size == 1:
        return synthesize_impressions(progress=progress, **kwargs)
    store = _collectively(
        lambda: synthesize_impressions(progress=progress and rank == 0, rank=rank, world_size=world_size, **kwargs),
        rank,
    )  # after this, every rank's share is written
    _collectively(store.finalize if rank == 0 and not store.is_complete() else None, rank)  # and the manifest
    return synthesize_impressions(progress=False, **kwargs)  # complete by now: only opens it


def _collectively(step: Callable[[], T] | None, rank: int) -> T | None:
    """Run ``step`` on this rank (None: nothing to do here), then tell every rank whether any rank failed."""
    result, error = None, None
    if step is not None:
        try:
            result = step()
        except Exception as exc:  # re-raised below, once the other ranks know: nobody waits forever
            error = exc
    _stop_if_any_rank_failed(error, rank)
    return result


def _stop_if_any_rank_failed(error: Exception | None, rank: int) -> None:
    """A collective: every rank learns whether any rank failed; the failed rank re-raises, the others stop too."""
    backend = torch.distributed.get_backend()
    flag = torch.tensor([0.0 if error is None else 1.0], device="cuda" if backend == "nccl" else "cpu")
    torch.distributed.all_reduce(flag)
    if error is not None:
        raise error
    if flag.item() > 0:
        raise RuntimeError(
            f"rank {rank}: another rank failed while making the Data Impression store (its error is in its log); "
            "completed parts are kept, so running again resumes"
        )


def _check_split(split: str, val_fraction: float, label_mode: str | None, num_impressions: int) -> None:
    check_choice(split, "split", SPLITS)
    if split == "val" and check_number(val_fraction, "val_fraction") == 0:
        raise ValueError("split 'val' needs val_fraction > 0 (the share of impressions held out), e.g. 0.1")
    num_held_out(check_int(num_impressions, "num_impressions", least=1), val_fraction)
    if label_mode is not None:
        check_choice(label_mode, "label_mode", LABEL_MODES)


def _check_image_fit(image_size: Any, image_fit: Any) -> None:
    check_image_size(image_size)
    check_choice(image_fit, "image_fit", IMAGE_FITS)


def _split_settings(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dataset's keyword arguments as (store settings, dataset settings); unknown keys are named."""
    unknown = [k for k in kwargs if k not in STORE_KEYS and k not in DATASET_KEYS]
    if unknown:
        raise TypeError(
            f"unknown Data Impression dataset key(s) {unknown}; valid keys: {list(STORE_KEYS + DATASET_KEYS)}"
        )
    store = {k: v for k, v in kwargs.items() if k in STORE_KEYS}
    return store, {k: v for k, v in kwargs.items() if k in DATASET_KEYS}


def check_dataset_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Check the keyword arguments of :func:`build_impression_dataset` as a YAML gives them (names, then values)
    without loading the teacher or touching the disk, so a config's mistakes surface before any synthesis.

    Transforms are left to the builder (in a YAML they are calls not made yet)."""
    store, dataset = _split_settings(kwargs)
    settings = StoreSettings.from_mapping(store)
    _check_split(
        dataset.get("split", "train"),
        dataset.get("val_fraction", 0.0),
        dataset.get("label_mode"),
        settings.impressions.num_impressions,
    )
    _check_image_fit(dataset.get("image_size"), dataset.get("image_fit", "pad"))
    check_fixed_views(dataset.get("fixed_views", 0), dataset.get("batch_transform") is not None)


def build_impression_dataset(
    teacher: Mapping[str, Any] | TeacherSpec,
    num_impressions: int,
    store_root: str | os.PathLike = DEFAULT_STORE_ROOT,
    seed: int = 0,
    synthesis: Mapping[str, Any] | SynthesisConfig | None = None,
    dirichlet: Mapping[str, Any] | DirichletConfig | None = None,
    num_classes: int | None = None,
    split: str = "train",
    targets: str = "dirichlet",
    val_fraction: float = 0.0,
    label_mode: str | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_transform: Callable[[Tensor], Tensor] | None = None,
    device: str = "auto",
    progress: bool = True,
    resolver: ModelResolver | None = None,
    image_size: Sequence[int] | None = None,
    image_fit: str = "pad",
    fixed_views: int = 0,
) -> DataImpressionDataset:
    """A Data Impression dataset for ``teacher``, synthesised on first use and read from the store after.

    Args:
        teacher: teacher description (:class:`~zskd_plugin.teacher.TeacherSpec` fields).
        num_impressions: total Data Impressions (paper: MNIST 24,000, Fashion-MNIST 48,000, CIFAR-10 40,000).
        store_root: folder holding stores; each config gets its own sub-folder.
        seed: base seed of targets and initial noise.
        synthesis: :class:`~zskd_plugin.synthesis.SynthesisConfig` fields.
        dirichlet: :class:`~zskd_plugin.dirichlet.DirichletConfig` fields.
        num_classes: expected number of classes; checked against the teacher's final layer.
        split: ``train`` (all but the held-out part), ``val`` (the held-out part) or ``all``.
        targets: ``dirichlet`` (ZSKD's soft targets) or ``one_hot`` (DeepInversion's: each impression's class alone;
            :class:`~zskd_plugin.impressions.ImpressionConfig`).
        val_fraction: share of the impressions held out for model selection.
        label_mode: ``soft`` or ``argmax``; default ``soft`` for train/all and ``argmax`` for val.
        transform: per-image transform (e.g. the teacher's ``Normalize``; no ``ToTensor``).
        batch_transform: transform run on (B, C, H, W) batches of images, before ``transform``: augmentation and
            ``Normalize`` at a fraction of the per-image cost (see :class:`~zskd_plugin.dataset.DataImpressionDataset`).
        device: where synthesis runs (``auto``: CUDA when available).
        progress: show a progress bar while synthesising.
        resolver: extra model registry for the teacher lookup.
        image_size: ``[height, width]`` the pipeline's models take when it differs from the teacher's input size the
            Data Impressions were made at (e.g. 32x32 LeNet-5 students of a 28x28 timm teacher that pools globally);
            the store keeps them at the teacher's size.
        image_fit: how they are brought to ``image_size``: ``pad`` (centred on a black border) or ``resize``.
        fixed_views: ``k > 0`` draws ``batch_transform`` ``k`` times per impression once, when the dataset is built,
            and serves those views as fixed items (``k`` times as many), so that the teacher's outputs on them can
            be stored (:mod:`zskd_plugin.teacher_outputs`); 0 draws it afresh on every pass.
    """
    settings = StoreSettings.from_mapping(
        dict(teacher=teacher, num_impressions=num_impressions, store_root=store_root, seed=seed, synthesis=synthesis,
             dirichlet=dirichlet, targets=targets, num_classes=num_classes, device=device, progress=progress)
    )  # fmt: skip
    _check_split(split, val_fraction, label_mode, num_impressions)
    _check_image_fit(image_size, image_fit)
    check_fixed_views(fixed_views, batch_transform is not None)
    for name, fn in (("transform", transform), ("batch_transform", batch_transform)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be a callable transform (an !import_call of one), got {fn!r}")
    store = make_impression_store(settings, resolver)
    data = store.load()
    if split != "all":
        train_idx, val_idx = split_indices(data.images.shape[0], val_fraction, seed)
        index = train_idx if split == "train" else val_idx
        data.images, data.targets = data.images[index], data.targets[index]
    if image_size is not None:
        try:  # the store keeps the teacher's size; black (0) borders, as torchvision's Pad on real images
            data.images = fit_to_size(data.images, tuple(image_size), image_fit)
        except ValueError as exc:
            raise ValueError(f"image_size: {exc} (image_fit: 'resize')") from None
    mode = label_mode or ("argmax" if split == "val" else "soft")
    _logger.info(
        "Data Impression dataset: %d items (split %s, labels %s) from %s", len(data.images), split, mode, store.path
    )
    return DataImpressionDataset(
        data.images,
        data.targets,
        transform=transform,
        label_mode=mode,
        store_path=store.path,
        batch_transform=batch_transform,
        fixed_views=fixed_views,
    )
