from pathlib import Path

import pytest
import torch
from conftest import make_tiny_teacher

from zskd_plugin.app.cli import main

DI_CONFIG = """
datasets:
  &di di/train: !import_call
    key: 'zskd_plugin.registry.datasets.data_impression_dataset'
    init:
      kwargs:
        teacher: {{key: 'conftest.TinyTeacher', source: 'import', src_ckpt: '{ckpt}'}}
        num_impressions: 16
        store_root: '{root}'
        synthesis: {{{synthesis}}}
        progress: False
"""


def _write(tmp_path: Path, synthesis: str) -> Path:
    ckpt = tmp_path / "tiny.pt"
    torch.save(make_tiny_teacher().state_dict(), ckpt)
    path = tmp_path / "c.yaml"
    path.write_text(DI_CONFIG.format(ckpt=ckpt, root=tmp_path / "stores", synthesis=synthesis))
    return path


def test_synthesize_writes_the_store_and_prints_it(tmp_path, capsys):
    assert main(["synthesize", "--config", str(_write(tmp_path, "num_iters: 2, batch_size: 8"))]) == 0
    out = capsys.readouterr().out
    assert "di/train:" in out
    store = Path(out.split("di/train:")[1].split()[0])
    assert (store / "manifest.json").is_file() and len(list((store / "parts").glob("*.safetensors"))) == 8


def test_misspelled_key_gets_a_clear_error_and_exit_code_2(tmp_path, capsys):
    assert main(["synthesize", "--config", str(_write(tmp_path, "num_iter: 2"))]) == 2
    err = capsys.readouterr().err
    assert "unknown `synthesis` key(s) ['num_iter']" in err and "num_iters" in err
    assert not (tmp_path / "stores").exists()  # nothing half-made


def test_missing_config_and_bad_values(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["synthesize", "--config", str(_write(tmp_path, "temperature: -1"))]) == 2
    assert "synthesis temperature must be a finite number > 0, got -1" in capsys.readouterr().err


def test_prepare_data_reuses_verified_files(mnist_root, capsys):
    assert main(["prepare-data", "mnist", "--root", str(mnist_root), "--offline"]) == 0
    assert capsys.readouterr().out.strip().endswith("MNIST/raw")


def test_prepare_data_rejects_files_that_are_not_mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (raw / name).write_bytes(b"not mnist")
    from zskd_plugin.app.real_data import DATASETS, _verified

    assert not _verified(raw, DATASETS["mnist"])


def test_missing_torchdistill_section_is_named(tmp_path, capsys):
    path = tmp_path / "no_train.yaml"
    path.write_text("models:\n  model: {key: 'lenet5', kwargs: {}, dst_ckpt: 'x.pt'}\ndatasets: {}\n")
    assert main(["train", "--config", str(path)]) == 2
    assert "config key 'train' is missing or misspelled" in capsys.readouterr().err


def test_missing_data_set_names_prepare_data(tmp_path, capsys):
    config = Path(__file__).resolve().parents[1] / "yaml_configs" / "mnist" / "ce-lenet5.yaml"
    path = tmp_path / "c.yaml"
    path.write_text(config.read_text().replace("'./data'", f"'{tmp_path / 'no-data'}'"))
    assert main(["train", "--config", str(path)]) == 2
    assert "zskd prepare-data <fashion-mnist|mnist> --root" in capsys.readouterr().err


@pytest.mark.slow
def test_synthesize_under_torchrun_splits_the_work_between_ranks(tmp_path):
    import os
    import subprocess
    import sys

    config = _write(tmp_path, "num_iters: 2, batch_size: 8")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parent))
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "zskd_plugin.app.cli", "synthesize", "--config", str(config), "--log-level", "INFO"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("synthesising 4 of 8 parts") == 2  # 8 one-part rows (4 classes x 2 betas), 4 per rank
    assert run.stdout.count("di/train:") == 1  # rank 0 reports
    store = Path(run.stdout.split("di/train:")[1].split()[0])
    assert (store / "manifest.json").is_file() and len(list((store / "parts").glob("*.safetensors"))) == 8


