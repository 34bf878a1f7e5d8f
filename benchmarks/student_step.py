"""The student's training step alone, images per second by batch size: does a bigger batch make it cheaper per image?

    OMP_NUM_THREADS=1 python benchmarks/student_step.py
    python benchmarks/student_step.py --student lenet5_half --batch-sizes 128 256 512 1024
    OMP_NUM_THREADS=1 python benchmarks/student_step.py --student lenet5_half lcnet_035 --batch-sizes 256

One step is what distillation does per batch once the teacher's outputs are known: the student's forward, the ZSKD
loss (``zskd_kd_loss`` at the main job's temperature) against fixed teacher logits, backward and an Adam update.
Random 1x32x32 inputs; a few warm-up steps, then about ``--images`` images per batch size. A student is one of the
paper's models or a timm name (built with ``in_chans=1``). Prints the machine and threads, then images per second and
milliseconds per step for each student and batch size. Wall times on a shared CPU are noisy: compare the rows of one
run.
"""

from __future__ import annotations

import argparse
import os
import time

import timm
import torch
from machine import describe_cpu  # benchmarks/machine.py, beside this script

from zskd_plugin.losses import zskd_kd_loss
from zskd_plugin.models import MODEL_ENTRYPOINTS, create_model


def build_student(name: str) -> torch.nn.Module:
    """One of the paper's models by name, else a timm model taking one input channel."""
    if name in MODEL_ENTRYPOINTS:
        return create_model(name, num_classes=10)
    return timm.create_model(name, num_classes=10, in_chans=1)


def images_per_second(student: str, batch_size: int, images: int, temperature: float) -> tuple[float, float]:
    """(images per second, seconds per step) of the student's step at this batch size."""
    torch.manual_seed(0)
    model = build_student(student)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.004)
    x, teacher = torch.randn(batch_size, 1, 32, 32), 10 * torch.randn(batch_size, 10)

    def step() -> None:
        optimizer.zero_grad()
        zskd_kd_loss(model(x), teacher, temperature).backward()
        optimizer.step()

    for _ in range(5):
        step()
    steps = max(20, images // batch_size)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return batch_size / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", nargs="+", default=["lenet5_half"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--images", type=int, default=20000, help="images timed per batch size")
    parser.add_argument("--temperature", type=float, default=20.0)
    args = parser.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"machine: {describe_cpu()}, torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={threads}; "
          f"student {' '.join(args.student)}")  # fmt: skip
    for student in args.student:
        params = sum(p.numel() for p in build_student(student).parameters())
        for batch_size in args.batch_sizes:
            rate, seconds = images_per_second(student, batch_size, args.images, args.temperature)
            print(f"{student} ({params / 1e6:.2f} M parameters) batch {batch_size:5d}: {rate:8.0f} images/s  "
                  f"({1000 * seconds:6.1f} ms per step)")  # fmt: skip


if __name__ == "__main__":
    main()
