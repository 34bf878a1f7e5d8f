"""Bad input, as a hostile user would give it: exit code 2, the setting named, no traceback, nothing on disk changed,
and never code run from a checkpoint that was not explicitly trusted."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from conftest import TinyTeacher, make_tiny_teacher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from zskd_plugin.app.cli import main
from zskd_plugin.app.yaml_tree import Tagged, render_config
from zskd_plugin.builder import make_impression_store
from zskd_plugin.teacher import load_checkpoint_state

REPO = Path(__file__).resolve().parents[1]

DI_CONFIG = """\
datasets:
  di/train: !import_call
    key: 'zskd_plugin.registry.datasets.data_impression_dataset'
    init:
      kwargs:
        teacher: {{key: '{key}', source: 'import', src_ckpt: '{ckpt}'{teacher}}}
        num_impressions: 16
        store_root: '{root}'
        synthesis: {{num_iters: 2, batch_size: 8{synthesis}}}
        progress: false
{extra}"""


def _cli(*argv: str) -> tuple[int, str]:
    """Run the ``zskd`` CLI in this process; its exit code and everything it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def _config(
    tmp_path: Path,
    key: str = "conftest.TinyTeacher",
    teacher: str = "",
    synthesis: str = "",
    extra: str = "",
    ckpt: Path | None = None,
) -> Path:
    if ckpt is None:
        ckpt = tmp_path / "tiny.pt"
        torch.save(make_tiny_teacher().state_dict(), ckpt)
    path = tmp_path / "c.yaml"
    root = tmp_path / "stores"
    path.write_text(DI_CONFIG.format(key=key, ckpt=ckpt, root=root, teacher=teacher, synthesis=synthesis, extra=extra))
    return path


