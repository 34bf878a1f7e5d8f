"""The benchmark's suites (one data set's table: its configs and the paper's figures) and scales (how big a run is),
with the two fixed recipes its rows apply: the release's synthesis settings and the paper's augmentation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ...synthesis import GENERATOR_DEFAULTS

__all__ = [
    "BN_PRIOR_KEYS",
    "DEEPINVERSION_SYNTHESIS",
    "ENGINE",
    "GENERATOR_KEYS",
    "PAPER_AUGMENT",
    "RELEASE_SYNTHESIS",
    "SCALES",
    "SUITES",
    "TIMM_STUDENT",
    "Scale",
    "Suite",
    "suite_scale",
]


@dataclass(frozen=True)
class Scale:
    """How big a run is. ``paper`` is the paper's DI count; the others shrink it to fit a CPU or a test."""

    name: str
    epochs: int | None  # of the ZSKD rows; other student rows see as many images (the teacher keeps its config's)
    zskd_impressions: int | None  # ours and noise rows; None: the suite's paper DI count
    release_iters: int  # synthesis steps of the release-recipe row (the release: 1500)
    sweep_fractions: tuple[float, ...]  # of the real training set, for the DI-count sweep
    seeds: int
    real_train_subset: int | None = None  # real-data rows train on this many images (tests only)
    ours_iters: int | None = None  # synthesis steps of our rows (None: the ZSKD config's own; tests shrink it)
    release_impressions: int | None = None  # DIs of the release-recipe row (None: as zskd_impressions)
    images: int | None = None  # training images every student row sees (None: ``epochs`` of the ZSKD rows' DIs)

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.images is None):
            raise ValueError(f"scale {self.name!r}: set exactly one of epochs and images")


SCALES: dict[str, Scale] = {
    "paper": Scale("paper", epochs=200, zskd_impressions=None, release_iters=1500,
                   sweep_fractions=(0.01, 0.05, 0.2, 0.4), seeds=3),
    # quick: our rows at the paper's DI count; the release-recipe row (1,500 steps per DI) at 6,000 DIs. Every
    # student row of every suite sees 2,592,000 training images: 120 epochs of MNIST's 21,600 training DIs, 60 of
    # Fashion-MNIST's 43,200 (sized for 2 CPU cores: the suites' wall times are in results/README.md).
    "quick": Scale("quick", epochs=None, zskd_impressions=None, release_iters=1500,
                   sweep_fractions=(0.01, 0.05, 0.2, 0.4), seeds=3, release_impressions=6000, images=2_592_000),
    "tiny": Scale("tiny", epochs=1, zskd_impressions=40, release_iters=3,
                  sweep_fractions=(0.0005,), seeds=2, real_train_subset=200, ours_iters=3),
}  # fmt: skip


@dataclass(frozen=True)
class Suite:
    """One data set's table: its configs and the paper's figures (Nayak et al. 2019, Table 1)."""

    name: str
    config_dir: str
    teacher: str  # config file names inside config_dir
    zskd: str  # its student_model is the student of every student row
    methods: tuple[tuple[str, str, str], ...]  # (row, label, config) of the real-data KD rows
    real_train_size: int  # the real training set's size, for the DI-count sweep's fractions
    paper_impressions: int
    paper: dict[str, float] = field(default_factory=dict)
    flip: bool = True  # the release-recipe and DeepInversion rows flip images horizontally (not for digits)
    # the rows run once per seed: zskd-release, zskd-ours, noise (the paper's suites); zskd-bn and deepinversion for
    # a BatchNorm teacher, whose ZSKD config carries the BN prior (zskd-ours runs it without)
    seed_rows: tuple[str, ...] = ("zskd-release", "zskd-ours", "noise")
    sweep: bool = True  # the DI-count sweep of the scale's fractions
    scale_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per scale name: Scale fields
    # a model block (key, kwargs) every student row trains instead of the ZSKD config's student_model
    student: dict[str, Any] | None = None
    # distil from this suite's teacher row (its recorded checkpoint) instead of training a teacher of its own, so the
    # students sit beside that suite's on one teacher (and read the same DI stores)
    teacher_suite: str | None = None
    # the pixel engine's step count and schedule for the deepinversion row, where the ZSKD config synthesises through
    # a generator (`method: 'generator'`, whose few steps per batch are no budget for optimising pixels)
    pixel_steps: dict[str, Any] = field(default_factory=dict)


