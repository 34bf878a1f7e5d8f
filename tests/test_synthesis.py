import numpy as np
import pytest
import torch
from torch import nn

from zskd_plugin.dirichlet import sample_soft_targets
from zskd_plugin.losses import tempered_cross_entropy
from zskd_plugin.similarity import class_similarity
from zskd_plugin.synthesis import SynthesisConfig, frozen_teacher, synthesize_batch

MEAN, STD = torch.tensor([0.5]), torch.tensor([0.25])


def _targets(teacher, n_per_class=16, beta=1.0, seed=0):
    sim = class_similarity(teacher.head.fc.weight)
    rng = np.random.default_rng(seed)
    return torch.cat([sample_soft_targets(sim[k], beta, n_per_class, rng) for k in range(sim.shape[0])])


def _initial_loss(teacher, targets, generator_seed, tau):
    x = torch.rand((targets.shape[0], 1, 8, 8), generator=torch.Generator().manual_seed(generator_seed))
    with torch.no_grad():
        return tempered_cross_entropy(teacher((x - 0.5) / 0.25), targets, tau)


def _run(teacher, targets, config, seed=0):
    """One batch on the 1x8x8 tiny teacher, initial noise from ``seed``."""
    return synthesize_batch(teacher, targets, (1, 8, 8), MEAN, STD, config, torch.Generator().manual_seed(seed))


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
        _run(tiny_teacher, targets, SynthesisConfig(num_iters=5))
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
    "field, value", [("num_iters", -1), ("batch_size", 0), ("temperature", 0.0), ("lr", float("nan"))]
)
def test_config_rejects_non_positive_settings(field, value):
    with pytest.raises(ValueError, match=field):
        SynthesisConfig(**{field: value})


def _reference_adam(teacher, targets, init, lr, iters, tau):
    """The plain loop: torch.optim.Adam on the whole batch, clamp to [0, 1]."""
    x = init.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(iters):
        opt.zero_grad()
        tempered_cross_entropy(teacher((x - 0.5) / 0.25), targets, tau).sum().backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


