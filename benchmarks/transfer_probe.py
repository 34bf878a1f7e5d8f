"""Probe: how much a LeNet-5-half student learns about real images from a transfer set, in one plain loop.

Diagnostic for issue 17 (BatchNorm teachers), not a benchmark suite: one seed, the last epoch, the real test set.
Each arm distils the same way (ZSKD loss at T=20, Adam 0.004 on a cosine schedule, the suite config's batch size and
augmentation, ``--images`` training images seen) on another transfer set:

- ``real1``/``real2``: 1x/2x the first store's training-split size of real training images, unlabelled;
- ``base1``: the first store's training DIs; ``base2``: the first and second stores' training DIs;
- ``adi``: the first store's training DIs plus new DIs for the second store's targets, synthesised with the store's
  own settings plus Adaptive DeepInversion's competition term ``alpha * (1 - JS(p_T, p_S))`` (Yin et al. CVPR 2020,
  Eq. 8) against a student distilled on the first store's DIs (``--student``).

Example (Fashion-MNIST timm suite, its zskd-bn seed-0 and seed-1 stores)::

    python benchmarks/transfer_probe.py --dataset fashion-mnist \\
        --teacher resource/ckpt/benchmark/fashion-mnist-timm-quick/teacher.pt \\
        --stores resource/zskd_store/timm_model-8f419cee89872a0a resource/zskd_store/timm_model-a41f0621502cb0c3 \\
        --student resource/ckpt/benchmark/fashion-mnist-timm-quick/zskd-bn-seed0.pt --arms real1 base1 adi base2 real2
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets, transforms

from zskd_plugin.augment import ImpressionAugment
from zskd_plugin.dataset import split_indices
from zskd_plugin.losses import zskd_kd_loss
from zskd_plugin.models.lenet import lenet5_half
from zskd_plugin.store import ImpressionStore
from zskd_plugin.synthesis import SynthesisConfig, SynthesisLoss, frozen_teacher, synthesize_batch
from zskd_plugin.teacher import load_checkpoint_state

# the timm suites' ZSKD configs: normalisation, batch size and distillation augmentation
DATA = {
    "mnist": (datasets.MNIST, 0.1307, 0.3081, 64, None),
    "fashion-mnist": (
        datasets.FashionMNIST, 0.2860, 0.3530, 256,
        dict(degrees=15, translate=0.1, scale=0.1, hflip=0.5, blur_sigma=2.0, contrast=0.7),
    ),
}  # fmt: skip


def load_store(path: Path) -> tuple[Tensor, Tensor, dict]:
    """The store's training split (its own seed and a tenth held out, as the suites' configs split it)."""
    store = ImpressionStore.open(path)
    data = store.load()
    train, _ = split_indices(data.images.shape[0], 0.1, store.spec["impressions"]["seed"])
    return data.images[train], data.targets[train], store.spec


def js_divergence(p: Tensor, q: Tensor) -> Tensor:
    m = 0.5 * (p + q)
    kl = lambda a: (a * (a.clamp_min(1e-8) / m.clamp_min(1e-8)).log()).sum(1)  # noqa: E731
    return 0.5 * kl(p) + 0.5 * kl(q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATA), required=True)
    parser.add_argument("--teacher", type=Path, required=True, help="the suite's resnet10t teacher checkpoint")
    parser.add_argument("--stores", type=Path, nargs=2, required=True, help="two DI stores of that teacher")
    parser.add_argument("--student", type=Path, help="adi: the student the new DIs compete against")
    parser.add_argument("--arms", nargs="+", required=True, choices=["real1", "real2", "base1", "base2", "adi"])
    parser.add_argument("--alpha", type=float, default=1.0, help="adi: weight of the competition term")
    parser.add_argument("--images", type=int, default=216_000, help="training images each arm sees")
    parser.add_argument("--data-root", default="./data")
    args = parser.parse_args()

    dataset_cls, mean, std, batch, augment = DATA[args.dataset]
    mean_t, std_t = torch.tensor([mean]), torch.tensor([std])
    norm = transforms.Normalize([mean], [std])
    teacher = timm.create_model("resnet10t", num_classes=10, in_chans=1, pretrained=False)
    teacher.load_state_dict(load_checkpoint_state(args.teacher))
    teacher.eval()
    pixels = transforms.Compose([transforms.ToTensor(), transforms.Pad(2)])
    test = dataset_cls(args.data_root, train=False, download=False, transform=transforms.Compose([pixels, norm]))
    x0, _, _ = load_store(args.stores[0])

    def distill(x: Tensor, seed: int = 0) -> float:
        torch.manual_seed(seed)
        student = lenet5_half(num_classes=10)
        opt = torch.optim.Adam(student.parameters(), 0.004)
        steps = math.ceil(args.images / batch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        gen = torch.Generator().manual_seed(seed)  # the order; the augmentation draws from its own
        aug = ImpressionAugment(**augment, generator=torch.Generator().manual_seed(seed)) if augment else (lambda v: v)
        done = 0
        while done < steps:
            epoch = norm(aug(x))  # one augmented copy per epoch, as the DI dataset's batch_transform
            for idx in torch.randperm(len(x), generator=gen).split(batch):
                student.train()
                with torch.no_grad():
                    t = teacher(epoch[idx])
                loss = zskd_kd_loss(student(epoch[idx]), t, 20.0)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                done += 1
                if done >= steps:
                    break
        student.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in torch.utils.data.DataLoader(test, batch_size=1000):
                correct += (student(xb).argmax(1) == yb).sum().item()
        return 100 * correct / len(test)

    def synthesize_against(targets: Tensor, config: SynthesisConfig, student: torch.nn.Module) -> Tensor:
        for p in student.parameters():
            p.requires_grad_(False)
        out = []
        with frozen_teacher(teacher) as t:
            loss_fn = SynthesisLoss(t, mean_t, std_t, config)
            logits: dict[str, Tensor] = {}
            loss_fn.model.register_forward_hook(lambda m, a, o: logits.__setitem__("t", o))
            objective = loss_fn._fn

            def with_competition(x: Tensor, y: Tensor) -> Tensor:
                loss = objective(x, y)
                p_t = F.softmax(logits["t"].float(), 1)
                p_s = F.softmax(student((x - mean_t.view(1, -1, 1, 1)) / std_t.view(1, -1, 1, 1)), 1)
                return loss + args.alpha * (1 - js_divergence(p_t, p_s))

            loss_fn._fn = with_competition
            gen = torch.Generator().manual_seed(1001)
            for i in range(0, len(targets), config.batch_size):
                r = synthesize_batch(t, targets[i : i + config.batch_size], tuple(x0.shape[1:]), mean_t, std_t,
                                     config, gen, loss_fn=loss_fn)  # fmt: skip
                out.append(r.images)
                print(f"adi batch {i}: {r.agreement.float().mean():.3f} on their target class", flush=True)
        return torch.cat(out)

    results = {}
    for arm in args.arms:
        start = time.time()
        if arm.startswith("real"):
            raw = dataset_cls(args.data_root, train=True, download=False, transform=pixels)
            order = torch.randperm(len(raw), generator=torch.Generator().manual_seed(7))[: len(x0) * int(arm[4:])]
            x = torch.stack([raw[i][0] for i in order.tolist()])
        elif arm == "base1":
            x = x0
        elif arm == "base2":
            x = torch.cat([x0, load_store(args.stores[1])[0]])
        else:
            if args.student is None:
                parser.error("the adi arm needs --student")
            _, y1, spec1 = load_store(args.stores[1])
            student = lenet5_half(num_classes=10)
            student.load_state_dict(load_checkpoint_state(args.student))
            student.eval()
            x = torch.cat([x0, synthesize_against(y1, SynthesisConfig(**spec1["impressions"]["synthesis"]), student)])
        results[arm] = distill(x)
        seconds = time.time() - start
        print(f"{arm}: {results[arm]:.2f} ({len(x)} images, {args.images} seen, {seconds:.0f} s)", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
