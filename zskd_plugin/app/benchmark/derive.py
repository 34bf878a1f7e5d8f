"""Edits of a shipped config's raw YAML tree that turn it into one benchmark row's config (epochs, checkpoint
paths, shared optimiser and batch size, Data Impression count, seed, synthesis and augmentation settings)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ...dataset import num_held_out
from ..config_checks import IMPRESSION_BUILDER
from ..yaml_tree import Tagged, find_calls, mappings
from .transfer import REAL_TRANSFER

__all__ = [
    "AUGMENT",
    "IMPRESSION_BUILDER",
    "impression_kwargs",
    "real_transfer_edit",
    "redirect_teacher",
    "set_augment",
    "set_dst",
    "set_epochs",
    "set_shared_training",
    "subset_edit",
    "train_size",
    "zskd_edit",
]

AUGMENT = "zskd_plugin.augment.ImpressionAugment"


def set_epochs(tree: dict[str, Any], epochs: int) -> None:
    tree["train"]["num_epochs"] = epochs
    scheduler = tree["train"].get("scheduler") or {}
    if scheduler.get("key") == "CosineAnnealingLR":
        scheduler["kwargs"]["T_max"] = epochs


def set_dst(tree: dict[str, Any], path: str) -> None:
    models = tree["models"]
    (models.get("student_model") or models["model"])["dst_ckpt"] = path


def set_shared_training(tree: dict[str, Any], shared: dict[str, Any]) -> None:
    """Give a student row the ZSKD config's optimiser, scheduler and training batch size."""
    train = tree["train"]
    train["optimizer"] = copy.deepcopy(shared["optimizer"])  # a copy per row: set_epochs edits the scheduler
    train["scheduler"] = copy.deepcopy(shared["scheduler"])
    train["train_data_loader"]["kwargs"]["batch_size"] = shared["batch_size"]


def _training_impressions(kwargs: dict[str, Any]) -> int:
    """The DIs a Data Impression dataset's training split holds: all but the held-out part."""
    n = int(kwargs["num_impressions"])
    return n - num_held_out(n, float(kwargs.get("val_fraction", 0.0)))


def train_size(tree: dict[str, Any]) -> int:
    """Images per epoch of a row: its DIs less the held-out split (times their fixed views, if any), or the first
    length of its real-data split."""
    impressions = [call["init"]["kwargs"] for call in find_calls(tree, IMPRESSION_BUILDER)]
    train = [kw for kw in impressions if kw.get("split", "train") == "train"]
    if train:  # the split the dataset makes
        return _training_impressions(train[0]) * max(1, train[0].get("fixed_views", 0))
    real = list(find_calls(tree, REAL_TRANSFER))
    if real:
        kwargs = real[0]["init"]["kwargs"]
        return int(kwargs["num_images"]) * max(1, kwargs.get("fixed_views", 0))
    splits = list(find_calls(tree, "split_dataset"))
    if splits:
        return int(splits[0]["init"]["kwargs"]["lengths"][0])
    raise ValueError("cannot tell the training-set size: no data_impression_dataset and no split_dataset")


def impression_kwargs(tree: dict[str, Any]) -> list[dict[str, Any]]:
    found = [call["init"]["kwargs"] for call in find_calls(tree, IMPRESSION_BUILDER)]
    if not found:
        raise ValueError("the ZSKD template has no data_impression_dataset")
    return found


def set_augment(tree: dict[str, Any], settings: dict[str, float] | None) -> None:
    """Replace the ImpressionAugment settings (None keeps the template's)."""
    if settings is None:
        return
    for call in find_calls(tree, AUGMENT):
        call["init"] = {"kwargs": dict(settings)}


