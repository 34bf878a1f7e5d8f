import pytest
import torch
import torch.nn.functional as F

from zskd_plugin.augment import ImpressionAugment, affine_grid


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
        ImpressionAugment()(torch.rand(8, 8))


def test_blur_and_contrast_smooth_and_dim():
    x = (torch.rand(1, 32, 32) > 0.5).float()  # saturated, like raw Data Impressions
    gen = torch.Generator().manual_seed(0)
    out = ImpressionAugment(degrees=0, translate=0, scale=0, blur_sigma=2.0, contrast=0.8, generator=gen)(x)
    tv = lambda im: (im[..., 1:, :] - im[..., :-1, :]).abs().mean()
    assert tv(out) < 0.7 * tv(x)
    assert out.max() <= 1.0 and out.mean() <= x.mean() + 1e-6


def test_a_batch_gets_independent_draws_per_image():
    x = torch.zeros(1, 32, 32)
    x[:, 12:20, 12:20] = 1.0
    out = ImpressionAugment(translate=0.2, blur_sigma=2.0, contrast=0.5, generator=torch.Generator().manual_seed(0))(
        x.expand(16, 1, 32, 32)
    )
    assert out.shape == (16, 1, 32, 32) and out.min() >= 0 and out.max() <= 1
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) == 16  # the same image, sixteen different augmentations


def test_batch_with_zero_ranges_is_the_identity_and_one_image_matches_its_batch_of_one():
    x = torch.rand(5, 3, 16, 16)
    torch.testing.assert_close(ImpressionAugment(degrees=0, translate=0, scale=0)(x), x, atol=1e-6, rtol=0)
    single = ImpressionAugment(blur_sigma=1.5, contrast=0.5, generator=torch.Generator().manual_seed(4))(x[0])
    batch = ImpressionAugment(blur_sigma=1.5, contrast=0.5, generator=torch.Generator().manual_seed(4))(x[:1])
    torch.testing.assert_close(single, batch[0])


def test_per_image_blur_is_torchvisions_gaussian_blur():
    from torchvision.transforms.functional import gaussian_blur

    from zskd_plugin.augment import gaussian_blur_per_image

    x = torch.rand(3, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.3, 1.0, 2.5])
    expected = torch.stack([gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2) for i in range(3)])
    torch.testing.assert_close(gaussian_blur_per_image(x, sigma), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(32, 32), (28, 30), (1, 5)])
def test_the_broadcast_sampling_grid_is_torchs_affine_grid(size):
    theta = torch.randn(64, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = F.affine_grid(theta, [64, 1, *size], align_corners=False)
    # equal where it was written (AMD EPYC); a matmul kernel that fuses multiply and add may round differently
    assert torch.allclose(affine_grid(theta, *size), expected, rtol=0, atol=1e-6)


def test_the_pixel_chunk_size_changes_no_number(monkeypatch):
    from zskd_plugin import augment

    images = torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    outputs = []
    for chunk in (7, 40, 1000):  # a ragged last chunk, one chunk, less than a chunk
        monkeypatch.setattr(augment, "_PIXEL_CHUNK", chunk)
        aug = ImpressionAugment(degrees=20, translate=0.1, scale=0.1, hflip=0.5, blur_sigma=2.0, contrast=0.5,
                                generator=torch.Generator().manual_seed(1))  # fmt: skip
        outputs.append(aug(images))
    assert all(torch.equal(outputs[0], out) for out in outputs[1:])
    assert not torch.equal(outputs[0][:7], outputs[0][7:14])  # the images got their own draws
