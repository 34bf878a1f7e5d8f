import numpy as np
import pytest
import torch

from zskd_plugin.dirichlet import sample_soft_targets
from zskd_plugin.similarity import class_similarity
from zskd_plugin.synthesis import SynthesisConfig, _tempered_ce, frozen_teacher, synthesize_batch

MEAN, STD = torch.tensor([0.5]), torch.tensor([0.25])


def _targets(teacher, n_per_class=16, beta=1.0, seed=0):
    sim = class_similarity(teacher.head.fc.weight)
    rng = np.random.default_rng(seed)
    return torch.cat([sample_soft_targets(sim[k], beta, n_per_class, rng) for k in range(sim.shape[0])])


def _initial_loss(teacher, targets, generator_seed, tau):
    x = torch.rand((targets.shape[0], 1, 8, 8), generator=torch.Generator().manual_seed(generator_seed))
    with torch.no_grad():
        return _tempered_ce(teacher((x - 0.5) / 0.25), targets, tau)


def test_synthesis_lowers_the_loss_and_matches_the_target_class(tiny_teacher):
    targets = _targets(tiny_teacher)
    cfg = SynthesisConfig(num_iters=150, lr=0.05, batch_size=64, temperature=20.0)
    before = _initial_loss(tiny_teacher, targets, 0, 20.0)
    with frozen_teacher(tiny_teacher):
        result = synthesize_batch(tiny_teacher, targets, (1, 8, 8), MEAN, STD, cfg, torch.Generator().manual_seed(0))
    assert result.images.shape == (64, 1, 8, 8)
    assert result.images.min() >= 0 and result.images.max() <= 1  # pixel space, clamped
    assert result.losses.mean() < before.mean() - 0.5
    assert result.agreement.float().mean() >= 0.85


def test_teacher_is_frozen_during_and_restored_after(tiny_teacher):
    tiny_teacher.train()
    targets = _targets(tiny_teacher, n_per_class=2)
    before = {k: v.clone() for k, v in tiny_teacher.state_dict().items()}
    with frozen_teacher(tiny_teacher):
        assert not tiny_teacher.training
        assert not any(p.requires_grad for p in tiny_teacher.parameters())
        synthesize_batch(
            tiny_teacher, targets, (1, 8, 8), MEAN, STD, SynthesisConfig(num_iters=5), torch.Generator().manual_seed(0)
        )
    assert tiny_teacher.training and all(p.requires_grad for p in tiny_teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in tiny_teacher.state_dict().items())
    assert all(p.grad is None for p in tiny_teacher.parameters())


def test_same_seed_same_images_and_minmax_option_changes_them(tiny_teacher):
    targets = _targets(tiny_teacher, n_per_class=2)
    cfg = SynthesisConfig(num_iters=10)
    run = lambda c, s: synthesize_batch(
        tiny_teacher, targets, (1, 8, 8), MEAN, STD, c, torch.Generator().manual_seed(s)
    )
    with frozen_teacher(tiny_teacher):
        a, b, c = run(cfg, 1), run(cfg, 1), run(cfg, 2)
        m = run(SynthesisConfig(num_iters=10, minmax_rescale=True), 1)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert m.images.min() == 0 and m.images.max() == 1 and not torch.equal(a.images, m.images)


def test_nan_teacher_raises(tiny_teacher):
    with torch.no_grad():
        tiny_teacher.hidden.weight[0, 0] = float("nan")
    with frozen_teacher(tiny_teacher), pytest.raises(FloatingPointError, match="NaN"):
        synthesize_batch(
            tiny_teacher,
            _targets(tiny_teacher, 1),
            (1, 8, 8),
            MEAN,
            STD,
            SynthesisConfig(num_iters=3),
            torch.Generator().manual_seed(0),
        )


@pytest.mark.parametrize(
    "field, value", [("num_iters", 0), ("batch_size", -1), ("temperature", 0.0), ("lr", float("nan"))]
)
def test_config_rejects_non_positive_settings(field, value):
    with pytest.raises(ValueError, match=field):
        SynthesisConfig(**{field: value})
