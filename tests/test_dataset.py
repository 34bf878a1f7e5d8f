"""DataImpressionDataset: per-image and batched transforms."""

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from zskd_plugin.builder import check_dataset_kwargs
from zskd_plugin.dataset import DataImpressionDataset


class CountingNoise:
    """A batch transform that adds small noise and records the size of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls.append(batch.shape[0])
        return batch + 0.01 * torch.rand_like(batch)


def _dataset(n: int = 10, **kwargs) -> DataImpressionDataset:
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()  # image i is i
    targets = torch.nn.functional.one_hot(torch.arange(n) % 3, 3).float()
    return DataImpressionDataset(images, targets, **kwargs)


def test_batch_transform_runs_once_per_epoch_and_every_read_is_fresh():
    noise = CountingNoise()
    ds = _dataset(batch_transform=noise)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    first = {i: ds[i][0] for i in order}
    assert noise.calls == [10]  # one batched call made the whole epoch
    second = {i: ds[i][0] for i in reversed(order)}
    assert noise.calls == [10, 10]
    for i in range(10):
        assert (first[i] - i).abs().max() < 0.011 and (second[i] - i).abs().max() < 0.011  # image i, transformed
        assert not torch.equal(first[i], second[i])  # a new draw each epoch


def test_reading_an_item_twice_refreshes_only_what_was_served():
    noise = CountingNoise()
    ds = _dataset(batch_transform=noise)
    a, b, c = ds[3][0], ds[3][0], ds[4][0]
    assert noise.calls == [10, 1] and not torch.equal(a, b) and (c - 4).abs().max() < 0.011


def test_batch_transform_then_per_item_transform_through_a_data_loader():
    ds = _dataset(n=64, batch_transform=CountingNoise(), transform=lambda image: image * 2)
    loader = DataLoader(ds, sampler=RandomSampler(ds), batch_size=16)
    passes = []
    for _ in range(3):  # epochs
        seen, views = [], []
        for images, targets in loader:
            assert images.shape == (16, 1, 4, 4) and targets.shape == (16, 3)
            index = (images[:, 0, 0, 0] / 2).round().long()
            assert torch.equal(targets, torch.nn.functional.one_hot(index % 3, 3).float())  # each image's own target
            seen += index.tolist()
            views.append(images[index.argsort()])
        assert sorted(seen) == list(range(64))
        passes.append(torch.cat(views))
    # the loader reads whole batches (__getitems__): one batched call per batch, on that batch's images alone, and
    # no whole-set copy kept; each pass is a new draw
    assert ds.batch_transform.calls == [16] * 12 and ds._transformed is None
    assert not torch.equal(passes[0], passes[1])


def test_a_batched_read_gives_argmax_labels_and_plain_items_without_a_batch_transform():
    noisy = _dataset(batch_transform=CountingNoise(), label_mode="argmax")
    assert [label for _, label in noisy.__getitems__([5, 1])] == [2, 1]
    plain = _dataset()
    for (image, target), i in zip(plain.__getitems__([7, 2]), (7, 2)):
        assert torch.equal(image, plain[i][0]) and torch.equal(target, plain[i][1])


def test_without_batch_transform_items_are_the_stored_images():
    ds = _dataset(label_mode="argmax")
    image, label = ds[5]
    assert torch.equal(image, torch.full((1, 4, 4), 5.0)) and label == 2


def test_fixed_views_draw_the_batch_transform_k_times_once_and_serve_them_unchanged():
    noise = CountingNoise()
    ds = _dataset(batch_transform=noise, fixed_views=3)
    assert noise.calls == [10, 10, 10] and len(ds) == 30  # drawn once per view, at construction
    assert ds.fixed_views == 3 and ds.batch_transform is None and ds.images.shape[0] == 30  # it holds the views
    for v in range(3):
        for i in range(10):
            image, target = ds[v * 10 + i]
            assert (image - i).abs().max() < 0.011  # view v of image i, view-major
            assert torch.equal(target, torch.nn.functional.one_hot(torch.tensor(i % 3), 3).float())
    assert not torch.equal(ds[0][0], ds[10][0])  # two views of one image are two draws
    again = [ds[i][0] for i in range(30)]
    assert noise.calls == [10, 10, 10] and all(torch.equal(a, ds[i][0]) for i, a in enumerate(again))  # fixed


def test_fixed_views_need_a_batch_transform_and_say_so():
    with pytest.raises(ValueError, match="fixed_views draws batch_transform's random views once; it needs a batch"):
        _dataset(fixed_views=2)
    with pytest.raises(ValueError, match="fixed_views must be an integer >= 0"):
        _dataset(batch_transform=CountingNoise(), fixed_views=-1)
    with pytest.raises(ValueError, match="it needs a batch_transform"):  # a YAML's mistake, before any synthesis
        check_dataset_kwargs({"teacher": {"key": "lenet5"}, "num_impressions": 10, "fixed_views": 4})