class _CreatesFileWhenUnpickled:
    """Pickles to a call of ``open(marker, 'w')``: loading it with weights_only=False creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _booby_trapped_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "trap.pt"
    torch.save({"model": make_tiny_teacher().state_dict(), "payload": _CreatesFileWhenUnpickled(marker)}, ckpt)
    assert not marker.exists()
    return ckpt, marker


@pytest.mark.parametrize("value", ["'false'", "'0'", "'no'", "'true'", "1", "yes-please"])
def test_only_a_yaml_boolean_switches_on_unsafe_checkpoint_loading(tmp_path, value):
    ckpt, marker = _booby_trapped_checkpoint(tmp_path)
    config = _config(tmp_path, teacher=f", allow_unsafe_checkpoint: {value}", ckpt=ckpt)
    code, out = _cli("synthesize", "--config", str(config))
    assert code == 2 and "allow_unsafe_checkpoint must be true or false" in out, out
    assert not marker.exists() and not (tmp_path / "stores").exists()


def test_the_training_runner_applies_the_same_rule_to_its_models(tmp_path):
    ckpt, marker = _booby_trapped_checkpoint(tmp_path)
    text = (REPO / "yaml_configs" / "mnist" / "kd-lenet5_half_from_lenet5.yaml").read_text()
    text = text.replace(
        "src_ckpt: './resource/ckpt/mnist/ce/lenet5.pt'", f"src_ckpt: '{ckpt}'\n    allow_unsafe_checkpoint: 'false'"
    )
    assert "allow_unsafe_checkpoint: 'false'" in text
    config = tmp_path / "kd.yaml"
    config.write_text(text)
    code, out = _cli("train", "--config", str(config))
    assert code == 2 and "models.teacher_model.allow_unsafe_checkpoint must be true or false" in out, out
    assert not marker.exists()
    with pytest.raises(ValueError, match="allow_unsafe_checkpoint must be true or false"):
        load_checkpoint_state(ckpt, "false")  # the loader itself refuses a non-boolean
    assert not marker.exists()
    with pytest.raises(ValueError, match="weights_only=True"):  # and the safe path never unpickles the payload
        load_checkpoint_state(ckpt, False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            "datasets:\n\tdi: 1\n",
            "line 2, column 1: YAML error: while scanning for the next token: found character '\\t'",
        ),
        ("datasets: [1, 2\n", "line 2, column 1: YAML error: while parsing a flow sequence (from line 1, column 11)"),
        ("datasets: *nowhere\n", "line 1, column 11: YAML error: found undefined alias 'nowhere'"),
        ("datasets: !no_such_tag {a: 1}\n", "unknown YAML tag(s) ['!no_such_tag']"),
    ],
    ids=["tab", "unclosed-bracket", "undefined-alias", "unknown-tag"],
)
def test_yaml_syntax_errors_name_file_line_and_column(tmp_path, text, problem):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    for command in ("synthesize", "train"):
        code, out = _cli(command, "--config", str(path))
        assert code == 2 and str(path) in out and problem in out, out
        assert "Traceback" not in out


class TupleTeacher(TinyTeacher):
    """Returns (logits, features), as many custom models do."""

    def forward(self, x):
        features = torch.relu(self.hidden(self.body(x)))
        return self.head(features), features


class DictTeacher(TinyTeacher):
    def forward(self, x):
        return {"logits": super().forward(x), "aux": x.mean()}


class SoftmaxTeacher(TinyTeacher):
    def forward(self, x):
        return super().forward(x).softmax(dim=1)


def test_a_teacher_with_a_structured_output_needs_an_output_selector(tmp_path):
    for key, selector in (("test_bad_input.TupleTeacher", "0"), ("test_bad_input.DictTeacher", "'logits'")):
        work = tmp_path / key
        work.mkdir()
        code, out = _cli("synthesize", "--config", str(_config(work, key=key)))
        assert code == 2 and "set `output:` in the teacher config" in out, out
        assert not (work / "stores").exists()
        code, out = _cli("synthesize", "--config", str(_config(work, key=key, teacher=f", output: {selector}")))
        assert code == 0, out
        store = Path(out.split("di/train:")[1].split()[0])
        assert json.loads((store / "manifest.json").read_text())["spec"]["teacher"]["output"] in (0, "logits")
    code, out = _cli(
        "synthesize", "--config", str(_config(tmp_path, key="test_bad_input.TupleTeacher", teacher=", output: 5"))
    )
    assert code == 2 and "`output: 5` does not select anything" in out and "tuple of 2" in out, out


def test_a_teacher_that_returns_probabilities_is_refused(tmp_path):
    code, out = _cli("synthesize", "--config", str(_config(tmp_path, key="test_bad_input.SoftmaxTeacher")))
    assert code == 2 and "returns probabilities" in out and "Remove the final softmax" in out, out
    assert not (tmp_path / "stores").exists()


def _train_config(tmp_path: Path) -> Path:
    """The shipped teacher config, with its checkpoint under tmp_path."""
    text = (REPO / "yaml_configs" / "mnist" / "ce-lenet5.yaml").read_text()
    text = text.replace("'./resource/ckpt/mnist/ce/lenet5.pt'", f"'{tmp_path / 'ckpt' / 'lenet5.pt'}'")
    path = tmp_path / "ce.yaml"
    path.write_text(text)
    return path


def test_output_paths_are_checked_before_any_training(tmp_path, monkeypatch):
    config = _train_config(tmp_path)
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("keep")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.geteuid() == 0:  # root ignores folder modes: refuse creation inside it as the OS would anyone else
        real_open = os.open

        def denied_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and Path(path).parent == read_only:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", denied_open)
    cases = {
        str(tmp_path / "a-folder"): "is a folder",
        str(tmp_path / "a-file" / "out.json"): "which is a file",
        str(read_only / "out.json"): "cannot be written (Permission denied",
    }
    try:
        for result_json, message in cases.items():
            code, out = _cli("train", "--config", str(config), "--result-json", result_json)
            assert code == 2 and f"--result-json {result_json!r} {message}"[:60] in out, out
        text = config.read_text().replace(f"'{tmp_path / 'ckpt' / 'lenet5.pt'}'", f"'{tmp_path / 'a-folder'}'")
        config.write_text(text)
        code, out = _cli("train", "--config", str(config))
        assert code == 2 and "models.model.dst_ckpt" in out and "is a folder" in out, out
        code, out = _cli("benchmark", "--suite", "mnist", "--out", str(tmp_path / "a-file"))
        assert code == 2 and "--out" in out and "is a file, not a folder" in out, out
    finally:
        read_only.chmod(0o755)
    assert not (tmp_path / "ckpt").exists()  # no training ran
    assert (tmp_path / "a-file").read_text() == "keep" and list((tmp_path / "a-folder").iterdir()) == []
    assert list(read_only.iterdir()) == []


def test_a_misspelled_key_in_the_second_entry_fails_before_the_first_is_synthesised(tmp_path):
    second = """\
  di/val: !import_call
    key: 'zskd_plugin.registry.datasets.data_impression_dataset'
    init:
      kwargs: {teacher: {key: 'conftest.TinyTeacher'}, num_impressions: 16, split: 'val', val_fracton: 0.1}
