"""The paper's models: the pooling layer that takes a faster path without gradients gives nn.MaxPool2d's numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zskd_plugin.models import create_model, pooling
from zskd_plugin.models.pooling import MaxPool2d, max_pool2d_views


def _inputs() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(3, 5, 15, 14, generator=g)).round(decimals=1)  # ties, zeros among them
    x[0, 0, 3, 3] = float("nan")
    return [x, x.contiguous(memory_format=torch.channels_last), x.bfloat16(), x[0]]


@pytest.mark.parametrize(("kernel", "stride"), [(2, None), (2, 2), (3, 2), ((2, 3), (1, 2))])
def test_strided_view_pooling_equals_max_pool2d_without_gradients(kernel, stride):
    for x in _inputs():
        expected = nn.MaxPool2d(kernel, stride)(x)
        with torch.no_grad():
            got = MaxPool2d(kernel, stride)(x)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert torch.equal(got.isnan(), expected.isnan())  # NaN windows stay NaN
        assert torch.equal(got.nan_to_num(), expected.nan_to_num())


def test_the_views_path_runs_only_where_no_gradient_flows(monkeypatch):
    calls = []
    monkeypatch.setattr(pooling, "max_pool2d_views", lambda *a: calls.append(a) or nn.functional.max_pool2d(*a))
    x = torch.rand(2, 3, 8, 8)
    MaxPool2d(2)(x)  # grad mode on, but nothing to differentiate
    with torch.no_grad():
        MaxPool2d(2)(x.requires_grad_(True))
    assert len(calls) == 2
    for layer in (MaxPool2d(2, padding=1), MaxPool2d(2, ceil_mode=True), MaxPool2d(2, dilation=2)):
        layer(x.detach())
    assert len(calls) == 2  # settings the views do not cover: nn.MaxPool2d's kernel
    # with a gradient: nn.MaxPool2d's own backward, ties included (the first maximum of a window gets it)
    a, b = torch.zeros(1, 1, 4, 4, requires_grad=True), torch.zeros(1, 1, 4, 4, requires_grad=True)
    MaxPool2d(2)(a).sum().backward()
    nn.MaxPool2d(2)(b).sum().backward()
    assert len(calls) == 2 and torch.equal(a.grad, b.grad) and a.grad.sum() == 4


def test_lenet_pools_through_the_fast_layer_and_keeps_its_outputs():
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10).eval()
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 2 and all(type(m) is MaxPool2d for m in pools)
    x = torch.rand(16, 1, 32, 32)
    with torch.no_grad():
        fast = model(x)
        for m in pools:
            m.__class__ = nn.MaxPool2d
        plain = model(x)
    assert torch.equal(fast, plain)


def test_a_window_larger_than_the_input_is_refused():
    with pytest.raises(ValueError, match="input is smaller"):
        max_pool2d_views(torch.rand(1, 1, 2, 2), 3)
