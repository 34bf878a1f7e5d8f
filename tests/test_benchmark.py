"""`zskd benchmark`: derived row configs, and a tiny version of the whole MNIST suite on real MNIST."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from yaml_util import load_raw

from zskd_plugin.app import benchmark
from zskd_plugin.app.benchmark import derive as bench_derive
from zskd_plugin.app.benchmark import plan as bench_plan
from zskd_plugin.app.benchmark import report as bench_report
from zskd_plugin.app.benchmark import run as bench_run
from zskd_plugin.app.benchmark import suites as bench_suites
from zskd_plugin.app.runner import PipelineResult
from zskd_plugin.app.yaml_tree import dump_config, find_calls, load_config_tree, render_config

REPO = Path(__file__).resolve().parent.parent


def _per_class(*args: str, fails: bool = False) -> list[str]:
    """The lines ``benchmarks/per_class.py`` prints for ``args`` (stderr when it ``fails``), run from here."""
    script = REPO / "benchmarks" / "per_class.py"
    run = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=False)
    assert (run.returncode != 0) == fails, run.stderr
    return (run.stderr if fails else run.stdout).splitlines()


def _tags(path: Path) -> Counter[str]:
    """The YAML tags of a config (comments removed), with their counts."""
    return Counter(re.findall(r"!\w+", re.sub(r"#.*", "", path.read_text())))


@pytest.mark.parametrize("config", sorted((REPO / "yaml_configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_config_tree_round_trips_with_its_tags(config: Path, tmp_path: Path):
    copy = dump_config(load_config_tree(config), tmp_path / config.name, header="a copy")
    assert load_raw(copy) == load_raw(config)  # load_raw drops the tags: they are compared here
    assert _tags(copy) == _tags(config) and _tags(config)
    assert "!import_call" in copy.read_text() and copy.read_text().startswith("# a copy\n")


def test_plan_has_every_row_of_the_table_with_seeds():
    plans = benchmark.plan_rows(benchmark.SUITES["mnist"], benchmark.SCALES["paper"], REPO)
    rows = [p.row for p in plans]
    assert rows[0] == "teacher"
    for row in ("student-ce", "kd", "dist", "at"):
        assert rows.count(row) == 1
    for row in ("zskd-release", "zskd-ours", "noise"):
        assert sorted(p.seed for p in plans if p.row == row) == [0, 1, 2]
    assert sorted(p.num_impressions for p in plans if p.row == "zskd-sweep") == [600, 3000, 12000]  # 24,000: ours
    assert {p.num_impressions for p in plans if p.row == "zskd-release"} == {24000}


@pytest.mark.parametrize(
    ("suite", "flip", "n_dis", "views", "generator"),
    [
        ("fashion-mnist-timm", True, 2000, 120, False),
        ("mnist-timm", False, 12000, 10, True),  # its ZSKD config synthesises through a generator
    ],
)
def test_a_batchnorm_teacher_suite_plans_zskd_with_and_without_the_prior_beside_deepinversion(
    tmp_path: Path, suite: str, flip: bool, n_dis: int, views: int, generator: bool
):
    suite_, scale = benchmark.SUITES[suite], benchmark.suite_scale(benchmark.SUITES[suite], benchmark.SCALES["quick"])
    images = 2_592_000  # resnet10t's quick size; fixed views (teacher outputs stored once) afford LeNet-5's budget
    assert (scale.zskd_impressions or suite_.paper_impressions, scale.images, scale.seeds) == (n_dis, images, 3)
    assert benchmark.SCALES["quick"].zskd_impressions is None  # the paper's suites keep theirs
    n_train = n_dis * 9 // 10  # the config holds out 10% of the DIs for validation
    plans = benchmark.plan_rows(suite_, scale, REPO)
    assert [p.row for p in plans[:3]] == ["teacher", "student-ce", "kd"]
    per_seed = ["zskd-ours", "zskd-bn", "deepinversion", "noise", "real-control"]
    assert [p.row for p in plans[3:]] == per_seed * 3 and [p.seed for p in plans[3:]] == [0] * 5 + [1] * 5 + [2] * 5
    budget = bench_plan.shared_budget(plans, scale)
    impressions = {}
    for plan in plans[:8]:
        config = bench_run.row_config(plan, scale, tmp_path, "zskd train", ("a.pt", "b.pt"), budget)
        config.write()
        tree = load_config_tree(config.path)
        if plan.row == "student-ce":  # the student as the ZSKD config builds it, none of the timm teacher's kwargs
            assert tree["models"]["model"]["key"] == "lenet5_half"
            assert tree["models"]["model"]["kwargs"] == {"num_classes": 10}
        assert tree["train"]["num_epochs"] == (3 if plan.row == "teacher" else round(images / (
            n_train * views if plan.row in per_seed else 55000)))  # fmt: skip
        found = [c["init"]["kwargs"] for c in find_calls(tree, "zskd_plugin.registry.datasets.data_impression_dataset")]
        if found:
            assert {kw["num_impressions"] for kw in found} == {n_dis}
            impressions[plan.row] = found[0]
        if plan.row == "real-control":  # the zskd-bn row with its training DIs swapped for real images
            (real,) = [c["init"]["kwargs"] for c in find_calls(tree, "transfer.real_transfer_set")]
            assert real["num_images"] == n_train and real["seed"] == 0 and real["num_classes"] == 10
            assert real.get("fixed_views", 1) == views  # as many views of each real image as of each DI
            assert real["dataset"].value["init"]["kwargs"]["train"] is True
            assert [kw["split"] for kw in found] == ["val"]  # the held-out DIs stay, from the zskd-bn row's store
            assert found[0]["synthesis"] == impressions["zskd-bn"]["synthesis"]
            zskd_bn = load_config_tree(tmp_path / "configs" / "zskd-bn-seed0.yaml")
            assert render_config({"train": tree["train"]}) == render_config({"train": zskd_bn["train"]})
    synthesis = {row: kw["synthesis"] for row, kw in impressions.items()}
    prior = {"bn_weight": 1.0, "bn_distance": "standardized", "bn_first_multiplier": 20.0}
    assert synthesis["zskd-bn"].items() >= prior.items()  # the shipped config as it is
    assert not set(prior) & set(synthesis["zskd-ours"])  # today's objective: the same config without the prior
    assert {k: v for k, v in synthesis["zskd-ours"].items()} == {
        k: v for k, v in synthesis["zskd-bn"].items() if k not in prior
    }
    deepinversion = synthesis["deepinversion"]
    assert impressions["deepinversion"]["targets"] == "one_hot" and "targets" not in impressions["zskd-bn"]
    assert (deepinversion["temperature"], deepinversion["bn_weight"], deepinversion["bn_distance"]) == (
        1.0, 10.0, "deepinversion")  # fmt: skip
    assert "bn_first_multiplier" not in deepinversion and deepinversion["flip"] is flip
    assert synthesis["zskd-bn"].get("flip", False) is flip  # a mirrored digit is no digit: the MNIST config never flips
    # the engine's budget is the ZSKD rows', or the suite's pixel steps where those rows adapt a generator instead:
    # DeepInversion optimises pixels, and the noise row's images are unoptimised pixels, not a random generator's
    pixel_budget = {**synthesis["zskd-bn"], **suite_.pixel_steps}
    assert (synthesis["zskd-bn"].get("method") == "generator") is generator
    assert bool(suite_.pixel_steps) is generator
    for key in ("num_iters", "batch_size", "lr_schedule"):
        assert deepinversion[key] == pixel_budget[key]
    for row in ("deepinversion", "noise"):
        assert not set(bench_suites.GENERATOR_KEYS) & set(synthesis[row]), row
    assert synthesis["noise"]["num_iters"] == 0
    labels = {p.row: p.label for p in plans[3:8]}
    assert ("(generator)" in labels["zskd-bn"] and "(generator)" in labels["zskd-ours"]) is generator
    assert "generator" not in labels["deepinversion"] + labels["noise"]


def test_a_suite_whose_zskd_config_adapts_a_generator_names_deepinversions_pixel_steps():
    suite = dataclasses.replace(benchmark.SUITES["mnist-timm"], pixel_steps={})
    scale = benchmark.suite_scale(suite, benchmark.SCALES["quick"])
    with pytest.raises(ValueError, match=r"synthesises through a generator: suite 'mnist-timm' needs pixel_steps"):
        benchmark.plan_rows(suite, scale, REPO)


def test_the_prior_row_needs_a_template_with_the_prior():
    edit = bench_derive.zskd_edit(20, 0, {}, None, require=("bn_weight",))
    tree = load_config_tree(REPO / "yaml_configs/mnist/zskd-lenet5_half_from_lenet5.yaml")
    with pytest.raises(ValueError, match=r"lack \['bn_weight'\], which this row measures"):
        edit(tree)


def test_cifar10_suite_plans_the_real_data_kd_rows_with_the_zskd_optimiser(tmp_path: Path):
    """CIFAR-10 cannot run here (download, GPU): its rows are planned and derived only, never trained."""
    suite, scale = benchmark.SUITES["cifar10"], benchmark.SCALES["paper"]
    plans = benchmark.plan_rows(suite, scale, REPO)
    assert [p.row for p in plans[:5]] == ["teacher", "student-ce", "kd", "dist", "at"]
    budget = bench_plan.shared_budget(plans, scale)
    assert budget.images == 200 * 36000  # 200 epochs of the paper's 40,000 DIs less the held-out 10%
    shipped = "./resource/ckpt/cifar10/ce/alexnet_cifar.pt"
    for plan in plans[2:5]:
        config = bench_run.row_config(plan, scale, tmp_path, "zskd train", (shipped, "./t.pt"), budget)
        config.write()
        tree = load_config_tree(config.path)
        assert tree["models"]["teacher_model"]["src_ckpt"] == "./t.pt"  # the suite's own teacher
        assert tree["models"]["student_model"]["key"] == "alexnet_cifar_half"
        train = tree["train"]
        assert train["optimizer"] == {"key": "Adam", "kwargs": {"lr": 0.001}}  # the CIFAR-10 ZSKD config's
        assert train["train_data_loader"]["kwargs"]["batch_size"] == 64
        assert train["num_epochs"] == 160  # 7.2 million images over the 45,000 real training images


def test_a_scale_sets_its_budget_by_epochs_or_by_images_not_both():
    with pytest.raises(ValueError, match="exactly one of epochs and images"):
        benchmark.Scale("x", epochs=10, zskd_impressions=None, release_iters=1, sweep_fractions=(), seeds=1, images=100)
    with pytest.raises(ValueError, match="exactly one of epochs and images"):
        benchmark.Scale("x", epochs=None, zskd_impressions=None, release_iters=1, sweep_fractions=(), seeds=1)


@pytest.mark.parametrize(("suite", "train_dis", "ours_epochs"), [("mnist", 21600, 120), ("fashion-mnist", 43200, 60)])
def test_every_student_row_sees_the_same_images_with_the_same_optimiser(
    tmp_path: Path, suite: str, train_dis: int, ours_epochs: int
):
    scale = benchmark.SCALES["quick"]
    plans = benchmark.plan_rows(benchmark.SUITES[suite], scale, REPO)
    budget = bench_plan.shared_budget(plans, scale)
    assert budget.images == 2_592_000 == ours_epochs * train_dis  # the paper's DI count less the held-out 10%
    seen = {}
    for plan in plans[1:]:  # the teacher keeps its own config
        config = bench_run.row_config(plan, scale, tmp_path, "zskd train", ("a.pt", "b.pt"), budget)
        config.write()
        train = load_config_tree(config.path)["train"]
        assert train["optimizer"] == {"key": "Adam", "kwargs": {"lr": 0.004}}
        assert train["train_data_loader"]["kwargs"]["batch_size"] == 256
        assert train["scheduler"]["kwargs"]["T_max"] == train["num_epochs"]
        seen[plan.name] = train["num_epochs"]
    assert seen["kd-seed0"] == round(budget.images / 55000)  # the real split's training part
    assert seen["zskd-ours-seed0"] == ours_epochs
    assert seen["zskd-release-seed0"] == round(budget.images / 5400)  # 6,000 DIs less the held-out 10%
    assert seen["zskd-sweep-n600-seed0"] == round(budget.images / 540)


def test_tiny_mnist_suite_writes_the_table_and_resumes(tmp_path: Path, monkeypatch, mnist_root: Path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(mnist_root.resolve())
    report = benchmark.run_suite("mnist", "tiny", "results", progress=False, configs_root=REPO)

    expected = {"teacher", "student-ce", "kd", "dist", "at", "zskd-release", "zskd-ours", "noise"}
    assert set(report["rows"]) == expected
    for row in ("zskd-release", "zskd-ours", "noise"):
        acc = report["rows"][row]["test_acc_last"]
        seeds = [r["test_acc_last"] for r in report["runs"] if r["row"] == row]
        assert acc["n"] == 2 and acc["mean"] == pytest.approx(sum(seeds) / 2, abs=0.006)
    assert report["rows"]["teacher"]["test_acc_last"]["mean"] > 15.0  # 200 real images, 6 epochs: above chance
    assert [p["num_impressions"] for p in report["sweep"]] == [30, 40]
    assert report["rows"]["zskd-release"]["paper"] == 98.77

    # every row names a config that exists and reproduces it; the noise row's Data Impressions are unoptimised
    for run in report["runs"]:
        assert Path(run["config"]).is_file() and run["command"].endswith(f"--seed {run['seed']}")
        assert run["wall_seconds"] > 0
    noise = load_config_tree("results/mnist-tiny/configs/noise-seed1.yaml")
    paper = load_config_tree("results/mnist-tiny/configs/zskd-release-seed0.yaml")
    noise_kwargs = noise["datasets"]["zskd/train"].value["init"]["kwargs"]
    assert noise_kwargs["synthesis"]["num_iters"] == 0 and noise_kwargs["seed"] == 1
    release_syn = paper["datasets"]["zskd/train"].value["init"]["kwargs"]["synthesis"]
    assert release_syn["minmax_rescale"] and release_syn["lr"] == 0.001
    assert noise["models"]["teacher_model"]["src_ckpt"] == "./resource/ckpt/benchmark/mnist-tiny/teacher.pt"

    out = tmp_path / "results"
    table = (out / "mnist-tiny.md").read_text()
    assert "| zskd-release |" in table and "98.77" in table and "| noise |" in table
    assert (out / "mnist-tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "mnist-tiny.json").read_text())["rows"].keys() == report["rows"].keys()

    # a second run reuses every measured row instead of training again
    def no_training(*args, **kwargs):
        raise AssertionError("a measured row was run again")

    monkeypatch.setattr(bench_run, "run_pipeline", no_training)
    again = benchmark.run_suite("mnist", "tiny", "results", progress=False, configs_root=REPO)
    assert again["rows"] == report["rows"]

    # the per-class diagnostic reads the same checkpoints: its overall figures are the table's best-val ones
    lines = _per_class("results/mnist-tiny", "kd-seed0", "zskd-ours-seed1")
    assert lines[0].split() == ["class", "teacher", "kd-seed0", "zskd-ours-seed1"] and len(lines) == 1 + 10 + 2
    overall = [float(v) for v in lines[-2].split()[1:]]
    best_val = {(r["row"], r["seed"]): r["test_acc_best_val"] for r in report["runs"]}
    assert overall == pytest.approx([best_val["teacher", 0], best_val["kd", 0], best_val["zskd-ours", 1]], abs=0.006)
    assert lines[-1].split()[:2] == ["agreement", "100.00"]  # the teacher agrees with itself
    # --impressions: the DI row's agreement on its training DIs and its held-out ones; a real-data row has none
    extra = _per_class("results/mnist-tiny", "kd-seed0", "zskd-ours-seed1", "--impressions")[len(lines) :]
    assert [e.split(":")[0] for e in extra] == ["zskd-ours-seed1"] * 2
    assert "train DIs" in extra[0] and "held-out DIs" in extra[1]
    assert all(0 <= float(e.rsplit(":", 1)[1]) <= 100 for e in extra)

    # a checkpoint that is not on disk (a fresh clone): the message gives the row's own command to write it
    kd_ckpt = Path("resource/ckpt/benchmark/mnist-tiny/kd-seed0.pt")
    kd_ckpt.rename(kd_ckpt.with_suffix(".bak"))
    err = _per_class("results/mnist-tiny", "kd-seed0", fails=True)[-1]
    assert "not on disk" in err and err.endswith(report["rows"]["kd"]["runs"][0]["command"])
    kd_ckpt.with_suffix(".bak").rename(kd_ckpt)


def test_bad_suite_scale_or_row_names_the_choices(tmp_path: Path):
    with pytest.raises(ValueError, match="choose one of"):
        benchmark.run_suite("svhn", out_root=tmp_path)
    with pytest.raises(ValueError, match="choose one of"):
        benchmark.run_suite("mnist", "huge", out_root=tmp_path)
    with pytest.raises(ValueError, match="rows are"):
        benchmark.run_suite("mnist", "tiny", out_root=tmp_path, only=["zsdk-ours"], configs_root=REPO)


def test_rows_need_a_teacher_first(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench_run, "run_pipeline", lambda *a, **k: pytest.fail("trained without a teacher"))
    with pytest.raises(FileNotFoundError, match="--only teacher"):
        benchmark.run_suite("mnist", "tiny", "results", only=["kd"], configs_root=REPO)


def test_summary_is_the_mean_and_the_sample_std():
    # Fashion-MNIST's release-recipe row, three seeds (results/fashion-mnist-quick.md)
    assert bench_report.summary([56.23, 48.66, 41.20]) == {"mean": 48.70, "std": 7.52, "n": 3}
    assert bench_report.summary([98.87]) == {"mean": 98.87, "std": 0.0, "n": 1}


def test_a_device_other_than_cpu_goes_into_the_command_and_the_synthesis(tmp_path: Path):
    scale = benchmark.SCALES["tiny"]
    plans = benchmark.plan_rows(benchmark.SUITES["mnist"], scale, REPO)
    budget = bench_plan.shared_budget(plans, scale)
    ours = next(p for p in plans if p.row == "zskd-ours")
    on_gpu = bench_run.row_config(ours, scale, tmp_path, "zskd train", ("a", "b"), budget, device="cuda")
    on_cpu = bench_run.row_config(ours, scale, tmp_path, "zskd train", ("a", "b"), budget)
    assert on_gpu.command.endswith("--seed 0 --device cuda") and on_cpu.command.endswith("--seed 0")
    assert "device: cuda" in on_gpu.text and "device:" not in on_cpu.text


def test_the_suite_needs_the_shipped_configs(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="--configs-root"):
        benchmark.run_suite("mnist", "tiny", tmp_path / "results", configs_root=tmp_path)


class _FakePipeline:
    """Stands in for training: writes a checkpoint with given weights and reports fixed accuracies."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.teacher_weight = 1.0

    def __call__(self, config_path: Path, device: str = "cpu", seed: int = 0, progress: bool = True):
        models = load_config_tree(config_path)["models"]
        dst = Path((models.get("student_model") or models["model"])["dst_ckpt"])
        name = Path(config_path).stem
        self.calls.append(name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        weight = self.teacher_weight if name.startswith("teacher") else 0.0
        torch.save({"model": {"w": torch.full((3,), weight)}}, dst)
        return PipelineResult(str(config_path), "x", 50.0 + seed, None, 40.0 + seed, 45.0, 1, 0.1)


def test_a_resumed_suite_reruns_exactly_the_rows_whose_config_or_teacher_changed(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = _FakePipeline()
    monkeypatch.setattr(bench_run, "run_pipeline", fake)

    def run(only: list[str] | None = None) -> dict:
        return benchmark.run_suite("mnist", "tiny", "results", only=only, configs_root=REPO)

    teacher_pt = Path("resource/ckpt/benchmark/mnist-tiny/teacher.pt")
    first = run()
    students = sorted(r["name"] for r in first["runs"] if r["row"] != "teacher")
    assert len(fake.calls) == len(students) + 1 and first["stale"] == []
    assert first["rows"]["teacher"]["accuracy"]["mean"] == 50.0  # its checkpoint's, the one the students use
    assert first["rows"]["kd"]["accuracy"]["mean"] == 40.0  # a student's: the last epoch

    # the teacher's checkpoint is gone (a fresh clone: resource/ is not committed): students cannot run without it,
    # and --only teacher trains it again; the same weights keep every student row
    teacher_pt.unlink()
    fake.calls.clear()
    # report_only trains nothing and needs no checkpoint: the table as recorded, every row of it
    recorded = benchmark.run_suite("mnist", "tiny", "results", configs_root=REPO, report_only=True)
    assert recorded["rows"] == first["rows"] and fake.calls == [] and not teacher_pt.exists()
    with pytest.raises(ValueError, match="drop one"):
        benchmark.run_suite("mnist", "tiny", "results", only=["kd"], configs_root=REPO, report_only=True)
    with pytest.raises(FileNotFoundError, match="--only teacher"):
        run(["kd"])
    assert run(["teacher"])["rows"].keys() == first["rows"].keys() and fake.calls == ["teacher-seed0"]

    # other teacher weights: no student row of the old teacher stays in the table, and none is overwritten
    kd_config = Path("results/mnist-tiny/configs/kd-seed0.yaml").read_bytes()
    fake.teacher_weight = 2.0
    teacher_pt.unlink()
    fake.calls.clear()
    report = run(["teacher"])
    assert list(report["rows"]) == ["teacher"] and sorted(report["stale"]) == students
    assert "Not in the table" in Path("results/mnist-tiny.md").read_text()
    assert Path("results/mnist-tiny/configs/kd-seed0.yaml").read_bytes() == kd_config
    fake.calls.clear()
    assert run()["stale"] == [] and sorted(fake.calls) == students

    # a changed row config: that row only is left out until it runs again, and its old config stays as measured
    paper_config = Path("results/mnist-tiny/configs/zskd-release-seed0.yaml").read_bytes()
    monkeypatch.setattr(bench_plan, "PAPER_AUGMENT", {"degrees": 5, "translate": 0.1, "scale": 0.1})
    fake.calls.clear()
    report = run(["zskd-ours"])
    assert fake.calls == [] and report["stale"] == ["zskd-release-seed0", "zskd-release-seed1"]
    assert "zskd-release" not in report["rows"] and "zskd-ours" in report["rows"]
    assert Path("results/mnist-tiny/configs/zskd-release-seed0.yaml").read_bytes() == paper_config
    assert run(["zskd-release"])["stale"] == [] and fake.calls == ["zskd-release-seed0", "zskd-release-seed1"]
    assert "degrees: 5" in Path("results/mnist-tiny/configs/zskd-release-seed0.yaml").read_text()


def test_a_partly_measured_suite_says_what_is_missing_and_a_broken_row_file_is_named(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench_run, "run_pipeline", _FakePipeline())

    def run(only: list[str] | None = None) -> dict:
        return benchmark.run_suite("mnist", "tiny", "results", only=only, configs_root=REPO)

    with pytest.raises(FileNotFoundError, match="--scale tiny --out elsewhere --configs-root .* --only teacher"):
        benchmark.run_suite("mnist", "tiny", "elsewhere", only=["kd"], configs_root=REPO)
    every = [r["name"] for r in run()["runs"]]
    Path("results/mnist-tiny/rows/zskd-ours-seed1.json").unlink()  # as if stopped after its seed 0
    report = run(["teacher"])
    assert report["not_measured"] == ["zskd-ours-seed1"] and len(report["runs"]) == len(every) - 1
    table = Path("results/mnist-tiny.md").read_text()
    assert "50.00 (n=1 of 2)" in table and "Not measured yet" in table and "zskd-ours-seed1." in table
    assert "(n=2)" in table  # the complete seeded rows

    Path("results/mnist-tiny/rows/kd-seed0.json").write_text('{"row": "kd", ')  # cut short
    with pytest.raises(ValueError, match=r"kd-seed0\.json is not valid JSON.*delete it"):
        run(["teacher"])


def test_a_suite_without_the_sweep_reports_no_count_curve():
    # a timm suite's zskd-ours row is ZSKD without the BN prior, not a point of a DI-count sweep
    record = {"row": "zskd-ours", "name": "zskd-ours-seed0", "label": "x", "seed": 0, "num_impressions": 2000,
              "test_acc_last": 10.0, "test_acc_best_val": 10.0, "epochs": 60, "train_seconds": 1.0,
              "wall_seconds": 2.0, "command": "zskd train"}  # fmt: skip
    scale = benchmark.SCALES["quick"]
    timm = bench_report.build_report(benchmark.SUITES["fashion-mnist-timm"], scale, [record], 108_000, [], [], None)
    lenet = bench_report.build_report(benchmark.SUITES["fashion-mnist"], scale, [record], 108_000, [], [], None)
    assert timm["sweep"] == [] and "Data Impression count" not in bench_report.markdown(timm)
    assert [p["num_impressions"] for p in lenet["sweep"]] == [2000]


def test_the_real_image_control_takes_a_seeded_choice_of_images_without_their_labels():
    from torch.utils.data import TensorDataset

    from zskd_plugin.app.benchmark.transfer import real_transfer_set

    images = torch.rand(50, 1, 4, 4)
    data = TensorDataset(images, torch.arange(50) % 10)
    a = real_transfer_set(data, 20, seed=3, num_classes=10, transform=lambda x: x * 2)
    b = real_transfer_set(data, 20, seed=3, num_classes=10)
    c = real_transfer_set(data, 20, seed=4, num_classes=10)
    assert len(a) == 20 and torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert all(any(torch.equal(x, y) for y in images) for x in a.images)  # the data set's own images, unchanged
    image, target = a[0]
    assert torch.equal(image, a.images[0] * 2) and torch.allclose(target, torch.full((10,), 0.1))  # no label in it
    with pytest.raises(ValueError, match=r"num_images must be in \[1, 50\]"):
        real_transfer_set(data, 51, seed=0, num_classes=10)
    with pytest.raises(ValueError, match="leave Normalize out"):
        real_transfer_set(TensorDataset(images - 0.5, torch.zeros(50)), 5, seed=0, num_classes=10)


def test_the_control_row_reads_the_test_sets_data_set_in_pixel_space():
    tree = load_config_tree(REPO / "yaml_configs/timm/zskd-lenet5_half_from_resnet10t_fashion_mnist.yaml")
    bench_derive.real_transfer_edit(1)(tree)
    (real,) = [c["init"]["kwargs"] for c in find_calls(tree, "transfer.real_transfer_set")]
    dataset = real["dataset"].value
    assert dataset["key"] == "torchvision.datasets.FashionMNIST" and dataset["init"]["kwargs"]["train"] is True
    steps = [t.value["key"] for t in dataset["init"]["kwargs"]["transform"].value["init"]["kwargs"]["transforms"]]
    assert steps == ["torchvision.transforms.ToTensor", "torchvision.transforms.Pad"]  # no Normalize
    test = tree["datasets"]["fashion_mnist/test"].value["init"]["kwargs"]
    assert test["train"] is False and len(test["transform"].value["init"]["kwargs"]["transforms"]) == 3  # untouched
    assert real["batch_transform"] is not None and (real["num_images"], real["seed"]) == (5400, 1)
    assert real["fixed_views"] == 120 and bench_derive.train_size(tree) == 5400 * 120  # the DIs' views, kept

    # a loss that reads the stored soft targets would read the control's uniform ones: refused
    tree = load_config_tree(REPO / "yaml_configs/timm/zskd-lenet5_half_from_resnet10t_fashion_mnist.yaml")
    tree["train"]["criterion"]["kwargs"]["sub_terms"]["zskd"]["criterion"]["kwargs"]["target_weight"] = 0.5
    with pytest.raises(ValueError, match="target_weight 0"):
        bench_derive.real_transfer_edit(0)(tree)


def test_deepinversion_tv_is_the_batch_l2_norm_of_four_neighbour_differences():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from deepinversion_tv import deepinversion_tv
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    z = torch.zeros(3, 1, 5, 5)
    assert deepinversion_tv(z + 0.7).item() == 0.0  # flat images
    z[1, 0, 2, 2] = 1.0  # one interior pixel: each direction's differences hold +1 and -1 once
    assert deepinversion_tv(z).item() == pytest.approx(4 * 2**0.5)
    z[2, 0, 2, 2] = 1.0  # a second image: one L2 norm over the batch, not a sum of per-image norms
    assert deepinversion_tv(z).item() == pytest.approx(4 * 4**0.5)


@pytest.mark.parametrize(
    ("suite", "n_dis", "views"), [("fashion-mnist-timm-student", 2000, 120), ("mnist-timm-student", 12000, 10)]
)
def test_a_timm_student_suite_trains_its_student_in_every_student_row_on_the_timm_suites_dis(
    tmp_path: Path, suite: str, n_dis: int, views: int
):
    student_suite = benchmark.SUITES[suite]
    teacher_suite = benchmark.SUITES[student_suite.teacher_suite]
    quick = benchmark.SCALES["quick"]
    scale, lenet_scale = benchmark.suite_scale(student_suite, quick), benchmark.suite_scale(teacher_suite, quick)
    n_zskd = scale.zskd_impressions or student_suite.paper_impressions
    assert (n_zskd, scale.images, scale.seeds) == (n_dis, 648_000, 3)  # a quarter of the timm suites' images
    plans = benchmark.plan_rows(student_suite, scale, REPO)
    lenet_plans = benchmark.plan_rows(teacher_suite, lenet_scale, REPO)
    assert [p.name for p in plans] == [p.name for p in lenet_plans]
    budget, lenet_budget = bench_plan.shared_budget(plans, scale), bench_plan.shared_budget(lenet_plans, lenet_scale)
    assert budget.training == lenet_budget.training  # the ZSKD config's optimiser, schedule and batch size
    timm_student = {"key": "timm_model", "kwargs": {"model_name": "lcnet_035", "num_classes": 10, "in_chans": 1}}
    shipped = load_config_tree(plans[0].template)["models"]["model"]["dst_ckpt"]
    ckpt = (shipped, "./resource/ckpt/benchmark/shared/teacher.pt")
    for plan, lenet_plan in zip(plans[:8], lenet_plans[:8]):
        config = bench_run.row_config(plan, scale, tmp_path / "s", "zskd train", ckpt, budget)
        lenet = bench_run.row_config(lenet_plan, lenet_scale, tmp_path / "l", "zskd train", ckpt, lenet_budget)
        config.write()
        lenet.write()
        tree, lenet_tree = load_config_tree(config.path), load_config_tree(lenet.path)
        if plan.row == "teacher":  # the same teacher config: the suite reads the timm suite's teacher row
            assert render_config(tree) == render_config(lenet_tree)
            continue
        model = tree["models"]["model" if plan.row == "student-ce" else "student_model"]
        assert {k: model[k] for k in ("key", "kwargs")} == timm_student
        assert plan.label == f"{lenet_plan.label}; student lcnet_035"  # the table says which student
        lenet_model = lenet_tree["models"]["model" if plan.row == "student-ce" else "student_model"]
        assert lenet_model["key"] == "lenet5_half"
        assert tree["models"].get("teacher_model") == lenet_tree["models"].get("teacher_model")
        # the same Data Impressions (one store for both students), seen a quarter as often
        found = [c["init"]["kwargs"] for c in find_calls(tree, "zskd_plugin.registry.datasets.data_impression_dataset")]
        lenet_found = [
            c["init"]["kwargs"] for c in find_calls(lenet_tree, "zskd_plugin.registry.datasets.data_impression_dataset")
        ]
        keys = ("teacher", "num_impressions", "seed", "synthesis", "dirichlet", "targets", "fixed_views")
        assert [{k: kw.get(k) for k in keys} for kw in found] == [{k: kw.get(k) for k in keys} for kw in lenet_found]
        per_epoch = 55000 if plan.row in ("student-ce", "kd") else n_dis * 9 // 10 * views  # real or fixed views
        assert tree["train"]["num_epochs"] == round(648_000 / per_epoch)
        assert lenet_tree["train"]["num_epochs"] == round(2_592_000 / per_epoch)


def test_a_timm_student_suite_reads_the_timm_suites_teacher_row_and_never_trains_a_teacher(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = _FakePipeline()
    monkeypatch.setattr(bench_run, "run_pipeline", fake)

    def run(suite: str, only: list[str] | None = None, report_only: bool = False) -> dict:
        return benchmark.run_suite(suite, "tiny", "results", only=only, configs_root=REPO, report_only=report_only)

    with pytest.raises(
        FileNotFoundError, match="mnist-timm suite.s teacher.*--suite mnist-timm --scale tiny .*--only teacher"
    ):
        run("mnist-timm-student", ["kd"])
    assert fake.calls == [] and not Path("results/mnist-timm-tiny").exists()  # nothing trained, nothing written
    run("mnist-timm", ["teacher"])
    report = run("mnist-timm-student", ["kd"])
    assert fake.calls == ["teacher-seed0", "kd-seed0"]  # the student suite trained its student only
    teacher_record = json.loads(Path("results/mnist-timm-tiny/rows/teacher-seed0.json").read_text())
    assert report["rows"]["teacher"]["runs"] == [teacher_record] and report["stale"] == []
    assert (
        json.loads(Path("results/mnist-timm-student-tiny/rows/kd-seed0.json").read_text())["teacher_sha256"]
        == (teacher_record["checkpoint_sha256"])
    )
    assert not Path("results/mnist-timm-student-tiny/rows/teacher-seed0.json").exists()
    kd = load_config_tree("results/mnist-timm-student-tiny/configs/kd-seed0.yaml")["models"]
    assert kd["teacher_model"]["src_ckpt"] == "./resource/ckpt/benchmark/mnist-timm-tiny/teacher.pt"
    assert kd["student_model"]["kwargs"]["model_name"] == "lcnet_035"

    # the timm suite's teacher trained again with other weights: the student rows leave the table, none runs
    fake.teacher_weight = 2.0
    Path("resource/ckpt/benchmark/mnist-timm-tiny/teacher.pt").unlink()
    run("mnist-timm", ["teacher"])
    fake.calls.clear()
    assert run("mnist-timm-student", report_only=True)["stale"] == ["kd-seed0"] and fake.calls == []
