"""LeNet-5 and the ZSKD paper's LeNet-5-half, for 1x32x32 inputs (MNIST / Fashion-MNIST padded by 2).

Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019, Sec. 4.1: teacher LeNet-5,
student LeNet-5-half (every layer width halved except the fully connected ones: conv 3 -> conv 8 -> fc 120 -> 84).
This is the ZSKD paper's student (35,820 parameters), *not* the 3-8-60-42 "LeNet-5-half" of DAFL / DFAD.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..validation import check_int
from .pooling import MaxPool2d

MNIST_CFG: dict = {
    "input_size": (1, 32, 32),
    "mean": (0.1307,),
    "std": (0.3081,),
    "num_classes": 10,
    "classifier": "fc3",
    "paper_ids": "arXiv:1905.08114",
}


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max pooling.

    Args:
        num_classes: number of output classes.
        in_chans: input channels.
        conv_widths: output channels of the two 5x5 convolutions (6, 16 for LeNet-5; 3, 8 for the half).
        fc_widths: widths of the two hidden fully connected layers.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        conv_widths: tuple[int, int] = (6, 16),
        fc_widths: tuple[int, int] = (120, 84),
    ) -> None:
        super().__init__()
        check_int(num_classes, "num_classes", least=2)
        check_int(in_chans, "in_chans", least=1)
        c1, c2 = conv_widths
        h1, h2 = fc_widths
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, kernel_size=5),
            nn.ReLU(inplace=True),
            MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5),
            nn.ReLU(inplace=True),
            MaxPool2d(2),
        )
        self.fc1 = nn.Linear(c2 * 5 * 5, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, num_classes)
        self.act = nn.ReLU(inplace=True)
        self.num_classes = num_classes
        self.pretrained_cfg = dict(MNIST_CFG, num_classes=num_classes, input_size=(in_chans, 32, 32))

    def get_classifier(self) -> nn.Module:
        return self.fc3

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x).flatten(1)
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.fc3(x)


def lenet5(num_classes: int = 10, in_chans: int = 1) -> LeNet5:
    """LeNet-5 teacher (61,706 parameters for 10 classes)."""
    return LeNet5(num_classes=num_classes, in_chans=in_chans)


def lenet5_half(num_classes: int = 10, in_chans: int = 1) -> LeNet5:
    """LeNet-5-half student of the ZSKD paper (35,820 parameters for 10 classes)."""
    return LeNet5(num_classes=num_classes, in_chans=in_chans, conv_widths=(3, 8))
