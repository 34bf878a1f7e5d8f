"""Fault injection: killed runs, concurrent runs, NaN, full disk, damaged parts, and bad settings."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TinyTeacher, make_tiny_teacher
from hypothesis import given, settings
from hypothesis import strategies as st

import zskd_plugin.store as store_module
from zskd_plugin.builder import make_impression_store
from zskd_plugin.dirichlet import DirichletConfig
from zskd_plugin.impressions import ImpressionConfig, plan_parts
from zskd_plugin.store import StoreError
from zskd_plugin.synthesis import SynthesisConfig

WORKER = Path(__file__).resolve().parent / "fault_worker.py"
SYN = {"num_iters": 4, "lr": 0.05, "batch_size": 8}


def _ckpt(tmp_path: Path) -> str:
    path = tmp_path / "teacher.pt"
    torch.save(make_tiny_teacher().state_dict(), path)
    return str(path)


def _spec(ckpt: str) -> dict:
    return {"key": "conftest.TinyTeacher", "source": "import", "src_ckpt": ckpt}


def _worker(ckpt: str, root: Path, num_iters: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), ckpt, str(root), str(num_iters)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _part_bytes(store) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.parts_dir.glob("part-*"))}


@pytest.mark.slow
def test_killed_run_resumes_only_missing_parts_and_equals_an_uninterrupted_run(tmp_path):
    ckpt, root = _ckpt(tmp_path), tmp_path / "killed"
    proc = _worker(ckpt, root, num_iters=150)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(root.glob("*/parts/part-*.json"))) < 4:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (store_dir,) = root.iterdir()
    done = {p.name: p.stat().st_mtime_ns for p in (store_dir / "parts").glob("part-*.json")}
    assert 4 <= len(done) < 24, "the worker was killed mid-run"
    assert not (store_dir / "manifest.json").exists()

    resumed = _worker(ckpt, root, num_iters=150)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert f"synthesising {24 - len(done)} of 24 parts" in out  # only the missing ones
    assert {n: (store_dir / "parts" / n).stat().st_mtime_ns for n in done} == done  # completed parts untouched

    reference = _worker(ckpt, tmp_path / "reference", num_iters=150)
    ref_out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, ref_out
    (ref_dir,) = (tmp_path / "reference").iterdir()
    assert ref_dir.name == store_dir.name
    assert {p.name: p.read_bytes() for p in sorted((ref_dir / "parts").iterdir())} == {
        p.name: p.read_bytes() for p in sorted((store_dir / "parts").iterdir())
    }


@pytest.mark.slow
def test_two_processes_on_one_store_do_not_corrupt_it(tmp_path):
    ckpt, root = _ckpt(tmp_path), tmp_path / "shared"
    first, second = _worker(ckpt, root, num_iters=20), _worker(ckpt, root, num_iters=20)
    outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    assert sum("synthesising 24 of 24 parts" in out for out in outs) == 1  # one made it, the other waited
    (store_dir,) = root.iterdir()
    store = make_impression_store(
        dict(
            teacher=_spec(ckpt),
            num_impressions=160,
            store_root=root,
            synthesis={"num_iters": 20, "lr": 0.05, "batch_size": 8},
            progress=False,
        )
    )
    assert store.path == store_dir and store.missing_parts() == []
    assert store.load().images.shape[0] == 160


class Diverging(TinyTeacher):
    """A teacher whose outputs turn NaN once ``diverged`` is set (a divergence in the middle of a run)."""

    diverged = False

    def forward(self, x):
        out = super().forward(x)
        return out * float("nan") if Diverging.diverged else out


def test_nan_names_the_part_writes_nothing_for_it_and_keeps_earlier_parts(tmp_path, monkeypatch):
    ckpt = _ckpt(tmp_path)
    real_write = store_module.ImpressionStore.write_part

    def write_then_diverge(self, index, part, info=None):
        digest = real_write(self, index, part, info)
        if index == 1:  # the teacher diverges once the second part is on disk
            monkeypatch.setattr(Diverging, "diverged", True)
        return digest

    monkeypatch.setattr(store_module.ImpressionStore, "write_part", write_then_diverge)
    spec = {"key": "test_faults.Diverging", "source": "import", "src_ckpt": ckpt}
    with pytest.raises(StoreError, match=r"part 2 \(class 1, beta 1.0\) diverged.*NaN"):
        make_impression_store(
            dict(teacher=spec, num_impressions=40, store_root=tmp_path / "s", synthesis=SYN, progress=False)
        )
    (store_dir,) = (tmp_path / "s").iterdir()
    names = sorted(p.name for p in (store_dir / "parts").iterdir())
    assert names == ["part-00000.json", "part-00000.safetensors", "part-00001.json", "part-00001.safetensors"]


def test_full_disk_leaves_no_partial_part_and_a_rerun_completes(tmp_path, monkeypatch):
    ckpt = _ckpt(tmp_path)
    real_fsync = os.fsync

    def failing_fsync(fd):
        if ".part-00002.safetensors." in os.readlink(f"/proc/self/fd/{fd}"):  # the disk fills up on part 2's data
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", failing_fsync)
    kwargs = dict(num_impressions=40, store_root=tmp_path / "s", synthesis=SYN, progress=False)
    with pytest.raises(StoreError, match="No space left on device.*no partial file"):
        make_impression_store(dict(teacher=_spec(ckpt), **kwargs))
    (store_dir,) = (tmp_path / "s").iterdir()
    leftovers = sorted(p.name for p in store_dir.rglob("*") if p.is_file())
    assert leftovers == [
        "part-00000.json",
        "part-00000.safetensors",
        "part-00001.json",
        "part-00001.safetensors",
        "spec.json",
    ] or leftovers == [
        ".lock",
        "part-00000.json",
        "part-00000.safetensors",
        "part-00001.json",
        "part-00001.safetensors",
        "spec.json",
    ]
    kept = {n: (store_dir / "parts" / n).read_bytes() for n in ("part-00000.safetensors", "part-00001.safetensors")}
    monkeypatch.setattr(store_module.os, "fsync", real_fsync)
    store = make_impression_store(dict(teacher=_spec(ckpt), **kwargs))
    assert store.missing_parts() == [] and store.is_complete()
    assert all((store_dir / "parts" / n).read_bytes() == b for n, b in kept.items())


def test_read_only_store_folder_gets_a_clear_error_and_stays_untouched(tmp_path, monkeypatch):
    ckpt = _ckpt(tmp_path)
    read_only = tmp_path / "stores"
    read_only.mkdir()
    (read_only / "keep.txt").write_text("already here")
    read_only.chmod(0o555)
    if os.geteuid() == 0:
        # Root ignores folder modes (CI runs as root), so fail the calls that need write access the way the OS
        # would for anyone else: EACCES for anything created inside the read-only folder.
        real_mkdir = Path.mkdir

        def denied_mkdir(self, *args, **kwargs):
            if read_only in self.parents:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", denied_mkdir)
    try:
        with pytest.raises(StoreError, match="cannot write the Data Impression store") as error:
            make_impression_store(
                dict(teacher=_spec(ckpt), num_impressions=8, store_root=read_only, synthesis=SYN, progress=False)
            )
        # the fix it names exists: the config key (there is no --store-root flag)
        assert "set `store_root:` in the Data Impression dataset config" in str(error.value)
        assert "--store-root" not in str(error.value)
    finally:
        read_only.chmod(0o755)
    assert sorted(p.name for p in read_only.iterdir()) == ["keep.txt"]
    assert (read_only / "keep.txt").read_text() == "already here"


def test_truncated_part_is_detected_and_remade(tmp_path, caplog):
    ckpt = _ckpt(tmp_path)
    kwargs = dict(num_impressions=40, store_root=tmp_path / "s", synthesis=SYN, progress=False)
    store = make_impression_store(dict(teacher=_spec(ckpt), **kwargs))
    original = store.part_path(3).read_bytes()
    store.part_path(3).write_bytes(original[: len(original) // 2])
    again = make_impression_store(dict(teacher=_spec(ckpt), **kwargs))
    assert "part 3" in caplog.text and "corrupted" in caplog.text
    assert again.part_path(3).read_bytes() == original


def test_input_size_that_does_not_fit_the_teacher_is_explained(tmp_path):
    spec = dict(_spec(_ckpt(tmp_path)), input_size=[3, 8, 8])
    with pytest.raises(ValueError, match=r"input_size \[3, 8, 8\] does not fit"):
        make_impression_store(
            dict(teacher=spec, num_impressions=8, store_root=tmp_path / "s", synthesis=SYN, progress=False)
        )
    assert not (tmp_path / "s").exists()


@settings(max_examples=200, deadline=None)
@given(
    num_classes=st.integers(2, 12),
    extra=st.integers(0, 3000),
    batch_size=st.integers(1, 300),
    raw_shares=st.lists(st.integers(0, 10), min_size=1, max_size=4).filter(lambda s: sum(s) > 0),
    bn_weight=st.sampled_from([0.0, 0.01]),  # with the BatchNorm prior the parts mix classes
)
def test_parts_cover_every_impression_exactly_once(num_classes, extra, batch_size, raw_shares, bn_weight):
    shares = [s / sum(raw_shares) for s in raw_shares]
    config = ImpressionConfig(
        num_impressions=num_classes + extra,
        dirichlet=DirichletConfig(betas=[1.0 / (i + 1) for i in range(len(shares))], beta_shares=shares),
        synthesis=SynthesisConfig(batch_size=batch_size, bn_weight=bn_weight),
    )
    plans = plan_parts(num_classes, config)
    assert sum(p.count for p in plans) == num_classes + extra
    assert all(0 < p.count <= batch_size for p in plans)
    assert [p.index for p in plans] == list(range(len(plans)))
    per_class = [sum(n for p in plans for c, _, n in p.segments if c == k) for k in range(num_classes)]
    assert max(per_class) - min(per_class) <= 1


@given(
    betas=st.lists(st.floats(0.01, 5), min_size=1, max_size=3),
    num_iters=st.integers(0, 3),
    temperature=st.floats(0.1, 50),
)
def test_valid_settings_are_kept_as_given(betas, num_iters, temperature):
    shares = [1.0 / len(betas)] * len(betas)
    shares[-1] = 1.0 - sum(shares[:-1])  # sums to 1 exactly
    dirichlet = DirichletConfig(betas=betas, beta_shares=shares)
    assert dirichlet.betas == tuple(betas) and abs(sum(dirichlet.beta_shares) - 1.0) <= 1e-6
    synthesis = SynthesisConfig(num_iters=num_iters, temperature=temperature)
    assert (synthesis.num_iters, synthesis.temperature) == (num_iters, temperature)


@given(
    field=st.sampled_from(["betas", "num_iters", "temperature"]),
    value=st.sampled_from([float("nan"), float("inf"), -1, 0, "1", [], None, True]),
)
def test_each_invalid_setting_is_refused_naming_it(field, value):
    build = {
        "betas": lambda: DirichletConfig(betas=value if value is None or value == [] else [value]),
        "num_iters": lambda: SynthesisConfig(num_iters=value),
        "temperature": lambda: SynthesisConfig(temperature=value),
    }[field]
    if field == "num_iters" and value == 0 and not isinstance(value, bool):
        build()  # 0 steps is the noise baseline: valid
        return
    with pytest.raises(ValueError, match=rf"{field}(\[0\])? must be"):
        build()


@pytest.mark.slow
@pytest.mark.parametrize("warm", [False, True], ids=["independent-parts", "warm-started-rows"])
def test_torchrun_two_processes_make_the_same_store_as_one(tmp_path, warm):
    """torchrun splits synthesis by (class, beta) rows; with the same seed the store equals a one-process run."""
    ckpt = _ckpt(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1")  # torchrun's default per worker; the same for the single run
    extra = ["warm"] if warm else []
    single = subprocess.run(
        [sys.executable, str(WORKER), ckpt, str(tmp_path / "one"), "20", *extra],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(WORKER), ckpt, str(tmp_path / "two"), "20", *extra],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert multi.stderr.count("synthesising 12 of 24 parts") == 2  # each rank made half, 4 of the 8 rows
    assert multi.stdout.count("STORE ") == 2
    (one,) = (tmp_path / "one").iterdir()
    (two,) = (tmp_path / "two").iterdir()
    assert one.name == two.name
    one_parts = {p.name: p.read_bytes() for p in sorted((one / "parts").iterdir())}
    two_parts = {p.name: p.read_bytes() for p in sorted((two / "parts").iterdir())}
    assert len(one_parts) == 48 and one_parts == two_parts  # 24 parts and their records, byte for byte
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["complete"] and manifest["parts"] == json.loads((one / "manifest.json").read_text())["parts"]
