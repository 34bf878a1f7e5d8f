"""Teacher outputs stored once for a fixed transfer set (issue 18: distillation speed): the stored logits are the
teacher's, the teacher is not run again, a random transform is refused, and torchdistill trains the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import DATA_ROOT, REPO, make_tiny_teacher
from torch import nn
from torchdistill.common import yaml_util
from torchdistill.common.main_util import import_dependencies
from torchdistill.core.distillation import get_distillation_box
from torchdistill.core.interfaces.registry import FORWARD_PROC_FUNC_DICT
from torchdistill.datasets.registry import DATASET_WRAPPER_DICT
from torchvision.transforms import Normalize
from yaml_util import shrink_config, write_random_teacher
from zskd_plugin.registry.teacher_outputs import FORWARD_PROC_KEY, WRAPPER_KEY

import zskd_plugin  # noqa: F401  (registers everything)
from zskd_plugin.app.cli import main
from zskd_plugin.app.runner import load_model
from zskd_plugin.augment import ImpressionAugment
from zskd_plugin.dataset import DataImpressionDataset
from zskd_plugin.losses import zskd_kd_loss
from zskd_plugin.teacher_outputs import (
    SUPP_KEY,
    PerBatchTeacherOutputDataset,
    TeacherOutputDataset,
    compute_teacher_outputs,
)


def _impressions(batch_transform=None, n: int = 37) -> DataImpressionDataset:
    g = torch.Generator().manual_seed(0)
    images, targets = torch.rand(n, 1, 8, 8, generator=g), torch.softmax(torch.randn(n, 4, generator=g), dim=1)
    return DataImpressionDataset(
        images, targets, transform=Normalize([0.5], [0.25]) if batch_transform is None else None,
        batch_transform=batch_transform,
    )  # fmt: skip


def test_stored_outputs_are_the_teachers_on_each_item_in_order():
    teacher, data = make_tiny_teacher().train(), _impressions()
    outputs = compute_teacher_outputs(teacher, data, batch_size=8, progress=False)  # 37 items: a short last batch
    assert teacher.training  # the caller's mode is given back
    with torch.no_grad():
        expected = teacher.eval()(torch.stack([data[i][0] for i in range(len(data))]))
    assert outputs.shape == (37, 4) and outputs.dtype == torch.float32
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-4)
    stored = TeacherOutputDataset(data, outputs)
    image, target, supp = stored[5]
    assert torch.equal(image, data[5][0]) and torch.equal(target, data[5][1])
    assert torch.equal(supp[SUPP_KEY], outputs[5])


def test_an_existing_supplementary_dict_is_kept_and_a_wrong_shape_refused():
    class WithSupp(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(1, 8, 8), i, {"pos_idx": i}

    stored = TeacherOutputDataset(WithSupp(), torch.arange(12.0).view(3, 4))
    supp = stored[2][2]
    assert supp.keys() == {"pos_idx", SUPP_KEY} and supp["pos_idx"] == 2
    assert torch.equal(supp[SUPP_KEY], torch.tensor([8.0, 9.0, 10.0, 11.0]))
    with pytest.raises(ValueError, match=r"do not fit a transfer set of 3 items"):
        TeacherOutputDataset(WithSupp(), torch.zeros(4, 4))


def test_a_transfer_set_with_a_random_transform_is_refused_naming_the_fix():
    augmented = _impressions(batch_transform=ImpressionAugment(degrees=15, translate=0.1))
    with pytest.raises(ValueError, match=r"changed between two reads.*dataset_wrapper.*forward_proc.*fixed_views: k"):
        compute_teacher_outputs(make_tiny_teacher(), augmented, progress=False)


def test_the_forward_process_returns_stored_outputs_without_running_the_teacher():
    class MustNotRun(nn.Module):
        def forward(self, x):
            raise AssertionError("the teacher ran")

    proc = FORWARD_PROC_FUNC_DICT[FORWARD_PROC_KEY]
    stored = torch.randn(4, 10)
    assert torch.equal(proc(MustNotRun(), torch.zeros(4, 1, 8, 8), None, {SUPP_KEY: stored}), stored)
    with pytest.raises(ValueError, match=rf"dataset_wrapper: {{key: {WRAPPER_KEY}"):
        proc(MustNotRun(), torch.zeros(4, 1, 8, 8), None, {})
    assert WRAPPER_KEY in DATASET_WRAPPER_DICT


def test_the_wrapper_builds_its_teacher_without_moving_the_runs_random_stream(tmp_path):
    ckpt = tmp_path / "tiny.pt"
    torch.save(make_tiny_teacher().state_dict(), ckpt)
    data = _impressions()
    torch.manual_seed(3)
    state = torch.get_rng_state()
    stored = DATASET_WRAPPER_DICT[WRAPPER_KEY](data, teacher={"key": "conftest.TinyTeacher", "src_ckpt": str(ckpt)})
    assert torch.equal(torch.get_rng_state(), state)  # else the sampler's order would change with the wrapper
    torch.testing.assert_close(stored.outputs, compute_teacher_outputs(make_tiny_teacher(), data, progress=False))
    with pytest.raises(ValueError, match="must be the teacher block"):
        DATASET_WRAPPER_DICT[WRAPPER_KEY](data, teacher="conftest.TinyTeacher")


def test_per_batch_outputs_are_the_teachers_on_the_views_served_with_them():
    teacher = make_tiny_teacher().train()
    data = _impressions(batch_transform=ImpressionAugment(degrees=15, translate=0.1, contrast=0.5))
    per_batch = PerBatchTeacherOutputDataset(data, teacher)
    assert not teacher.training  # outputs as the teacher predicts, not with batch statistics
    torch.manual_seed(1)
    items = per_batch.__getitems__([3, 0, 36])
    torch.manual_seed(1)
    views = data.__getitems__([3, 0, 36])  # the same draws: the wrapper reads its batch as the loader would
    samples = torch.stack([view for view, _ in views])
    assert all(torch.equal(item[0], view) for item, (view, _) in zip(items, views))
    assert torch.equal(items[2][1], data.targets[36])
    with torch.no_grad():
        expected = teacher(samples)
    outputs = torch.stack([item[2][SUPP_KEY] for item in items])
    assert not outputs.requires_grad and not outputs.is_inference()  # a loss may save them for its backward
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-4)
    again = per_batch.__getitems__([3, 0, 36])  # the augmentation draws again: new views, their own outputs
    assert not torch.equal(again[0][0], items[0][0]) and not torch.equal(again[0][2][SUPP_KEY], outputs[0])


def test_per_batch_outputs_on_a_dataset_read_item_by_item_keep_its_supplementary_dict():
    class WithSupp(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return torch.full((1, 8, 8), float(i)), i, {"pos_idx": i}

    teacher = make_tiny_teacher()
    sample, target, supp = PerBatchTeacherOutputDataset(WithSupp(), teacher)[4]
    assert target == 4 and supp["pos_idx"] == 4
    with torch.no_grad():
        torch.testing.assert_close(supp[SUPP_KEY], teacher(sample[None])[0], rtol=1e-5, atol=1e-4)


def test_per_batch_outputs_on_cuda_in_a_worker_process_are_refused_naming_the_fix(monkeypatch):
    per_batch = PerBatchTeacherOutputDataset(_impressions(), make_tiny_teacher(), device="cuda")
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())  # as inside a DataLoader worker
    with pytest.raises(RuntimeError, match=r"num_workers: 0.*device: 'cpu'"):
        per_batch[0]


def _loader_outputs(per_batch: PerBatchTeacherOutputDataset, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        per_batch, batch_size=8, shuffle=True, num_workers=1, persistent_workers=True, prefetch_factor=2
    )
    views, outputs = [], []
    for _ in range(2):  # two passes through one persistent worker
        for x, _, supp in loader:
            views.append(x)
            outputs.append(supp[SUPP_KEY])
    return torch.cat(views), torch.cat(outputs)


def test_a_worker_process_computes_per_batch_outputs_reproducibly():
    teacher = make_tiny_teacher()
    per_batch = PerBatchTeacherOutputDataset(_impressions(batch_transform=ImpressionAugment(degrees=15)), teacher)
    views, outputs = _loader_outputs(per_batch, seed=0)
    assert views.shape == (74, 1, 8, 8)  # 37 items, two passes
    assert not torch.equal(views[:37].sort(0).values, views[37:].sort(0).values)  # each pass draws new views
    with torch.no_grad():
        torch.testing.assert_close(outputs, teacher(views), rtol=1e-5, atol=1e-4)
    views_again, outputs_again = _loader_outputs(per_batch, seed=0)
    assert torch.equal(views_again, views) and torch.equal(outputs_again, outputs)


def _with_teacher_outputs(text: str, wrapper: str, proc: str) -> str:
    """A shipped config's text with its stored-output dataset_wrapper line and its teacher forward_proc replaced."""
    text = re.sub(r"    dataset_wrapper: \{key: '" + WRAPPER_KEY + "'.*", f"    {wrapper}", text)
    return re.sub(r"(  teacher:\n    forward_proc: )'[a-z_]+'", rf"\1'{proc}'", text)


