"""The BatchNorm-statistics prior (DeepInversion, Yin et al. CVPR 2020, Eq. 4) in the synthesis engine."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_tiny_teacher
from torch import nn

from zskd_plugin.builder import make_impression_store
from zskd_plugin.impressions import ImpressionConfig, open_store, plan_parts, shard_parts
from zskd_plugin.synthesis import SynthesisConfig, SynthesisLoss, batchnorm_layers, frozen_teacher, synthesize_batch
from zskd_plugin.teacher import InputConfig


class BNTeacher(nn.Module):
    """BatchNorm straight on the input (so its input statistics are the batch's pixel statistics), then a small CNN
    with a second BatchNorm; 1x8x8 -> 4 classes, final layer at head.fc."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(1)
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.pool = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Sequential()
        self.head.add_module("fc", nn.Linear(24, num_classes))
        self.pretrained_cfg = {"input_size": (1, 8, 8), "mean": (0.0,), "std": (1.0,)}

    def forward(self, x):
        return self.head(self.pool(self.bn1(self.conv(self.bn0(x)))))


def _bn_teacher(seed: int = 0) -> BNTeacher:
    torch.manual_seed(seed)
    model = BNTeacher()
    with torch.no_grad():  # running statistics away from those of uniform noise, as a trained net's would be
        model.bn0.running_mean.fill_(0.2)
        model.bn0.running_var.fill_(0.01)
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.05, 0.5)
        model.head.fc.weight.mul_(50.0)
    return model.eval()


