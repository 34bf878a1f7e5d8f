"""The benchmark's report: rows summarised over seeds, as JSON, a Markdown table and the DI-count plot."""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .suites import Scale, Suite

_logger = logging.getLogger(__name__)

__all__ = ["build_report", "format_accuracy", "markdown", "plot", "summary"]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 2),
        "std": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def build_report(
    suite: Suite,
    scale: Scale,
    results: list[dict[str, Any]],
    images: int,
    stale: Sequence[str] = (),
    not_measured: Sequence[str] = (),
    planned_seeds: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = {}
    for rec in results:
        if rec["row"] == "zskd-sweep":
            continue
        entry = table.setdefault(rec["row"], {"label": rec["label"], "runs": []})
        entry["runs"].append(rec)
    for row, entry in table.items():
        entry["test_acc_last"] = summary([r["test_acc_last"] for r in entry["runs"]])
        entry["test_acc_best_val"] = summary([r["test_acc_best_val"] for r in entry["runs"]])
        entry["wall_seconds"] = round(sum(r["wall_seconds"] for r in entry["runs"]), 1)
        # the epochs with their validation; the rest of the wall time is synthesis, data loading and the test
        entry["train_seconds"] = round(sum(r["train_seconds"] for r in entry["runs"]), 1)
        entry["paper"] = suite.paper.get(row)
        entry["seeds_planned"] = (planned_seeds or {}).get(row, len(entry["runs"]))
        # The teacher's figure is its checkpoint's, the one the students are distilled from (chosen on held-out
        # real images); every student row's is its last epoch's.
        entry["accuracy"] = entry["test_acc_best_val" if row == "teacher" else "test_acc_last"]
    sweep = sorted(  # a suite without the sweep has no curve: its lone zskd-ours point would pose as one
        (r["num_impressions"], r["test_acc_last"], r["epochs"])
        for r in results
        if suite.sweep and (r["row"] == "zskd-sweep" or (r["row"] == "zskd-ours" and r["seed"] == 0))
    )
    return {
        "suite": suite.name,
        "scale": dataclasses.asdict(scale),
        "images_per_student_row": images,
        "metric": "real test-set accuracy (%) at the last epoch (the teacher: of the checkpoint the students use); "
        "mean and sample std over seeds",
        "rows": table,
        "sweep": [
            {"num_impressions": n, "test_acc_last": a, "epochs": e, "fraction": n / suite.real_train_size}
            for n, a, e in sweep
        ],
        "runs": results,
        "stale": list(stale),
        "not_measured": list(not_measured),
    }


def format_accuracy(summary: dict[str, float], planned: int = 1) -> str:
    """``mean ± std (n=k)`` for a row of several seeds, ``(n=k of m)`` while some are not measured yet."""
    n = summary["n"]
    if planned <= 1:
        return f"{summary['mean']:.2f}"
    seeds = f"n={n}" if n >= planned else f"n={n} of {planned}"
    if n == 1:
        return f"{summary['mean']:.2f} ({seeds})"
    return f"{summary['mean']:.2f} ± {summary['std']:.2f} ({seeds})"


def markdown(report: dict[str, Any]) -> str:
    scale = report["scale"]
    lines = [
        f"# ZSKD benchmark: {report['suite']} ({scale['name']} scale)",
        "",
        f"Real test-set accuracy (%) at the last epoch; mean ± sample std over seeds. Every student row sees the same "
        f"number of training images ({report['images_per_student_row']:,}) with the same optimiser, "
        "schedule and batch size. `best-val` is the test accuracy of the epoch chosen on the held-out split (not given "
        "for noise, whose held-out images carry nothing to choose on); the teacher's accuracy is that of its "
        "checkpoint the students are distilled from, chosen so. Paper: Nayak et al. 2019, Table 1 (their figures "
        "select the epoch on the test set). Wall time includes a row's synthesis only where its DIs were not on disk "
        "already (from an earlier row or scale); `training` is the part spent in the epochs (with their validation).",
        "",
        "| row | what | epochs | accuracy | best-val | paper | wall time (s, all seeds) | training (s) | "
        "command (first seed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row, entry in report["rows"].items():
        paper = "" if entry["paper"] is None else f"{entry['paper']:.2f}"
        planned = entry.get("seeds_planned", 1)
        best_val = "—" if row == "noise" else format_accuracy(entry["test_acc_best_val"], planned)
        accuracy = format_accuracy(entry["accuracy"], planned)
        lines.append(
            f"| {row} | {entry['label']} | {entry['runs'][0]['epochs']} | {accuracy} | "
            f"{best_val} | {paper} | {entry['wall_seconds']:.0f} | {entry['train_seconds']:.0f} | "
            f"`{entry['runs'][0]['command']}` |"
        )
    if report["stale"]:
        lines += ["", "Not in the table (measured with another config or teacher; rerun them with `--only`): "
                  + ", ".join(report["stale"]) + "."]  # fmt: skip
    if report.get("not_measured"):
        lines += ["", "Not measured yet (the suite's command without `--only` resumes): "
                  + ", ".join(report["not_measured"]) + "."]  # fmt: skip
    if report["sweep"]:
        lines += ["", "## Accuracy against Data Impression count (seed 0)", ""]
        lines += ["| DIs | share of the real training set | epochs | accuracy |", "|---|---|---|---|"]
        lines += [
            f"| {p['num_impressions']} | {p['fraction']:.1%} | {p['epochs']} | {p['test_acc_last']:.2f} |"
            for p in report["sweep"]
        ]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Accuracy against DI count, with the real-data rows as reference lines."""
    if not report["sweep"]:  # e.g. a suite run with --only teacher zskd-release: nothing to plot
        _logger.info("no DI-count sweep measured yet; %s not written", path)
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot is an extra: pip install 'zskd-torchdistill[bench]'
        _logger.warning("matplotlib is not installed; %s not written (pip install 'zskd-torchdistill[bench]')", path)
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p["num_impressions"] for p in report["sweep"]]
    ax.plot(xs, [p["test_acc_last"] for p in report["sweep"]], "o-", label="ZSKD (ours), seed 0")
    ax.set_xscale("log")
    for row, style in (("kd", "--"), ("student-ce", ":"), ("noise", "-.")):
        entry = report["rows"].get(row)
        if entry:
            ax.axhline(entry["accuracy"]["mean"], linestyle=style, color="gray", label=f"{row}")
    ax.set_xlabel("Data Impressions")
    ax.set_ylabel("real test accuracy (%)")
    ax.set_title(f"{report['suite']} ({report['scale']['name']} scale)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
