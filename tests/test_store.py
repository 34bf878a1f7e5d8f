import json

import pytest
import torch
from conftest import make_tiny_teacher

from zskd_plugin.builder import build_impression_dataset, make_impression_store
from zskd_plugin.impressions import ImpressionConfig, plan_parts
from zskd_plugin.store import ImpressionStore, PartData, StoreError
from zskd_plugin.synthesis import SynthesisConfig

SYN = {"num_iters": 5, "lr": 0.05, "batch_size": 8}


def _teacher_file(tmp_path, seed=0):
    path = tmp_path / f"teacher{seed}.pt"
    torch.save({"model": make_tiny_teacher(seed).state_dict()}, path)
    return {"key": "conftest.TinyTeacher", "source": "import", "src_ckpt": str(path)}


def _store(tmp_path, teacher, **overrides):
    kwargs = dict(teacher=teacher, num_impressions=40, store_root=tmp_path / "stores", synthesis=SYN, progress=False)
    kwargs.update(overrides)
    return make_impression_store(kwargs)


def test_parts_are_planned_within_class_and_beta_rows():
    plans = plan_parts(4, ImpressionConfig(num_impressions=42, synthesis=SynthesisConfig(batch_size=4)))
    assert sum(p.count for p in plans) == 42
    assert all(p.count <= 4 for p in plans)
    assert all(len(p.segments) == 1 for p in plans)
    per_class = [sum(n for p in plans for c, _, n in p.segments if c == k) for k in range(4)]
    assert per_class == [11, 11, 10, 10]
    assert {beta for p in plans for _, beta, _ in p.segments} == {1.0, 0.1}
    with pytest.raises(ValueError, match="at least one per class"):
        plan_parts(10, ImpressionConfig(num_impressions=5))


def test_store_holds_float_pixels_and_targets_with_a_manifest(tmp_path):
    store = _store(tmp_path, _teacher_file(tmp_path))
    data = store.load()
    assert data.images.dtype == torch.float32 and data.images.shape == (40, 1, 8, 8)
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert torch.allclose(data.targets.sum(1), torch.ones(40), atol=1e-5)
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["complete"] is True and manifest["num_impressions"] == 40
    assert manifest["spec"]["impressions"]["synthesis"]["num_iters"] == 5
    assert len(manifest["spec"]["teacher"]["sha256"]) == 64
    assert all(len(p["sha256"]) == 64 for p in manifest["parts"])
    # no pickle: every part is a safetensors file (8-byte header length, then a JSON header)
    part = store.part_path(0).read_bytes()
    assert part[8:9] == b"{"
    assert not list(store.path.rglob("*.tmp"))


def test_second_run_reuses_the_store_without_synthesising(tmp_path, monkeypatch):
    teacher = _teacher_file(tmp_path)
    first = _store(tmp_path, teacher)
    stamps = {p: p.stat().st_mtime_ns for p in first.parts_dir.iterdir()}
    import zskd_plugin.impressions as impressions

    def fail(*args, **kwargs):
        raise AssertionError("synthesis ran again")

    monkeypatch.setattr(impressions, "synthesize_batch", fail)
    second = _store(tmp_path, teacher)
    assert second.path == first.path
    assert {p: p.stat().st_mtime_ns for p in second.parts_dir.iterdir()} == stamps


def test_same_seed_same_store_and_other_settings_other_store(tmp_path):
    teacher = _teacher_file(tmp_path)
    a = _store(tmp_path, teacher, store_root=tmp_path / "a")
    b = _store(tmp_path, teacher, store_root=tmp_path / "b")
    assert a.path.name == b.path.name
    assert torch.equal(a.load().images, b.load().images)
    assert _store(tmp_path, teacher, seed=1).path != a.path
    assert _store(tmp_path, _teacher_file(tmp_path, seed=1)).path != a.path  # other weights, other key
    assert _store(tmp_path, teacher, dirichlet={"betas": [1.0], "beta_shares": [1.0]}).path != a.path


def test_corrupted_part_is_detected_and_only_it_is_made_again(tmp_path, caplog):
    teacher = _teacher_file(tmp_path)
    store = _store(tmp_path, teacher)
    original = store.load().images.clone()
    victim = store.part_path(2)
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum"):
        store.read_part(2)
    other_stamp = store.part_path(0).stat().st_mtime_ns
    again = _store(tmp_path, teacher)  # the store still says complete: the checksum catches the damage
    assert "part 2" in caplog.text
    assert store.part_path(0).stat().st_mtime_ns == other_stamp
    assert torch.equal(again.load().images, original)


def test_incomplete_store_is_not_loaded(tmp_path):
    store = ImpressionStore(tmp_path / "s", {"x": 1}, num_parts=2)
    store.prepare()
    store.write_part(0, PartData(torch.zeros(2, 1, 2, 2), torch.full((2, 3), 1 / 3), torch.zeros(2)))
    assert store.missing_parts() == [1]
    with pytest.raises(StoreError, match="finalise"):
        store.finalize()
    with pytest.raises(StoreError, match="not complete"):
        store.load()


