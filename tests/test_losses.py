import math

import pytest
import torch

from zskd_plugin.losses import ZSKDLoss, zskd_kd_loss


def test_loss_equals_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.0]])
    t = torch.tensor([[3.0, 0.0, 1.0]])
    tau = 2.0
    pt = [math.exp(v / tau) for v in (3.0, 0.0, 1.0)]
    pt = [v / sum(pt) for v in pt]
    zs = [math.exp(v / tau) for v in (1.0, 2.0, 0.0)]
    log_ps = [math.log(v / sum(zs)) for v in zs]
    expected = tau**2 * -sum(p * lp for p, lp in zip(pt, log_ps))
    assert zskd_kd_loss(s, t, tau).item() == pytest.approx(expected, rel=1e-6)


def test_loss_is_minimal_at_the_teacher_and_its_gradient_vanishes_there():
    torch.manual_seed(0)
    t = torch.randn(4, 10)
    s = t.clone().requires_grad_(True)
    loss = zskd_kd_loss(s, t, 20.0)
    loss.backward()
    assert s.grad.abs().max() < 1e-6
    assert zskd_kd_loss(t + torch.randn(4, 10), t, 20.0) > loss


def test_target_term_adds_weighted_cross_entropy_to_the_stored_targets():
    torch.manual_seed(0)
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    y = torch.softmax(torch.randn(3, 5), dim=1)
    tau, w = 20.0, 0.5
    extra = -(y * torch.log_softmax(s / tau, dim=1)).sum(1).mean() * tau**2 * w
    assert zskd_kd_loss(s, t, tau, y, w).item() == pytest.approx((zskd_kd_loss(s, t, tau) + extra).item(), rel=1e-6)
    with pytest.raises(ValueError, match="soft targets"):
        zskd_kd_loss(s, t, tau, torch.tensor([0, 1, 2]), w)


def test_gradcheck_float64():
    torch.manual_seed(0)
    s = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: zskd_kd_loss(x, t, 3.0), (s,))


def test_module_reads_torchdistill_io_dicts_and_validates():
    s, t = torch.randn(2, 3), torch.randn(2, 3)
    loss = ZSKDLoss(temperature=4.0)
    assert loss({".": {"output": s}}, {".": {"output": t}}).item() == pytest.approx(zskd_kd_loss(s, t, 4.0).item())
    assert "tau=4.0" in str(loss)
    with pytest.raises(KeyError, match="student_module_path"):
        loss({"fc": {"output": s}}, {".": {"output": t}})
    with pytest.raises(ValueError, match="temperature"):
        ZSKDLoss(temperature=0.0)
    with pytest.raises(ValueError, match="same"):
        zskd_kd_loss(torch.randn(2, 3), torch.randn(2, 4))
