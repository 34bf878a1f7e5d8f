"""Per-class test accuracy of a benchmark's checkpoints, and how often each student agrees with its teacher.

    python benchmarks/per_class.py results/fashion-mnist-quick kd-seed0 zskd-ours-seed0 zskd-release-seed0

Reads each row's config from ``<results>/configs/<row>.yaml`` (as ``zskd benchmark`` wrote it), loads the checkpoint
the row wrote (its ``dst_ckpt``: for student rows the epoch chosen on the held-out split, which is what the table's
``best-val`` column reports) and the teacher its config names, and evaluates both on the config's test set. Only the
test set is built, so nothing is synthesised or trained. Prints one column per row (the teacher first): accuracy per
class, overall (``all``), and ``agreement``: the share of test images on which the model's class is the teacher's.

``--impressions`` adds, for each row trained on Data Impressions, the same agreement on its own training DIs (without
the training augmentation; for a row trained on fixed views, on those views) and on its held-out DIs: a student
that agrees with its teacher on few of the very images it was trained on is under-fitted, one that agrees on its
DIs but not on real images meets a gap between the two.
This builds the rows' DI datasets from their stores (synthesising a store that is not on disk).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from zskd_plugin.app.benchmark.run import read_row
from zskd_plugin.app.runner import load_config, load_model
from zskd_plugin.app.yaml_tree import dump_config, load_config_tree
from zskd_plugin.dataset import DataImpressionDataset
from zskd_plugin.teacher import load_checkpoint_state, state_dict_sha256


def _record(results: Path, row: str) -> dict[str, Any]:
    """The row's recorded figures (``<results>/rows/<row>.json``), empty if it has none."""
    return read_row(results / "rows" / f"{row}.json") or {}


def _missing(what: str, ckpt: str | None, results: Path, row: str) -> SystemExit:
    command = _record(results, row).get("command", f"the command in the header of {results}/configs/{row}.yaml")
    return SystemExit(
        f"{what} checkpoint {ckpt!r} is not on disk (checkpoints are not committed with the results); write it with "
        f"the row's recorded command: {command}"
    )


def _row_parts(results: Path, row: str) -> tuple[dict[str, Any], dict[str, Any] | None, str, Any]:
    """(student model config with its written checkpoint as weights, teacher model config, test id, test node)."""
    tree = load_config_tree(results / "configs" / f"{row}.yaml")
    models = tree["models"]
    student = dict(models.get("student_model") or models["model"])
    if not student.get("dst_ckpt") or not Path(student["dst_ckpt"]).is_file():
        raise _missing(f"{row}: the row's", student.get("dst_ckpt"), results, row)
    student["src_ckpt"] = student["dst_ckpt"]
    test_id = tree["test"]["test_data_loader"]["dataset_id"]
    return student, models.get("teacher_model"), test_id, tree["datasets"][test_id]


def _predict(model: torch.nn.Module, batches: list[tuple[Tensor, Tensor]]) -> Tensor:
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(images).argmax(dim=1) for images, _ in batches])


