import importlib
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO
from torchdistill.core.interfaces.registry import PRE_EPOCH_PROC_FUNC_DICT
from torchdistill.datasets.registry import DATASET_DICT
from torchdistill.losses.registry import MIDDLE_LEVEL_LOSS_DICT, get_mid_level_loss
from torchdistill.models.registry import MODEL_DICT, get_model, register_model
from zskd_plugin.registry._keys import register_unique

import zskd_plugin  # noqa: F401  (registers everything)
from zskd_plugin.losses import ZSKDLoss


def test_every_key_is_registered_after_import():
    for key in ("lenet5", "lenet5_half", "alexnet_cifar", "alexnet_cifar_half"):
        assert key in MODEL_DICT
    assert get_model("lenet5_half", num_classes=10).fc3.out_features == 10
    assert MIDDLE_LEVEL_LOSS_DICT["ZSKDLoss"] is ZSKDLoss
    assert "DataImpressionDataset" in DATASET_DICT
    assert "zskd_pre_epoch_process_teacher_eval" in PRE_EPOCH_PROC_FUNC_DICT
    loss = get_mid_level_loss({"key": "ZSKDLoss", "kwargs": {"temperature": 20.0}})
    assert isinstance(loss, ZSKDLoss) and loss.temperature == 20.0


def test_importing_twice_is_harmless_and_a_foreign_key_is_refused():
    importlib.reload(zskd_plugin.registry.models)  # re-runs registration with the same objects
    assert MODEL_DICT["lenet5"].__module__ == "zskd_plugin.models.lenet"
    table = {"lenet5": object()}
    with pytest.raises(RuntimeError, match="already belongs"):
        register_unique(table, register_model, "lenet5", MODEL_DICT["lenet5"])


def test_core_package_does_not_import_torchdistill():
    offenders = [
        f"{path.name}:{n}"
        for path in (REPO / "zskd_plugin").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith(("import torchdistill", "from torchdistill"))
    ]
    assert offenders == []


@pytest.mark.slow
def test_wheel_ships_registry_inside_zskd_plugin_only(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("zskd_torchdistill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "zskd_plugin/registry/__init__.py" in names
    assert "zskd_plugin/registry/datasets.py" in names
    assert not any(n.startswith("registry/") for n in names)
    assert not any(n.startswith(("tests/", "yaml_configs/")) for n in names)
