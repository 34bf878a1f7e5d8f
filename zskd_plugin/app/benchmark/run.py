"""``zskd benchmark``: run (or resume) a suite's rows, each as its own derived config, and write the report.

A rerun reuses a row when its config is unchanged and, for a student row, when it was distilled from the teacher
checkpoint now on disk; ``report_only`` runs nothing and writes the table from the recorded rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...teacher import load_checkpoint_state, state_dict_sha256
from ..runner import run_pipeline
from ..yaml_tree import find_calls, load_config_tree, render_config
from .derive import IMPRESSION_BUILDER, redirect_teacher, set_dst, set_epochs, set_shared_training, train_size
from .plan import Budget, RowPlan, plan_rows, shared_budget
from .report import build_report, markdown, plot
from .suites import SCALES, SUITES, Scale, Suite, suite_scale

_logger = logging.getLogger(__name__)

__all__ = ["RowConfig", "read_row", "row_config", "run_suite", "why_stale"]


@dataclass(frozen=True)
class RowConfig:
    """A row's derived config, held in memory: it is written only when the row runs (or its file is missing)."""

    path: Path
    text: str
    command: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def write(self) -> None:
        if not self.path.is_file() or self.path.read_text() != self.text:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(self.text)


def row_config(
    plan: RowPlan,
    scale: Scale,
    out_dir: Path,
    command_prefix: str,
    teacher_ckpt: tuple[str, str],
    budget: Budget,
    device: str = "cpu",
) -> RowConfig:
    tree = load_config_tree(plan.template)
    redirect_teacher(tree, *teacher_ckpt)
    plan.edit(tree)
    if plan.row != "teacher":
        set_shared_training(tree, budget.training)
        set_epochs(tree, max(1, round(budget.images / train_size(tree))))
        set_dst(tree, f"./resource/ckpt/benchmark/{out_dir.name}/{plan.name}.pt")
    path = out_dir / "configs" / f"{plan.name}.yaml"
    command = f"{command_prefix} --config {path} --seed {plan.seed}"
    if device != "cpu":  # the config then synthesises on that device too (cpu rows keep the configs' own 'auto')
        command += f" --device {device}"
        for call in find_calls(tree, IMPRESSION_BUILDER):
            call["init"]["kwargs"]["device"] = device
    header = f"{plan.label} ({scale.name} scale). Derived from {plan.template} by `zskd benchmark`.\nRun: {command}"
    return RowConfig(path, render_config(tree, header), command)


def weights_sha256(path: Path) -> str:
    """Digest of a checkpoint's weights (not of the file, which also holds the optimiser state and paths)."""
    return state_dict_sha256(load_checkpoint_state(path))