def _two_epoch_main_job(tmp_path: Path, mnist_root: Path, num_impressions: int) -> Path:
    """The main job's config at test size (2 epochs, a few DIs) from a random LeNet-5 teacher written beside it."""
    from yaml_util import shrink_config, write_random_teacher

    mnist = Path(__file__).resolve().parents[1] / "yaml_configs" / "mnist"
    sizes = {
        r"num_epochs: \d+": "num_epochs: 2",
        r"T_max: \d+": "T_max: 2",
        r"num_impressions: \d+": f"num_impressions: {num_impressions}",
    }
    config = shrink_config(mnist / "zskd-lenet5_half_from_lenet5-quick.yaml", tmp_path, mnist_root, sizes)
    write_random_teacher(config)
    return config


def test_progress_reaches_a_log_file_without_the_library_info_chatter(tmp_path, mnist_root):
    """README command 1 runs at --log-level WARNING with its output possibly going to a file: synthesis progress and
    one line per epoch (loss, validation accuracy, time left) still show; INFO records of the library do not."""
    import contextlib
    import io

    config = _two_epoch_main_job(tmp_path, mnist_root, num_impressions=200)
    log = io.StringIO()  # not a terminal, like a log file
    with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        assert main(["train", "--config", str(config), "--seed", "0", "--log-level", "WARNING"]) == 0
    lines = log.getvalue().splitlines()
    synthesis = [line for line in lines if line.startswith("Data Impressions: ")]
    assert synthesis[-1].startswith("Data Impressions: 200/200 DI (100%)") and "left" in synthesis[-1]
    assert len(synthesis) >= 5  # a line at every tenth of the work at most, and at the end
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split(":")[0] for e in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all(", val acc " in e and " left" in e for e in epochs) and epochs[-1].endswith("about 0 s left")
    assert not any(" INFO " in line for line in lines)  # the library's own INFO records stay out
    assert "student (lenet5_half) test accuracy" in lines[-1]


def test_an_interrupted_run_leaves_the_checkpoint_it_would_replace_whole(tmp_path, mnist_root, monkeypatch, capsys):
    """dst_ckpt is replaced only when training ends: a stopped run (or a reader during training, such as a DI store
    synthesised from a teacher being retrained) sees the checkpoint that was there before, byte for byte."""
    from yaml_util import load_raw

    from zskd_plugin.app import runner

    config = _two_epoch_main_job(tmp_path, mnist_root, num_impressions=20)
    dst = Path(load_raw(config)["models"]["student_model"]["dst_ckpt"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(b"an earlier run's checkpoint")

    real_evaluate, calls = runner.evaluate, []

    def stop_in_the_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate", stop_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        main(["train", "--config", str(config), "--seed", "0", "--log-level", "WARNING"])
    assert dst.read_bytes() == b"an earlier run's checkpoint"
    assert Path(f"{dst}.partial").is_file()  # the first epoch's, written beside it

    monkeypatch.setattr(runner, "evaluate", real_evaluate)
    assert main(["train", "--config", str(config), "--seed", "0", "--log-level", "WARNING"]) == 0
    saved = torch.load(dst, map_location="cpu", weights_only=False)
    assert set(saved) >= {"model", "best_value"} and not Path(f"{dst}.partial").exists()
    assert 0.0 <= saved["best_value"] <= 100.0  # a validation accuracy
    # no epoch, no checkpoint to move into place: said before any training
    zero = config.with_name("zero.yaml")
    zero.write_text(config.read_text().replace("num_epochs: 2", "num_epochs: 0"))
    assert main(["train", "--config", str(zero), "--seed", "0"]) == 2
    assert "at least 1 epoch" in capsys.readouterr().err