def _targets(n: int = 32) -> torch.Tensor:
    return torch.eye(4).repeat(n // 4, 1) * 0.9 + 0.025


def _bn_distance(teacher: BNTeacher, images: torch.Tensor) -> float:
    """sum over BN layers of ||mu - mu_run|| + ||var - var_run|| of the batch, computed here independently."""
    total, x = 0.0, images
    for layer, before in ((teacher.bn0, None), (teacher.bn1, teacher.conv)):
        with torch.no_grad():
            inp = before(teacher.bn0(x)) if before is not None else x
        mean, var = inp.mean(dim=(0, 2, 3)), inp.var(dim=(0, 2, 3), unbiased=False)
        total += float((mean - layer.running_mean).norm() + (var - layer.running_var).norm())
    return total


def test_the_prior_is_deepinversion_eq4_computed_independently():
    teacher = _bn_teacher()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = _targets()
    mean, std = torch.tensor([0.0]), torch.tensor([1.0])
    with frozen_teacher(teacher):
        plain = SynthesisLoss(teacher, mean, std, SynthesisConfig())(x, y)
        with_bn = SynthesisLoss(teacher, mean, std, SynthesisConfig(bn_weight=2.0))(x, y)
        heavy_first = SynthesisLoss(teacher, mean, std, SynthesisConfig(bn_weight=2.0, bn_first_multiplier=10.0))(x, y)
    # first layer alone: |mean(x) - 0.2| + |var(x) - 0.01| for the single input channel
    first = float((x.mean() - 0.2).abs() + (x.var(unbiased=False) - 0.01).abs())
    assert torch.allclose(with_bn - plain, torch.full_like(plain, 2.0 * _bn_distance(teacher, x)), atol=1e-5)
    assert torch.allclose(heavy_first - with_bn, torch.full_like(plain, 2.0 * 9.0 * first), atol=1e-5)


def test_the_standardized_distance_weighs_layers_alike_whatever_their_scale():
    teacher = _bn_teacher()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = _targets()
    mean, std = torch.tensor([0.0]), torch.tensor([1.0])

    def prior(model: BNTeacher, first: float = 1.0) -> torch.Tensor:
        config = SynthesisConfig(bn_weight=1.0, bn_distance="standardized", bn_first_multiplier=first)
        with frozen_teacher(model):
            plain = SynthesisLoss(model, mean, std, SynthesisConfig())(x, y)
            return SynthesisLoss(model, mean, std, config)(x, y) - plain

    # independently: per layer rms((mu - mu_run) / sigma_run) + rms(var / var_run - 1), averaged over the 2 layers
    expected = 0.0
    with torch.no_grad():
        for layer, inp in ((teacher.bn0, x), (teacher.bn1, teacher.conv(teacher.bn0(x)))):
            m, v = inp.mean(dim=(0, 2, 3)), inp.var(dim=(0, 2, 3), unbiased=False)
            run_var = layer.running_var + layer.eps
            expected += float(((m - layer.running_mean) / run_var.sqrt()).pow(2).mean().sqrt())
            expected += float((v / run_var - 1).pow(2).mean().sqrt())
    assert torch.allclose(prior(teacher), torch.full((32,), expected / 2), atol=1e-4)
    first = float((x.mean() - 0.2).abs() / (0.01 + 1e-5) ** 0.5 + (x.var(unbiased=False) / (0.01 + 1e-5) - 1).abs())
    assert torch.allclose(prior(teacher, 10.0) - prior(teacher), torch.full((32,), 9.0 * first / 2), atol=1e-3)
    # a second layer whose activations are 10x larger (conv weights and running statistics scaled alike) adds
    # the same term: Eq. 4's would grow tenfold and outweigh the first layer
    scaled = copy.deepcopy(teacher)
    with torch.no_grad():
        scaled.conv.weight.mul_(10.0)
        scaled.conv.bias.mul_(10.0)
        scaled.bn1.running_mean.mul_(10.0)
        scaled.bn1.running_var.mul_(100.0)
    assert torch.allclose(prior(scaled), prior(teacher), rtol=1e-3)
    with pytest.raises(ValueError, match="bn_distance"):
        SynthesisConfig(bn_weight=1.0, bn_distance="l1")
    with pytest.raises(ValueError, match="set bn_weight > 0 to use them"):
        SynthesisConfig(bn_distance="standardized")
    with pytest.raises(ValueError, match="set bn_weight > 0 to use them"):
        SynthesisConfig(bn_first_multiplier=10.0)


def test_the_standardized_prior_has_a_finite_gradient_at_an_exact_match():
    teacher = _bn_teacher()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # running statistics set to this batch's own, layer by layer
        for layer, inp in ((teacher.bn0, x), (teacher.bn1, None)):
            inp = teacher.conv(teacher.bn0(x)) if inp is None else inp
            layer.running_mean.copy_(inp.mean(dim=(0, 2, 3)))
            layer.running_var.copy_(inp.var(dim=(0, 2, 3), unbiased=False) - layer.eps)
    config = SynthesisConfig(bn_weight=1.0, bn_distance="standardized")
    x.requires_grad_(True)
    with frozen_teacher(teacher):
        loss = SynthesisLoss(teacher, torch.tensor([0.0]), torch.tensor([1.0]), config)(x, _targets())
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(grad).all()


def test_synthesis_with_the_prior_moves_the_batch_statistics_to_the_running_ones():
    teacher = _bn_teacher()
    y = _targets()
    mean, std = torch.tensor([0.0]), torch.tensor([1.0])
    distances = {}
    for bn_weight in (0.0, 1.0):
        config = SynthesisConfig(num_iters=150, lr=0.05, batch_size=32, bn_weight=bn_weight)
        with frozen_teacher(teacher):
            result = synthesize_batch(teacher, y, (1, 8, 8), mean, std, config, torch.Generator().manual_seed(0))
        distances[bn_weight] = _bn_distance(teacher, result.images)
        assert result.agreement.float().mean() >= 0.75  # still the targets' classes
    assert distances[1.0] < 0.3 * distances[0.0], distances


def test_bf16_and_channels_last_compute_the_same_prior():
    teacher = _bn_teacher()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = _targets()
    mean, std = torch.tensor([0.0]), torch.tensor([1.0])
    with frozen_teacher(teacher):
        fp32 = SynthesisLoss(teacher, mean, std, SynthesisConfig(bn_weight=1.0))(x, y)
        fast = SynthesisLoss(teacher, mean, std, SynthesisConfig(bn_weight=1.0, precision="bf16", channels_last=True))
        fast_loss = fast(x, y)
    assert torch.allclose(fp32, fast_loss, rtol=0.02, atol=0.02)
    assert len(batchnorm_layers(teacher)) == 2 and not teacher._forward_hooks  # hooks on the engine's copy only
    assert not any(layer._forward_hooks for layer in batchnorm_layers(teacher))


def test_a_teacher_without_batchnorm_is_a_config_error_before_anything_is_written(tmp_path):
    ckpt = tmp_path / "tiny.pt"
    torch.save(make_tiny_teacher().state_dict(), ckpt)
    settings = dict(
        teacher={"key": "conftest.TinyTeacher", "source": "import", "src_ckpt": str(ckpt)},
        num_impressions=8,
        store_root=tmp_path / "s",
        synthesis={"num_iters": 2, "batch_size": 8, "bn_weight": 0.1},
        progress=False,
    )
    with pytest.raises(ValueError, match="synthesis bn_weight needs a teacher with BatchNorm layers"):
        make_impression_store(settings)
    assert not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match="early_stop_tol needs bn_weight: 0"):
        SynthesisConfig(bn_weight=0.1, early_stop_tol=1e-3)
    with pytest.raises(ValueError, match="warm_start needs bn_weight: 0"):
        SynthesisConfig(bn_weight=0.1, warm_start=True)