def _plain_variant(path: Path) -> Path:
    """The same config with the teacher run on every batch (no dataset wrapper, torchdistill's forward process)."""
    text = _with_teacher_outputs(path.read_text(), "", "forward_batch_only")
    assert WRAPPER_KEY not in text and FORWARD_PROC_KEY not in text
    out = path.with_name("plain-" + path.name)
    out.write_text(text)
    return out


def _train_losses(path: Path, steps: int) -> list[float]:
    torch.manual_seed(0)  # the datasets are built as the YAML loads: their fixed views draw from this seed
    cfg = yaml_util.load_yaml_file(str(path))
    import_dependencies(cfg.get("dependencies"))
    teacher, student = load_model(cfg["models"]["teacher_model"]), load_model(cfg["models"]["student_model"])
    box = get_distillation_box(teacher, student, cfg["datasets"], cfg["train"], torch.device("cpu"), None, False, 1)
    box.pre_epoch_process(epoch=0)
    losses = []
    for x, targets, supp in box.train_data_loader:
        loss = box.forward_process(x, targets, supp)
        box.post_forward_process(loss=loss)
        losses.append(loss.item())
        if len(losses) == steps:
            return losses
    return losses


def test_torchdistill_trains_the_same_student_with_stored_teacher_outputs(tmp_path, mnist_root):
    config = REPO / "yaml_configs" / "timm" / "zskd-lenet5_half_from_resnet10t_mnist.yaml"
    path = shrink_config(config, tmp_path, DATA_ROOT, {r"num_impressions: \d+": "num_impressions: 200"})
    write_random_teacher(path)
    assert main(["synthesize", "--config", str(path)]) == 0
    assert WRAPPER_KEY in path.read_text()  # the shipped config stores the teacher's outputs
    stored = _train_losses(path, steps=3)
    plain = _train_losses(_plain_variant(path), steps=3)
    assert plain[0] != plain[2]  # the student moved
    torch.testing.assert_close(torch.tensor(stored), torch.tensor(plain), rtol=0, atol=1e-4)


