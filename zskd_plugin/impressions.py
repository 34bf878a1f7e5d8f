"""From a teacher to a complete store of Data Impressions: plan the parts, synthesise the missing ones, finalise.

Data flows one way: teacher -> class similarity -> Dirichlet targets -> synthesis -> store. A store is keyed by the
teacher's weights and every setting that changes its content, so a second run with the same config reuses it.
Each part is independent (its own seeds, derived from ``seed`` and the part index), so parts can be made in any
order, by any process, and resumed one by one; with ``synthesis: {method: 'generator'}`` parts follow each other
(each adapts the generator the ones before it trained), so one process makes them in order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import nn
from torch.nn import functional as F

from .amortised import AmortisedSynthesizer
from .dirichlet import DirichletConfig, sample_soft_targets, split_counts
from .progress import ProgressBar
from .similarity import class_similarity, find_classifier
from .store import FORMAT_VERSION, ImpressionStore, PartData, StoreError
from .synthesis import (
    GENERATOR_DEFAULTS,
    SynthesisConfig,
    SynthesisLoss,
    batchnorm_layers,
    frozen_teacher,
    module_device,
    resolve_precision,
    synthesize_batch,
)
from .teacher import InputConfig, check_logits, teacher_fingerprint
from .validation import check_choice, check_int

_logger = logging.getLogger(__name__)

__all__ = ["ImpressionConfig", "PartPlan", "plan_parts", "open_store", "shard_parts", "synthesize_impressions"]


@dataclass(frozen=True)
class ImpressionConfig:
    """Everything that determines a set of Data Impressions besides the teacher.

    Attributes:
        num_impressions: total Data Impressions, spread evenly over the classes (paper: 24,000 for MNIST).
        seed: base seed; each part derives its own from it, so the same config and seed give the same store.
        dirichlet: how soft targets are drawn.
        synthesis: how inputs are optimised.
        targets: ``dirichlet``: the soft targets of ZSKD (Nayak et al. 2019, Sec. 3.2); or ``one_hot``: each Data
            Impression's target is its class alone, as DeepInversion (Yin et al. CVPR 2020) optimises its inputs
            (the ``dirichlet`` settings then only split each class's impressions into rows and parts).
    """

    num_impressions: int
    seed: int = 0
    dirichlet: DirichletConfig = field(default_factory=DirichletConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    targets: str = "dirichlet"

    def __post_init__(self) -> None:
        check_int(self.num_impressions, "num_impressions", least=1)
        check_int(self.seed, "seed", least=0)
        check_choice(self.targets, "targets", TARGET_MODES)
        if not isinstance(self.dirichlet, DirichletConfig) or not isinstance(self.synthesis, SynthesisConfig):
            raise TypeError("ImpressionConfig takes a DirichletConfig and a SynthesisConfig")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data for the store key. Synthesis settings added after stores were first keyed
        (the BatchNorm prior) appear only when set, so existing stores keep their keys."""
        settings = dataclasses.asdict(self)
        if self.targets == "dirichlet":  # keyed only when set, like the options below
            del settings["targets"]
        for name, off in _KEYED_ONLY_WHEN_SET.items():
            if settings["synthesis"][name] == off:
                del settings["synthesis"][name]
        if self.synthesis.method == "pixels":  # the generator's settings are keyed, all of them, only with it
            for name in ("method", *GENERATOR_DEFAULTS):
                del settings["synthesis"][name]
        if self.synthesis.bn_weight:  # parts mix classes (plan_parts); stores made before that are not reused
            settings["parts"] = "mixed classes"
        return settings


TARGET_MODES = ("dirichlet", "one_hot")

_KEYED_ONLY_WHEN_SET = {
    "bn_weight": 0.0,
    "bn_first_multiplier": 1.0,
    "bn_distance": "deepinversion",
    "jitter": 0,
    "flip": False,
}


@dataclass(frozen=True)
class PartPlan:
    """One part of the store: ``count`` impressions in ``segments`` of ``(class_index, beta, count)``.

    A one-class part (the default) has one segment and belongs to its (class, beta) row; with the BatchNorm prior
    a part mixes every row in the data's proportions and is a row of its own.
    """

    index: int
    segments: tuple[tuple[int, float, int], ...]
    row: int  # parts of one row are made in order by one process (a warm start reads the part before)
    row_position: int  # 0 for the first part of its row

    @property
    def count(self) -> int:
        return sum(n for _, _, n in self.segments)


def plan_parts(num_classes: int, config: ImpressionConfig) -> list[PartPlan]:
    """Split the impressions into parts of at most ``batch_size``.

    Each part lies within one (class, beta) row, unless ``bn_weight`` is set: the BatchNorm prior matches a batch's
    statistics to those of the whole training data, so the parts then mix all rows in proportion, near-equal in
    size (interleaved class by class, so every part holds every class once it has room for one of each).
    """
    if config.num_impressions < num_classes:
        raise ValueError(
            f"num_impressions={config.num_impressions} is fewer than the {num_classes} classes; ask for at least one "
            "per class"
        )
    per_class = split_counts(config.num_impressions, (1.0 / num_classes,) * num_classes)
    rows = [
        (k, beta, n_row)
        for k in range(num_classes)
        for beta, n_row in zip(config.dirichlet.betas, split_counts(per_class[k], config.dirichlet.beta_shares))
        if n_row
    ]
    batch = config.synthesis.batch_size
    plans: list[PartPlan] = []
    if not config.synthesis.bn_weight:
        for row, (k, beta, n_row) in enumerate(rows):
            for position, start in enumerate(range(0, n_row, batch)):
                plans.append(PartPlan(len(plans), ((k, beta, min(batch, n_row - start)),), row, position))
        return plans
    # every impression placed at the fraction of its row it completes, ties beta by beta, so the rows interleave
    # evenly and consecutive impressions cycle through the classes
    tie = [(list(config.dirichlet.betas).index(beta), k) for k, beta, _ in rows]  # once per row, not per impression
    order = sorted(((j + 0.5) / n_row, *tie[r], r) for r, (_, _, n_row) in enumerate(rows) for j in range(n_row))
    num_parts = -(-len(order) // batch)
    start = 0
    for size in split_counts(len(order), (1.0 / num_parts,) * num_parts):  # near-equal parts, none left tiny
        counts = [0] * len(rows)
        for *_, r in order[start : start + size]:
            counts[r] += 1
        start += size
        segments = tuple((rows[r][0], rows[r][1], n) for r, n in enumerate(counts) if n)
        plans.append(PartPlan(len(plans), segments, len(plans), 0))
    return plans


def shard_parts(plans: list[PartPlan], rank: int, world_size: int) -> set[int]:
    """The parts process ``rank`` of ``world_size`` makes: whole rows, dealt out in turn.

    Rows stay whole so a warm-started row never waits on another process; the parts' own seeds make the store the
    same whatever the number of processes.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    return {plan.index for plan in plans if plan.row % world_size == rank}


def _part_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _generator_seed(seed: int) -> int:
    """The seed of ``method: generator``'s initial weights: a part index no store reaches."""
    return _part_seed(seed, 1 << 40)


def open_store(
    store_root: str | os.PathLike,
    teacher: nn.Module,
    input_config: InputConfig,
    config: ImpressionConfig,
    num_classes: int,
    name: str = "teacher",
    classifier_path: str | None = None,
    output: int | str | None = None,
) -> ImpressionStore:
    """The store for this teacher and config (nothing is written); its folder name carries a key of both.

    ``output`` (the teacher's output selector) enters the key only when set, so the stores of teachers that
    return plain logits keep their keys."""
    teacher_spec: dict[str, Any] = {
        "name": name,
        "sha256": teacher_fingerprint(teacher),
        "classifier_path": classifier_path,
    }
    if output is not None:
        teacher_spec["output"] = output
    spec = {
        "format_version": FORMAT_VERSION,
        "teacher": teacher_spec,
        "input": dataclasses.asdict(input_config),
        "num_classes": num_classes,
        "impressions": config.to_dict(),
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return ImpressionStore(Path(store_root) / f"{safe_name}-{key}", spec, len(plan_parts(num_classes, config)))


def synthesize_impressions(
    teacher: nn.Module,
    input_config: InputConfig,
    config: ImpressionConfig,
    store_root: str | os.PathLike,
    num_classes: int | None = None,
    classifier_path: str | None = None,
    output: int | str | None = None,
    name: str = "teacher",
    device: str | torch.device = "cpu",
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> ImpressionStore:
    """Make (or reuse) the complete store of Data Impressions for ``teacher``.

    Parts already in the store and passing their checksum are kept; missing or corrupted ones are synthesised.
    A cross-process lock makes a second process wait and then reuse the first one's work.

    With ``world_size > 1`` this process makes only its share of the parts (:func:`shard_parts`) and does not
    finalise: once every process is done (a barrier), one of them calls ``store.finalize()``.

    Returns:
        The store: complete, or with this process's share written when ``world_size > 1``.
    """
    # precision `auto` made concrete before the key, so the key names what runs on this hardware
    config = dataclasses.replace(config, synthesis=resolve_precision(config.synthesis, torch.device(device)))
    classifier = find_classifier(teacher, num_classes, classifier_path)
    num_classes = classifier.out_features
    _check_input_fits(teacher, input_config, num_classes, name)
    if config.synthesis.bn_weight and not batchnorm_layers(teacher):
        raise ValueError(
            f"synthesis bn_weight needs a teacher with BatchNorm layers; teacher {name!r} has none: set bn_weight: 0 "
            "(the image priors tv_weight and l2_weight need none)"
        )
    store = open_store(store_root, teacher, input_config, config, num_classes, name, classifier_path, output)
    if store.is_complete() and not store.missing_parts():
        _logger.info("reusing complete Data Impression store %s", store.path)
        return store
    store.prepare()
    if world_size > 1:
        mine = shard_parts(plan_parts(num_classes, config), rank, world_size)
        if config.synthesis.method == "generator":  # its parts follow each other: the first process makes them all
            mine = set(range(store.num_parts)) if rank == 0 else set()
        with FileLock(str(store.lock_path) + f"-rank{rank}-of-{world_size}"):
            missing = [i for i in store.missing_parts() if i in mine]
            if missing:
                _synthesize_missing(teacher, classifier.weight, input_config, config, store, missing, device, progress)
        return store
    with FileLock(str(store.lock_path)):
        missing = store.missing_parts()  # re-checked under the lock: another process may have made them
        if missing or not store.is_complete():
            _synthesize_missing(teacher, classifier.weight, input_config, config, store, missing, device, progress)
            store.finalize()
    _logger.info("Data Impression store complete: %s", store.path)
    return store


def _check_input_fits(teacher: nn.Module, input_config: InputConfig, num_classes: int, name: str) -> None:
    """One forward pass on a few noise images, so a wrong input size, a structured output or a teacher that returns
    probabilities fails here with a message, not mid-synthesis."""
    probe = torch.rand((4, *input_config.input_size), generator=torch.Generator().manual_seed(0))
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.no_grad():
            out = teacher(probe.to(module_device(teacher)))
    except RuntimeError as exc:
        raise ValueError(
            f"input_size {list(input_config.input_size)} does not fit teacher {name!r} ({exc}); set the teacher's "
            "`input_size: [channels, height, width]` (and `in_chans` in its kwargs) to what it was trained on"
        ) from None
    finally:
        teacher.train(was_training)
    logits = check_logits(out, name)
    if tuple(logits.shape) != (probe.shape[0], num_classes):
        raise ValueError(
            f"teacher {name!r} returns shape {tuple(logits.shape)} for {probe.shape[0]} images, expected "
            f"({probe.shape[0]}, {num_classes}) logits"
        )


def _synthesize_missing(
    teacher: nn.Module,
    classifier_weight: torch.Tensor,
    input_config: InputConfig,
    config: ImpressionConfig,
    store: ImpressionStore,
    missing_parts: list[int],
    device: str | torch.device,
    progress: bool,
) -> None:
    plans = plan_parts(classifier_weight.shape[0], config)
    missing = set(missing_parts)
    _logger.info(
        "synthesising %d of %d parts (%d Data Impressions) into %s with %s",
        len(missing),
        len(plans),
        sum(plans[i].count for i in missing),
        store.path,
        config,
    )
    similarity = class_similarity(classifier_weight, config.dirichlet.epsilon)
    mean, std = input_config.mean_tensor(), input_config.std_tensor()
    teacher.to(device)
    bar = ProgressBar(sum(plans[i].count for i in missing), "Data Impressions", "DI", enabled=progress)
    previous: torch.Tensor | None = None
    with frozen_teacher(teacher), bar:
        # built once per store, so a compiled teacher compiles once
        loss_fn = SynthesisLoss(teacher, mean, std, config.synthesis)
        amortised, last_missing = None, max(missing, default=-1)
        if config.synthesis.method == "generator":
            amortised = AmortisedSynthesizer(
                teacher, input_config.input_size, mean, std, config.synthesis, _generator_seed(config.seed), loss_fn
            )
        for plan in plans:
            rerun = plan.index not in missing
            if rerun:
                previous = None
                if amortised is None or plan.index > last_missing:
                    continue
                # the generator's parts follow each other: a part made before is made again (not written) so that
                # the missing ones after it start from the same meta-learned generator as in an unbroken run
                _logger.info("re-running part %d (kept on disk) to rebuild the generator", plan.index)
            seed = _part_seed(config.seed, plan.index)
            rng = np.random.default_rng(seed)
            targets = _part_targets(plan, similarity, config.targets, rng)
            init = None
            if config.synthesis.warm_start and plan.row_position > 0:
                if previous is None:
                    previous = store.read_part(plan.index - 1).images
                init = previous[: plan.count]  # only a row's last part can be smaller than the one before it
            try:
                if amortised is not None:
                    result = amortised(targets, torch.Generator().manual_seed(seed))
                else:
                    result = synthesize_batch(
                        teacher,
                        targets,
                        input_config.input_size,
                        mean,
                        std,
                        config.synthesis,
                        torch.Generator().manual_seed(seed),
                        init=init,
                        loss_fn=loss_fn,
                    )
            except FloatingPointError as exc:
                raise StoreError(
                    f"part {plan.index} ({_describe(plan)}) diverged: {exc}; it was not written and completed parts "
                    "are kept. Lower synthesis lr or check the teacher for NaN weights"
                ) from exc
            if rerun:
                continue
            store.write_part(plan.index, PartData(result.images, targets, result.losses), _part_info(plan))
            previous = result.images
            bar.set_postfix(loss=f"{result.losses.mean().item():.3f}", agree=f"{result.agreement.float().mean():.0%}")
            bar.update(plan.count)


def _part_targets(plan: PartPlan, similarity: torch.Tensor, mode: str, rng: np.random.Generator) -> torch.Tensor:
    """A part's (count, K) targets: Dirichlet samples around each segment's class row, or its class one-hot."""
    if mode == "one_hot":
        classes = torch.cat([torch.full((n,), k) for k, _, n in plan.segments])
        return F.one_hot(classes, similarity.shape[0]).to(torch.float32)
    return torch.cat([sample_soft_targets(similarity[k], beta, n, rng) for k, beta, n in plan.segments])


def _part_info(plan: PartPlan) -> dict[str, Any]:
    """What a part's record says it holds: its class and beta, or its segments when it mixes rows."""
    if len(plan.segments) == 1:
        k, beta, _ = plan.segments[0]
        return {"class_index": k, "beta": beta}
    return {"segments": [list(segment) for segment in plan.segments]}


def _describe(plan: PartPlan) -> str:
    if len(plan.segments) == 1:
        return f"class {plan.segments[0][0]}, beta {plan.segments[0][1]}"
    return f"{len({k for k, _, _ in plan.segments})} classes mixed"