"""
    code, out = _cli("synthesize", "--config", str(_config(tmp_path, extra=second)))
    assert code == 2 and "unknown Data Impression dataset key(s) ['val_fracton']" in out and "val_fraction" in out
    assert not (tmp_path / "stores").exists()


def test_exponents_yaml_reads_as_text_are_named_with_the_spelling_it_reads(tmp_path):
    code, out = _cli("synthesize", "--config", str(_config(tmp_path, synthesis=", lr: 1e-3")))
    assert code == 2 and "1e-3 is read as the string '1e-3'" in out and "write it as 1.0e-3" in out, out
    assert "line 9" in out  # where it is
    code, out = _cli("synthesize", "--config", str(_config(tmp_path, synthesis=", lr: '1e-3'")))
    assert code == 2 and "synthesis lr" in out and "write 1.0e-3" in out, out
    code, out = _cli("synthesize", "--config", str(_config(tmp_path, synthesis=", lr: 1.0e-3, num_iters: 1")))
    assert code == 0, out


@pytest.mark.parametrize(
    "dirichlet, message",
    [
        ("betas: 1.0", "dirichlet betas must be a non-empty list of numbers, got 1.0"),
        ("betas: ['a', 0.1]", "dirichlet betas[0] must be a finite number > 0, got 'a'"),
        ("beta_shares: '0.5'", "dirichlet beta_shares must be a non-empty list of numbers, got '0.5'"),
        ("betas: '1'", "dirichlet betas must be a non-empty list of numbers, got '1'"),
        ("betas: [true, 0.1]", "dirichlet betas[0] must be a finite number > 0, got True"),
    ],
)
def test_dirichlet_settings_name_the_field_and_what_it_must_be(tmp_path, dirichlet, message):
    extra_kwargs = f"        dirichlet: {{{dirichlet}}}\n"
    config = _config(tmp_path)
    config.write_text(
        config.read_text().replace("        progress: false\n", f"        progress: false\n{extra_kwargs}")
    )
    code, out = _cli("synthesize", "--config", str(config))
    assert code == 2 and message in out, out


def test_a_misspelled_torchdistill_key_is_named_with_the_valid_ones(tmp_path):
    config = _train_config(tmp_path)
    config.write_text(config.read_text().replace("  optimizer:", "  optimzer:"))
    code, out = _cli("train", "--config", str(config))
    assert code == 2 and "unknown key(s) ['optimzer'] in `train`" in out and "'optimizer'" in out, out
    assert not (tmp_path / "ckpt").exists()


def _store_kwargs(tmp_path: Path) -> dict:
    ckpt = tmp_path / "tiny.pt"
    torch.save(make_tiny_teacher().state_dict(), ckpt)
    spec = {"key": "conftest.TinyTeacher", "source": "import", "src_ckpt": str(ckpt)}
    synthesis = {"num_iters": 2, "batch_size": 8}
    return dict(teacher=spec, num_impressions=16, store_root=tmp_path / "s", synthesis=synthesis, progress=False)


@pytest.mark.parametrize("damage", ["null", "[]", '"complete"', "7"])
def test_records_that_are_json_but_not_objects_count_as_damaged_and_are_remade(tmp_path, caplog, damage):
    kwargs = _store_kwargs(tmp_path)
    store = make_impression_store(kwargs)
    manifest = store.manifest_path.read_bytes()
    part_record = (store.parts_dir / "part-00002.json").read_bytes()
    store.manifest_path.write_text(damage)
    (store.parts_dir / "part-00002.json").write_text(damage)
    again = make_impression_store(kwargs)
    assert f"manifest {store.manifest_path} is damaged" in caplog.text
    assert "part 2 of" in caplog.text and "corrupted" in caplog.text
    assert again.is_complete() and again.missing_parts() == []
    assert store.manifest_path.read_bytes() == manifest
    assert (store.parts_dir / "part-00002.json").read_bytes() == part_record


def test_store_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        store = make_impression_store(_store_kwargs(tmp_path))
    finally:
        os.umask(previous)
    files = [p for p in store.path.rglob("*") if p.is_file() and p.name != ".lock"]
    assert len(files) == 1 + 1 + 2 * 8  # spec, manifest, 8 parts with their records
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


def test_nn_module_output_hook_keeps_names_and_weights(tmp_path):
    """The output selector changes what the teacher returns, not its modules or its state dict."""
    from zskd_plugin.teacher import TeacherSpec, load_teacher

    ckpt = tmp_path / "t.pt"
    torch.save(TupleTeacher().state_dict(), ckpt)
    teacher = load_teacher(
        TeacherSpec(key="test_bad_input.TupleTeacher", source="import", src_ckpt=str(ckpt), output=0)
    )
    assert isinstance(teacher.get_submodule("head.fc"), nn.Linear)
    assert set(teacher.state_dict()) == set(torch.load(ckpt))
    assert teacher(torch.rand(2, 1, 8, 8)).shape == (2, 4)


# -- every field the plugin reads, drawn wrong, through the CLI ---------------------------------------------------

_NUMBER_STRINGS = st.sampled_from(["1", "0.5", "1e-3", "-2", "nan", "true", "false"])
_NOT_A_NUMBER = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), True, False, None, [], [1.0], {"a": 1}]),
    _NUMBER_STRINGS,
)


def _wrong_int(least: int, optional: bool = False) -> st.SearchStrategy:
    bad = st.one_of(
        st.integers(max_value=least - 1),
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not float(v).is_integer()),
        st.just(float(least + 1)),  # a float, even a whole one
        _NOT_A_NUMBER,
    )
    return bad.filter(lambda v: v is not None) if optional else bad


def _wrong_number(low: float | None = None, high: float | None = None, low_open=False, high_open=False):
    outside = []
    if low is not None:
        outside.append(st.floats(max_value=low, exclude_max=not low_open, allow_nan=False, allow_infinity=False))
    if high is not None:
        outside.append(st.floats(min_value=high, exclude_min=not high_open, allow_nan=False, allow_infinity=False))
    return st.one_of(_NOT_A_NUMBER, *outside)


_WRONG_BOOL = st.one_of(st.sampled_from(["false", "true", "0", "1", "no", 0, 1, 0.0, None, [], {"x": True}]))
_WRONG_STR = st.one_of(st.sampled_from(["", 0, 1.5, True, [], ["a"], {"a": 1}]), st.integers())


def _wrong_choice(choices: tuple) -> st.SearchStrategy:
    return st.one_of(st.text(max_size=8).filter(lambda v: v not in choices), st.sampled_from([0, 1.0, True, [], None]))


def _wrong_numbers(**bounds) -> st.SearchStrategy:
    element = _wrong_number(**bounds)
    return st.one_of(
        st.sampled_from([[], 1.0, "1", "0.5", None, {"a": 1}]),
        st.lists(element, min_size=1, max_size=3),
    )


# (section, key) -> (command, strategy of wrong values). Sections: '' the builder's own keys, teacher, synthesis,
# dirichlet, augment (ImpressionAugment), loss (ZSKDLoss), models (the training runner's model blocks).
FIELDS = {
    ("", "num_impressions"): _wrong_int(1),
    ("", "seed"): _wrong_int(0),
    ("", "store_root"): _WRONG_STR,
    ("", "num_classes"): _wrong_int(2, optional=True),
    ("", "split"): _wrong_choice(("train", "val", "all")),
    ("", "val_fraction"): st.one_of(_wrong_number(0, 1, high_open=True), st.just(0.99)),  # 0.99 of 16: none left
    ("", "label_mode"): _wrong_choice(("soft", "argmax")).filter(lambda v: v is not None),
    ("", "device"): st.one_of(_WRONG_STR, st.sampled_from(["gpu", "5", "cuda:x"])),
    ("", "progress"): _WRONG_BOOL,
    ("teacher", "key"): _WRONG_STR,
    ("teacher", "kwargs"): st.sampled_from([[], "num_classes=4", 4, [["num_classes", 4]]]),
    ("teacher", "source"): _wrong_choice(("zskd", "torchvision", "registry", "timm", "import")).filter(
        lambda v: v is not None
    ),
    ("teacher", "src_ckpt"): _WRONG_STR,
    ("teacher", "classifier_path"): _WRONG_STR,
    ("teacher", "input_size"): st.one_of(
        st.sampled_from([[1, 8], [1, 8, 8, 8], "1x8x8", 8, [1, 8, 8.0], [1, "8", 8], [True, 8, 8], []]),
        st.lists(st.integers(max_value=0), min_size=3, max_size=3),
    ),
    ("teacher", "mean"): _wrong_numbers(),
    ("teacher", "std"): _wrong_numbers(low=0, low_open=True),
    ("teacher", "allow_unsafe_checkpoint"): _WRONG_BOOL.filter(lambda v: v is not None),
    ("teacher", "repo_or_dir"): _WRONG_STR,
    ("teacher", "output"): st.sampled_from([True, 1.5, "", [], [0], {"a": 0}]),
    ("synthesis", "num_iters"): _wrong_int(0),
    ("synthesis", "lr"): _wrong_number(0, low_open=True),
    ("synthesis", "batch_size"): _wrong_int(1),
    ("synthesis", "temperature"): _wrong_number(0, low_open=True),
    ("synthesis", "minmax_rescale"): _WRONG_BOOL,
    ("synthesis", "warm_start"): _WRONG_BOOL,
    ("synthesis", "precision"): _wrong_choice(("fp32", "bf16")),
    ("synthesis", "channels_last"): _WRONG_BOOL,
    ("synthesis", "compile"): _WRONG_BOOL,
    ("synthesis", "early_stop_tol"): _wrong_number(0),
    ("synthesis", "early_stop_every"): _wrong_int(1),
    ("synthesis", "lr_schedule"): _wrong_choice(("constant", "cosine")),
    ("synthesis", "tv_weight"): _wrong_number(0),
    ("synthesis", "l2_weight"): _wrong_number(0),
    ("dirichlet", "betas"): _wrong_numbers(low=0, low_open=True),
    ("dirichlet", "beta_shares"): st.one_of(_wrong_numbers(low=0), st.just([0.5, 0.6]), st.just([1.0, 0.0, 0.0])),
    ("dirichlet", "epsilon"): _wrong_number(0, low_open=True),
    ("augment", "degrees"): _wrong_number(0),
    ("augment", "translate"): _wrong_number(0, 1, high_open=True),
    ("augment", "scale"): _wrong_number(0, 1, high_open=True),
    ("augment", "hflip"): _wrong_number(0, 1),
    ("augment", "blur_sigma"): _wrong_number(0),
    ("augment", "contrast"): _wrong_number(0, 1, high_open=True),
    ("loss", "temperature"): _wrong_number(0, low_open=True),
    ("loss", "target_weight"): _wrong_number(0),
    ("loss", "student_module_path"): _WRONG_STR,
    ("loss", "teacher_module_path"): _WRONG_STR,
    ("loss", "student_module_io"): _wrong_choice(("output", "input")),
    ("loss", "teacher_module_io"): _wrong_choice(("output", "input")),
    ("models", "allow_unsafe_checkpoint"): _WRONG_BOOL.filter(lambda v: v is not None),
    ("models", "output"): st.sampled_from([True, 1.5, "", [], [0], {"a": 0}]),
    ("student", "num_classes"): _wrong_int(2),
    ("student", "in_chans"): _wrong_int(1),
}
# how each section names its fields in messages
NAMED_AS = {"": "", "teacher": "teacher ", "synthesis": "synthesis ", "dirichlet": "dirichlet ",
            "augment": "ImpressionAugment ", "loss": "ZSKDLoss ", "models": "models.teacher_model.",
            "student": "models.student_model (lenet5_half): "}  # fmt: skip


def _full_tree(workspace: Path) -> dict:
    """A complete, valid ZSKD config as a raw tree (tags as Tagged): every field the plugin reads is present."""
    augment = Tagged(
        "!import_call",
        {
            "key": "zskd_plugin.augment.ImpressionAugment",
            "init": {
                "kwargs": {
                    "degrees": 5.0,
                    "translate": 0.1,
                    "scale": 0.1,
                    "hflip": 0.0,
                    "blur_sigma": 0.5,
                    "contrast": 0.2,
                }
            },
        },
    )
    teacher = {
        "key": "conftest.TinyTeacher",
        "kwargs": {"num_classes": 4},
        "source": "import",
        "src_ckpt": str(workspace / "tiny.pt"),
        "classifier_path": "head.fc",
        "input_size": [1, 8, 8],
        "mean": [0.5],
        "std": [0.25],
        "allow_unsafe_checkpoint": False,
        "repo_or_dir": "unused",
        "output": None,
    }
    synthesis = {
        "num_iters": 2,
        "lr": 0.05,
        "batch_size": 8,
        "temperature": 20.0,
        "minmax_rescale": False,
        "warm_start": False,
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "early_stop_tol": 0.0,
        "early_stop_every": 10,
        "lr_schedule": "constant",
        "tv_weight": 0.0,
        "l2_weight": 0.0,
    }
    kwargs = {
        "teacher": teacher,
        "num_impressions": 16,
        "store_root": str(workspace / "stores"),
        "seed": 0,
        "num_classes": 4,
        "synthesis": synthesis,
        "dirichlet": {"betas": [1.0, 0.1], "beta_shares": [0.5, 0.5], "epsilon": 1e-4},
        "split": "train",
        "val_fraction": 0.25,
        "label_mode": "soft",
        "device": "cpu",
        "progress": False,
        "batch_transform": augment,
    }
    loss = {
        "key": "ZSKDLoss",
        "kwargs": {
            "student_module_path": ".",
            "student_module_io": "output",
            "teacher_module_path": ".",
            "teacher_module_io": "output",
            "temperature": 20.0,
            "target_weight": 0.0,
        },
    }
    return {
        "dependencies": [{"name": "zskd_plugin"}],
        "datasets": {"di/train": Tagged("!import_call", {
            "key": "zskd_plugin.registry.datasets.data_impression_dataset", "init": {"kwargs": kwargs}})},
        "models": {
            "teacher_model": {"key": "lenet5", "kwargs": {}, "allow_unsafe_checkpoint": False, "output": None},
            "student_model": {"key": "lenet5_half", "kwargs": {}, "dst_ckpt": str(workspace / "student.pt")},
        },
        "train": {"num_epochs": 1, "train_data_loader": {"dataset_id": "di/train"},
                  "val_data_loader": {"dataset_id": "di/train"},
                  "criterion": {"key": "WeightedSumLoss", "kwargs": {"sub_terms": {"zskd": {"criterion": loss,
                                                                                             "weight": 1.0}}}}},
        "test": {"test_data_loader": {"dataset_id": "di/train"}},
    }  # fmt: skip


def _field_holder(tree: dict, section: str) -> dict:
    kwargs = tree["datasets"]["di/train"].value["init"]["kwargs"]
    return {
        "": kwargs,
        "teacher": kwargs["teacher"],
        "synthesis": kwargs["synthesis"],
        "dirichlet": kwargs["dirichlet"],
        "augment": kwargs["batch_transform"].value["init"]["kwargs"],
        "loss": tree["train"]["criterion"]["kwargs"]["sub_terms"]["zskd"]["criterion"]["kwargs"],
        "models": tree["models"]["teacher_model"],
        "student": tree["models"]["student_model"]["kwargs"],
    }[section]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder holding a teacher checkpoint and the complete store the valid config makes."""
    workspace = tmp_path_factory.mktemp("hostile")
    torch.save(make_tiny_teacher().state_dict(), workspace / "tiny.pt")
    config = workspace / "valid.yaml"
    config.write_text(render_config(_full_tree(workspace)))
    code, out = _cli("synthesize", "--config", str(config))
    assert code == 0, out
    return workspace


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_every_field_drawn_wrong_exits_2_naming_it_and_changes_nothing(workspace, field, data):
    section, key = field
    value = data.draw(FIELDS[field], label=f"{section}.{key}")
    tree = _full_tree(workspace)
    _field_holder(tree, section)[key] = value
    config = workspace / "wrong" / "config.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(render_config(tree))
    before = _snapshot(workspace)
    code, out = _cli("train" if section in ("models", "student") else "synthesize", "--config", str(config))
    assert code == 2, out
    assert f"{NAMED_AS[section]}{key}" in out, out
    assert "Traceback" not in out
    assert _snapshot(workspace) == before
