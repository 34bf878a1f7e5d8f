"""The target modes of a store: ZSKD's Dirichlet soft targets and DeepInversion's one-hot class targets."""

from __future__ import annotations

import pytest
import torch
from test_bn_prior import _bn_teacher

from zskd_plugin.builder import make_impression_store
from zskd_plugin.impressions import ImpressionConfig, open_store
from zskd_plugin.teacher import InputConfig


def _store(tmp_path, num_iters: int, **settings):
    tmp_path.mkdir(parents=True, exist_ok=True)
    ckpt = tmp_path / "bn.pt"
    torch.save(_bn_teacher().state_dict(), ckpt)
    return make_impression_store(
        dict(
            teacher={"key": "test_bn_prior.BNTeacher", "source": "import", "src_ckpt": str(ckpt)},
            num_impressions=24,
            store_root=tmp_path / "s",
            synthesis={"num_iters": num_iters, "batch_size": 8, "temperature": 1.0, "lr": 0.1, "bn_weight": 0.1},
            progress=False,
            **settings,
        )
    )


def test_one_hot_targets_are_each_impressions_class(tmp_path):
    store = _store(tmp_path, 2, targets="one_hot")
    targets = store.load().targets
    assert targets.shape == (24, 4)
    assert torch.equal(targets.sum(1), torch.ones(24)) and torch.equal(targets.max(1).values, torch.ones(24))
    assert targets.argmax(1).bincount(minlength=4).tolist() == [6, 6, 6, 6]
    offset = 0
    for index in range(3):  # in store order, each row is one-hot at the class its part's segment names
        for k, _, n in store.part_meta(index)["segments"]:
            assert targets[offset : offset + n].argmax(1).tolist() == [k] * n
            offset += n


def test_one_hot_synthesis_drives_the_teacher_to_the_class(tmp_path):
    # cross-entropy against a one-hot target at temperature 1 is DeepInversion's class loss: it falls as the images
    # are optimised, and the teacher's argmax moves to the target class
    before = _store(tmp_path / "a", 0, targets="one_hot").load()
    after = _store(tmp_path / "b", 60, targets="one_hot").load()
    assert torch.equal(before.targets, after.targets)
    assert after.losses.mean() < 0.5 * before.losses.mean(), (before.losses.mean(), after.losses.mean())
    teacher = _bn_teacher().eval()
    with torch.no_grad():
        agree = [(teacher(d.images).argmax(1) == d.targets.argmax(1)).float().mean().item() for d in (before, after)]
    assert agree[1] >= agree[0] + 0.4, agree  # from chance (1/4) to most of them, against the BN prior's pull


def test_the_target_mode_enters_the_store_key_only_when_set():
    teacher = _bn_teacher()
    inputs = InputConfig(input_size=(1, 8, 8), mean=(0.0,), std=(1.0,))

    def key(**kwargs) -> str:
        return open_store("unused", teacher, inputs, ImpressionConfig(num_impressions=8, **kwargs), 4).path.name

    assert "targets" not in ImpressionConfig(num_impressions=8).to_dict()  # stores made before the option keep keys
    assert key() == key(targets="dirichlet") != key(targets="one_hot")


def test_an_unknown_target_mode_is_named_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"targets must be one of \['dirichlet', 'one_hot'\]"):
        _store(tmp_path, 2, targets="onehot")
    assert not (tmp_path / "s").exists()
