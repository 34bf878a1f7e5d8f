"""``zskd benchmark``: the paper's table (Nayak et al., ICML 2019, Table 1 and Fig. 3) on one data set.

Every row is a torchdistill pipeline derived from a shipped config in ``yaml_configs/<suite>/`` with the row's
settings (epochs, Data Impression count, synthesis and augmentation, seed) written into a config file of its own,
so each row's figure comes with the exact command that reproduces it. Rows already measured with the same config
are reused, so an interrupted suite resumes.

All student rows share the teacher, the student architecture, the optimiser, the learning-rate schedule, the batch
size (the ZSKD config's) and the distillation budget: the number of training images seen. The ZSKD rows train for the
scale's epochs on their DIs; a row with another training-set size (real data, fewer DIs) trains for as many epochs as
see the same number of images.
The reported accuracy of a student row is the real test set's at the last epoch (no epoch is selected); the test
accuracy of the checkpoint chosen on the held-out split is recorded beside it. The teacher's is that of its
checkpoint the students are distilled from, chosen on held-out real images.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zskd_plugin.teacher import load_checkpoint_state, state_dict_sha256

from .runner import run_pipeline
from .yaml_edit import find_calls, load_config_tree, mappings, render_config

_logger = logging.getLogger(__name__)

__all__ = ["SCALES", "SUITES", "Scale", "Suite", "plan_rows", "run_suite"]

IMPRESSION_BUILDER = "data_impression_dataset"
AUGMENT = "zskd_plugin.augment.ImpressionAugment"


@dataclass(frozen=True)
class Scale:
    """How big a run is. ``paper`` is the paper's DI count; the others shrink it to fit a CPU or a test."""

    name: str
    epochs: int | None  # of the ZSKD rows; other student rows see as many images (the teacher keeps its config's)
    zskd_impressions: int | None  # ours and noise rows; None: the suite's paper DI count
    paper_iters: int  # synthesis steps of the paper-settings row (the release: 1500)
    sweep_fractions: tuple[float, ...]  # of the real training set, for the DI-count sweep
    seeds: int
    real_train_subset: int | None = None  # real-data rows train on this many images (tests only)
    ours_iters: int | None = None  # synthesis steps of our rows (None: the ZSKD config's own; tests shrink it)
    paper_impressions: int | None = None  # DIs of the paper-settings row (None: as zskd_impressions)
    images: int | None = None  # training images every student row sees (None: ``epochs`` of the ZSKD rows' DIs)

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.images is None):
            raise ValueError(f"scale {self.name!r}: set exactly one of epochs and images")


SCALES: dict[str, Scale] = {
    "paper": Scale("paper", epochs=200, zskd_impressions=None, paper_iters=1500,
                   sweep_fractions=(0.01, 0.05, 0.2, 0.4), seeds=3),
    # quick: our rows at the paper's DI count; the paper-settings row (1,500 steps per DI, ~60 ms per DI on 2 CPU
    # cores) at 6,000 DIs. Every student row of every suite sees 2,592,000 training images: 120 epochs of MNIST's
    # 21,600 training DIs, 60 of Fashion-MNIST's 43,200 (keeps a suite within ~2 hours on 2 CPU cores).
    "quick": Scale("quick", epochs=None, zskd_impressions=None, paper_iters=1500,
                   sweep_fractions=(0.01, 0.05, 0.2, 0.4), seeds=3, paper_impressions=6000, images=2_592_000),
    "tiny": Scale("tiny", epochs=1, zskd_impressions=40, paper_iters=3,
                  sweep_fractions=(0.0005,), seeds=2, real_train_subset=200, ours_iters=3),
}  # fmt: skip


@dataclass(frozen=True)
class Suite:
    """One data set's table: its configs and the paper's figures (Nayak et al. 2019, Table 1)."""

    name: str
    config_dir: str
    teacher: str  # config file names inside config_dir
    student_key: str
    zskd: str
    methods: tuple[tuple[str, str, str], ...]  # (row, label, config) of the real-data KD rows
    real_train_size: int  # the real training set's size, for the DI-count sweep's fractions
    paper_impressions: int
    paper: dict[str, float] = field(default_factory=dict)
    flip: bool = True  # the paper-settings row flips images horizontally (not for digits)


