"""Amortised synthesis against the engine: can a generator with a meta-learned initialisation make a config's Data
Impressions faster than per-pixel Adam, at the same objective?

    OMP_NUM_THREADS=1 python benchmarks/amortised_synthesis.py          # the main job's LeNet-5 teacher and settings
    OMP_NUM_THREADS=1 python benchmarks/amortised_synthesis.py \
        --config yaml_configs/timm/zskd-lenet5_half_from_resnet10t_mnist.yaml \
        --ckpt resource/ckpt/benchmark/mnist-timm-quick/teacher.pt      # timm resnet10t with its BatchNorm prior

The lever is Fang et al., "Up to 100x Faster Data-free Knowledge Distillation" (AAAI 2022): instead of optimising
every image from noise, a small generator ``G(z)`` makes a batch, and each batch starts from a meta-learned
generator and runs only a few Adam steps on the generator's weights and the batch's latents; after each batch the
meta-initialisation moves towards the adapted weights (Reptile: ``theta <- theta + eps * (theta_k - theta)``). The
first batch, from a random generator, gets ``--first-steps``.

Both routes minimise the engine's own objective (``SynthesisLoss``: the config's temperature, priors, precision and
memory format) against the same Dirichlet soft targets, drawn from the teacher's class similarity the way a store
draws them (with other seeds), for ``--parts`` parts spread over the store's (class, beta) rows, in store order.
Printed: the machine, the FLOPs of one image-step of each route (``torch.utils.flop_counter``: convolutions and
matmuls, forward and backward), their image-steps per second, DIs per second with each route's steps (the
generator's first batch included) and the mean tempered cross-entropy and teacher argmax agreement the DIs reach
(priors excluded, as the store records it).
This is the objective only; what decides is a student distilled on the DIs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from machine import count_flops, describe_cpu  # benchmarks/machine.py, beside this script
from torch import Tensor, nn

from zskd_plugin.amortised import AmortisedSynthesizer, ImageGenerator
from zskd_plugin.app.config_checks import IMPRESSION_BUILDER
from zskd_plugin.app.runner import load_model
from zskd_plugin.app.yaml_tree import find_calls, load_config_tree
from zskd_plugin.dirichlet import DirichletConfig, sample_soft_targets
from zskd_plugin.impressions import ImpressionConfig, plan_parts
from zskd_plugin.similarity import class_similarity, find_classifier
from zskd_plugin.synthesis import (
    SynthesisConfig,
    SynthesisLoss,
    SynthesisResult,
    frozen_teacher,
    resolve_precision,
    synthesize_batch,
)
from zskd_plugin.teacher import InputConfig, TeacherSpec, resolve_input_config


@dataclasses.dataclass
class Problem:
    """A config's teacher, its input and synthesis settings, and the soft targets of some of its store's parts."""

    teacher: nn.Module
    input: InputConfig
    setting: SynthesisConfig
    parts: list[Tensor]

    def loss(self, setting: SynthesisConfig | None = None) -> SynthesisLoss:
        return SynthesisLoss(self.teacher, self.input.mean_tensor(), self.input.std_tensor(), setting or self.setting)


@dataclasses.dataclass
class RouteResult:
    seconds: float
    image_steps: int
    images: int
    loss: float
    agreement: float


def timed_route(parts: list[Tensor], synthesize: Callable[[int, Tensor], SynthesisResult]) -> RouteResult:
    """Time ``synthesize(index, targets)`` over the parts, in order; the mean final objective and agreement."""
    losses, agreement, seconds, image_steps = [], [], 0.0, 0
    for index, targets in enumerate(parts):
        start = time.perf_counter()
        result = synthesize(index, targets)
        seconds += time.perf_counter() - start
        image_steps += int(result.steps.sum())
        losses.append(result.losses)
        agreement.append(result.agreement)
    return RouteResult(seconds, image_steps, sum(len(t) for t in parts), torch.cat(losses).mean().item(),
                       torch.cat(agreement).float().mean().item())  # fmt: skip


def engine_route(problem: Problem) -> RouteResult:
    teacher, setting, size = problem.teacher, problem.setting, problem.input.input_size
    mean, std, generator = problem.input.mean_tensor(), problem.input.std_tensor(), torch.Generator().manual_seed(0)
    with frozen_teacher(teacher):
        loss_fn = problem.loss()
        warm_up = dataclasses.replace(setting, num_iters=2)
        synthesize_batch(teacher, problem.parts[0], size, mean, std, warm_up, generator, loss_fn=loss_fn)
        return timed_route(problem.parts, lambda _, targets: synthesize_batch(
            teacher, targets, size, mean, std, setting, generator, loss_fn=loss_fn))  # fmt: skip


def generator_route(problem: Problem, args: argparse.Namespace, width: int, steps: int) -> RouteResult:
    """The config's objective through ``method: generator`` (its jitter and flips included), the generator's
    settings from the command line, a constant learning rate."""
    config = dataclasses.replace(
        problem.setting,
        method="generator",
        num_iters=steps,
        first_iters=args.first_steps,
        generator_width=width,
        latent_dim=args.latent_dim,
        generator_lr=args.lr_generator,
        lr=args.lr_latent,
        meta_lr=args.meta_lr,
        lr_schedule="constant",
    )
    mean, std = problem.input.mean_tensor(), problem.input.std_tensor()
    with frozen_teacher(problem.teacher):
        synthesizer = AmortisedSynthesizer(
            problem.teacher, problem.input.input_size, mean, std, config, seed=0, loss_fn=problem.loss(config)
        )
        return timed_route(problem.parts, lambda index, targets: synthesizer(
            targets, torch.Generator().manual_seed(index)))  # fmt: skip


def flops_per_image_step(problem: Problem, width: int | None, latent_dim: int) -> float:
    """FLOPs of one image's forward and backward: to the pixels (engine) or to the generator and latent."""
    targets, size = problem.parts[0][:8], problem.input.input_size
    with frozen_teacher(problem.teacher):
        loss_fn = problem.loss(dataclasses.replace(problem.setting, precision="fp32", channels_last=False))
        if width is None:
            x = torch.rand(8, *size, requires_grad=True)
            return count_flops(lambda: loss_fn(x, targets).sum().backward()) / 8
        g, z = ImageGenerator(latent_dim, width, size), torch.randn(8, latent_dim, requires_grad=True)
        return count_flops(lambda: loss_fn(g(z), targets).sum().backward()) / 8


