"""Augmentation of Data Impressions during distillation.

Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019 (PMLR v97), Sec. 4: the student is
distilled on Data Impressions augmented by scaling, translation, rotation and flipping; the teacher labels the
augmented image, so any transform is label-safe.

One bilinear warp per image (a sampling grid + ``grid_sample``), zero fill, then optional Gaussian blur and
contrast reduction. It takes one (C, H, W) image or a (B, C, H, W) batch, with independent draws per image either
way; on a batch it runs as a few batched kernels, which the Data Impression dataset's ``batch_transform`` uses.

Unregularised Data Impressions are saturated, high-contrast textures; blurring and dimming them moves the transfer
set towards natural images (what that is worth, measured: ``docs/method.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .validation import check_number

__all__ = ["IMAGE_FITS", "ImpressionAugment", "affine_grid", "fit_to_size", "gaussian_blur_per_image"]

IMAGE_FITS = ("pad", "resize")
_PIXEL_CHUNK = 512  # images warped, blurred and dimmed at a time


def fit_to_size(images: Tensor, size: tuple[int, int], fit: str = "pad", fill: Tensor | float = 0.0) -> Tensor:
    """(B, C, H, W) images brought to ``size`` = (height, width): ``pad`` centres them on a ``fill`` border (a
    number, or a per-channel (1, C, 1, 1) tensor; the left/top border gets the smaller half of an odd difference),
    ``resize`` interpolates bilinearly (antialiased when shrinking). ``images`` itself when it has that size."""
    height, width = size
    h, w = images.shape[-2:]
    if (h, w) == (height, width):
        return images
    if fit == "resize":
        shrink = height < h or width < w
        return F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    if height < h or width < w:
        raise ValueError(f"cannot pad {[h, w]} images to the smaller {[height, width]}; use resize instead of pad")
    top, left = (height - h) // 2, (width - w) // 2
    canvas = torch.empty((*images.shape[:-2], height, width), dtype=images.dtype, device=images.device)
    canvas.copy_(torch.as_tensor(fill, dtype=images.dtype, device=images.device).expand_as(canvas))
    canvas[..., top : top + h, left : left + w] = images
    return canvas


def affine_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``F.affine_grid(theta, (B, C, height, width), align_corners=False)`` for a (B, 2, 3) ``theta``, as two
    broadcast sums instead of a batched matrix product with an inner size of 3, which on a CPU took most of an
    augmentation pass. The same values, up to float rounding should a matmul kernel round differently."""
    xs = torch.linspace(-1, 1, width, dtype=theta.dtype, device=theta.device) * (width - 1) / width
    ys = torch.linspace(-1, 1, height, dtype=theta.dtype, device=theta.device) * (height - 1) / height
    t = theta[:, :, :, None, None]  # (B, 2, 3, 1, 1): per output coordinate, the weights of x, y and 1
    grid = t[:, :, 0] * xs + t[:, :, 1] * ys[:, None] + t[:, :, 2]  # (B, 2, H, W)
    return grid.permute(0, 2, 3, 1)


