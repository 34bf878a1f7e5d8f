"""The rows of a suite at a scale (teacher first), and the budget every student row shares."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..yaml_tree import load_config_tree
from .derive import impression_kwargs, real_transfer_edit, subset_edit, train_size, zskd_edit
from .suites import (
    BN_PRIOR_KEYS,
    DEEPINVERSION_SYNTHESIS,
    GENERATOR_KEYS,
    PAPER_AUGMENT,
    RELEASE_SYNTHESIS,
    Scale,
    Suite,
)

__all__ = ["Budget", "RowPlan", "plan_rows", "shared_budget"]


@dataclass
class RowPlan:
    """One pipeline run of the suite."""

    row: str  # table row, e.g. "kd" or "zskd-ours"
    label: str
    template: str  # the shipped config it derives from
    seed: int
    edit: Callable[[dict[str, Any]], None]
    num_impressions: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        suffix = f"-n{self.num_impressions}" if self.row == "zskd-sweep" else ""
        self.name = self.name or f"{self.row}{suffix}-seed{self.seed}"


def plan_rows(suite: Suite, scale: Scale, configs_root: str | Path = ".") -> list[RowPlan]:
    """The suite's runs at this scale, teacher first."""
    d = Path(configs_root) / suite.config_dir
    n_zskd = scale.zskd_impressions or suite.paper_impressions
    n_release = scale.release_impressions or n_zskd
    subset = subset_edit(scale.real_train_subset)

    # the student as the ZSKD config builds it (key and kwargs), or the suite's own: a teacher template's kwargs (a
    # timm teacher's model_name, pretrained, in_chans) do not fit the student's constructor
    zskd_tree = load_config_tree(d / suite.zskd)
    student = suite.student or zskd_tree["models"]["student_model"]

    def student_ce(tree: dict[str, Any]) -> None:
        _build_as(tree["models"]["model"], student)
        subset(tree)

    rows = [
        RowPlan("teacher", "teacher, cross-entropy on real data", str(d / suite.teacher), 0, subset),
        RowPlan("student-ce", "student, cross-entropy on real data", str(d / suite.teacher), 0, student_ce),
    ]
    rows += [RowPlan(row, label, str(d / config), 0, subset) for row, label, config in suite.methods]
    zskd = str(d / suite.zskd)
    release_syn = dict(RELEASE_SYNTHESIS, num_iters=scale.release_iters)
    release_aug = dict(PAPER_AUGMENT, hflip=0.5) if suite.flip else PAPER_AUGMENT
    ours_syn = {} if scale.ours_iters is None else {"num_iters": scale.ours_iters}
    noise_syn = {"num_iters": 0}
    # DeepInversion through our engine: its targets, BN prior and jitter (and flips where the suite flips); the
    # step count, batch, schedule and speed settings stay the ZSKD config's, so only the objective differs. Where the
    # ZSKD config synthesises through a generator, DeepInversion still optimises pixels, at the suite's pixel_steps.
    generator = (impression_kwargs(zskd_tree)[0].get("synthesis") or {}).get("method") == "generator"
    if generator and "deepinversion" in suite.seed_rows and not suite.pixel_steps:
        raise ValueError(
            f"{suite.zskd} synthesises through a generator: suite {suite.name!r} needs pixel_steps (num_iters, "
            "lr_schedule) for its deepinversion row, which optimises pixels"
        )
    deepinversion_syn = {**DEEPINVERSION_SYNTHESIS, "flip": suite.flip, **suite.pixel_steps, **ours_syn}
    route = " (generator)" if generator else ""
    bn_rows = "zskd-bn" in suite.seed_rows

    def real_control(seed: int) -> Callable[[dict[str, Any]], None]:
        as_shipped = zskd_edit(n_zskd, seed, ours_syn, None)  # the zskd-bn row (zskd-ours where no row has the prior)
        swap = real_transfer_edit(seed)

        def edit(tree: dict[str, Any]) -> None:
            as_shipped(tree)
            swap(tree)

        return edit

    per_seed = {
        "zskd-release": lambda seed: RowPlan(
            "zskd-release", f"ZSKD, the release's CIFAR-10 synthesis recipe, {n_release} DIs", zskd, seed,
            zskd_edit(n_release, seed, release_syn, release_aug, replace_synthesis=True), n_release),
        "zskd-ours": lambda seed: RowPlan(
            "zskd-ours", f"ZSKD, our settings{route}{', no BN prior' if bn_rows else ''}, {n_zskd} DIs",
            zskd, seed, zskd_edit(n_zskd, seed, ours_syn, None, drop=BN_PRIOR_KEYS), n_zskd),
        "zskd-bn": lambda seed: RowPlan(
            "zskd-bn", f"ZSKD, our settings{route} with the BatchNorm prior, {n_zskd} DIs", zskd, seed,
            zskd_edit(n_zskd, seed, ours_syn, None, require=BN_PRIOR_KEYS[:1]), n_zskd),
        "deepinversion": lambda seed: RowPlan(
            "deepinversion", f"DeepInversion's targets and priors (no Dirichlet), {n_zskd} DIs", zskd, seed,
            zskd_edit(n_zskd, seed, deepinversion_syn, None,
                      drop=BN_PRIOR_KEYS + GENERATOR_KEYS + ("tv_weight", "l2_weight"), targets="one_hot"), n_zskd),
        "real-control": lambda seed: RowPlan(
            "real-control", f"the same distillation on as many real training images as the "
            f"{'zskd-bn' if bn_rows else 'zskd-ours'} row's DIs, without labels", zskd, seed, real_control(seed)),
        "noise": lambda seed: RowPlan(
            "noise", f"the same distillation on {n_zskd} unoptimised uniform-noise images", zskd, seed,
            zskd_edit(n_zskd, seed, noise_syn, None, drop=GENERATOR_KEYS), n_zskd),
    }  # fmt: skip
    for seed in range(scale.seeds):
        rows += [per_seed[row](seed) for row in suite.seed_rows]
    swept = {n_zskd}  # the full-size point is the zskd-ours row
    for fraction in scale.sweep_fractions if suite.sweep else ():
        n = max(int(round(fraction * suite.real_train_size)), 20)
        if n not in swept:  # two fractions that round to one count are one point
            swept.add(n)
            rows.append(
                RowPlan("zskd-sweep", f"ZSKD, our settings, {n} DIs", zskd, 0, zskd_edit(n, 0, ours_syn, None), n)
            )
    if suite.student:  # the distillation rows train the suite's student in their configs' student_model
        name = (suite.student.get("kwargs") or {}).get("model_name", suite.student["key"])
        for plan in rows[1:]:
            plan.label += f"; student {name}"
            if plan.row != "student-ce":
                plan.edit = _then(plan.edit, _swap_student(suite.student))
    return rows