def _impression_batches(results: Path, row: str) -> dict[str, list[tuple[Tensor, Tensor]]]:
    """The row's training DIs (as stored, with the held-out split's per-image transform, not the training
    augmentation) and its held-out DIs, batched; empty if the row does not train on DIs."""
    datasets = load_config(results / "configs" / f"{row}.yaml")["datasets"]
    found = [d for d in datasets.values() if isinstance(d, DataImpressionDataset)]
    # the shipped configs train on soft labels and hold out with argmax labels (the builder's defaults per split)
    held_out = [d for d in found if d.label_mode == "argmax"]
    train = [d for d in found if d.label_mode == "soft"]
    if not (held_out and train):
        return {}
    if train[0].fixed_views:  # it trained on fixed views, kept transformed: those very inputs
        plain = DataImpressionDataset(train[0].images, train[0].targets, label_mode="argmax")
        splits = {"train views": plain, "held-out DIs": held_out[0]}
    else:
        normalize = held_out[0].transform or (lambda x: x)
        plain = DataImpressionDataset(train[0].images, train[0].targets, normalize, label_mode="argmax")
        splits = {"train DIs": plain, "held-out DIs": held_out[0]}
    return {name: list(DataLoader(d, batch_size=1000)) for name, d in splits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a benchmark's results folder, e.g. results/fashion-mnist-quick")
    parser.add_argument("rows", nargs="+", help="row files under <results>/configs without .yaml, e.g. zskd-ours-seed0")
    parser.add_argument("--impressions", action="store_true", help="also the agreement on each row's own DIs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    parts = []
    for row in args.rows:
        path = args.results / "configs" / f"{row}.yaml"
        if not path.is_file():
            found = sorted(p.stem for p in (args.results / "configs").glob("*.yaml"))
            raise SystemExit(f"no config {path}; rows there: {', '.join(found) or 'none'}")
        parts.append(_row_parts(args.results, row))
    teachers = [p[1] for p in parts if p[1] is not None]
    if not teachers:
        raise SystemExit("none of these rows distils from a teacher; name at least one distillation row")

    def same_model(t: dict[str, Any]) -> tuple[Any, ...]:  # a DI teacher anchor adds input_size, mean, std
        return t.get("key"), t.get("kwargs"), t.get("src_ckpt")

    if any(same_model(t) != same_model(teachers[0]) for t in teachers):
        raise SystemExit("these rows distil from different teachers; compare rows of one benchmark run")
    teacher_ckpt = teachers[0].get("src_ckpt")
    if not teacher_ckpt or not Path(teacher_ckpt).is_file():
        raise _missing("the teacher's", teacher_ckpt, args.results, "teacher-seed0")
    digest = state_dict_sha256(load_checkpoint_state(teacher_ckpt))
    for row in args.rows:  # a student row's figures mean something only beside the teacher it was distilled from
        recorded = _record(args.results, row).get("teacher_sha256")
        if recorded is not None and recorded != digest:
            raise SystemExit(
                f"{row} was distilled from another teacher than the one now at {teacher_ckpt}; run the teacher row's "
                f"recorded command ({_record(args.results, 'teacher-seed0').get('command')}) and then {row}'s"
            )
    test_id, test_node = parts[0][2], parts[0][3]

    with tempfile.TemporaryDirectory() as tmp:  # build the test set alone, through torchdistill's YAML loader
        config = load_config(dump_config({"datasets": {test_id: test_node}}, Path(tmp) / "test.yaml"))
    batches = list(DataLoader(config["datasets"][test_id], batch_size=1000))  # transformed once for every model
    labels = torch.cat([y for _, y in batches])
    teacher = load_model(teachers[0])
    preds = {"teacher": _predict(teacher, batches)}
    students = {row: load_model(student) for row, (student, *_rest) in zip(args.rows, parts)}
    for row, student in students.items():
        preds[row] = _predict(student, batches)

    classes = getattr(config["datasets"][test_id], "classes", None) or [str(c) for c in range(int(labels.max()) + 1)]
    width = max(12, *(len(n) for n in preds)) + 2

    def line(label: str, shares: list[Tensor], digits: int) -> str:
        return label[:17].ljust(18) + "".join(f"{100 * share.float().mean():{width}.{digits}f}" for share in shares)

    print("class".ljust(18) + "".join(name.rjust(width) for name in preds))
    for c, name in enumerate(classes):
        print(line(name, [p[labels == c] == c for p in preds.values()], 1))
    print(line("all", [p == labels for p in preds.values()], 2))
    print(line("agreement", [p == preds["teacher"] for p in preds.values()], 2))
    if args.impressions:
        for row, student in students.items():
            for split, di_batches in _impression_batches(args.results, row).items():
                agree = _predict(student, di_batches) == _predict(teacher, di_batches)
                share = 100 * agree.float().mean()
                print(f"{row}: agreement with the teacher on its {split} ({len(agree)}): {share:.2f}")


if __name__ == "__main__":
    main()