def test_unwritable_store_root_names_the_fix(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store root should be")
    with pytest.raises(StoreError, match="store_root"):
        _store(tmp_path, _teacher_file(tmp_path), store_root=blocker / "stores")
    assert blocker.read_text() == "a file where the store root should be"


def test_dataset_splits_are_disjoint_and_labelled_for_their_use(tmp_path):
    teacher = _teacher_file(tmp_path)
    common = dict(
        teacher=teacher, num_impressions=40, store_root=tmp_path / "s", synthesis=SYN, progress=False, val_fraction=0.25
    )
    train = build_impression_dataset(split="train", **common)
    val = build_impression_dataset(split="val", **common)
    assert len(train) == 30 and len(val) == 10
    image, target = train[0]
    assert image.shape == (1, 8, 8) and target.shape == (4,)
    assert isinstance(val[0][1], int)
    train_rows = {tuple(x.flatten().tolist()) for x in train.images}
    assert not any(tuple(x.flatten().tolist()) in train_rows for x in val.images)


def test_misspelled_settings_are_named(tmp_path):
    with pytest.raises(TypeError, match="num_iter.*valid keys"):
        _store(tmp_path, _teacher_file(tmp_path), synthesis={"num_iter": 5})
    with pytest.raises(TypeError, match="src_ckpts"):
        _store(tmp_path, {"key": "lenet5", "src_ckpts": "x.pt"})
    with pytest.raises(ValueError, match="num_impressions"):
        _store(tmp_path, _teacher_file(tmp_path), num_impressions=0)


def test_a_validation_split_that_rounds_to_nothing_is_refused():
    from zskd_plugin.dataset import split_indices

    with pytest.raises(ValueError, match="non-empty"):
        split_indices(10, 0.01, seed=0)
    train, val = split_indices(10, 0.2, seed=0)
    assert len(train) == 8 and len(val) == 2


def test_another_classifier_path_gets_another_store(tmp_path):
    teacher = _teacher_file(tmp_path)
    auto = _store(tmp_path, teacher)
    named = _store(tmp_path, dict(teacher, classifier_path="head.fc"))
    assert named.path != auto.path


def test_the_builder_signature_and_its_settings_name_the_same_keys():
    """build_impression_dataset's keyword arguments (the YAML interface) are exactly the store's settings plus the
    dataset's own, so a key can neither be accepted by one and refused by the other."""
    import inspect

    from zskd_plugin.builder import DATASET_KEYS, STORE_KEYS, build_impression_dataset

    params = [p for p in inspect.signature(build_impression_dataset).parameters if p != "resolver"]
    assert sorted(params) == sorted(STORE_KEYS + DATASET_KEYS)


def test_the_store_key_of_the_shipped_mnist_settings_does_not_move():
    """A refactor must not orphan users' stores: the folder name for the MNIST configs' settings and a fixed teacher
    is the one the plugin computed at e278a96 (before the layout and validation changes)."""
    from zskd_plugin.dirichlet import DirichletConfig
    from zskd_plugin.impressions import ImpressionConfig, open_store
    from zskd_plugin.models import create_model
    from zskd_plugin.synthesis import SynthesisConfig
    from zskd_plugin.teacher import InputConfig

    torch.manual_seed(0)
    teacher = create_model("lenet5", num_classes=10)
    synthesis = SynthesisConfig(num_iters=100, lr=0.1, lr_schedule="cosine", batch_size=200, temperature=20.0,
                                tv_weight=1.0, l2_weight=0.1, precision="bf16", channels_last=True)  # fmt: skip
    config = ImpressionConfig(24000, 0, DirichletConfig(betas=[1.0, 0.1], beta_shares=[0.5, 0.5]), synthesis)
    inputs = InputConfig(input_size=(1, 32, 32), mean=(0.1307,), std=(0.3081,))
    assert open_store("unused", teacher, inputs, config, 10, "lenet5").path.name == "lenet5-7464a02a6b90643b"


def test_a_finished_store_opens_by_its_folder_alone(tmp_path):
    store = ImpressionStore(tmp_path / "s", {"x": 1}, num_parts=2)
    store.prepare()
    for i in range(2):
        store.write_part(i, PartData(torch.full((2, 1, 2, 2), float(i)), torch.full((2, 3), 1 / 3), torch.zeros(2)))
    with pytest.raises(StoreError, match="no complete Data Impression store"):
        ImpressionStore.open(store.path)  # parts on disk, no manifest yet
    store.finalize()
    opened = ImpressionStore.open(store.path)
    assert (opened.spec, opened.num_parts) == ({"x": 1}, 2)
    assert torch.equal(opened.load().images, store.load().images)