def load_problem(config_path: str, ckpt: str | None, count: int) -> Problem:
    """The config's teacher (its checkpoint replaced by ``ckpt`` when given), input and synthesis settings, and the
    soft targets of ``count`` of its store's parts, evenly spaced over the parts (so over the (class, beta) rows)."""
    kwargs = next(iter(find_calls(load_config_tree(config_path), IMPRESSION_BUILDER)))["init"]["kwargs"]
    spec = dict(kwargs["teacher"], **({"src_ckpt": ckpt} if ckpt else {}))
    teacher = load_model(spec).eval()
    input_spec = {name: spec[name] for name in ("input_size", "mean", "std") if spec.get(name) is not None}
    input_config = resolve_input_config(teacher, TeacherSpec(key=spec["key"], kwargs=spec.get("kwargs") or {},
                                                             **input_spec))  # fmt: skip
    setting = SynthesisConfig(**kwargs["synthesis"])
    config = ImpressionConfig(kwargs["num_impressions"], dirichlet=DirichletConfig(**kwargs["dirichlet"]),
                              synthesis=setting)  # fmt: skip
    classifier = find_classifier(teacher, None, spec.get("classifier_path"))
    similarity = class_similarity(classifier.weight, config.dirichlet.epsilon)
    plans = plan_parts(classifier.out_features, config)
    chosen = np.linspace(0, len(plans) - 1, count).round().astype(int)
    parts = []
    for index in chosen:
        rng = np.random.default_rng([0, int(index)])
        parts.append(torch.cat([sample_soft_targets(similarity[k], b, n, rng) for k, b, n in plans[index].segments]))
    return Problem(teacher, input_config, setting, parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="yaml_configs/mnist/zskd-lenet5_half_from_lenet5-quick.yaml",
                        help="the ZSKD config whose teacher, synthesis settings and targets are used")  # fmt: skip
    parser.add_argument("--ckpt", default=None, help="the teacher's checkpoint, when not the config's")
    parser.add_argument("--parts", type=int, default=12, help="store parts synthesised by each route")
    parser.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16], help="generator widths")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10], help="generator steps per batch")
    parser.add_argument("--first-steps", type=int, default=100, help="the first batch's steps")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--lr-generator", type=float, default=5e-3)
    parser.add_argument("--lr-latent", type=float, default=5e-2)
    parser.add_argument("--meta-lr", type=float, default=0.5, help="Reptile step towards the adapted generator")
    args = parser.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"machine: {describe_cpu()}, torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={threads}")
    problem = load_problem(args.config, args.ckpt, args.parts)
    setting = problem.setting = resolve_precision(problem.setting, torch.device("cpu"))
    print(f"setting: {setting}")
    print(f"{len(problem.parts)} parts of {len(problem.parts[0])} DIs; {args}")
    engine = engine_route(problem)
    teacher_flops = flops_per_image_step(problem, None, args.latent_dim)
    columns = ("MFLOP/img-step", 14), ("img-steps/s", 12), ("DIs/s", 8), ("x engine", 9), ("loss", 7), ("agree", 6)
    print(f"{'route':<36} " + " ".join(f"{name:>{width}}" for name, width in columns))

    def report(name: str, flops: float, result: RouteResult) -> None:
        rate = result.images / result.seconds
        print(f"{name:<36} {flops / 1e6:14.2f} {result.image_steps / result.seconds:12.0f} {rate:8.1f} "
              f"{rate / (engine.images / engine.seconds):9.2f} {result.loss:7.4f} {result.agreement:6.1%}",
              flush=True)  # fmt: skip

    report(f"engine, {setting.num_iters} steps per DI", teacher_flops, engine)
    for width in args.widths:
        flops = flops_per_image_step(problem, width, args.latent_dim)
        for steps in args.steps:
            result = generator_route(problem, args, width, steps)
            report(f"generator width {width}, {steps} steps per batch", flops, result)


if __name__ == "__main__":
    main()