def suite_scale(suite: Suite, scale: Scale) -> Scale:
    """The scale as this suite runs it: a suite whose teacher costs far more than LeNet-5 shrinks some scales."""
    overrides = suite.scale_overrides.get(scale.name)
    return dataclasses.replace(scale, **overrides) if overrides else scale


_LENET_METHODS = (
    ("kd", "KD (Hinton et al.) on real data", "kd-lenet5_half_from_lenet5.yaml"),
    ("dist", "DIST (Huang et al.) + cross-entropy on real data", "dist-lenet5_half_from_lenet5.yaml"),
    ("at", "attention transfer + KD on real data", "at-lenet5_half_from_lenet5.yaml"),
)

_TIMM_METHODS = (("kd", "KD (Hinton et al.) on real data", "kd-lenet5_half_from_resnet10t_{}.yaml"),)
# real-control: the zskd-bn row's pipeline on as many real images (unlabelled), what the DIs lack beside their number
_TIMM_ROWS = ("zskd-ours", "zskd-bn", "deepinversion", "noise", "real-control")
# resnet10t's forward and backward cost ~60x LeNet-5's on a CPU: 2,000 pixel-optimised DIs per Fashion-MNIST row
# instead of the paper's 48,000. The MNIST timm config synthesises through a generator, ~4x faster per DI than the
# pixel engine, so its suite takes the config's 12,000 DIs (more DIs lifted its students up to 12,000 and no further,
# results/README.md); its deepinversion row optimises pixels, at the step count and schedule the pixel engine
# ran before. Both suites distil on fixed augmented views whose teacher outputs are stored once, so their rows see
# the LeNet-5 suites' 2,592,000 images (with the teacher on every batch, the CPU allowed 108,000).
_TIMM_QUICK = {"quick": {"zskd_impressions": 2000, "images": 2_592_000}}
_MNIST_TIMM_QUICK = {"quick": {"zskd_impressions": 12000}}
_MNIST_TIMM_PIXEL_STEPS = {"num_iters": 200, "lr_schedule": "cosine"}

# A timm student beside LeNet-5-half, from the timm suites' teachers: LCNet at 0.35 width (timm's `lcnet_035`,
# 0.38 M parameters), the cheapest per step of the small timm CNNs timed (results/student_step/timm_students.txt);
# its training step costs ~9x LeNet-5-half's, so its rows see a quarter of the timm suites' images (on the timm
# suites' own DI counts, whose stores they read).
TIMM_STUDENT = {"key": "timm_model", "kwargs": {"model_name": "lcnet_035", "num_classes": 10, "in_chans": 1}}
_TIMM_STUDENT_QUICK_IMAGES = 648_000

_ALEXNET_METHODS = tuple(
    (row, label, config.replace("lenet5_half_from_lenet5", "alexnet_cifar_half_from_alexnet_cifar"))
    for row, label, config in _LENET_METHODS
)