def run_suite(
    suite_name: str,
    scale_name: str = "quick",
    out_root: str | Path = "results",
    device: str = "cpu",
    only: Sequence[str] | None = None,
    progress: bool = True,
    configs_root: str | Path = ".",
    report_only: bool = False,
) -> dict[str, Any]:
    """Run (or resume) every row of a suite and write ``<out_root>/<suite>[-<scale>].json``, ``.md`` and ``.png``.

    Args:
        suite_name: ``mnist``, ``fashion-mnist``, ``mnist-timm``, ``fashion-mnist-timm``, their ``-student``
            suites (a timm student from the same teacher, which must be measured in its own suite first) or
            ``cifar10``.
        scale_name: ``paper``, ``quick`` (CPU-sized, the default) or ``tiny`` (the test's).
        out_root: results folder; row configs and per-row results go to ``<out_root>/<suite>[-<scale>]/``.
        device: torch device of training; other than ``cpu``, also of synthesis (written into each row's config and
            command). On ``cpu`` the synthesis uses the configs' own ``device`` (``auto``).
        only: run only these rows (e.g. ``["teacher", "zskd-ours"]``); the report covers every row measured so far.
        progress: progress bars.
        configs_root: the folder holding ``yaml_configs/`` (the repository root).
        report_only: run nothing; write the table from the recorded rows whose config is current, the teacher's as
            recorded (its checkpoint need not be on disk, e.g. in a fresh clone) and the student rows distilled from
            it. Training is not bitwise reproducible across CPU kinds, so a teacher trained again elsewhere can get
            other weights, and then no recorded student row is its.

    Returns:
        The report that was written as JSON.
    """
    if suite_name not in SUITES:
        raise ValueError(f"unknown suite {suite_name!r}; choose one of {sorted(SUITES)}")
    if scale_name not in SCALES:
        raise ValueError(f"unknown scale {scale_name!r}; choose one of {sorted(SCALES)}")
    suite = SUITES[suite_name]
    scale = suite_scale(suite, SCALES[scale_name])
    if not (Path(configs_root) / suite.config_dir).is_dir():
        raise FileNotFoundError(
            f"no {suite.config_dir}/ under {str(configs_root)!r}: the benchmark derives its rows from the repository's "
            "shipped configs; run it from the repository root or pass --configs-root <repository root>"
        )
    stem = _stem(suite, scale)
    out_dir = Path(out_root) / stem
    teacher_dir = out_dir  # where the teacher row's config and record live: a teacher suite's own
    if suite.teacher_suite:
        teacher_suite = SUITES[suite.teacher_suite]
        teacher_dir = Path(out_root) / _stem(teacher_suite, suite_scale(teacher_suite, SCALES[scale_name]))
    plans = plan_rows(suite, scale, configs_root)
    known = {p.row for p in plans}
    if report_only and only:
        raise ValueError("report_only runs no row, so it takes no `only` rows; drop one of the two")
    if only and not set(only) <= known:
        raise ValueError(f"unknown row(s) {sorted(set(only) - known)}; rows are {sorted(known)}")
    shipped_teacher = load_config_tree(plans[0].template)["models"]["model"]["dst_ckpt"]
    # each suite and scale trains its own teacher, unless it distils from another suite's
    teacher_ckpt = Path(f"./resource/ckpt/benchmark/{teacher_dir.name}/teacher.pt")
    budget = shared_budget(plans, scale)
    results: list[dict[str, Any]] = []
    stale: list[str] = []
    teacher_sha: str | None = None  # weights of the teacher every student row is distilled from
    for plan in plans:
        row_dir = teacher_dir if plan.row == "teacher" else out_dir
        config = row_config(
            plan, scale, row_dir, "zskd train", (shipped_teacher, f"./{teacher_ckpt.as_posix()}"), budget, device
        )
        row_file = row_dir / "rows" / f"{plan.name}.json"
        previous = read_row(row_file)
        why = why_stale(plan, previous, config, None if report_only else teacher_ckpt, teacher_sha)
        if why is not None and row_dir != out_dir and not report_only:  # another suite's teacher, not ours to train
            raise FileNotFoundError(
                f"{suite.name} distils from the {suite.teacher_suite} suite's teacher, whose row cannot be used "
                f"({why}); measure it first: zskd benchmark --suite {suite.teacher_suite} --scale {scale.name}"
                f"{_options(out_root, device, configs_root)} --only teacher"
            )
        if why is None:
            assert previous is not None
            config.write()
            results.append(previous)
            if plan.row == "teacher":
                teacher_sha = previous["checkpoint_sha256"]
            continue
        if report_only or (only and plan.row not in only):
            if previous is not None:  # measured once, but no longer with this config or teacher
                _logger.warning("benchmark %s: %s left out of the table: %s; rerun it with --only %s",
                                stem, plan.name, why, plan.row)  # fmt: skip
                stale.append(plan.name)
            continue
        if plan.row != "teacher" and teacher_sha is None:
            raise FileNotFoundError(
                f"the teacher row is not measured with its current config and checkpoint ({teacher_ckpt}); run it "
                f"first: zskd benchmark --suite {suite.name} --scale {scale.name}"
                f"{_options(out_root, device, configs_root)} --only teacher"
            )
        if previous is not None:
            _logger.info("benchmark %s: %s runs again: %s", stem, plan.name, why)
        _logger.info("benchmark %s: %s (%s)", stem, plan.name, config.command)
        config.write()
        start = time.time()
        result = run_pipeline(config.path, device=device, seed=plan.seed, progress=progress)
        record = {
            "row": plan.row,
            "name": plan.name,
            "label": plan.label,
            "seed": plan.seed,
            "num_impressions": plan.num_impressions,
            "test_acc_last": result.student_test_acc_last,
            "test_acc_best_val": result.student_test_acc,
            "best_val_acc": result.best_val_acc,
            "epochs": result.num_epochs,
            "train_seconds": round(result.train_seconds, 1),
            "wall_seconds": round(time.time() - start, 1),
            "command": config.command,
            "config": str(config.path),
            "config_sha256": config.sha256,
        }
        if plan.row == "teacher":
            teacher_sha = record["checkpoint_sha256"] = weights_sha256(teacher_ckpt)
        else:
            record["teacher_sha256"] = teacher_sha
        row_file.parent.mkdir(parents=True, exist_ok=True)
        partial = row_file.with_suffix(".json.partial")  # an interrupted write leaves the previous record whole
        partial.write_text(json.dumps(record, indent=2))
        partial.replace(row_file)
        results.append(record)
    measured = {r["name"] for r in results}
    not_measured = [p.name for p in plans if p.name not in measured and p.name not in stale]
    report = build_report(suite, scale, results, budget.images, stale, not_measured, Counter(p.row for p in plans))
    json_path = Path(out_root) / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2))
    (Path(out_root) / f"{stem}.md").write_text(markdown(report))
    plot(report, Path(out_root) / f"{stem}.png")
    return report