_LENET_METHODS = (
    ("kd", "KD (Hinton et al.) on real data", "kd-lenet5_half_from_lenet5.yaml"),
    ("dist", "DIST (Huang et al.) + cross-entropy on real data", "dist-lenet5_half_from_lenet5.yaml"),
    ("at", "attention transfer + KD on real data", "at-lenet5_half_from_lenet5.yaml"),
)

_ALEXNET_METHODS = tuple(
    (row, label, config.replace("lenet5_half_from_lenet5", "alexnet_cifar_half_from_alexnet_cifar"))
    for row, label, config in _LENET_METHODS
)

SUITES: dict[str, Suite] = {
    "mnist": Suite(
        "mnist", "yaml_configs/mnist", "ce-lenet5.yaml", "lenet5_half", "zskd-lenet5_half_from_lenet5.yaml",
        _LENET_METHODS, 60000, 24000, {"teacher": 99.34, "student-ce": 98.92, "kd": 99.25, "zskd-paper": 98.77},
        flip=False,
    ),
    "fashion-mnist": Suite(
        "fashion-mnist", "yaml_configs/fashion_mnist", "ce-lenet5.yaml", "lenet5_half",
        "zskd-lenet5_half_from_lenet5.yaml", _LENET_METHODS, 60000, 48000,
        {"teacher": 90.84, "student-ce": 89.43, "kd": 89.66, "zskd-paper": 79.62},
    ),
    "cifar10": Suite(  # needs CIFAR-10 (torchvision download) and, in practice, a GPU
        "cifar10", "yaml_configs/cifar10", "ce-alexnet_cifar.yaml", "alexnet_cifar_half",
        "zskd-alexnet_cifar_half_from_alexnet_cifar.yaml", _ALEXNET_METHODS, 50000, 40000,
        {"teacher": 83.03, "student-ce": 80.04, "kd": 80.08, "zskd-paper": 69.56},
    ),
}  # fmt: skip

# The engine's speed settings (bf16 autocast, channels-last): same DI loss and agreement as fp32 in
# benchmarks/synthesis_speed.py, at several times the speed. They change how fast, not what is optimised.
ENGINE = {"precision": "bf16", "channels_last": True}
# The authors' release (Sec. 3.2 settings as released): Adam lr 0.001 for 1500 steps, batch 100, the whole batch
# min-max rescaled every step, later batches of a (class, beta) row warm-started from the previous one.
PAPER_SYNTHESIS = {"lr": 0.001, "batch_size": 100, "temperature": 20.0, "minmax_rescale": True, "warm_start": True}
PAPER_SYNTHESIS.update(ENGINE)
# Ours is the shipped ZSKD config itself (its synthesis, image priors and augmentation); the rows only set the DI
# count and the seed.
# The paper augments the transfer set with scaling, translation, rotation and flipping; ours adds blur and contrast.
PAPER_AUGMENT = {"degrees": 15, "translate": 0.1, "scale": 0.1}


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


def _set_epochs(tree: dict[str, Any], epochs: int) -> None:
    tree["train"]["num_epochs"] = epochs
    scheduler = tree["train"].get("scheduler") or {}
    if scheduler.get("key") == "CosineAnnealingLR":
        scheduler["kwargs"]["T_max"] = epochs


def _set_dst(tree: dict[str, Any], path: str) -> None:
    models = tree["models"]
    (models.get("student_model") or models["model"])["dst_ckpt"] = path


def _set_shared_training(tree: dict[str, Any], shared: dict[str, Any]) -> None:
    """Give a student row the ZSKD config's optimiser, scheduler and training batch size."""
    train = tree["train"]
    train["optimizer"] = copy.deepcopy(shared["optimizer"])  # a copy per row: _set_epochs edits the scheduler
    train["scheduler"] = copy.deepcopy(shared["scheduler"])
    train["train_data_loader"]["kwargs"]["batch_size"] = shared["batch_size"]


def _train_size(tree: dict[str, Any]) -> int:
    """Images per epoch of a row: its DIs less the held-out split, or the first length of its real-data split."""
    impressions = [call["init"]["kwargs"] for call in find_calls(tree, IMPRESSION_BUILDER)]
    train = [kw for kw in impressions if kw.get("split", "train") == "train"]
    if train:  # as zskd_plugin.dataset.split_indices splits them
        n = int(train[0]["num_impressions"])
        return max(1, n - round(n * float(train[0].get("val_fraction", 0.0))))
    splits = list(find_calls(tree, "split_dataset"))
    if splits:
        return int(splits[0]["init"]["kwargs"]["lengths"][0])
    raise ValueError("cannot tell the training-set size: no data_impression_dataset and no split_dataset")