SUITES: dict[str, Suite] = {
    "mnist": Suite(
        "mnist", "yaml_configs/mnist", "ce-lenet5.yaml", "zskd-lenet5_half_from_lenet5.yaml",
        _LENET_METHODS, 60000, 24000, {"teacher": 99.34, "student-ce": 98.92, "kd": 99.25, "zskd-release": 98.77},
        flip=False,
    ),
    "fashion-mnist": Suite(
        "fashion-mnist", "yaml_configs/fashion_mnist", "ce-lenet5.yaml",
        "zskd-lenet5_half_from_lenet5.yaml", _LENET_METHODS, 60000, 48000,
        {"teacher": 90.84, "student-ce": 89.43, "kd": 89.66, "zskd-release": 79.62},
    ),
    "fashion-mnist-timm": Suite(
        "fashion-mnist-timm", "yaml_configs/timm", "ce-resnet10t_fashion_mnist.yaml",
        "zskd-lenet5_half_from_resnet10t_fashion_mnist.yaml",
        tuple((r, label, c.format("fashion_mnist")) for r, label, c in _TIMM_METHODS), 60000, 48000,
        seed_rows=_TIMM_ROWS, sweep=False, scale_overrides=_TIMM_QUICK,
    ),
    "mnist-timm": Suite(
        "mnist-timm", "yaml_configs/timm", "ce-resnet10t_mnist.yaml",
        "zskd-lenet5_half_from_resnet10t_mnist.yaml",
        tuple((r, label, c.format("mnist")) for r, label, c in _TIMM_METHODS), 60000, 24000,
        flip=False, seed_rows=_TIMM_ROWS, sweep=False, scale_overrides=_MNIST_TIMM_QUICK,
        pixel_steps=_MNIST_TIMM_PIXEL_STEPS,
    ),
    "cifar10": Suite(  # needs CIFAR-10 (torchvision download) and, in practice, a GPU
        "cifar10", "yaml_configs/cifar10", "ce-alexnet_cifar.yaml",
        "zskd-alexnet_cifar_half_from_alexnet_cifar.yaml", _ALEXNET_METHODS, 50000, 40000,
        {"teacher": 83.03, "student-ce": 80.04, "kd": 80.08, "zskd-release": 69.56},
    ),
}  # fmt: skip
for _teacher_suite in ("mnist-timm", "fashion-mnist-timm"):  # the timm suites with the timm student
    _quick = {**SUITES[_teacher_suite].scale_overrides.get("quick", {}), "images": _TIMM_STUDENT_QUICK_IMAGES}
    SUITES[f"{_teacher_suite}-student"] = dataclasses.replace(
        SUITES[_teacher_suite], name=f"{_teacher_suite}-student", scale_overrides={"quick": _quick},
        student=TIMM_STUDENT, teacher_suite=_teacher_suite,
    )  # fmt: skip

# The engine's speed settings (bf16 autocast, channels-last): same DI loss and agreement as fp32 in
# benchmarks/synthesis_speed.py, at several times the speed. They change how fast, not what is optimised.
ENGINE = {"precision": "bf16", "channels_last": True}
# The authors' release, its CIFAR-10 recipe (the paper never published its MNIST or Fashion-MNIST synthesis
# settings): Adam lr 0.001 for 1500 steps, batch 100, the whole batch min-max rescaled every step, later batches of a
# (class, beta) row warm-started from the previous one.
RELEASE_SYNTHESIS = {"lr": 0.001, "batch_size": 100, "temperature": 20.0, "minmax_rescale": True, "warm_start": True}
RELEASE_SYNTHESIS.update(ENGINE)
# Ours is the shipped ZSKD config itself (its synthesis, image priors and augmentation); the rows only set the DI
# count and the seed.
# The BatchNorm prior's keys: the zskd-ours row runs a ZSKD config without them (the zskd-bn row keeps them).
BN_PRIOR_KEYS = ("bn_weight", "bn_distance", "bn_first_multiplier")
# The generator route's keys (`method: 'generator'` and its settings): the rows that optimise pixels themselves
# (deepinversion, noise) run a ZSKD config without them.
GENERATOR_KEYS = ("method", *GENERATOR_DEFAULTS)
# DeepInversion's own recipe (Yin et al. CVPR 2020; the CIFAR-10 settings its authors publish: Adam lr 0.05, BN
# prior weight 10 on Eq. 4 as written, jitter of 2 pixels, cross-entropy against one-hot class targets at
# temperature 1; plus the flips of their ImageNet recipe, `--do_flip`, where the suite flips). Run through our engine
# at the ZSKD rows' step count, batch size and schedule (the suite's pixel_steps where those rows use a generator);
# its total-variation term (weight 2.5e-5 on L2 norms over the whole batch) has no counterpart in our per-image R_TV
# and is left out: on the timm teachers its gradient is ~1e-5 of the BN prior's (benchmarks/deepinversion_tv.py).
DEEPINVERSION_SYNTHESIS = {"lr": 0.05, "temperature": 1.0, "bn_weight": 10.0, "bn_distance": "deepinversion",
                           "jitter": 2}  # fmt: skip
# The paper augments the transfer set with scaling, translation, rotation and flipping; ours adds blur and contrast.
PAPER_AUGMENT = {"degrees": 15, "translate": 0.1, "scale": 0.1}
