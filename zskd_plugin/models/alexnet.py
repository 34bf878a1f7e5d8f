"""The CIFAR-10 AlexNet teacher and AlexNet-half student of the ZSKD paper.

Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019, Sec. 4.3: conv 5x5 48 -> conv 5x5
128 -> conv 3x3 192 -> conv 3x3 192 -> conv 3x3 128 -> fc 512 -> fc 256 -> fc 10, with local response
normalisation and batch normalisation (about 1.66M parameters); the half model halves every width (about 0.42M).
The TensorFlow release uses LRN(depth_radius=2, alpha=1e-4, beta=0.75, bias=1), which is torch's
LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=1), and TF batch-norm defaults (eps 1e-3).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..validation import check_int, check_number

CIFAR10_CFG: dict = {
    "input_size": (3, 32, 32),
    "mean": (0.4914, 0.4822, 0.4465),
    "std": (0.2470, 0.2435, 0.2616),
    "num_classes": 10,
    "classifier": "fc3",
    "paper_ids": "arXiv:1905.08114",
}


def _conv_block(cin: int, cout: int, kernel: int, lrn: bool, pool: bool, bn: bool, bn_kw: dict) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]
    if lrn:
        layers.append(nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=1.0))
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
    if bn:
        layers.append(nn.BatchNorm2d(cout, **bn_kw))
    return nn.Sequential(*layers)


class AlexNetCifar(nn.Module):
    """AlexNet for 3x32x32 inputs as used by ZSKD.

    Args:
        num_classes: number of output classes.
        in_chans: input channels.
        width_factor: 1.0 for the teacher, 0.5 for AlexNet-half.
        drop_rate: dropout after each hidden fully connected layer.
        bn_momentum: torch-style batch-norm momentum (TF's decay 0.999 is 0.001 here).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        width_factor: float = 1.0,
        drop_rate: float = 0.5,
        bn_momentum: float = 0.001,
    ) -> None:
        super().__init__()
        check_int(num_classes, "num_classes", least=2)
        check_int(in_chans, "in_chans", least=1)
        check_number(width_factor, "width_factor", low=0, low_open=True)
        check_number(drop_rate, "drop_rate", low=0, high=1, high_open=True)
        check_number(bn_momentum, "bn_momentum", low=0, high=1)
        c = [int(round(w * width_factor)) for w in (48, 128, 192, 192, 128)]
        f = [int(round(w * width_factor)) for w in (512, 256)]
        bn_kw = {"eps": 1e-3, "momentum": bn_momentum}
        self.features = nn.Sequential(
            _conv_block(in_chans, c[0], 5, lrn=True, pool=True, bn=True, bn_kw=bn_kw),
            _conv_block(c[0], c[1], 5, lrn=True, pool=True, bn=True, bn_kw=bn_kw),
            _conv_block(c[1], c[2], 3, lrn=False, pool=False, bn=False, bn_kw=bn_kw),
            _conv_block(c[2], c[3], 3, lrn=False, pool=False, bn=False, bn_kw=bn_kw),
            _conv_block(c[3], c[4], 3, lrn=False, pool=True, bn=True, bn_kw=bn_kw),
        )
        self.fc1 = nn.Sequential(
            nn.Linear(c[4] * 3 * 3, f[0]), nn.ReLU(inplace=True), nn.Dropout(drop_rate), nn.BatchNorm1d(f[0], **bn_kw)
        )
        self.fc2 = nn.Sequential(
            nn.Linear(f[0], f[1]), nn.ReLU(inplace=True), nn.Dropout(drop_rate), nn.BatchNorm1d(f[1], **bn_kw)
        )
        self.fc3 = nn.Linear(f[1], num_classes)
        self.num_classes = num_classes
        self.pretrained_cfg = dict(CIFAR10_CFG, num_classes=num_classes, input_size=(in_chans, 32, 32))

    def get_classifier(self) -> nn.Module:
        return self.fc3

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x).flatten(1)
        return self.fc3(self.fc2(self.fc1(x)))


def alexnet_cifar(num_classes: int = 10, in_chans: int = 3, **kwargs) -> AlexNetCifar:
    """AlexNet teacher for CIFAR-10 (about 1.66M parameters)."""
    return AlexNetCifar(num_classes=num_classes, in_chans=in_chans, width_factor=1.0, **kwargs)


def alexnet_cifar_half(num_classes: int = 10, in_chans: int = 3, **kwargs) -> AlexNetCifar:
    """AlexNet-half student for CIFAR-10 (about 0.42M parameters)."""
    return AlexNetCifar(num_classes=num_classes, in_chans=in_chans, width_factor=0.5, **kwargs)