def _stem(suite: Suite, scale: Scale) -> str:
    """The name of a suite's results at a scale: ``<suite>-<scale>``, or ``<suite>`` at paper scale."""
    return suite.name if scale.name == "paper" else f"{suite.name}-{scale.name}"


def _options(out_root: str | Path, device: str, configs_root: str | Path) -> str:
    """The command-line options that differ from their defaults, for a command the user is told to run."""
    return "".join(
        f" {flag} {value}"
        for flag, value, default in (("--out", out_root, "results"), ("--device", device, "cpu"),
                                     ("--configs-root", configs_root, "."))
        if str(value) != default
    )  # fmt: skip


def read_row(row_file: Path) -> dict[str, Any] | None:
    """A row's recorded result, or None if it has none."""
    if not row_file.is_file():
        return None
    try:
        record = json.loads(row_file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{row_file} is not valid JSON ({exc}); delete it and the benchmark measures that row again"
        ) from None
    if not isinstance(record, dict):
        raise ValueError(
            f"{row_file} holds a JSON {type(record).__name__}, not a row record (an object); delete it and the "
            "benchmark measures that row again"
        )
    return record


def why_stale(
    plan: RowPlan,
    previous: dict[str, Any] | None,
    config: RowConfig,
    teacher_ckpt: Path | None,
    teacher_sha: str | None,
) -> str | None:
    """Why a row's recorded result cannot be reused (None: it can). A student row is reused only if it was
    distilled from the teacher checkpoint the table now reports; the teacher row only if that checkpoint is on disk
    with the weights it recorded (not checked when ``teacher_ckpt`` is None: the table as recorded)."""
    if previous is None:
        return "not measured yet"
    if previous.get("config_sha256") != config.sha256:
        return f"its config changed since it was measured ({config.path})"
    if plan.row == "teacher":
        if teacher_ckpt is None:
            return None
        if not teacher_ckpt.is_file():
            return f"its checkpoint {teacher_ckpt} is missing"
        if previous.get("checkpoint_sha256") != weights_sha256(teacher_ckpt):
            return f"its checkpoint {teacher_ckpt} holds other weights than the ones it recorded"
        return None
    if teacher_sha is None or previous.get("teacher_sha256") != teacher_sha:
        return "it was distilled from another teacher checkpoint than the table's"
    return None
