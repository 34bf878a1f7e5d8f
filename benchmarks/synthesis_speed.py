"""Synthesis speed: a straightforward reference loop against the plugin's engine, same teacher, targets and seeds.

    python benchmarks/synthesis_speed.py                       # LeNet-5, CIFAR AlexNet, timm resnet10t, a custom CNN
    python benchmarks/synthesis_speed.py --models lenet5 --ckpt lenet5=resource/ckpt/mnist/ce/lenet5.pt

For each teacher it synthesises the same ``--batches`` batches (targets drawn as the plugin draws them, the same
uniform initial noise) with

* ``reference``: fp32, eager, ``torch.optim.Adam`` on the batch, ``--iters`` steps, written plainly below;
* the engine (:func:`zskd_plugin.synthesis.synthesize_batch`) in each variant (precision, channels-last,
  torch.compile, early stopping, and a cosine learning-rate schedule that settles in fewer steps),

and prints seconds, Data Impressions per second, image-steps per second (budget ``batch x iters`` per second and
the steps actually run), the speed-up over the reference in the same run, the final loss (fp32 teacher) and the
share of DIs whose teacher argmax is the target's.

Distance to the machine's limit: the run starts with the CPU's name and flags and a matmul probe of its fp32 and
bf16 peak (``benchmarks/machine.py``) on the same threads; each teacher gets its FLOPs per image-step (convolutions
and matmuls of one forward and input-gradient backward, ``torch.utils.flop_counter``), and each row the GFLOP/s it
reached and their share of the peak in its precision. A first batch per variant is run untimed (warm-up and the
one-off compile, 5 steps); its seconds are printed separately. Teachers without a checkpoint use random weights: their
speed is real, their loss and agreement only compare variants with each other.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from machine import count_flops, describe_cpu, matmul_peak_gflops  # benchmarks/machine.py, beside this script

from zskd_plugin.dirichlet import sample_soft_targets
from zskd_plugin.models import create_model
from zskd_plugin.similarity import class_similarity, find_classifier
from zskd_plugin.synthesis import (
    SynthesisConfig,
    SynthesisLoss,
    frozen_teacher,
    resolve_precision,
    synthesize_batch,
)
from zskd_plugin.teacher import load_checkpoint_state

TEACHERS = {  # name -> (factory, input size, mean, std)
    "lenet5": (lambda: create_model("lenet5", num_classes=10), (1, 32, 32), (0.1307,), (0.3081,)),
    "alexnet_cifar": (
        lambda: create_model("alexnet_cifar", num_classes=10),
        (3, 32, 32),
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
    "resnet10t": (
        lambda: __import__("timm").create_model("resnet10t", num_classes=10, in_chans=1, pretrained=False),
        (1, 32, 32),
        (0.1307,),
        (0.3081,),
    ),
    # a user's CNN that cannot take channels-last tensors (examples/mnist_cnn.py: run with PYTHONPATH=.)
    "cnn3": (
        lambda: __import__("examples.mnist_cnn", fromlist=["ThreeConvCNN"]).ThreeConvCNN(num_classes=10),
        (1, 28, 28),
        (0.1307,),
        (0.3081,),
    ),
}

WARMUP_STEPS = 5
FAST = {"precision": "bf16", "channels_last": True, "lr_schedule": "cosine", "lr": 0.5, "num_iters": 80}
# what the MNIST and Fashion-MNIST configs run: fewer steps, and image priors that trade teacher loss for smoother
# images (the reported loss is the teacher's cross-entropy alone)
CONFIGS = {"precision": "bf16", "channels_last": True, "lr_schedule": "cosine", "lr": 0.1, "num_iters": 100,
           "tv_weight": 1.0, "l2_weight": 0.1}  # fmt: skip
VARIANTS = {  # name -> engine settings over the base SynthesisConfig (the reference's lr and steps)
    "engine fp32": {},
    "engine bf16": {"precision": "bf16"},
    "engine bf16 channels_last": {"precision": "bf16", "channels_last": True},
    "engine fp32 channels_last": {"channels_last": True},
    "engine fp32 compile": {"compile": True},
    "engine bf16 compile": {"precision": "bf16", "compile": True},
    "engine fp32 early-stop": {"early_stop_tol": 2e-4},
    "engine bf16 channels_last early-stop": {"precision": "bf16", "channels_last": True, "early_stop_tol": 2e-4},
    "engine fp32 cosine lr 0.5, 80 steps": {"lr_schedule": "cosine", "lr": 0.5, "num_iters": 80},
    "engine fast (bf16 channels_last cosine 80)": FAST,
    "engine fast + compile": dict(FAST, compile=True, channels_last=False),
    "configs (fast, lr 0.1, 100 steps, priors)": CONFIGS,
    # the same with precision 'auto' (bf16 only where the CPU has bf16 units), and with half the steps
    "configs auto": dict(CONFIGS, precision="auto"),
    "configs auto, 50 steps": dict(CONFIGS, precision="auto", num_iters=50),
    "configs fp32, no channels_last": dict(CONFIGS, precision="fp32", channels_last=False),
}  # fmt: skip


@dataclass
class Row:
    teacher: str
    variant: str
    seconds: float
    warmup_seconds: float
    dis_per_s: float
    budget_img_steps_per_s: float
    run_img_steps_per_s: float
    speedup: float
    final_loss: float
    agreement: float
    gflops: float  # run img-steps/s x FLOPs per image-step
    peak_share: float  # of the matmul probe's peak in the row's precision


def reference_loss(teacher, x, targets, mean, std, tau: float) -> torch.Tensor:
    """The paper's synthesis loss on a batch: cross-entropy of the teacher's softened output against the targets."""
    logits = teacher((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1))
    return -(targets * F.log_softmax(logits / tau, dim=1)).sum()


def reference_batch(teacher, targets, init, mean, std, iters: int, lr: float, tau: float) -> tuple[torch.Tensor, int]:
    """The straightforward loop: fp32, eager, torch.optim.Adam, clamp to [0, 1]."""
    x = init.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(iters):
        opt.zero_grad()
        reference_loss(teacher, x, targets, mean, std, tau).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach(), iters * x.shape[0]


def flops_per_image_step(teacher, targets, init, mean, std, tau: float) -> float:
    """Matmul and convolution FLOPs of one synthesis step (teacher forward, backward to the input) per image."""
    x = init.clone().requires_grad_(True)

    def step() -> None:
        reference_loss(teacher, x, targets, mean, std, tau).backward()

    return count_flops(step) / x.shape[0]


def quality(teacher, images, targets, mean, std, tau: float) -> tuple[float, float]:
    with torch.no_grad():
        logits = teacher((images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1))
    loss = -(targets * F.log_softmax(logits / tau, dim=1)).sum(1).mean().item()
    return loss, (logits.argmax(1) == targets.argmax(1)).float().mean().item()


def bench_teacher(name: str, args: argparse.Namespace, ckpt: str | None, peaks: dict[str, float]) -> list[Row]:
    factory, input_size, mean, std = TEACHERS[name]
    torch.manual_seed(0)
    teacher = factory()
    if ckpt:
        teacher.load_state_dict(load_checkpoint_state(ckpt))
    mean, std = torch.tensor(mean), torch.tensor(std)
    base = SynthesisConfig(num_iters=args.iters, lr=args.lr, batch_size=args.batch_size, temperature=20.0)
    similarity = class_similarity(find_classifier(teacher).weight.detach())
    rng = np.random.default_rng(0)
    num_classes = similarity.shape[0]
    batches = []  # (targets, init) per batch, one class each, alternating beta 1.0 / 0.1 as the plugin plans
    for b in range(args.batches + 1):
        targets = sample_soft_targets(similarity[b % num_classes], (1.0, 0.1)[b % 2], args.batch_size, rng)
        init = torch.rand((args.batch_size, *input_size), generator=torch.Generator().manual_seed(b))
        batches.append((targets, init))
    budget = args.batches * args.batch_size * args.iters
    rows: list[Row] = []
    with frozen_teacher(teacher):
        flops = flops_per_image_step(teacher, *batches[0], mean, std, 20.0)
        print(f"{name}: {flops / 1e6:.2f} MFLOP per image-step (forward + backward to the input)")
        t0 = time.perf_counter()
        reference_batch(teacher, *batches[0], mean, std, WARMUP_STEPS, args.lr, 20.0)
        warm = time.perf_counter() - t0
        t0, images, run_steps = time.perf_counter(), [], 0
        for targets, init in batches[1:]:
            x, n = reference_batch(teacher, targets, init, mean, std, args.iters, args.lr, 20.0)
            images.append(x)
            run_steps += n
        ref_seconds = time.perf_counter() - t0
        loss, agree = quality(teacher, torch.cat(images), torch.cat([t for t, _ in batches[1:]]), mean, std, 20.0)
        gflops = run_steps / ref_seconds * flops / 1e9
        rows.append(
            Row(
                name,
                "reference",
                ref_seconds,
                warm,
                args.batches * args.batch_size / ref_seconds,
                budget / ref_seconds,
                run_steps / ref_seconds,
                1.0,
                loss,
                agree,
                gflops,
                gflops / peaks["fp32"],
            )
        )
        print(_format(rows[-1]), flush=True)
        for variant in args.variants:
            config = replace(base, **VARIANTS[variant])
            loss_fn = SynthesisLoss(teacher, mean, std, config)
            run = lambda t, i: synthesize_batch(
                teacher, t, input_size, mean, std, config, torch.Generator(), init=i, loss_fn=loss_fn
            )
            t0 = time.perf_counter()
            synthesize_batch(  # warm-up: the one-off compile and kernel selection, a few steps
                teacher, batches[0][0], input_size, mean, std, replace(config, num_iters=WARMUP_STEPS),
                torch.Generator(), init=batches[0][1], loss_fn=loss_fn,
            )  # fmt: skip
            warm = time.perf_counter() - t0
            t0, images, run_steps = time.perf_counter(), [], 0
            for targets, init in batches[1:]:
                result = run(targets, init)
                images.append(result.images)
                run_steps += int(result.steps.sum()) * 1
            seconds = time.perf_counter() - t0
            loss, agree = quality(teacher, torch.cat(images), torch.cat([t for t, _ in batches[1:]]), mean, std, 20.0)
            gflops = run_steps / seconds * flops / 1e9
            peak = peaks[resolve_precision(config, torch.device("cpu")).precision]
            rows.append(
                Row(
                    name,
                    variant,
                    seconds,
                    warm,
                    args.batches * args.batch_size / seconds,
                    budget / seconds,
                    run_steps / seconds,
                    ref_seconds / seconds,
                    loss,
                    agree,
                    gflops,
                    gflops / peak,
                )
            )
            print(_format(rows[-1]), flush=True)
    return rows


def _format(r: Row) -> str:
    return (
        f"{r.teacher:14s} {r.variant:32s} {r.seconds:7.1f} s (warm-up {r.warmup_seconds:5.1f} s) "
        f"{r.dis_per_s:7.1f} DI/s {r.budget_img_steps_per_s:8.0f} budget img-steps/s "
        f"{r.run_img_steps_per_s:8.0f} run img-steps/s  x{r.speedup:4.2f}  loss {r.final_loss:.4f} "
        f"agree {r.agreement:.1%}  {r.gflops:6.1f} GFLOP/s ({r.peak_share:.0%} of peak)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(TEACHERS), choices=list(TEACHERS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--ckpt", action="append", default=[], help="teacher=checkpoint (repeatable)")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per variant (plus one warm-up)")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    ckpts = dict(item.split("=", 1) for item in args.ckpt)
    machine = describe_cpu()
    peaks = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.batches} x {args.batch_size} DIs, "
        f"{args.iters} steps, lr {args.lr}\nmachine: {machine}; matmul probe (1024^2, same threads): "
        f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s"
    )
    rows = [row for name in args.models for row in bench_teacher(name, args, ckpts.get(name), peaks)]
    if args.json:
        record = {"args": vars(args), "torch": torch.__version__, "machine": machine, "peak_gflops": peaks}
        with open(args.json, "w") as f:
            json.dump(dict(record, rows=[asdict(r) for r in rows]), f, indent=2)


if __name__ == "__main__":
    main()