def test_the_prior_enters_the_store_key_only_when_set():
    teacher = _bn_teacher()
    inputs = InputConfig(input_size=(1, 8, 8), mean=(0.0,), std=(1.0,))

    def key(**synthesis) -> str:
        config = ImpressionConfig(num_impressions=8, synthesis=SynthesisConfig(**synthesis))
        return open_store("unused", teacher, inputs, config, 4).path.name

    assert key() == key(bn_first_multiplier=1.0)  # off: the key of a store made before the prior existed
    assert len({key(), key(bn_weight=0.1), key(bn_weight=0.1, bn_first_multiplier=10.0)}) == 3
    assert key(bn_weight=0.1) == key(bn_weight=0.1, bn_distance="deepinversion")
    assert key(bn_weight=0.1) != key(bn_weight=0.1, bn_distance="standardized")
    with_prior = ImpressionConfig(num_impressions=8, synthesis=SynthesisConfig(bn_weight=0.1)).to_dict()
    assert with_prior["parts"] == "mixed classes"  # stores made with one-class parts under the prior are not reused


def _totals(plans) -> dict[tuple[int, float], int]:
    totals: dict[tuple[int, float], int] = {}
    for plan in plans:
        for k, beta, n in plan.segments:
            totals[(k, beta)] = totals.get((k, beta), 0) + n
    return totals


def test_with_the_prior_every_part_mixes_all_classes_in_proportion():
    # the prior matches a batch to statistics of the whole data, which a one-class batch cannot (and should not) meet
    mixed = plan_parts(10, ImpressionConfig(num_impressions=430, synthesis=SynthesisConfig(batch_size=50, bn_weight=1)))
    one_class = plan_parts(10, ImpressionConfig(num_impressions=430, synthesis=SynthesisConfig(batch_size=50)))
    assert sorted(p.count for p in mixed) == [47] * 2 + [48] * 7  # 9 near-equal parts, none over 50
    assert _totals(mixed) == _totals(one_class)  # the same impressions, laid out differently
    for plan in mixed:
        per_class = [sum(n for c, _, n in plan.segments if c == k) for k in range(10)]
        assert min(per_class) >= plan.count // 10 - 1 and max(per_class) <= plan.count // 10 + 1, per_class
        assert {beta for _, beta, _ in plan.segments} == {1.0, 0.1}
    shards = [shard_parts(mixed, rank, 3) for rank in range(3)]
    assert set().union(*shards) == set(range(9)) and [len(s) for s in shards] == [3, 3, 3]  # parts dealt singly
    # a batch with room for one of each class holds every class; the last part is not left with a few images
    tight = plan_parts(10, ImpressionConfig(1000, synthesis=SynthesisConfig(batch_size=10, bn_weight=1)))
    assert all({k for k, _, _ in p.segments} == set(range(10)) for p in tight)
    uneven = plan_parts(10, ImpressionConfig(1001, synthesis=SynthesisConfig(batch_size=200, bn_weight=1)))
    assert sorted(p.count for p in uneven) == [166] + [167] * 5


def test_a_store_made_with_the_prior_holds_mixed_parts(tmp_path):
    ckpt = tmp_path / "bn.pt"
    torch.save(_bn_teacher().state_dict(), ckpt)
    store = make_impression_store(
        dict(
            teacher={"key": "test_bn_prior.BNTeacher", "source": "import", "src_ckpt": str(ckpt)},
            num_impressions=24,
            store_root=tmp_path / "s",
            synthesis={"num_iters": 2, "batch_size": 8, "bn_weight": 0.1},
            progress=False,
        )
    )
    assert store.load().targets.shape == (24, 4)
    per_class = [0, 0, 0, 0]
    for index in range(3):  # each part of 8 holds two impressions of each of the 4 classes, one per beta
        segments = store.part_meta(index)["segments"]
        assert sorted((k, n) for k, _, n in segments) == [(k, 1) for k in (0, 0, 1, 1, 2, 2, 3, 3)]
        for k, _, n in segments:
            per_class[k] += n
    assert per_class == [6, 6, 6, 6]
