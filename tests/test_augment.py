import pytest
import torch

from zskd_plugin.augment import ImpressionAugment


def test_zero_ranges_are_the_identity():
    x = torch.rand(3, 16, 16)
    assert torch.allclose(ImpressionAugment(degrees=0, translate=0, scale=0)(x), x, atol=1e-6)


def test_certain_flip_mirrors_the_image():
    x = torch.rand(1, 8, 8)
    flipped = ImpressionAugment(degrees=0, translate=0, scale=0, hflip=1.0)(x)
    assert torch.allclose(flipped, x.flip(-1), atol=1e-6)


def test_output_stays_in_pixel_range_and_varies_with_the_generator():
    x = torch.rand(1, 32, 32)
    a = ImpressionAugment(generator=torch.Generator().manual_seed(0))(x)
    b = ImpressionAugment(generator=torch.Generator().manual_seed(0))(x)
    c = ImpressionAugment(generator=torch.Generator().manual_seed(1))(x)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_translation_moves_mass():
    x = torch.zeros(1, 32, 32)
    x[:, 12:20, 12:20] = 1.0
    aug = ImpressionAugment(degrees=0, translate=0.2, scale=0, generator=torch.Generator().manual_seed(3))
    moved = [aug(x) for _ in range(8)]
    cols = torch.arange(32.0)
    centres = [float((m.sum(dim=(0, 1)) * cols).sum() / m.sum()) for m in moved]
    assert max(centres) - min(centres) > 2.0  # several pixels apart


def test_bad_ranges_are_rejected():
    with pytest.raises(ValueError, match="translate"):
        ImpressionAugment(translate=1.5)
    with pytest.raises(ValueError, match="C, H, W"):
        ImpressionAugment()(torch.rand(2, 1, 8, 8))


def test_blur_and_contrast_smooth_and_dim():
    x = (torch.rand(1, 32, 32) > 0.5).float()  # saturated, like raw Data Impressions
    gen = torch.Generator().manual_seed(0)
    out = ImpressionAugment(degrees=0, translate=0, scale=0, blur_sigma=2.0, contrast=0.8, generator=gen)(x)
    tv = lambda im: (im[..., 1:, :] - im[..., :-1, :]).abs().mean()
    assert tv(out) < 0.7 * tv(x)
    assert out.max() <= 1.0 and out.mean() <= x.mean() + 1e-6
