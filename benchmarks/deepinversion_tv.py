"""How much DeepInversion's total-variation term weighs beside its other terms, for the timm suites' teachers.

The `deepinversion` rows of the timm suites run DeepInversion's recipe (Yin et al. CVPR 2020) without its
total-variation prior. Its CIFAR-10 release computes that prior as the L2 norms, over the whole batch, of the
differences between the normalised input and its four neighbour shifts (right, down and the two diagonals), summed,
at weight 2.5e-5 (1e-3 in its "better images" setting). This script measures the gradient each term puts on the
pixels of one batch of 200 DIs, at the uniform initialisation and after the row's 200 synthesis steps, through the
engine's own objective (``SynthesisLoss``): the class term (cross-entropy against one-hot targets at temperature 1),
the BatchNorm prior (Eq. 4 as published, weight 10) and the total-variation prior at both weights. Every term is
summed over the batch as the engine sums its per-image objective, so the norms compare as the optimiser sees them.

    OMP_NUM_THREADS=1 python benchmarks/deepinversion_tv.py --suite fashion-mnist-timm mnist-timm
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

import torch
from machine import describe_cpu
from torch import Tensor, nn

from zskd_plugin.app.benchmark.suites import DEEPINVERSION_SYNTHESIS
from zskd_plugin.synthesis import SynthesisConfig, SynthesisLoss, frozen_teacher, synthesize_batch
from zskd_plugin.teacher import TeacherSpec, load_teacher

# the suites' teachers and their input normalisation (yaml_configs/timm/ce-resnet10t_*.yaml)
TEACHERS = {
    "fashion-mnist-timm": ("resource/ckpt/benchmark/fashion-mnist-timm-quick/teacher.pt", 0.2860, 0.3530, True),
    "mnist-timm": ("resource/ckpt/benchmark/mnist-timm-quick/teacher.pt", 0.1307, 0.3081, False),
}
WEIGHTS = (2.5e-5, 1e-3)  # DeepInversion's CIFAR-10 default and its "better images" setting


def deepinversion_tv(z: Tensor) -> Tensor:
    """DeepInversion's total variation of a batch (its CIFAR-10 release): the L2 norms, over the whole batch, of the
    differences to the right, lower and two diagonal neighbours, summed."""
    diffs = (
        z[:, :, :, :-1] - z[:, :, :, 1:],
        z[:, :, :-1, :] - z[:, :, 1:, :],
        z[:, :, 1:, :-1] - z[:, :, :-1, 1:],
        z[:, :, :-1, :-1] - z[:, :, 1:, 1:],
    )
    return sum(torch.linalg.vector_norm(d) for d in diffs)


def pixel_gradient(objective: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The gradient of a scalar objective on the pixels of ``x``."""
    x = x.detach().clone().requires_grad_(True)
    objective(x).backward()
    return x.grad


def term_norms(
    teacher: nn.Module, x: Tensor, targets: Tensor, mean: Tensor, std: Tensor, config: SynthesisConfig
) -> dict[str, float]:
    """The norm of each term's gradient on the pixels of ``x`` (the whole batch's objective, as the engine sums it)."""
    batch = x.shape[0]
    class_only = dataclasses.replace(config, bn_weight=0.0, bn_distance="deepinversion")
    with frozen_teacher(teacher):
        g_class = pixel_gradient(lambda v: SynthesisLoss(teacher, mean, std, class_only)(v, targets).sum(), x)
        g_both = pixel_gradient(lambda v: SynthesisLoss(teacher, mean, std, config)(v, targets).sum(), x)
    # a batch statistic enters every image's objective once, as the BatchNorm prior does (SynthesisLoss)
    g_tv = pixel_gradient(lambda v: batch * deepinversion_tv((v - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)), x)
    norms = {"class": g_class.norm().item(), "BN prior x10": (g_both - g_class).norm().item()}
    norms.update({f"TV x{w:g}": (w * g_tv).norm().item() for w in WEIGHTS})
    return norms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", nargs="+", default=list(TEACHERS), choices=list(TEACHERS))
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} thread(s)")
    for suite in args.suite:
        ckpt, mean, std, flip = TEACHERS[suite]
        spec = TeacherSpec(key="resnet10t", kwargs={"num_classes": 10, "in_chans": 1}, src_ckpt=ckpt)
        teacher = load_teacher(spec)
        mean_t, std_t = torch.tensor([mean]), torch.tensor([std])
        targets = torch.eye(10)[torch.arange(args.batch) % 10]
        # the deepinversion row's synthesis (its recipe through the ZSKD config's schedule), in fp32
        config = SynthesisConfig(
            **DEEPINVERSION_SYNTHESIS, num_iters=args.steps, lr_schedule="cosine", batch_size=args.batch, flip=flip
        )
        start = torch.rand((args.batch, 1, 32, 32), generator=torch.Generator().manual_seed(0))
        with frozen_teacher(teacher):
            result = synthesize_batch(teacher, targets, (1, 32, 32), mean_t, std_t, config,
                                      torch.Generator().manual_seed(0))  # fmt: skip
        print(f"\n{suite} ({ckpt}), batch {args.batch}, gradient norm of each term on the pixels:")
        print(f"{'term':>16} {'at the start':>14} {f'after {args.steps} steps':>16}")
        before = term_norms(teacher, start, targets, mean_t, std_t, config)
        after = term_norms(teacher, result.images, targets, mean_t, std_t, config)
        for name in before:
            print(f"{name:>16} {before[name]:14.3e} {after[name]:16.3e}")
        agree = result.agreement.float().mean().item()
        print(f"teacher agrees with the targets on {agree:.0%} after {args.steps} steps")


if __name__ == "__main__":
    main()
