"""Exploratory probe for a timm BatchNorm teacher (issue 17): resnet10t trained 3 epochs on real Fashion-MNIST ->
Data Impressions from it (with or without the BatchNorm prior) -> LeNet-5-half distilled on the DIs alone (the
Fashion-MNIST config's augmentation, ZSKD loss at T=20, Adam 0.004 cosine, batch 256) -> real test accuracy.

Plain PyTorch around the library's store, augmentation and loss (no torchdistill), so a lever can be tried in
minutes; the benchmark suites are the figures to quote. Appends one JSON line per run to ``OUT/results.jsonl``.

    python benchmarks/timm_bn_probe.py --stage teacher
    python benchmarks/timm_bn_probe.py --stage zskd --bn-weight 0.01
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms as T

from zskd_plugin.augment import ImpressionAugment
from zskd_plugin.builder import make_impression_store
from zskd_plugin.dataset import split_indices
from zskd_plugin.losses import zskd_kd_loss
from zskd_plugin.models import create_model

p = argparse.ArgumentParser()
p.add_argument("--stage", choices=["teacher", "zskd", "diagnose", "batch"], required=True)
p.add_argument("--bn-weight", type=float, default=0.0)
p.add_argument("--bn-first", type=float, default=1.0)
p.add_argument("--bn-distance", default="deepinversion", help="synthesis bn_distance")
p.add_argument("--jitter", type=int, default=0, help="synthesis jitter (pixels)")
p.add_argument("--flip", action="store_true", help="synthesis flips")
p.add_argument("--precision", default="bf16", help="synthesis precision (bf16: emulated, slow, without bf16 units)")
p.add_argument(
    "--mixed-batches",
    action="store_true",
    help="synthesise batches that mix all classes outside the store (the second round's records; the store itself "
    "has mixed its parts whenever bn_weight is set since the third round)",
)
p.add_argument("--tv", type=float, default=1.0)
p.add_argument("--l2", type=float, default=0.1)
p.add_argument("--n", type=int, default=4000)
p.add_argument("--epochs", type=int, default=60)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--iters", type=int, default=100)
p.add_argument("--lr", type=float, default=0.1, help="synthesis Adam learning rate (pixel units)")
p.add_argument("--kd-temperature", type=float, default=20.0)
p.add_argument("--syn-temperature", type=float, default=20.0, help="synthesis temperature (the paper: 20)")
p.add_argument("--blur", type=float, default=2.0, help="ImpressionAugment blur_sigma during distillation")
p.add_argument("--contrast", type=float, default=0.7, help="ImpressionAugment contrast during distillation")
p.add_argument("--real-control", action="store_true", help="distil on as many real training images instead (control)")
p.add_argument("--png", default=None, help="batch stage: where to save the batch as an image grid")
p.add_argument("--data-root", default="./data")
p.add_argument("--out", default="./resource/timm_bn_probe")
args = p.parse_args()
torch.set_num_threads(int(os.environ.get("T", "2")))
MEAN, STD = 0.2860, 0.3530
OUT = Path(args.out)
OUT.mkdir(parents=True, exist_ok=True)
tf = T.Compose([T.ToTensor(), T.Pad(2), T.Normalize([MEAN], [STD])])
test = torchvision.datasets.FashionMNIST(args.data_root, train=False, download=False, transform=tf)
test_loader = torch.utils.data.DataLoader(test, batch_size=1000)


def evaluate(model, counts=None):
    """Test accuracy (%); with ``counts`` (a (10,) tensor) also how often each class is predicted."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            pred = model(x).argmax(1)
            correct += (pred == y).sum().item()
            if counts is not None:
                counts += torch.bincount(pred, minlength=len(counts))
    return 100.0 * correct / len(test)


ckpt = OUT / "resnet10t_fmnist.pt"
if args.stage == "teacher":
    torch.manual_seed(0)
    train = torchvision.datasets.FashionMNIST(args.data_root, train=True, download=False, transform=tf)
    loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True)
    model = timm.create_model("resnet10t", num_classes=10, in_chans=1)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for epoch in range(3):
        model.train()
        t0 = time.time()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        print(f"teacher epoch {epoch + 1}: test {evaluate(model):.2f}% ({time.time() - t0:.0f} s)", flush=True)
    torch.save(model.state_dict(), ckpt)
    sys.exit(0)