def zskd_edit(
    num_impressions: int,
    seed: int,
    synthesis: dict[str, Any],
    augment: dict[str, float] | None,
    replace_synthesis: bool = False,
    drop: tuple[str, ...] = (),
    require: tuple[str, ...] = (),
    targets: str | None = None,
) -> Callable[[dict[str, Any]], None]:
    """Set the DI count and seed; ``synthesis`` replaces the config's settings (``replace_synthesis``) or updates
    them after the ``drop`` keys are removed; ``augment`` replaces the ImpressionAugment settings (None keeps the
    config's); ``targets`` sets the target mode (None keeps the config's). The ``require`` keys must be in the
    config's synthesis settings (a row that measures them). The synthesis device is set by ``row_config``."""

    def edit(tree: dict[str, Any]) -> None:
        found = impression_kwargs(tree)
        own = dict(found[0].get("synthesis") or {})
        missing = [key for key in require if key not in own]
        if missing:
            raise ValueError(f"the ZSKD template's synthesis settings lack {missing}, which this row measures")
        base = {} if replace_synthesis else {k: v for k, v in own.items() if k not in drop}
        shared = {**base, **synthesis}  # one object for train and val, so they stay one store
        for kwargs in found:
            kwargs.update(num_impressions=num_impressions, seed=seed, synthesis=shared)
            if targets is not None:
                kwargs["targets"] = targets
        set_augment(tree, augment)

    return edit


def subset_edit(size: int | None) -> Callable[[dict[str, Any]], None]:
    """Train real-data rows on the first ``size`` training images (the tiny scale only)."""

    def edit(tree: dict[str, Any]) -> None:
        if size is None:
            return
        for call in find_calls(tree, "split_dataset"):
            kwargs = call["init"]["kwargs"]
            kwargs["lengths"] = [size, kwargs["lengths"][1], sum(kwargs["lengths"]) - size - kwargs["lengths"][1]]

    return edit


def redirect_teacher(tree: dict[str, Any], old: str, new: str) -> None:
    """Point every ``src_ckpt``/``dst_ckpt`` that names the teacher's checkpoint at the benchmark's own."""
    for node, _ in mappings(tree):
        for key in ("src_ckpt", "dst_ckpt"):
            if node.get(key) == old:
                node[key] = new


def _without_normalize(transform: Any) -> Any:
    """A test set's transform (``Compose`` of calls) less its ``Normalize``: the DIs' pixel space."""
    out = copy.deepcopy(transform)
    kwargs = out.value["init"]["kwargs"] if isinstance(out, Tagged) else {}
    if not isinstance(kwargs.get("transforms"), list):
        raise ValueError("the real-image control needs the test set's transform as a Compose of transforms")
    keys = [str(t.value.get("key", "")) if isinstance(t, Tagged) else "" for t in kwargs["transforms"]]
    kwargs["transforms"] = [t for t, key in zip(kwargs["transforms"], keys) if not key.endswith("Normalize")]
    return out


def real_transfer_edit(seed: int) -> Callable[[dict[str, Any]], None]:
    """Swap a ZSKD row's training DIs for as many real training images, unlabelled, from the data set its test set
    comes from (the control row); augmentation, loss, optimiser and the held-out DIs stay the row's."""

    def edit(tree: dict[str, Any]) -> None:
        found = find_calls(tree, IMPRESSION_BUILDER)
        calls = [c for c in found if c["init"]["kwargs"].get("split", "train") == "train"]
        if len(calls) != 1:
            raise ValueError(f"the real-image control needs one training DI dataset (split 'train'), not {len(calls)}")
        losses = [node for node, _ in mappings(tree) if node.get("key") == "ZSKDLoss"]
        if any((node.get("kwargs") or {}).get("target_weight") for node in losses):
            raise ValueError("the real-image control has no soft targets to read: its ZSKDLoss needs target_weight 0")
        di = calls[0]["init"]["kwargs"]
        num_classes = di.get("num_classes") or (di["teacher"].get("kwargs") or {}).get("num_classes")
        if not num_classes:
            raise ValueError("the real-image control needs num_classes in the DI dataset's or its teacher's kwargs")
        test = tree["datasets"][tree["test"]["test_data_loader"]["dataset_id"]]
        real = copy.deepcopy(test)
        real.value["init"]["kwargs"]["train"] = True
        real.value["init"]["kwargs"]["transform"] = _without_normalize(test.value["init"]["kwargs"]["transform"])
        kwargs = {
            "dataset": real,
            "num_images": _training_impressions(di),
            "seed": seed,
            "num_classes": int(num_classes),
        }
        kwargs.update({k: di[k] for k in ("transform", "batch_transform", "fixed_views") if di.get(k) is not None})
        calls[0]["key"] = REAL_TRANSFER
        calls[0]["init"] = {"kwargs": kwargs}

    return edit
