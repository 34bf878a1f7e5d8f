"""Where a distillation epoch's time goes: the data loader, the teacher's forward, the student's step, the rest.

    python benchmarks/distill_profile.py                                  # the main job's config, 3 epochs
    python benchmarks/distill_profile.py --config yaml_configs/timm/zskd-lenet5_half_from_resnet10t_mnist.yaml

Builds the config's datasets, models and torchdistill distillation box as ``zskd train`` does (its DI store must
exist: ``zskd synthesize --config <config>``), then times, over the same epochs and in this order:

- ``loader``: iterating the training loader alone (per-item reads, collation and any ``batch_transform`` refresh);
- ``teacher``: the teacher's forward on those batches, as torchdistill's forward process calls it;
- ``student``: the student's forward, the loss against stored teacher outputs, backward and the optimiser step;
- ``box``: torchdistill's whole step (``forward_process`` and ``post_forward_process``) on batches from the loader.

Prints the machine, threads and each part's seconds per epoch and images per second. Wall times on a shared CPU are
noisy: compare the parts of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from machine import describe_cpu  # benchmarks/machine.py, beside this script
from torchdistill.common import yaml_util
from torchdistill.common.main_util import import_dependencies
from torchdistill.core.distillation import get_distillation_box

from zskd_plugin.app.runner import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="yaml_configs/mnist/zskd-lenet5_half_from_lenet5-quick.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    cfg = yaml_util.load_yaml_file(args.config)
    import_dependencies(cfg.get("dependencies"))
    models = cfg["models"]
    teacher, student = load_model(models["teacher_model"]), load_model(models["student_model"])
    device = torch.device("cpu")
    box = get_distillation_box(teacher, student, cfg["datasets"], cfg["train"], device, None, False, 1)
    loader = box.train_data_loader
    images_per_epoch = len(loader.dataset)
    print(f"{args.config}: {images_per_epoch} images per epoch, batch {loader.batch_size}, {args.epochs} epochs")
    print(f"machine: {describe_cpu()}, torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")  # fmt: skip

    box.pre_epoch_process(epoch=0)
    batches, seconds = [], {}
    start = time.perf_counter()
    for _ in range(args.epochs):
        batches.extend(list(loader))
    seconds["loader"] = time.perf_counter() - start

    start = time.perf_counter()
    outputs = []
    for x, targets, supp in batches:
        with torch.no_grad():
            outputs.append(box.teacher_forward_proc(box.teacher_model, x, targets, supp))
    seconds["teacher"] = time.perf_counter() - start

    criterion = box.criterion
    start = time.perf_counter()
    for (x, targets, supp), teacher_out in zip(batches, outputs):
        io = {"teacher": {".": {"output": teacher_out}}, "student": {".": {"output": box.student_model(x)}}}
        loss = criterion(io, {}, targets)
        box.optimizer.zero_grad()
        loss.backward()
        box.optimizer.step()
    seconds["student"] = time.perf_counter() - start

    start = time.perf_counter()
    steps = 0
    for _ in range(args.epochs):
        for x, targets, supp in loader:
            loss = box.forward_process(x, targets, supp)
            box.post_forward_process(loss=loss)
            steps += 1
    seconds["box (incl. loader)"] = time.perf_counter() - start

    total_images = images_per_epoch * args.epochs
    for part, s in seconds.items():
        print(f"{part:>20}: {s / args.epochs:7.2f} s per epoch, {total_images / s:9.0f} images/s")
    parts = seconds["loader"] + seconds["teacher"] + seconds["student"]
    overhead = seconds["box (incl. loader)"] - parts
    print(f"{'box - parts':>20}: {overhead / args.epochs:7.2f} s per epoch (torchdistill's bookkeeping, hooks)")


if __name__ == "__main__":
    main()
