"""Teachers and students as users bring them (issue 17, part 3): a custom CNN that cannot take channels-last
tensors, DeepInversion's jitter and flips, a student whose input size differs from the teacher's, and the shared
teacher anchor with a dotted path or a bare timm name in torchdistill's ``models:`` block."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_teacher
from torch import nn

from zskd_plugin.app.cli import main
from zskd_plugin.app.runner import load_model
from zskd_plugin.builder import build_impression_dataset, make_impression_store
from zskd_plugin.impressions import ImpressionConfig, open_store
from zskd_plugin.models import InputFit, create_model
from zskd_plugin.synthesis import SynthesisConfig, SynthesisLoss, frozen_teacher, random_view, synthesize_batch
from zskd_plugin.teacher import InputConfig


class ViewCNN(nn.Module):
    """A third-party style CNN whose forward flattens with ``.view`` (fails on a channels-last feature map)."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


def _view_cnn() -> ViewCNN:
    torch.manual_seed(0)
    model = ViewCNN()
    with torch.no_grad():
        model.fc.weight.mul_(30.0)
    return model.eval()


def _targets(n: int = 8, k: int = 4) -> torch.Tensor:
    return torch.softmax(torch.randn(n, k, generator=torch.Generator().manual_seed(1)) * 3, dim=1)


def _synthesize(teacher: nn.Module, **settings) -> torch.Tensor:
    config = SynthesisConfig(num_iters=5, lr=0.05, batch_size=8, **settings)
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    with frozen_teacher(teacher):
        result = synthesize_batch(teacher, _targets(), (1, 8, 8), mean, std, config, torch.Generator().manual_seed(0))
    return result.images


def test_a_teacher_that_cannot_take_channels_last_falls_back_with_a_warning(caplog):
    teacher = _view_cnn()
    with pytest.raises(RuntimeError, match="view"):  # the premise: this forward fails on channels-last input
        teacher.to(memory_format=torch.channels_last)(
            torch.rand(2, 1, 8, 8).contiguous(memory_format=torch.channels_last)
        )
    teacher = _view_cnn()
    with caplog.at_level(logging.WARNING, logger="zskd_plugin.synthesis"):
        fallen_back = _synthesize(teacher, channels_last=True)
    assert "failed on a channels-last input" in caplog.text and "channels_last: false" in caplog.text
    assert torch.equal(fallen_back, _synthesize(teacher, channels_last=False))  # the same images, made contiguous
    assert teacher.conv.weight.is_contiguous()  # the user's model is untouched
    engine = SynthesisLoss(teacher, torch.tensor([0.5]), torch.tensor([0.25]), SynthesisConfig(channels_last=True))
    with frozen_teacher(teacher):
        engine(torch.rand(3, 1, 8, 8), _targets(3))
    assert not engine.channels_last and engine.model.conv.weight.is_contiguous()


class BrokenTeacher(ViewCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("a bug of the teacher's own")


def test_an_error_that_is_not_about_the_memory_format_still_surfaces():
    with pytest.raises(RuntimeError, match="a bug of the teacher's own"):
        _synthesize(BrokenTeacher().eval(), channels_last=True)


def test_jitter_and_flips_show_the_teacher_shifted_and_mirrored_views():
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).view(2, 1, 5, 6)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert random_view(x, SynthesisConfig(), gen) is x and torch.equal(gen.get_state(), state)  # off: no draws
    config = SynthesisConfig(jitter=2, flip=True)
    seen = set()
    for _ in range(200):
        view = random_view(x, config, gen)
        matches = [
            (dy, dx, flip)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            for flip in (False, True)
            if torch.equal(view, torch.roll(x, (dy, dx), (2, 3)).flip(3) if flip else torch.roll(x, (dy, dx), (2, 3)))
        ]
        assert matches, "every view is the batch rolled by at most 2 pixels, perhaps mirrored"
        seen.add(matches[0])
    assert len(seen) > 30  # nearly all 50 (offset, flip) combinations occur


def test_jitter_and_flips_are_deterministic_and_keyed_only_when_set(tiny_teacher):
    a, b = _synthesize(tiny_teacher, jitter=2, flip=True), _synthesize(tiny_teacher, jitter=2, flip=True)
    assert torch.equal(a, b) and not torch.equal(a, _synthesize(tiny_teacher))
    inputs = InputConfig(input_size=(1, 8, 8), mean=(0.5,), std=(0.25,))

    def key(**synthesis) -> str:
        config = ImpressionConfig(num_impressions=8, synthesis=SynthesisConfig(**synthesis))
        return open_store("unused", tiny_teacher, inputs, config, 4).path.name

    assert key() == key(jitter=0, flip=False)  # off: the key of a store made before the option existed
    assert len({key(), key(jitter=2), key(flip=True), key(jitter=2, flip=True)}) == 4
    with pytest.raises(ValueError, match="synthesis jitter must be an integer >= 0"):
        SynthesisConfig(jitter=-1)
    with pytest.raises(ValueError, match="early_stop_tol needs jitter: 0 and flip: false"):
        SynthesisConfig(jitter=2, early_stop_tol=1e-3)