def _impressions(tree: dict[str, Any]) -> list[dict[str, Any]]:
    found = [call["init"]["kwargs"] for call in find_calls(tree, IMPRESSION_BUILDER)]
    if not found:
        raise ValueError("the ZSKD template has no data_impression_dataset")
    return found


def _set_augment(tree: dict[str, Any], settings: dict[str, float] | None) -> None:
    """Replace the ImpressionAugment settings (None keeps the template's)."""
    if settings is None:
        return
    for call in find_calls(tree, AUGMENT):
        call["init"] = {"kwargs": dict(settings)}


def _zskd_edit(
    num_impressions: int,
    seed: int,
    synthesis: dict[str, Any],
    augment: dict[str, float] | None,
    replace_synthesis: bool = False,
) -> Callable[[dict[str, Any]], None]:
    """Set the DI count and seed; ``synthesis`` replaces the config's settings (``replace_synthesis``) or updates
    them; ``augment`` replaces the ImpressionAugment settings (None keeps the config's). The synthesis device is set
    by ``_row_config``."""

    def edit(tree: dict[str, Any]) -> None:
        found = _impressions(tree)
        base = {} if replace_synthesis else dict(found[0].get("synthesis") or {})
        shared = {**base, **synthesis}  # one object for train and val, so they stay one store
        for kwargs in found:
            kwargs.update(num_impressions=num_impressions, seed=seed, synthesis=shared)
        _set_augment(tree, augment)

    return edit


def _subset_edit(size: int | None) -> Callable[[dict[str, Any]], None]:
    """Train real-data rows on the first ``size`` training images (the tiny scale only)."""

    def edit(tree: dict[str, Any]) -> None:
        if size is None:
            return
        for call in find_calls(tree, "split_dataset"):
            kwargs = call["init"]["kwargs"]
            kwargs["lengths"] = [size, kwargs["lengths"][1], sum(kwargs["lengths"]) - size - kwargs["lengths"][1]]

    return edit


def plan_rows(suite: Suite, scale: Scale, configs_root: str | Path = ".") -> list[RowPlan]:
    """The suite's runs at this scale, teacher first."""
    d = Path(configs_root) / suite.config_dir
    n_zskd = scale.zskd_impressions or suite.paper_impressions
    n_paper = scale.paper_impressions or n_zskd
    subset = _subset_edit(scale.real_train_subset)

    def student_ce(tree: dict[str, Any]) -> None:
        tree["models"]["model"]["key"] = suite.student_key
        subset(tree)

    rows = [
        RowPlan("teacher", "teacher, cross-entropy on real data", str(d / suite.teacher), 0, subset),
        RowPlan("student-ce", "student, cross-entropy on real data", str(d / suite.teacher), 0, student_ce),
    ]
    rows += [RowPlan(row, label, str(d / config), 0, subset) for row, label, config in suite.methods]
    zskd = str(d / suite.zskd)
    paper_syn = dict(PAPER_SYNTHESIS, num_iters=scale.paper_iters)
    paper_aug = dict(PAPER_AUGMENT, hflip=0.5) if suite.flip else PAPER_AUGMENT
    ours_syn = {} if scale.ours_iters is None else {"num_iters": scale.ours_iters}
    noise_syn = {"num_iters": 0}
    for seed in range(scale.seeds):
        rows += [
            RowPlan("zskd-paper", f"ZSKD, the paper's synthesis settings, {n_paper} DIs", zskd, seed,
                    _zskd_edit(n_paper, seed, paper_syn, paper_aug, replace_synthesis=True), n_paper),
            RowPlan("zskd-ours", f"ZSKD, our settings, {n_zskd} DIs", zskd, seed,
                    _zskd_edit(n_zskd, seed, ours_syn, None), n_zskd),
            RowPlan("noise", f"the same distillation on {n_zskd} unoptimised uniform-noise images", zskd, seed,
                    _zskd_edit(n_zskd, seed, noise_syn, None), n_zskd),
        ]  # fmt: skip
    swept = {n_zskd}  # the full-size point is the zskd-ours row
    for fraction in scale.sweep_fractions:
        n = max(int(round(fraction * suite.real_train_size)), 20)
        if n not in swept:  # two fractions that round to one count are one point
            swept.add(n)
            rows.append(
                RowPlan("zskd-sweep", f"ZSKD, our settings, {n} DIs", zskd, 0, _zskd_edit(n, 0, ours_syn, None), n)
            )
    return rows


