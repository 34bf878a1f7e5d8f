import argparse

import pytest
import torch

from zskd_plugin.models import create_model
from zskd_plugin.teacher import (
    TeacherSpec,
    load_checkpoint_state,
    load_teacher,
    resolve_input_config,
    teacher_fingerprint,
)


def test_paper_models_have_the_papers_sizes():
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(create_model("lenet5_half")) == 35_820  # the ZSKD LeNet-5-half, not DAFL's 3-8-60-42
    assert count(create_model("lenet5")) == 61_706
    assert 1.6e6 < count(create_model("alexnet_cifar")) < 1.7e6
    assert 0.40e6 < count(create_model("alexnet_cifar_half")) < 0.43e6
    assert create_model("alexnet_cifar_half")(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_sources_timm_torchvision_zskd_and_import():
    timm_model = load_teacher(TeacherSpec(key="resnet10t", source="timm", kwargs={"num_classes": 3, "in_chans": 1}))
    assert timm_model.get_classifier().out_features == 3
    tv = load_teacher(TeacherSpec(key="mobilenet_v3_small", kwargs={"num_classes": 4}))
    assert type(tv).__module__.startswith("torchvision")
    assert type(load_teacher(TeacherSpec(key="lenet5"))).__name__ == "LeNet5"
    imported = load_teacher(TeacherSpec(key="conftest.TinyTeacher", source="import", kwargs={"num_classes": 5}))
    assert imported.head.fc.out_features == 5
    with pytest.raises(ValueError, match="no model 'no_such_net'"):
        load_teacher(TeacherSpec(key="no_such_net"))


def test_input_config_from_timm_pretrained_cfg_follows_in_chans():
    spec = TeacherSpec(key="resnet10t", source="timm", kwargs={"num_classes": 3, "in_chans": 1})
    cfg = resolve_input_config(load_teacher(spec), spec)
    assert cfg.input_size[0] == 1 and len(cfg.mean) == 1 and len(cfg.std) == 1
    spec32 = TeacherSpec(key="lenet5", input_size=[1, 32, 32], mean=[0.5], std=[0.5])
    assert resolve_input_config(load_teacher(spec32), spec32).mean == (0.5,)


def test_torchdistill_checkpoint_loads_weights_only(tmp_path, tiny_teacher):
    path = tmp_path / "ckpt.pt"
    # what torchdistill's save_ckpt writes: the state dict under 'model', plus argparse args
    torch.save({"model": tiny_teacher.state_dict(), "optimizer": {}, "args": argparse.Namespace(lr=0.1)}, path)
    state = load_checkpoint_state(path)
    assert all(torch.equal(state[k], v) for k, v in tiny_teacher.state_dict().items())


class _Opaque:
    pass


def test_checkpoint_with_arbitrary_objects_needs_explicit_permission(tmp_path, tiny_teacher):
    path = tmp_path / "unsafe.pt"
    torch.save({"model": tiny_teacher.state_dict(), "extra": _Opaque()}, path)
    with pytest.raises(ValueError, match="allow_unsafe_checkpoint"):
        load_checkpoint_state(path)
    assert set(load_checkpoint_state(path, allow_unsafe=True)) == set(tiny_teacher.state_dict())


def test_checkpoint_that_does_not_fit_is_explained(tmp_path):
    path = tmp_path / "lenet.pt"
    torch.save(create_model("lenet5", num_classes=10).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit"):
        load_teacher(TeacherSpec(key="lenet5_half", src_ckpt=str(path)))
    with pytest.raises(FileNotFoundError, match="train the teacher first"):
        load_teacher(TeacherSpec(key="lenet5", src_ckpt=str(tmp_path / "missing.pt")))


def test_fingerprint_changes_with_any_weight(tiny_teacher):
    before = teacher_fingerprint(tiny_teacher)
    assert teacher_fingerprint(tiny_teacher) == before
    with torch.no_grad():
        tiny_teacher.hidden.bias[0] += 1e-3
    assert teacher_fingerprint(tiny_teacher) != before


def test_spec_from_a_torchdistill_model_block_keeps_what_synthesis_needs():
    block = {
        "key": "resnet18",
        "kwargs": {"num_classes": 3},
        "repo_or_dir": "owner/repo",
        "dst_ckpt": "out.pt",
        "_experiment": "anchor",
        "src_ckpt": "in.pt",
    }
    spec = TeacherSpec.from_dict(block)
    assert (spec.key, spec.repo_or_dir, spec.src_ckpt, dict(spec.kwargs)) == (
        "resnet18",
        "owner/repo",
        "in.pt",
        {"num_classes": 3},
    )
    with pytest.raises(TypeError, match="src_ckpts"):
        TeacherSpec.from_dict({"key": "lenet5", "src_ckpts": "in.pt"})


def test_mean_without_std_is_refused():
    with pytest.raises(ValueError, match="teacher std is missing: teacher mean and std go together"):
        TeacherSpec(key="lenet5", mean=[0.5])