def _tiny_store_settings(tmp_path: Path) -> dict:
    ckpt = tmp_path / "tiny.pt"
    torch.save(make_tiny_teacher().state_dict(), ckpt)
    return dict(
        teacher={"key": "conftest.TinyTeacher", "source": "import", "src_ckpt": str(ckpt)},
        num_impressions=8,
        store_root=tmp_path / "s",
        synthesis={"num_iters": 2, "batch_size": 8},
        progress=False,
    )


def test_the_dataset_pads_or_resizes_to_the_students_input_size(tmp_path):
    settings = _tiny_store_settings(tmp_path)
    plain = build_impression_dataset(**settings, split="all")
    padded = build_impression_dataset(**settings, split="all", image_size=[12, 10])
    assert plain.images.shape[-2:] == (8, 8) and padded.images.shape[-2:] == (12, 10)
    assert torch.equal(padded.images[:, :, 2:10, 1:9], plain.images)  # centred
    border = padded.images.clone()
    border[:, :, 2:10, 1:9] = 0
    assert border.abs().sum() == 0  # black border, as torchvision's Pad on real images
    resized = build_impression_dataset(**settings, split="all", image_size=[16, 16], image_fit="resize")
    assert resized.images.shape[-2:] == (16, 16)
    # bilinear x2 keeps the corner pixels, up to rounding: AVX512 kernels differ from exact by an ulp (6e-8)
    corners = (slice(None), slice(None), [0, -1], [0, -1])
    torch.testing.assert_close(resized.images[corners], plain.images[corners], rtol=0, atol=1e-6)
    assert torch.allclose(resized.images.mean(dim=(2, 3)), plain.images.mean(dim=(2, 3)), atol=0.03)
    with pytest.raises(ValueError, match="image_fit: 'resize'"):
        build_impression_dataset(**settings, split="all", image_size=[4, 4])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ("image_size: 32", "image_size must be [height, width]"),
        ("image_size: [32, 0]", "image_size must be an integer >= 1"),
        ("image_fit: 'crop'", "image_fit must be one of ['pad', 'resize']"),
    ],
)
def test_bad_image_size_settings_are_config_errors_before_anything_is_written(tmp_path, capsys, kwargs, message):
    settings = _tiny_store_settings(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text(
        "datasets:\n  di: !import_call\n    key: 'zskd_plugin.registry.datasets.data_impression_dataset'\n"
        f"    init:\n      kwargs:\n        teacher: {{key: 'conftest.TinyTeacher', source: 'import', "
        f"src_ckpt: '{settings['teacher']['src_ckpt']}'}}\n        num_impressions: 8\n"
        f"        store_root: '{settings['store_root']}'\n        {kwargs}\n"
    )
    assert main(["synthesize", "--config", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not settings["store_root"].exists()


def test_input_fit_gives_a_student_the_padded_input_real_mnist_gets():
    torch.manual_seed(0)
    lenet = create_model("lenet5_half", num_classes=10).eval()
    mean, std = 0.1307, 0.3081
    digits = torch.rand(3, 1, 28, 28)
    as_torchvision_does = lenet((F.pad(digits, (2, 2, 2, 2)) - mean) / std)  # Pad(2) then Normalize
    wrapped = InputFit(lenet, [32, 32], "pad", mean=[mean], std=[std]).eval()
    assert torch.allclose(wrapped((digits - mean) / std), as_torchvision_does, atol=1e-6)
    assert list(wrapped.state_dict()) == [f"model.{k}" for k in lenet.state_dict()]


def test_models_block_takes_dotted_paths_bare_timm_names_and_input_fit(tmp_path):
    ckpt = tmp_path / "tiny.pt"
    torch.save(make_tiny_teacher().state_dict(), ckpt)
    teacher = load_model({"key": "conftest.TinyTeacher", "src_ckpt": str(ckpt)})
    assert torch.equal(teacher.head.fc.weight, make_tiny_teacher().head.fc.weight)
    timm_net = load_model({"key": "resnet10t", "kwargs": {"num_classes": 10, "in_chans": 1}})
    assert timm_net(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    student = load_model(
        {"key": "input_fit", "kwargs": {"model": {"key": "lenet5_half", "kwargs": {"num_classes": 10}},
                                        "input_size": [32, 32], "mean": [0.1307], "std": [0.3081]}}
    )  # fmt: skip
    assert isinstance(student, InputFit) and student(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    # `source:` of a shared anchor wins over torchdistill's torchvision-first lookup, as it does for the DI teacher
    import timm

    anchored = load_model({"key": "resnet18", "source": "timm", "kwargs": {"num_classes": 10}})
    assert isinstance(anchored, timm.models.resnet.ResNet)
    assert not isinstance(load_model({"key": "resnet18", "kwargs": {"num_classes": 10}}), timm.models.resnet.ResNet)
    rgb = InputFit(create_model("lenet5_half", num_classes=10), [32, 32], mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="3 mean/std values but its input has 1 channels"):
        rgb(torch.rand(2, 1, 28, 28))


def test_keys_other_dependencies_may_provide_pass_the_check(tmp_path):
    from zskd_plugin.app.config_checks import check_config

    path = tmp_path / "c.yaml"
    text = TRAIN_CONFIG.format(key="their_models.Net", out=tmp_path / "s.pt")
    path.write_text(text.replace("[{name: 'zskd_plugin'}]", "[{name: 'zskd_plugin'}, {name: 'their_models'}]"))
    check_config(path, training=True)  # their_models is imported by torchdistill only after the check
    path.write_text(TRAIN_CONFIG.format(key="ResNet", out=tmp_path / "s.pt"))
    check_config(path, training=True)  # a torchvision.models class: torchdistill's own lookup finds it


TRAIN_CONFIG = """
dependencies: [{{name: 'zskd_plugin'}}]
datasets: {{}}
models:
  student_model: {{key: '{key}', kwargs: {{}}, dst_ckpt: '{out}'}}
train: {{}}
test: {{test_data_loader: {{}}}}
"""


def test_an_unknown_model_key_is_a_config_error_naming_it(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(TRAIN_CONFIG.format(key="resnet10_typo", out=tmp_path / "s.pt"))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "models.student_model.key 'resnet10_typo' is no model" in err and "Traceback" not in err
    path.write_text(TRAIN_CONFIG.format(key="no_such_pkg.Net", out=tmp_path / "s.pt"))
    assert main(["train", "--config", str(path)]) == 2
    assert "cannot import model 'no_such_pkg.Net'" in capsys.readouterr().err


def test_input_fit_settings_are_checked_before_anything_runs(tmp_path, capsys):
    import inspect

    from zskd_plugin.registry.models import input_fit

    from zskd_plugin.app.config_checks import _input_fit_settings

    # the check mirrors the registered factory's keys: a new key there must be added to the check too
    assert inspect.signature(_input_fit_settings).parameters.keys() == inspect.signature(input_fit).parameters.keys()
    path = tmp_path / "c.yaml"
    for kwargs, message in (
        ("{model: {key: 'lenet5_half'}, input_size: [32, 32], fitt: 'pad'}", "unknown key(s) ['fitt']"),
        ("{model: {key: 'lenet5_half'}, input_size: [32, 32], fit: 'crop'}", "input_fit fit must be one of"),
        (
            "{model: {key: 'lenet5_halff'}, input_size: [32, 32]}",
            "models.student_model.kwargs.model.key 'lenet5_halff'",
        ),
    ):
        path.write_text(
            TRAIN_CONFIG.format(key="input_fit", out=tmp_path / "s.pt").replace("kwargs: {}", f"kwargs: {kwargs}")
        )
        assert main(["train", "--config", str(path)]) == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_runs_bf16_only_on_bf16_hardware_and_is_keyed_as_what_ran(tmp_path, monkeypatch, native):
    import zskd_plugin.synthesis as synthesis

    monkeypatch.setattr(synthesis, "native_bf16", lambda device: native)
    concrete = "bf16" if native else "fp32"
    assert synthesis.resolve_precision(SynthesisConfig(precision="auto"), torch.device("cpu")).precision == concrete
    settings = _tiny_store_settings(tmp_path)
    auto = make_impression_store(dict(settings, synthesis={"num_iters": 2, "batch_size": 8, "precision": "auto"}))
    same = make_impression_store(dict(settings, synthesis={"num_iters": 2, "batch_size": 8, "precision": concrete}))
    assert auto.path == same.path  # one store: the key names the precision that ran, so hardware never mixes them


def test_bf16_without_bf16_units_warns_and_names_the_fix(monkeypatch, caplog, tiny_teacher):
    import zskd_plugin.synthesis as synthesis

    monkeypatch.setattr(synthesis, "native_bf16", lambda device: False)
    with caplog.at_level(logging.WARNING, logger="zskd_plugin.synthesis"):
        _synthesize(tiny_teacher, precision="bf16")
    assert "without bf16 units" in caplog.text and "precision: 'auto'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zskd_plugin.synthesis"):
        _synthesize(tiny_teacher, precision="auto")
    assert caplog.text == ""  # auto picks fp32 there, quietly