def _build_as(model: dict[str, Any], student: dict[str, Any]) -> None:
    """Make a config's model block build ``student`` (its key and kwargs; checkpoint paths stay)."""
    model["key"] = student["key"]
    model["kwargs"] = copy.deepcopy(student.get("kwargs"))


def _swap_student(student: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(tree: dict[str, Any]) -> None:
        _build_as(tree["models"]["student_model"], student)

    return edit


def _then(
    first: Callable[[dict[str, Any]], None], second: Callable[[dict[str, Any]], None]
) -> Callable[[dict[str, Any]], None]:
    def edit(tree: dict[str, Any]) -> None:
        first(tree)
        second(tree)

    return edit


@dataclass(frozen=True)
class Budget:
    """What every student row shares: images seen in training, and the ZSKD config's optimisation settings."""

    images: int
    training: dict[str, Any]


def shared_budget(plans: list[RowPlan], scale: Scale) -> Budget:
    ours = next(p for p in plans if p.row == "zskd-ours")
    tree = load_config_tree(ours.template)
    ours.edit(tree)
    train = tree["train"]
    training = {
        "optimizer": train["optimizer"],
        "scheduler": train.get("scheduler"),
        "batch_size": train["train_data_loader"]["kwargs"]["batch_size"],
    }
    images = scale.images if scale.epochs is None else scale.epochs * train_size(tree)
    return Budget(images, training)