def test_engine_adam_matches_torch_adam(tiny_teacher):
    targets = _targets(tiny_teacher, n_per_class=8)
    init = torch.rand((32, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    cfg = SynthesisConfig(num_iters=40, lr=0.05)
    with frozen_teacher(tiny_teacher):
        ours = synthesize_batch(tiny_teacher, targets, (1, 8, 8), MEAN, STD, cfg, torch.Generator(), init=init)
        ref = _reference_adam(tiny_teacher, targets, init, 0.05, 40, 20.0)
    torch.testing.assert_close(ours.images, ref, atol=1e-5, rtol=0)
    assert (ours.steps == 40).all()


def test_early_stopping_retires_converged_images_without_losing_quality(tiny_teacher):
    targets = _targets(tiny_teacher, n_per_class=16)
    full_cfg = SynthesisConfig(num_iters=300, lr=0.05)
    early_cfg = SynthesisConfig(num_iters=300, lr=0.05, early_stop_tol=1e-3, early_stop_every=10)
    with frozen_teacher(tiny_teacher):
        full, early = _run(tiny_teacher, targets, full_cfg), _run(tiny_teacher, targets, early_cfg)
    assert early.steps.float().mean() < 0.7 * 300  # most images stopped well before the budget
    assert early.steps.min() >= 10 and early.steps.max() <= 300 and (early.steps % 10 == 0).all()
    assert early.losses.mean() <= full.losses.mean() + 0.01  # nats: converged means no real loss left to gain
    assert early.agreement.float().mean() >= full.agreement.float().mean() - 0.02
    # an image that stopped keeps the pixels it had then: rerunning with the budget cut at its stop step matches it
    stopped = int(torch.nonzero(early.steps == early.steps.min())[0])
    with frozen_teacher(tiny_teacher):
        cut = _run(tiny_teacher, targets, SynthesisConfig(num_iters=int(early.steps.min()), lr=0.05))
    torch.testing.assert_close(early.images[stopped], cut.images[stopped], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "engine",
    [{"precision": "bf16"}, {"channels_last": True}, {"compile": True}, {"lr_schedule": "cosine", "lr": 0.2}],
    ids=["bf16", "channels_last", "compile", "cosine"],
)
def test_engine_options_keep_dis_as_good_and_leave_the_teacher_alone(tiny_teacher, engine):
    targets = _targets(tiny_teacher, n_per_class=16)
    before = {k: v.clone() for k, v in tiny_teacher.state_dict().items()}
    with frozen_teacher(tiny_teacher):
        plain = _run(tiny_teacher, targets, SynthesisConfig(num_iters=100))
        fast = _run(tiny_teacher, targets, SynthesisConfig(num_iters=100, **engine))
    assert fast.losses.mean() <= plain.losses.mean() + 0.02  # final loss is measured by the fp32 teacher for both
    assert fast.agreement.float().mean() >= plain.agreement.float().mean() - 0.03
    for k, v in tiny_teacher.state_dict().items():
        assert torch.equal(before[k], v) and v.is_contiguous()


def test_early_stop_refuses_minmax_rescale():
    with pytest.raises(ValueError, match="minmax_rescale: false"):
        SynthesisConfig(early_stop_tol=1e-3, minmax_rescale=True)
    with pytest.raises(ValueError, match="precision"):
        SynthesisConfig(precision="fp16")
    with pytest.raises(ValueError, match="lr_schedule"):
        SynthesisConfig(lr_schedule="step")


def test_zero_iterations_keep_the_initial_noise(tiny_teacher):
    targets = _targets(tiny_teacher, n_per_class=2)
    init = torch.rand((8, 1, 8, 8), generator=torch.Generator().manual_seed(5))
    with frozen_teacher(tiny_teacher):
        noise = synthesize_batch(
            tiny_teacher, targets, (1, 8, 8), MEAN, STD, SynthesisConfig(num_iters=0), torch.Generator(), init=init
        )
    assert torch.equal(noise.images, init) and (noise.steps == 0).all()


@pytest.mark.parametrize("size, channels", [(5, 48), (4, 7), (3, 2)])
def test_channel_window_lrn_is_torchs_local_response_norm(size, channels):
    from zskd_plugin.synthesis import ChannelWindowLRN

    x = (torch.randn(4, channels, 6, 6, generator=torch.Generator().manual_seed(0)) * 3).requires_grad_(True)
    ref, fast = nn.LocalResponseNorm(size, alpha=5e-4, beta=0.75, k=1.0), ChannelWindowLRN(size, 5e-4, 0.75, 1.0)
    out_ref, out_fast = ref(x), fast(x)
    torch.testing.assert_close(out_fast, out_ref, atol=1e-5, rtol=1e-5)
    (g_ref,) = torch.autograd.grad((out_ref * torch.linspace(-1, 1, out_ref.numel()).view_as(x)).sum(), x)
    (g_fast,) = torch.autograd.grad((out_fast * torch.linspace(-1, 1, out_ref.numel()).view_as(x)).sum(), x)
    torch.testing.assert_close(g_fast, g_ref, atol=1e-5, rtol=1e-5)


def test_engine_swaps_lrn_on_a_copy_only():
    from zskd_plugin.models import create_model
    from zskd_plugin.synthesis import ChannelWindowLRN, SynthesisLoss

    teacher = create_model("alexnet_cifar_half", num_classes=10).eval()
    loss_fn = SynthesisLoss(teacher, torch.zeros(3), torch.ones(3), SynthesisConfig())
    assert any(isinstance(m, ChannelWindowLRN) for m in loss_fn.model.modules())
    assert any(isinstance(m, nn.LocalResponseNorm) for m in teacher.modules())  # the caller's model is untouched
    x, y = torch.rand(4, 3, 32, 32), torch.full((4, 10), 0.1)
    with torch.no_grad():
        plain = tempered_cross_entropy(teacher(x), y, 20.0)
        torch.testing.assert_close(loss_fn(x, y), plain, atol=1e-5, rtol=1e-5)


def test_image_priors_smooth_and_darken_dis_and_keep_the_target(tiny_teacher):
    from zskd_plugin.synthesis import total_variation

    targets = _targets(tiny_teacher, n_per_class=16)
    with frozen_teacher(tiny_teacher):
        plain = _run(tiny_teacher, targets, SynthesisConfig(num_iters=150))
        priors = _run(tiny_teacher, targets, SynthesisConfig(num_iters=150, tv_weight=1.0, l2_weight=0.1))
    z2 = lambda images: ((images - MEAN) / STD).pow(2).mean()
    assert total_variation(priors.images).mean() < 0.8 * total_variation(plain.images).mean()
    assert z2(priors.images) < 0.8 * z2(plain.images)
    assert priors.agreement.float().mean() >= 0.85  # the teacher still sees the target class
    # the reported losses stay the teacher's cross-entropy alone: the same function for both runs
    with torch.no_grad():
        ce = tempered_cross_entropy(tiny_teacher((priors.images - MEAN) / STD), targets, 20.0)
    torch.testing.assert_close(priors.losses, ce, atol=1e-5, rtol=0)


def test_total_variation_of_known_images():
    from zskd_plugin.synthesis import total_variation

    flat = torch.full((1, 1, 4, 4), 0.3)
    stripes = torch.tensor([0.0, 1.0, 0.0, 1.0]).repeat(4, 1).view(1, 1, 4, 4)  # columns alternate
    torch.testing.assert_close(total_variation(flat), torch.zeros(1))
    torch.testing.assert_close(total_variation(stripes), torch.ones(1))  # every horizontal step is 1, vertical 0


@pytest.mark.parametrize("field", ["tv_weight", "l2_weight"])
def test_config_rejects_negative_prior_weights(field):
    with pytest.raises(ValueError, match=field):
        SynthesisConfig(**{field: -0.1})
