import importlib
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO
from torchdistill.core.interfaces.registry import FORWARD_PROC_FUNC_DICT, PRE_EPOCH_PROC_FUNC_DICT
from torchdistill.datasets.registry import DATASET_DICT, DATASET_WRAPPER_DICT
from torchdistill.losses.registry import MIDDLE_LEVEL_LOSS_DICT, get_mid_level_loss
from torchdistill.models.registry import MODEL_DICT, get_model, register_model
from zskd_plugin.registry.datasets import data_impression_dataset
from zskd_plugin.registry.unique_keys import register_unique

import zskd_plugin  # noqa: F401  (registers everything)
from zskd_plugin.losses import ZSKDLoss


def test_every_key_is_registered_after_import():
    for key in ("lenet5", "lenet5_half", "alexnet_cifar", "alexnet_cifar_half"):
        assert key in MODEL_DICT
    assert get_model("lenet5_half", num_classes=10).fc3.out_features == 10
    assert MIDDLE_LEVEL_LOSS_DICT["ZSKDLoss"] is ZSKDLoss
    assert DATASET_DICT["data_impression_dataset"] is data_impression_dataset
    assert "zskd_pre_epoch_process_teacher_eval" in PRE_EPOCH_PROC_FUNC_DICT
    assert "zskd_forward_stored_teacher_output" in FORWARD_PROC_FUNC_DICT
    assert "zskd_teacher_outputs" in DATASET_WRAPPER_DICT
    loss = get_mid_level_loss({"key": "ZSKDLoss", "kwargs": {"temperature": 20.0}})
    assert isinstance(loss, ZSKDLoss) and loss.temperature == 20.0


def test_importing_twice_is_harmless_and_a_foreign_key_is_refused():
    importlib.reload(zskd_plugin.registry.models)  # re-runs registration with the same objects
    assert MODEL_DICT["lenet5"].__module__ == "zskd_plugin.models.lenet"
    table = {"lenet5": object()}
    with pytest.raises(RuntimeError, match="already belongs"):
        register_unique(table, register_model, "lenet5", MODEL_DICT["lenet5"])


_LAYER_PROBE = """
import importlib, pkgutil, sys, types
root, blocked = sys.argv[1], sys.argv[2:]
for name in blocked:
    sys.modules[name] = None  # importing it now raises ImportError
if "zskd_plugin.registry" in blocked:  # the method alone: the package without its __init__ (which registers)
    package = types.ModuleType("zskd_plugin")
    package.__path__ = [root]
    sys.modules["zskd_plugin"] = package
    names = [m.name for m in pkgutil.iter_modules([root]) if m.name != "app"]
else:  # the package with its torchdistill glue
    names = ["registry." + m.name for m in pkgutil.iter_modules([root + "/../registry"])]
for name in names:
    importlib.import_module("zskd_plugin." + name)
print(len(names), "modules")
"""


def _import_with_blocked(*blocked: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _LAYER_PROBE, str(REPO / "zskd_plugin"), *blocked], capture_output=True, text=True
    )


def test_imports_run_one_way_application_glue_method():
    """Each layer really imports (no grepping) with the layers above it made unimportable: the method modules
    without torchdistill, the registry or the application; the torchdistill glue without the application."""
    method = _import_with_blocked("torchdistill", "zskd_plugin.registry", "zskd_plugin.app")
    assert method.returncode == 0, method.stderr[-2000:]
    package = REPO / "zskd_plugin"
    method_modules = [p for p in package.glob("*.py") if p.stem != "__init__"] + [package / "models"]
    assert int(method.stdout.split()[0]) == len(method_modules)  # every method module, models included
    glue = _import_with_blocked("zskd_plugin.app")
    assert glue.returncode == 0, glue.stderr[-2000:]
    assert int(glue.stdout.split()[0]) == len([p for p in (REPO / "registry").glob("*.py") if p.stem != "__init__"])
    # and the probe can fail: a method module that imported torchdistill would be caught like this one
    caught = _import_with_blocked("torchdistill", "zskd_plugin.registry", "zskd_plugin.app", "safetensors")
    assert caught.returncode != 0 and "safetensors" in caught.stderr


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
    assert "zskd_plugin/app/cli.py" in names and "zskd_plugin/app/benchmark/run.py" in names
    assert not any(n.startswith("registry/") for n in names)
    assert not any(n.startswith(("tests/", "yaml_configs/")) for n in names)
