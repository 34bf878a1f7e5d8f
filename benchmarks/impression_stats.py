"""How Data Impressions differ from real images, per class and as the teacher sees them.

For each DI store (and the real test set): per class (the teacher's argmax), the mean pixel, the share of dark pixels
(< 0.05) and the total variation (``zskd_plugin.synthesis.total_variation``, pixel space); then, over the first
1,000 images, the teacher's mean top logit, its mean top-1 minus top-2 logit gap, and the mean cosine similarity of
its pooled features within a class and over all pairs.

Example (the Fashion-MNIST timm suite's teacher and its zskd-bn seed-0 store)::

    python benchmarks/impression_stats.py --dataset fashion-mnist \\
        --teacher resource/ckpt/benchmark/fashion-mnist-timm-quick/teacher.pt \\
        resource/zskd_store/timm_model-8f419cee89872a0a
"""

from __future__ import annotations

import argparse
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from zskd_plugin.store import ImpressionStore
from zskd_plugin.synthesis import total_variation
from zskd_plugin.teacher import load_checkpoint_state

DATA = {"mnist": (datasets.MNIST, 0.1307, 0.3081), "fashion-mnist": (datasets.FashionMNIST, 0.2860, 0.3530)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", type=Path, nargs="+", help="DI store folders of the teacher")
    parser.add_argument("--dataset", choices=sorted(DATA), required=True)
    parser.add_argument("--teacher", type=Path, required=True, help="resnet10t checkpoint (in_chans 1, 10 classes)")
    parser.add_argument("--data-root", default="./data")
    args = parser.parse_args()

    dataset_cls, mean, std = DATA[args.dataset]
    norm = transforms.Normalize([mean], [std])
    teacher = timm.create_model("resnet10t", num_classes=10, in_chans=1, pretrained=False)
    teacher.load_state_dict(load_checkpoint_state(args.teacher))
    teacher.eval()
    test = dataset_cls(args.data_root, train=False, download=False,
                       transform=transforms.Compose([transforms.ToTensor(), transforms.Pad(2)]))  # fmt: skip
    sets = {"real test": torch.stack([test[i][0] for i in range(3000)])}
    sets.update({path.name: ImpressionStore.open(path).load().images for path in args.stores})

    with torch.no_grad():
        classes = {name: teacher(norm(x)).argmax(1) for name, x in sets.items()}
    names = list(sets)
    print("per class (teacher's argmax): mean pixel / dark share % / total variation")
    print("class".ljust(14) + "".join(n[-16:].rjust(26) for n in names))
    for k, label in enumerate(test.classes):
        cells = []
        for name in names:
            x = sets[name][classes[name] == k]
            cells.append(f"{x.mean():.3f} / {100 * (x < 0.05).float().mean():4.1f} / {total_variation(x).mean():.3f}"
                         if len(x) else "none")  # fmt: skip
        print(label[:13].ljust(14) + "".join(c.rjust(26) for c in cells))

    print("\nteacher on the first 1,000: top logit / top-1 minus top-2 / feature cosine within class / all pairs")
    for name in names:
        x = norm(sets[name][:1000])
        with torch.no_grad():
            logits = teacher(x)
            feats = F.normalize(teacher.forward_head(teacher.forward_features(x), pre_logits=True), dim=1)
        top2 = logits.topk(2, dim=1).values
        y = logits.argmax(1)
        within = []
        for k in range(logits.shape[1]):
            f = feats[y == k]
            if len(f) > 1:
                within.append(((f @ f.T).sum() - len(f)) / (len(f) ** 2 - len(f)))
        all_pairs = ((feats @ feats.T).sum() - len(feats)) / (len(feats) ** 2 - len(feats))
        print(f"{name[-16:]:>16s}  {top2[:, 0].mean():5.1f}  {(top2[:, 0] - top2[:, 1]).mean():5.1f}  "
              f"{torch.stack(within).mean():.3f}  {all_pairs:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