def gaussian_blur_per_image(images: Tensor, sigma: Tensor, kernel_size: int = 5) -> Tensor:
    """Blur each image of a (B, C, H, W) batch with its own Gaussian ``sigma[b]`` (reflect padding, separable
    ``kernel_size`` kernel): what ``torchvision.transforms.functional.gaussian_blur`` does to one image, for a batch
    in two grouped convolutions."""
    b, c, h, w = images.shape
    offsets = torch.arange(kernel_size, dtype=images.dtype, device=images.device) - (kernel_size - 1) / 2
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma.to(images)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, k), one per channel
    pad = kernel_size // 2
    out = images.reshape(1, b * c, h, w)
    out = F.conv2d(F.pad(out, (pad, pad, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=b * c)
    out = F.conv2d(F.pad(out, (0, 0, pad, pad), mode="reflect"), kernel[:, None, :, None], groups=b * c)
    return out.reshape(b, c, h, w)


class ImpressionAugment:
    """Random rotation, scaling, translation and horizontal flip of pixel-space images, then optional blur and
    contrast reduction.

    Takes one (C, H, W) image or a (B, C, H, W) batch; every image gets its own draws.

    Args:
        degrees: rotation drawn uniformly from [-degrees, degrees].
        translate: shift drawn uniformly from [-translate, translate] times the image size, per axis.
        scale: zoom factor drawn uniformly from [1 - scale, 1 + scale].
        hflip: probability of a horizontal flip (0 for digits, 0.5 for natural images).
        blur_sigma: Gaussian blur (5x5 kernel) with sigma drawn from [0, blur_sigma]; 0 disables it.
        contrast: multiply the image by a factor drawn from [1 - contrast, 1]; 0 disables it.
        generator: optional ``torch.Generator`` for reproducible draws (per DataLoader worker it is shared).

    Example:
        >>> aug = ImpressionAugment(degrees=15, translate=0.1, scale=0.1)
        >>> aug(torch.rand(1, 32, 32)).shape, aug(torch.rand(8, 1, 32, 32)).shape
        (torch.Size([1, 32, 32]), torch.Size([8, 1, 32, 32]))
    """

    def __init__(
        self,
        degrees: float = 15.0,
        translate: float = 0.1,
        scale: float = 0.1,
        hflip: float = 0.0,
        blur_sigma: float = 0.0,
        contrast: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        self.degrees = check_number(degrees, "ImpressionAugment degrees", low=0)
        self.translate = check_number(translate, "ImpressionAugment translate", low=0, high=1, high_open=True)
        self.scale = check_number(scale, "ImpressionAugment scale", low=0, high=1, high_open=True)
        self.hflip = check_number(hflip, "ImpressionAugment hflip", low=0, high=1)
        self.blur_sigma = check_number(blur_sigma, "ImpressionAugment blur_sigma", low=0)
        self.contrast = check_number(contrast, "ImpressionAugment contrast", low=0, high=1, high_open=True)
        self.generator = generator

    def _uniform(self, n: int, bound: float) -> Tensor:
        """``n`` draws from U[-bound, bound]."""
        return (torch.rand(n, generator=self.generator) * 2 - 1) * bound

    def __call__(self, images: Tensor) -> Tensor:
        if images.dim() not in (3, 4):
            raise ValueError(f"expected a (C, H, W) image or a (B, C, H, W) batch, got shape {tuple(images.shape)}")
        batch = images if images.dim() == 4 else images.unsqueeze(0)
        n = batch.shape[0]
        angle = torch.deg2rad(self._uniform(n, self.degrees))
        zoom = 1.0 + self._uniform(n, self.scale)
        flip = torch.where(torch.rand(n, generator=self.generator) < self.hflip, -1.0, 1.0)
        # affine_grid maps output to input coordinates in [-1, 1] (width 2): shift by 2 * translate.
        tx, ty = 2 * self._uniform(n, self.translate), 2 * self._uniform(n, self.translate)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([flip * cos, -sin, tx], 1), torch.stack([flip * sin, cos, ty], 1)], 1)
        sigma = self._uniform(n, self.blur_sigma).abs().clamp_min(1e-3) if self.blur_sigma > 0 else None
        factor = (1.0 - self._uniform(n, self.contrast).abs()) if self.contrast > 0 else None
        # every draw above, in this order, for the whole batch; the pixels below in chunks whose temporaries stay in
        # the CPU's caches (in the dataset's calls of 4,096 32x32 images, unchunked, a pass took ~1.7x as long); each
        # image's pixels depend on its own draws only, so the chunk size changes no number
        out = torch.empty_like(batch)
        for start in range(0, n, _PIXEL_CHUNK):
            part = slice(start, start + _PIXEL_CHUNK)
            chunk = batch[part]
            grid = affine_grid(theta[part].to(chunk), *chunk.shape[-2:])
            warped = F.grid_sample(chunk, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            if sigma is not None:
                warped = gaussian_blur_per_image(warped, sigma[part])
            if factor is not None:
                warped = warped * factor[part].to(warped).view(-1, 1, 1, 1)
            out[part] = warped
        return out if images.dim() == 4 else out[0]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
            f"hflip={self.hflip}, blur_sigma={self.blur_sigma}, contrast={self.contrast})"
        )