if args.stage == "diagnose":  # the teacher on real test images and on each store's DIs, side by side
    from zskd_plugin.store import ImpressionStore
    from zskd_plugin.synthesis import SynthesisConfig, SynthesisLoss, frozen_teacher

    teacher = timm.create_model("resnet10t", num_classes=10, in_chans=1)
    teacher.load_state_dict(torch.load(ckpt))
    teacher.eval()
    plain_test = torchvision.datasets.FashionMNIST(
        args.data_root, train=False, download=False, transform=T.Compose([T.ToTensor(), T.Pad(2)])
    )
    probe_aug = ImpressionAugment(degrees=15, translate=0.1, scale=0.1, hflip=0.5, blur_sigma=args.blur,
                                  contrast=args.contrast, generator=torch.Generator().manual_seed(0))  # fmt: skip
    mean_t, std_t = torch.tensor([MEAN]), torch.tensor([STD])

    def describe(name, x):
        with torch.no_grad(), frozen_teacher(teacher):
            z = teacher((x - MEAN) / STD)
            kept = (z.argmax(1) == teacher((probe_aug(x) - MEAN) / STD).argmax(1)).float().mean() * 100
            y = torch.softmax(z, 1)[:500]
            r_bn = SynthesisLoss(teacher, mean_t, std_t, SynthesisConfig(bn_weight=1.0))(x[:500], y)
            r_bn = (r_bn - SynthesisLoss(teacher, mean_t, std_t, SynthesisConfig())(x[:500], y)).mean()
        top2 = z.topk(2, 1).values
        gap, p20 = (top2[:, 0] - top2[:, 1]).mean(), torch.softmax(z / 20, 1).max(1).values.mean()
        print(
            f"{name}: logits std {z.std():.1f}, max |z| {z.abs().max():.1f}, top-2 gap {gap:.1f}; softmax(z/20) max "
            f"{p20:.3f}; argmax kept under the augmentation {kept:.1f}%; R_BN {r_bn:.1f}; pixel mean {x.mean():.3f}"
        )

    describe("real test images", torch.stack([plain_test[i][0] for i in range(1000)]))
    for folder in sorted((OUT / "stores").iterdir()):
        store = ImpressionStore.open(folder)
        data = store.load()
        pick = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))[:1000]
        syn = store.spec["impressions"]["synthesis"]
        describe(
            f"DIs {folder.name} (bn_weight {syn.get('bn_weight', 0.0)}, steps {syn['num_iters']})", data.images[pick]
        )
    sys.exit(0)

teacher_spec = {
    "key": "resnet10t",
    "source": "timm",
    "kwargs": {"num_classes": 10, "in_chans": 1},
    "src_ckpt": str(ckpt),
    "input_size": [1, 32, 32],
    "mean": [MEAN],
    "std": [STD],
}
synthesis = {
    "num_iters": args.iters,
    "lr": args.lr,
    "lr_schedule": "cosine",
    "batch_size": 200,
    "temperature": args.syn_temperature,
    "tv_weight": args.tv,
    "l2_weight": args.l2,
    "precision": args.precision,
    "channels_last": True,
    "bn_weight": args.bn_weight,
    "bn_first_multiplier": args.bn_first,
    "bn_distance": args.bn_distance,
    "jitter": args.jitter,
    "flip": args.flip,
}
if args.stage == "batch":  # one batch of 200 (20 per class, beta 1) with these settings, beside real test images
    import numpy as np

    from zskd_plugin.dirichlet import sample_soft_targets
    from zskd_plugin.similarity import class_similarity, find_classifier
    from zskd_plugin.synthesis import SynthesisConfig, batchnorm_layers, frozen_teacher, synthesize_batch

    teacher = timm.create_model("resnet10t", num_classes=10, in_chans=1)
    teacher.load_state_dict(torch.load(ckpt))
    teacher.eval()
    sim = class_similarity(find_classifier(teacher, 10).weight)
    rng = np.random.default_rng(args.seed)
    targets = torch.cat([sample_soft_targets(sim[c], 1.0, 20, rng) for c in range(10)])
    mean_t, std_t = torch.tensor([MEAN]), torch.tensor([STD])
    t0 = time.time()
    with frozen_teacher(teacher):
        result = synthesize_batch(
            teacher, targets, (1, 32, 32), mean_t, std_t, SynthesisConfig(**synthesis), torch.Generator().manual_seed(0)
        )

    def gaps(x):  # per BN layer: rms standardized mean gap and rms (var / var_run - 1), as bn_distance standardized
        out = []

        def hook(module, inputs, output):
            a = inputs[0].float()
            m, v = a.mean(dim=(0, 2, 3)), a.var(dim=(0, 2, 3), unbiased=False)
            rv = module.running_var + module.eps
            out.append((((m - module.running_mean) / rv.sqrt()).pow(2).mean().sqrt().item(),
                        (v / rv - 1).pow(2).mean().sqrt().item()))  # fmt: skip

        handles = [layer.register_forward_hook(hook) for layer in batchnorm_layers(teacher)]
        with torch.no_grad():
            teacher((x - MEAN) / STD)
        for handle in handles:
            handle.remove()
        return out

    plain_test = torchvision.datasets.FashionMNIST(
        args.data_root, train=False, download=False, transform=T.Compose([T.ToTensor(), T.Pad(2)])
    )
    real = torch.stack([plain_test[i][0] for i in range(200)])
    lines = [f"{' '.join(sys.argv[1:])}: {time.time() - t0:.0f} s"]
    norms = [f"{layer.running_var.norm():.1f}" for layer in batchnorm_layers(teacher)]
    lines.append(f"  the teacher's BN layers, |running_var| (what scales Eq. 4's terms): {', '.join(norms)}")
    for name, x, agree in (("real test images", real, None), ("DIs", result.images, result.agreement)):
        g = gaps(x)
        lines.append(
            f"  {name}: pixel mean {x.mean():.3f}, pixels < 0.05: {(x < 0.05).float().mean():.0%}"
            + (f", on their target class {agree.float().mean():.0%}" if agree is not None else "")
            + f"; first BN layer gaps {g[0][0]:.2f}/{g[0][1]:.2f}, mean over {len(g)} layers "
            f"{sum(a for a, _ in g) / len(g):.2f}/{sum(b for _, b in g) / len(g):.2f} (mean/var)"
        )
    print("\n".join(lines), flush=True)
    with open(OUT / "batch.txt", "a") as f:
        f.write("\n".join(lines) + "\n")
    if args.png:
        grid = torchvision.utils.make_grid(result.images[::2], nrow=10, padding=1, pad_value=1.0)
        torchvision.utils.save_image(F.interpolate(grid[None], scale_factor=2)[0], args.png)
    sys.exit(0)