def _redirect_teacher(tree: dict[str, Any], old: str, new: str) -> None:
    """Point every ``src_ckpt``/``dst_ckpt`` that names the teacher's checkpoint at the benchmark's own."""
    for node, _ in mappings(tree):
        for key in ("src_ckpt", "dst_ckpt"):
            if node.get(key) == old:
                node[key] = new


@dataclass(frozen=True)
class _Budget:
    """What every student row shares: images seen in training, and the ZSKD config's optimisation settings."""

    images: int
    training: dict[str, Any]


def _budget(plans: list[RowPlan], scale: Scale) -> _Budget:
    ours = next(p for p in plans if p.row == "zskd-ours")
    tree = load_config_tree(ours.template)
    ours.edit(tree)
    train = tree["train"]
    training = {
        "optimizer": train["optimizer"],
        "scheduler": train.get("scheduler"),
        "batch_size": train["train_data_loader"]["kwargs"]["batch_size"],
    }
    images = scale.images if scale.epochs is None else scale.epochs * _train_size(tree)
    return _Budget(images, training)


@dataclass(frozen=True)
class _RowConfig:
    """A row's derived config, held in memory: it is written only when the row runs (or its file is missing)."""

    path: Path
    text: str
    command: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def write(self) -> None:
        if not self.path.is_file() or self.path.read_text() != self.text:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(self.text)


def _row_config(
    plan: RowPlan,
    scale: Scale,
    out_dir: Path,
    command_prefix: str,
    teacher_ckpt: tuple[str, str],
    budget: _Budget,
    device: str = "cpu",
) -> _RowConfig:
    tree = load_config_tree(plan.template)
    _redirect_teacher(tree, *teacher_ckpt)
    plan.edit(tree)
    if plan.row != "teacher":
        _set_shared_training(tree, budget.training)
        _set_epochs(tree, max(1, round(budget.images / _train_size(tree))))
        _set_dst(tree, f"./resource/ckpt/benchmark/{out_dir.name}/{plan.name}.pt")
    path = out_dir / "configs" / f"{plan.name}.yaml"
    command = f"{command_prefix} --config {path} --seed {plan.seed}"
    if device != "cpu":  # the config then synthesises on that device too (cpu rows keep the configs' own 'auto')
        command += f" --device {device}"
        for call in find_calls(tree, IMPRESSION_BUILDER):
            call["init"]["kwargs"]["device"] = device
    header = f"{plan.label} ({scale.name} scale). Derived from {plan.template} by `zskd benchmark`.\nRun: {command}"
    return _RowConfig(path, render_config(tree, header), command)


def _weights_sha256(path: Path) -> str:
    """Digest of a checkpoint's weights (not of the file, which also holds the optimiser state and paths)."""
    return state_dict_sha256(load_checkpoint_state(path))


