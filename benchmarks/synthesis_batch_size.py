"""Synthesis speed against batch size: does the engine make LeNet-5's Data Impressions faster in bigger batches?

    OMP_NUM_THREADS=1 python benchmarks/synthesis_batch_size.py --ckpt resource/ckpt/mnist/ce/lenet5.pt

The same ``--images`` DIs (the same soft targets, drawn once) are synthesised with the synthesis settings of
``--config`` (the main job's: bf16, channels-last, cosine lr 0.1 over 100 steps, TV 1.0 and L2 0.1 priors), in
batches of each size, one engine loss per size (as a store builds it), after one untimed warm-up batch. The sizes
alternate within each of ``--rounds`` rounds, so a machine that slows down mid-run slows all of them alike. Prints
the machine and threads, then image-steps per second for each size and round.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch
from machine import describe_cpu  # benchmarks/machine.py, beside this script

from zskd_plugin.app.config_checks import IMPRESSION_BUILDER
from zskd_plugin.app.yaml_tree import find_calls, load_config_tree
from zskd_plugin.models import create_model
from zskd_plugin.synthesis import SynthesisConfig, SynthesisLoss, frozen_teacher, synthesize_batch
from zskd_plugin.teacher import load_checkpoint_state

MEAN, STD = torch.tensor([0.1307]), torch.tensor([0.3081])


def configs_setting(path: str) -> SynthesisConfig:
    """The synthesis settings of a ZSKD config's Data Impression dataset."""
    calls = find_calls(load_config_tree(path), IMPRESSION_BUILDER)
    return SynthesisConfig(**next(iter(calls))["init"]["kwargs"]["synthesis"])


def image_steps_per_second(
    teacher: torch.nn.Module, targets: torch.Tensor, setting: SynthesisConfig, batch_size: int
) -> float:
    config = dataclasses.replace(setting, batch_size=batch_size)
    generator = torch.Generator().manual_seed(0)
    with frozen_teacher(teacher):
        loss_fn = SynthesisLoss(teacher, MEAN, STD, config)
        warm_up = dataclasses.replace(config, num_iters=3)
        synthesize_batch(teacher, targets[:batch_size], (1, 32, 32), MEAN, STD, warm_up, generator, loss_fn=loss_fn)
        start = time.perf_counter()
        for i in range(0, len(targets), batch_size):
            synthesize_batch(teacher, targets[i : i + batch_size], (1, 32, 32), MEAN, STD, config, generator,
                             loss_fn=loss_fn)  # fmt: skip
        seconds = time.perf_counter() - start
    return len(targets) * config.num_iters / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", default="resource/ckpt/mnist/ce/lenet5.pt", help="the LeNet-5 teacher")
    parser.add_argument("--config", default="yaml_configs/mnist/zskd-lenet5_half_from_lenet5-quick.yaml",
                        help="the ZSKD config whose synthesis settings are timed")  # fmt: skip
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[200, 500, 1000, 2000])
    parser.add_argument("--images", type=int, default=2000, help="DIs per batch size and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"machine: {describe_cpu()}, torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={threads}")
    teacher = create_model("lenet5", num_classes=10)
    teacher.load_state_dict(load_checkpoint_state(args.ckpt))
    # soft targets on the simplex, one draw for every size (their values barely matter for speed)
    setting = configs_setting(args.config)
    targets = torch.softmax(3 * torch.randn(args.images, 10, generator=torch.Generator().manual_seed(0)), dim=1)
    for round_ in range(args.rounds):
        for batch_size in args.batch_sizes:
            rate = image_steps_per_second(teacher, targets, setting, batch_size)
            print(f"round {round_} batch {batch_size:5d}: {rate:8.0f} image-steps/s", flush=True)


if __name__ == "__main__":
    main()
