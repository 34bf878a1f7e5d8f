"""Every shipped YAML config, through torchdistill's own API (load_yaml_file, import_dependencies,
get_training_box / get_distillation_box), for two optimisation steps at test size.

MNIST and Fashion-MNIST configs read the real data sets (prepared by scripts/test.sh). CIFAR-10 cannot be downloaded
here, so its configs run on STAND-IN data: random tensors shaped like CIFAR-10, labelled as such, testing the
plumbing only, never accuracy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import DATA_ROOT, REPO
from torch.utils.data import TensorDataset
from torchdistill.common import yaml_util
from torchdistill.common.main_util import import_dependencies
from torchdistill.core.distillation import get_distillation_box
from torchdistill.core.training import get_training_box
from yaml_util import shrink_config, write_random_teacher

from zskd_plugin.app.runner import load_model
from zskd_plugin.dataset import DataImpressionDataset
from zskd_plugin.teacher_outputs import TeacherOutputDataset

CONFIGS = sorted((REPO / "yaml_configs").rglob("*.yaml"))


class StandInCIFAR10(TensorDataset):
    """STAND-IN for torchvision.datasets.CIFAR10 (no download here): 64 random 3x32x32 images, random labels."""

    def __init__(self, root: str, train: bool = True, download: bool = False, transform=None) -> None:
        g = torch.Generator().manual_seed(int(train))
        super().__init__(torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g))
        self.transform = transform

    def __getitem__(self, index):
        image, label = super().__getitem__(index)
        from torchvision.transforms.functional import to_pil_image

        return (self.transform(to_pil_image(image)) if self.transform else image), int(label)


def test_configs_are_found():
    names = {p.relative_to(REPO / "yaml_configs").as_posix() for p in CONFIGS}
    for expected in (
        "mnist/ce-lenet5.yaml",
        "mnist/kd-lenet5_half_from_lenet5.yaml",
        "mnist/zskd-lenet5_half_from_lenet5.yaml",
        "fashion_mnist/zskd-lenet5_half_from_lenet5.yaml",
        "cifar10/zskd-alexnet_cifar_half_from_alexnet_cifar.yaml",
    ):
        assert expected in names


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(REPO / "yaml_configs").as_posix())
def test_config_runs_two_steps_through_torchdistill(config: Path, tmp_path: Path, monkeypatch, mnist_root):
    if "fashion" in config.as_posix() and not (DATA_ROOT / "FashionMNIST" / "raw").is_dir():
        pytest.fail("Fashion-MNIST is not prepared; run `zskd prepare-data fashion-mnist` (scripts/test.sh does)")
    overrides = {}
    if "cifar10" in config.as_posix():
        overrides["'torchvision.datasets.CIFAR10'"] = "'test_yaml_configs.StandInCIFAR10'"
    path = shrink_config(config, tmp_path, DATA_ROOT, overrides)
    write_random_teacher(path)

    cfg = yaml_util.load_yaml_file(str(path))
    import_dependencies(cfg.get("dependencies"))
    models = cfg["models"]
    student_cfg = models.get("student_model", models.get("model"))
    student = load_model(student_cfg)
    train_cfg = cfg["train"]
    if "teacher_model" in models:
        teacher = load_model(models["teacher_model"])
        box = get_distillation_box(teacher, student, cfg["datasets"], train_cfg, torch.device("cpu"), None, False, 1)
    else:
        box = get_training_box(student, cfg["datasets"], train_cfg, torch.device("cpu"), None, False, 1)
    if "zskd" in config.name:
        wrapped = box.train_data_loader.dataset  # torchdistill's supp-dict wrapper, or our stored teacher outputs
        inner = wrapped.dataset if isinstance(wrapped, TeacherOutputDataset) else wrapped.org_dataset
        assert isinstance(inner, DataImpressionDataset)
        assert "ZSKDLoss" in str(box.criterion)

    before = [p.detach().clone() for p in student.parameters()]
    box.pre_epoch_process(epoch=0)
    if "teacher_model" in models:  # our pre-epoch hook: the teacher stays in eval mode while the student trains
        assert not box.teacher_model.training and box.student_model.training
    losses = []
    for step, (x, targets, supp) in enumerate(box.train_data_loader):
        loss = box.forward_process(x, targets, supp)
        box.post_forward_process(loss=loss)
        losses.append(loss.item())
        if step == 1:
            break
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(b, p) for b, p in zip(before, student.parameters()))
    x_val, y_val = next(iter(box.val_data_loader))
    assert y_val.dtype == torch.int64  # torchdistill's evaluation needs integer labels