def test_torchdistill_trains_on_per_batch_teacher_outputs_from_a_worker_process(tmp_path, mnist_root):
    config = REPO / "yaml_configs" / "mnist" / "zskd-lenet5_half_from_lenet5-quick.yaml"
    path = shrink_config(config, tmp_path, DATA_ROOT, {r"num_impressions: \d+": "num_impressions: 900"})  # 3 batches
    write_random_teacher(path)
    assert main(["synthesize", "--config", str(path)]) == 0
    wrapper = f"dataset_wrapper: {{key: '{WRAPPER_KEY}', kwargs: {{teacher: *teacher_model, per_batch: true}}}}"
    text = path.read_text().replace("    dataset_id: *zskd_train\n", f"    dataset_id: *zskd_train\n    {wrapper}\n")
    text = _with_teacher_outputs(text, wrapper, FORWARD_PROC_KEY)
    loader_kwargs = "kwargs: {batch_size: 256, num_workers: 0, drop_last: False}\n  val_data_loader"
    assert loader_kwargs in text
    worker = loader_kwargs.replace("num_workers: 0", "num_workers: 1, persistent_workers: True")
    text = text.replace(loader_kwargs, worker)
    path.write_text(text)
    cfg = yaml_util.load_yaml_file(str(path))
    import_dependencies(cfg.get("dependencies"))
    teacher, student = load_model(cfg["models"]["teacher_model"]), load_model(cfg["models"]["student_model"])
    box = get_distillation_box(teacher, student, cfg["datasets"], cfg["train"], torch.device("cpu"), None, False, 1)
    assert box.train_data_loader.num_workers == 1
    box.pre_epoch_process(epoch=0)
    losses = []
    for x, targets, supp in box.train_data_loader:
        with torch.no_grad():  # what the teacher gives on the very views the student trains on, and the loss on them
            expected_outputs = teacher.eval()(x)
            expected_loss = zskd_kd_loss(student(x), expected_outputs, 20.0)
        torch.testing.assert_close(supp[SUPP_KEY], expected_outputs, rtol=1e-5, atol=1e-5)
        loss = box.forward_process(x, targets, supp)
        torch.testing.assert_close(loss.detach(), expected_loss, rtol=1e-6, atol=1e-6)
        box.post_forward_process(loss=loss)
        losses.append(loss.item())
    assert len(losses) == 4 and len(set(losses)) == 4  # 810 training DIs in batches of 256; the student moved


@pytest.mark.parametrize(
    "wrapper, proc, message",
    [
        ("", FORWARD_PROC_KEY, r"reads stored teacher outputs, but train.train_data_loader has no `dataset_wrapper"),
        (f"dataset_wrapper: {{key: '{WRAPPER_KEY}', kwargs: {{}}}}", "forward_batch_only", r"does not read them"),
    ],
)
def test_the_wrapper_and_the_forward_process_are_checked_to_come_together(tmp_path, capsys, wrapper, proc, message):
    config = REPO / "yaml_configs" / "timm" / "zskd-lenet5_half_from_resnet10t_mnist.yaml"
    text = _with_teacher_outputs(config.read_text(), wrapper, proc)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / config.name).write_text(text)
    path = shrink_config(tmp_path / "src" / config.name, tmp_path, DATA_ROOT)
    assert main(["train", "--config", str(path)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "resource").exists()  # refused before anything was built or written
