"""A model that takes inputs of another size than it was built for (a 32x32 LeNet-5 student of a 28x28 teacher)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..augment import IMAGE_FITS, fit_to_size
from ..validation import check_choice, check_image_size, check_numbers


class InputFit(nn.Module):
    """``model`` behind a pad or resize of its (normalised) input to ``input_size``.

    In a distillation pipeline the teacher and the student see the same batch; when they take different input
    sizes (a fixed-size 28x28 teacher, a 32x32 LeNet-5 student), this wraps the one whose size differs. Padding
    fills with black, which after the input normalisation is ``-mean / std`` per channel: give the pipeline's
    ``mean`` and ``std`` (torchvision's ``Pad(2)`` before ``Normalize`` does the same to real MNIST).

    Args:
        model: the wrapped model; its parameters keep their names under ``model.``.
        input_size: ``[height, width]`` the wrapped model takes.
        fit: ``pad`` (centred) or ``resize`` (bilinear).
        mean: per-channel normalisation mean of the inputs (for the black fill of ``pad``); default 0.
        std: per-channel normalisation std (one value or one per channel, as ``mean``); default 1.
    """

    def __init__(
        self,
        model: nn.Module,
        input_size: Sequence[int],
        fit: str = "pad",
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__()
        self.model = model
        self.input_size = check_image_size(input_size, "input_fit input_size")
        if self.input_size is None:
            raise ValueError("input_fit needs input_size: [height, width], the size the wrapped model takes")
        self.fit = check_choice(fit, "input_fit fit", IMAGE_FITS)
        mean_t = torch.tensor(check_numbers(mean, "input_fit mean"))
        std_t = torch.tensor(check_numbers(std, "input_fit std", low=0, low_open=True))
        if len(mean_t) != len(std_t) and 1 not in (len(mean_t), len(std_t)):
            raise ValueError(f"input_fit mean and std need as many values, got {list(mean)} and {list(std)}")
        self.register_buffer("fill", (-mean_t / std_t).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.fill.shape[1] not in (1, x.shape[1]):
            raise ValueError(
                f"input_fit has {self.fill.shape[1]} mean/std values but its input has {x.shape[1]} channels; give "
                "one value, or one per channel"
            )
        return self.model(fit_to_size(x, self.input_size, self.fit, self.fill))