def run_suite(
    suite_name: str,
    scale_name: str = "quick",
    out_root: str | Path = "results",
    device: str = "cpu",
    only: Sequence[str] | None = None,
    progress: bool = True,
    configs_root: str | Path = ".",
    report_only: bool = False,
) -> dict[str, Any]:
    """Run (or resume) every row of a suite and write ``<out_root>/<suite>[-<scale>].json``, ``.md`` and ``.png``.

    Args:
        suite_name: ``mnist`` or ``fashion-mnist``.
        scale_name: ``paper``, ``quick`` (CPU-sized, the default) or ``tiny`` (the test's).
        out_root: results folder; row configs and per-row results go to ``<out_root>/<suite>[-<scale>]/``.
        device: torch device of training; other than ``cpu``, also of synthesis (written into each row's config and
            command). On ``cpu`` the synthesis uses the configs' own ``device`` (``auto``).
        only: run only these rows (e.g. ``["teacher", "zskd-ours"]``); the report covers every row measured so far.
        progress: progress bars.
        configs_root: the folder holding ``yaml_configs/`` (the repository root).
        report_only: run nothing; write the table from the recorded rows whose config is current, the teacher's as
            recorded (its checkpoint need not be on disk, e.g. in a fresh clone) and the student rows distilled from
            it. Training is not bitwise reproducible across CPU kinds, so a teacher trained again elsewhere can get
            other weights, and then no recorded student row is its.

    Returns:
        The report that was written as JSON.
    """
    if suite_name not in SUITES:
        raise ValueError(f"unknown suite {suite_name!r}; choose one of {sorted(SUITES)}")
    if scale_name not in SCALES:
        raise ValueError(f"unknown scale {scale_name!r}; choose one of {sorted(SCALES)}")
    suite, scale = SUITES[suite_name], SCALES[scale_name]
    if not (Path(configs_root) / suite.config_dir).is_dir():
        raise FileNotFoundError(
            f"no {suite.config_dir}/ under {str(configs_root)!r}: the benchmark derives its rows from the repository's "
            "shipped configs; run it from the repository root or pass --configs-root <repository root>"
        )
    stem = suite.name if scale.name == "paper" else f"{suite.name}-{scale.name}"
    out_dir = Path(out_root) / stem
    plans = plan_rows(suite, scale, configs_root)
    known = {p.row for p in plans}
    if report_only and only:
        raise ValueError("report_only runs no row, so it takes no `only` rows; drop one of the two")
    if only and not set(only) <= known:
        raise ValueError(f"unknown row(s) {sorted(set(only) - known)}; rows are {sorted(known)}")
    shipped_teacher = load_config_tree(plans[0].template)["models"]["model"]["dst_ckpt"]
    teacher_ckpt = Path(f"./resource/ckpt/benchmark/{stem}/teacher.pt")  # each suite and scale trains its own
    budget = _budget(plans, scale)
    results: list[dict[str, Any]] = []
    stale: list[str] = []
    teacher_sha: str | None = None  # weights of the teacher every student row is distilled from
    for plan in plans:
        config = _row_config(
            plan, scale, out_dir, "zskd train", (shipped_teacher, f"./{teacher_ckpt.as_posix()}"), budget, device
        )
        row_file = out_dir / "rows" / f"{plan.name}.json"
        previous = _read_row(row_file)
        why = _why_stale(plan, previous, config, None if report_only else teacher_ckpt, teacher_sha)
        if why is None:
            assert previous is not None
            config.write()
            results.append(previous)
            if plan.row == "teacher":
                teacher_sha = previous["checkpoint_sha256"]
            continue
        if report_only or (only and plan.row not in only):
            if previous is not None:  # measured once, but no longer with this config or teacher
                _logger.warning("benchmark %s: %s left out of the table: %s; rerun it with --only %s",
                                stem, plan.name, why, plan.row)  # fmt: skip
                stale.append(plan.name)
            continue
        if plan.row != "teacher" and teacher_sha is None:
            options = "".join(
                f" {flag} {value}"
                for flag, value, default in (("--out", out_root, "results"), ("--device", device, "cpu"),
                                             ("--configs-root", configs_root, "."))
                if str(value) != default
            )  # fmt: skip
            raise FileNotFoundError(
                f"the teacher row is not measured with its current config and checkpoint ({teacher_ckpt}); run it "
                f"first: zskd benchmark --suite {suite.name} --scale {scale.name}{options} --only teacher"
            )
        if previous is not None:
            _logger.info("benchmark %s: %s runs again: %s", stem, plan.name, why)
        _logger.info("benchmark %s: %s (%s)", stem, plan.name, config.command)
        config.write()
        start = time.time()
        result = run_pipeline(config.path, device=device, seed=plan.seed, progress=progress)
        record = {
            "row": plan.row,
            "name": plan.name,
            "label": plan.label,
            "seed": plan.seed,
            "num_impressions": plan.num_impressions,
            "test_acc_last": result.student_test_acc_last,
            "test_acc_best_val": result.student_test_acc,
            "best_val_acc": result.best_val_acc,
            "epochs": result.num_epochs,
            "train_seconds": round(result.train_seconds, 1),
            "wall_seconds": round(time.time() - start, 1),
            "command": config.command,
            "config": str(config.path),
            "config_sha256": config.sha256,
        }
        if plan.row == "teacher":
            teacher_sha = record["checkpoint_sha256"] = _weights_sha256(teacher_ckpt)
        else:
            record["teacher_sha256"] = teacher_sha
        row_file.parent.mkdir(parents=True, exist_ok=True)
        partial = row_file.with_suffix(".json.partial")  # an interrupted write leaves the previous record whole
        partial.write_text(json.dumps(record, indent=2))
        partial.replace(row_file)
        results.append(record)
    measured = {r["name"] for r in results}
    not_measured = [p.name for p in plans if p.name not in measured and p.name not in stale]
    report = _report(suite, scale, results, budget.images, stale, not_measured, Counter(p.row for p in plans))
    json_path = Path(out_root) / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2))
    (Path(out_root) / f"{stem}.md").write_text(_markdown(report))
    _plot(report, Path(out_root) / f"{stem}.png")
    return report


