"""torch's kernels against the plugin's replacements for them, in the work that uses them, side by side.

    OMP_NUM_THREADS=1 python benchmarks/kernel_speed.py
    python benchmarks/kernel_speed.py --json results/kernel_speed/lenet.json

Each comparison runs the same work twice, alternating the two variants in rounds so that a busy machine slows both
alike, and prints milliseconds per batch for both, their ratio, and whether the results agree:

* max pooling, ``torch.nn.MaxPool2d`` against :class:`zskd_plugin.models.pooling.MaxPool2d`, in LeNet-5 and
  LeNet-5-half (the main job's teacher and student): ``teacher forward`` (no-grad forward of a batch, the
  distillation's teacher), ``student step`` (forward, cross-entropy, backward, Adam) and ``synthesis step``
  (forward and backward to the input, weights frozen);
* the augmentation's sampling grid, ``F.affine_grid`` against :func:`zskd_plugin.augment.affine_grid`: one
  ``ImpressionAugment`` pass with the main job's settings over a batch, the same draws both times.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from machine import describe_cpu  # benchmarks/machine.py, beside this script
from torch import nn

from zskd_plugin import augment
from zskd_plugin.models import create_model
from zskd_plugin.models.pooling import MaxPool2d

MODELS = {"lenet5": (1, 32), "lenet5_half": (1, 32)}
MAIN_JOB_AUGMENT = {"degrees": 25, "translate": 0.15, "scale": 0.2, "blur_sigma": 2.0, "contrast": 0.7}


def with_torch_pooling(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every plugin pooling layer replaced by ``torch.nn.MaxPool2d`` of the same settings."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if type(module) is MaxPool2d:
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            torch_pool = nn.MaxPool2d(module.kernel_size, module.stride, module.padding, module.dilation)
            setattr(parent, name.rpartition(".")[2], torch_pool)
    return model


def tasks(model: nn.Module, batch: int, channels: int, size: int) -> dict[str, Callable[[], torch.Tensor]]:
    """name -> a callable doing one batch of that work and returning what to compare."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, channels, size, size, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0)  # lr 0: the step costs the same, the weights stay

    def teacher_forward() -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    def student_step() -> torch.Tensor:
        optimizer.zero_grad()
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()
        return model.get_classifier().weight.grad.clone()

    def synthesis_step() -> torch.Tensor:
        frozen = [p.requires_grad_(False) for p in model.parameters()]  # all of them required grad
        image = x.clone().requires_grad_(True)
        F.cross_entropy(model(image), labels).backward()
        for p in frozen:
            p.requires_grad_(True)
        return image.grad

    return {"teacher forward": teacher_forward, "student step": student_step, "synthesis step": synthesis_step}


def augmentation_tasks(batch: int) -> dict[str, Callable[[], torch.Tensor]]:
    """variant -> one ImpressionAugment pass over a batch with the main job's settings, the same draws each call."""
    images = torch.rand(batch, 1, 32, 32, generator=torch.Generator().manual_seed(0))

    def run(grid: Callable[..., torch.Tensor]) -> torch.Tensor:
        original = augment.affine_grid
        augment.affine_grid = grid
        try:
            return augment.ImpressionAugment(**MAIN_JOB_AUGMENT, generator=torch.Generator().manual_seed(1))(images)
        finally:
            augment.affine_grid = original

    def torch_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return F.affine_grid(theta, [theta.shape[0], 1, height, width], align_corners=False)

    return {"torch": lambda: run(torch_grid), "ours": lambda: run(augment.affine_grid)}


def compare(label: str, theirs: Callable[[], torch.Tensor], ours: Callable[[], torch.Tensor], args) -> dict:
    """Times ``theirs`` and ``ours`` in alternating rounds; prints and returns the row."""
    agree = torch.allclose(ours(), theirs(), rtol=1e-5, atol=1e-6)
    seconds = {"torch": 0.0, "ours": 0.0}
    for _ in range(args.rounds):
        for variant, run in (("torch", theirs), ("ours", ours)):
            t0 = time.perf_counter()
            for _ in range(args.reps):
                run()
            seconds[variant] += time.perf_counter() - t0
    ms = {k: v / (args.rounds * args.reps) * 1e3 for k, v in seconds.items()}
    print(f"{label:40s} torch {ms['torch']:7.2f} ms   ours {ms['ours']:7.2f} ms   x{ms['torch'] / ms['ours']:.2f}   "
          f"same result: {agree}", flush=True)  # fmt: skip
    return {"what": label, "torch_ms": ms["torch"], "ours_ms": ms["ours"], "speedup": ms["torch"] / ms["ours"],
            "same_result": agree}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10, help="batches per variant in one round")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"machine: {describe_cpu()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batch {args.batch_size}, {args.rounds} rounds of {args.reps} batches per variant")  # fmt: skip
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        ours = create_model(name, num_classes=10).eval()
        theirs = with_torch_pooling(ours)
        channels, size = MODELS[name]
        ours_tasks, theirs_tasks = (tasks(m, args.batch_size, channels, size) for m in (ours, theirs))
        for task in ours_tasks:
            rows.append(compare(f"pooling: {name} {task}", theirs_tasks[task], ours_tasks[task], args))
    grids = augmentation_tasks(args.batch_size)
    rows.append(compare("sampling grid: augmentation pass", grids["torch"], grids["ours"], args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": describe_cpu(), "threads": torch.get_num_threads(), "args": vars(args),
                       "rows": rows}, f, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