t0 = time.time()
if args.mixed_batches:  # the hypothesis: a one-class batch cannot (and should not) match all-class BN statistics
    import numpy as np

    from zskd_plugin.dirichlet import sample_soft_targets
    from zskd_plugin.similarity import class_similarity, find_classifier
    from zskd_plugin.synthesis import SynthesisConfig, SynthesisLoss, frozen_teacher, synthesize_batch

    class _Mixed:  # what the rest of the probe reads from a store
        pass

    teacher = timm.create_model("resnet10t", num_classes=10, in_chans=1)
    teacher.load_state_dict(torch.load(ckpt))
    teacher.eval()
    rng = np.random.default_rng(args.seed)
    sim = class_similarity(find_classifier(teacher, 10).weight)
    per_class = args.n // 10
    targets = torch.cat(
        [sample_soft_targets(sim[c], beta, per_class // 2, rng) for c in range(10) for beta in (1.0, 0.1)]
    )
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(args.seed))
    targets = targets[order]
    config = SynthesisConfig(**{k: v for k, v in synthesis.items()})
    mean_t, std_t = torch.tensor([MEAN]), torch.tensor([STD])
    chunks = []
    with frozen_teacher(teacher):
        loss_fn = SynthesisLoss(teacher, mean_t, std_t, config)
        for i in range(0, len(targets), config.batch_size):
            gen = torch.Generator().manual_seed(args.seed * 1000 + i)
            batch = targets[i : i + config.batch_size]
            chunks.append(synthesize_batch(teacher, batch, (1, 32, 32), mean_t, std_t, config, gen, loss_fn=loss_fn))
    store = _Mixed()
    store.path = Path("mixed-batches")
    data = _Mixed()
    data.images = torch.cat([c.images for c in chunks])
    data.targets = targets
    store.load = lambda: data
else:
    store = make_impression_store(
        {
            "teacher": teacher_spec,
            "num_impressions": args.n,
            "seed": args.seed,
            "store_root": str(OUT / "stores"),
            "synthesis": synthesis,
            "progress": False,
        }
    )
syn_s = time.time() - t0
data = store.load()
train_idx, _ = split_indices(data.images.shape[0], 0.1, args.seed)
images = data.images[train_idx]
if args.real_control:  # the same loop on real (unlabelled) training images: what the loop reaches with good inputs
    real = torchvision.datasets.FashionMNIST(
        args.data_root, train=True, download=False, transform=T.Compose([T.ToTensor(), T.Pad(2)])
    )
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(args.seed))[: len(images)]
    images = torch.stack([real[int(i)][0] for i in pick])
teacher = timm.create_model("resnet10t", num_classes=10, in_chans=1)
teacher.load_state_dict(torch.load(ckpt))
teacher.eval()
torch.manual_seed(args.seed)
student = create_model("lenet5_half", num_classes=10)
opt = torch.optim.Adam(student.parameters(), 0.004)
steps = args.epochs * math.ceil(len(images) / 256)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
aug = ImpressionAugment(degrees=15, translate=0.1, scale=0.1, hflip=0.5, blur_sigma=args.blur, contrast=args.contrast)
t0 = time.time()
for epoch in range(args.epochs):
    student.train()
    x_all = (aug(images) - MEAN) / STD
    order = torch.randperm(len(x_all))
    for i in range(0, len(order), 256):
        x = x_all[order[i : i + 256]]
        with torch.no_grad():
            t = teacher(x)
        loss = zskd_kd_loss(student(x), t, args.kd_temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
predicted = torch.zeros(10, dtype=torch.long)
acc = evaluate(student, predicted)
# teacher agreement and DI accuracy under the teacher
with torch.no_grad():
    di_agree = (teacher((data.images - MEAN) / STD).argmax(1) == data.targets.argmax(1)).float().mean().item() * 100
rec = {
    **vars(args),
    "student_test": acc,
    "student_top_class_share": round(100.0 * predicted.max().item() / len(test), 2),  # a collapsed student: ~100
    "teacher_test": evaluate(teacher),
    "di_teacher_agreement": di_agree,
    "synthesis_s": round(syn_s),
    "distill_s": round(time.time() - t0),
    "store": store.path.name,
}
print(json.dumps(rec), flush=True)
with open(OUT / "results.jsonl", "a") as f:
    f.write(json.dumps(rec) + "\n")