def _read_row(row_file: Path) -> dict[str, Any] | None:
    """A row's recorded result, or None if it has none."""
    if not row_file.is_file():
        return None
    try:
        record = json.loads(row_file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{row_file} is not valid JSON ({exc}); delete it and the benchmark measures that row again"
        ) from None
    if not isinstance(record, dict):
        raise ValueError(
            f"{row_file} holds a JSON {type(record).__name__}, not a row record (an object); delete it and the "
            "benchmark measures that row again"
        )
    return record


def _why_stale(
    plan: RowPlan,
    previous: dict[str, Any] | None,
    config: _RowConfig,
    teacher_ckpt: Path | None,
    teacher_sha: str | None,
) -> str | None:
    """Why a row's recorded result cannot be reused (None: it can). A student row is reused only if it was
    distilled from the teacher checkpoint the table now reports; the teacher row only if that checkpoint is on disk
    with the weights it recorded (not checked when ``teacher_ckpt`` is None: the table as recorded)."""
    if previous is None:
        return "not measured yet"
    if previous.get("config_sha256") != config.sha256:
        return f"its config changed since it was measured ({config.path})"
    if plan.row == "teacher":
        if teacher_ckpt is None:
            return None
        if not teacher_ckpt.is_file():
            return f"its checkpoint {teacher_ckpt} is missing"
        if previous.get("checkpoint_sha256") != _weights_sha256(teacher_ckpt):
            return f"its checkpoint {teacher_ckpt} holds other weights than the ones it recorded"
        return None
    if teacher_sha is None or previous.get("teacher_sha256") != teacher_sha:
        return "it was distilled from another teacher checkpoint than the table's"
    return None


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 2),
        "std": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def _report(
    suite: Suite,
    scale: Scale,
    results: list[dict[str, Any]],
    images: int,
    stale: Sequence[str] = (),
    not_measured: Sequence[str] = (),
    planned_seeds: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = {}
    for rec in results:
        if rec["row"] == "zskd-sweep":
            continue
        entry = table.setdefault(rec["row"], {"label": rec["label"], "runs": []})
        entry["runs"].append(rec)
    for row, entry in table.items():
        entry["test_acc_last"] = _summary([r["test_acc_last"] for r in entry["runs"]])
        entry["test_acc_best_val"] = _summary([r["test_acc_best_val"] for r in entry["runs"]])
        entry["wall_seconds"] = round(sum(r["wall_seconds"] for r in entry["runs"]), 1)
        # the epochs with their validation; the rest of the wall time is synthesis, data loading and the test
        entry["train_seconds"] = round(sum(r["train_seconds"] for r in entry["runs"]), 1)
        entry["paper"] = suite.paper.get(row)
        entry["seeds_planned"] = (planned_seeds or {}).get(row, len(entry["runs"]))
        # The teacher's figure is its checkpoint's, the one the students are distilled from (chosen on held-out
        # real images); every student row's is its last epoch's.
        entry["accuracy"] = entry["test_acc_best_val" if row == "teacher" else "test_acc_last"]
    sweep = sorted(
        (r["num_impressions"], r["test_acc_last"], r["epochs"])
        for r in results
        if r["row"] == "zskd-sweep" or (r["row"] == "zskd-ours" and r["seed"] == 0)
    )
    return {
        "suite": suite.name,
        "scale": dataclasses.asdict(scale),
        "images_per_student_row": images,
        "metric": "real test-set accuracy (%) at the last epoch (the teacher: of the checkpoint the students use); "
        "mean and sample std over seeds",
        "rows": table,
        "sweep": [
            {"num_impressions": n, "test_acc_last": a, "epochs": e, "fraction": n / suite.real_train_size}
            for n, a, e in sweep
        ],
        "runs": results,
        "stale": list(stale),
        "not_measured": list(not_measured),
    }


def _fmt(summary: dict[str, float], planned: int = 1) -> str:
    """``mean ± std (n=k)`` for a row of several seeds, ``(n=k of m)`` while some are not measured yet."""
    n = summary["n"]
    if planned <= 1:
        return f"{summary['mean']:.2f}"
    seeds = f"n={n}" if n >= planned else f"n={n} of {planned}"
    if n == 1:
        return f"{summary['mean']:.2f} ({seeds})"
    return f"{summary['mean']:.2f} ± {summary['std']:.2f} ({seeds})"


def _markdown(report: dict[str, Any]) -> str:
    scale = report["scale"]
    lines = [
        f"# ZSKD benchmark: {report['suite']} ({scale['name']} scale)",
        "",
        f"Real test-set accuracy (%) at the last epoch; mean ± sample std over seeds. Every student row sees the same "
        f"number of training images ({report['images_per_student_row']:,}) with the same optimiser, "
        "schedule and batch size. `best-val` is the test accuracy of the epoch chosen on the held-out split (not given "
        "for noise, whose held-out images carry nothing to choose on); the teacher's accuracy is that of its "
        "checkpoint the students are distilled from, chosen so. Paper: Nayak et al. 2019, Table 1 (their figures "
        "select the epoch on the test set). Wall time includes a row's synthesis only where its DIs were not on disk "
        "already (from an earlier row or scale); `training` is the part spent in the epochs (with their validation).",
        "",
        "| row | what | epochs | accuracy | best-val | paper | wall time (s, all seeds) | training (s) | "
        "command (first seed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row, entry in report["rows"].items():
        paper = "" if entry["paper"] is None else f"{entry['paper']:.2f}"
        planned = entry.get("seeds_planned", 1)
        best_val = "—" if row == "noise" else _fmt(entry["test_acc_best_val"], planned)
        lines.append(
            f"| {row} | {entry['label']} | {entry['runs'][0]['epochs']} | {_fmt(entry['accuracy'], planned)} | "
            f"{best_val} | {paper} | {entry['wall_seconds']:.0f} | {entry['train_seconds']:.0f} | "
            f"`{entry['runs'][0]['command']}` |"
        )
    if report["stale"]:
        lines += ["", "Not in the table (measured with another config or teacher; rerun them with `--only`): "
                  + ", ".join(report["stale"]) + "."]  # fmt: skip
    if report.get("not_measured"):
        lines += ["", "Not measured yet (the suite's command without `--only` resumes): "
                  + ", ".join(report["not_measured"]) + "."]  # fmt: skip
    if report["sweep"]:
        lines += ["", "## Accuracy against Data Impression count (seed 0)", ""]
        lines += ["| DIs | share of the real training set | epochs | accuracy |", "|---|---|---|---|"]
        lines += [
            f"| {p['num_impressions']} | {p['fraction']:.1%} | {p['epochs']} | {p['test_acc_last']:.2f} |"
            for p in report["sweep"]
        ]
    return "\n".join(lines) + "\n"


def _plot(report: dict[str, Any], path: Path) -> None:
    """Accuracy against DI count, with the real-data rows as reference lines."""
    if not report["sweep"]:  # e.g. a suite run with --only teacher zskd-paper: nothing to plot
        _logger.info("no DI-count sweep measured yet; %s not written", path)
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot is an extra: pip install 'zskd-torchdistill[bench]'
        _logger.warning("matplotlib is not installed; %s not written (pip install 'zskd-torchdistill[bench]')", path)
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p["num_impressions"] for p in report["sweep"]]
    ax.plot(xs, [p["test_acc_last"] for p in report["sweep"]], "o-", label="ZSKD (ours), seed 0")
    ax.set_xscale("log")
    for row, style in (("kd", "--"), ("student-ce", ":"), ("noise", "-.")):
        entry = report["rows"].get(row)
        if entry:
            ax.axhline(entry["accuracy"]["mean"], linestyle=style, color="gray", label=f"{row}")
    ax.set_xlabel("Data Impressions")
    ax.set_ylabel("real test accuracy (%)")
    ax.set_title(f"{report['suite']} ({report['scale']['name']} scale)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
