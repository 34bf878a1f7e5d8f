"""``zskd`` command line: a thin shell over the library.

zskd prepare-data mnist --root ./data
zskd synthesize --config yaml_configs/mnist/zskd-lenet5_half_from_lenet5.yaml
zskd train --config yaml_configs/mnist/ce-lenet5.yaml
zskd benchmark --suite mnist
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..progress import PROGRESS_LOGGER
from ..store import StoreError
from .real_data import DATASETS, prepare_dataset

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, StoreError)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser = argparse.ArgumentParser(prog="zskd", description="Zero-Shot Knowledge Distillation for torchdistill")
    sub = parser.add_subparsers(dest="command", required=True)

    prep = sub.add_parser(
        "prepare-data", parents=[common], help="put real MNIST / Fashion-MNIST in torchvision's raw layout"
    )
    prep.add_argument("dataset", choices=sorted(DATASETS))
    prep.add_argument("--root", default="./data", help="data root (torchvision's root; default ./data)")
    prep.add_argument("--offline", action="store_true", help="skip torchvision's download, use local packages only")

    syn = sub.add_parser(
        "synthesize",
        parents=[common],
        help="make the Data Impression stores of a config ahead of training (under torchrun: split across processes)",
    )
    syn.add_argument("--config", required=True, help="torchdistill YAML config")

    train = sub.add_parser(
        "train", parents=[common], help="run the torchdistill pipeline of a config and test the result"
    )
    train.add_argument("--config", required=True, help="torchdistill YAML config")
    train.add_argument("--device", default="cpu", help="torch device (default cpu)")
    train.add_argument("--seed", type=int, default=None, help="torch seed for model init and data order")
    train.add_argument("--result-json", default=None, help="also write the figures to this JSON file")
    bench = sub.add_parser(
        "benchmark",
        parents=[common],
        help="run the paper's table (teacher, real-data KD methods, ZSKD, noise, DI sweep), or a timm BatchNorm "
        "teacher's (teacher, KD, ZSKD without and with the BN prior, DeepInversion, noise)",
    )
    bench.add_argument(
        "--suite",
        required=True,
        choices=["mnist", "fashion-mnist", "mnist-timm", "fashion-mnist-timm", "mnist-timm-student",
                 "fashion-mnist-timm-student", "cifar10"],
        help="the -timm-student suites train a timm student (lcnet_035) from the -timm suite's teacher",
    )  # fmt: skip
    bench.add_argument(
        "--scale",
        default="quick",
        choices=["quick", "paper", "tiny"],
        help="quick: CPU-sized (default); paper: the paper's DI counts; tiny: the test's",
    )
    bench.add_argument("--out", default="results", help="results folder (default results/)")
    bench.add_argument("--device", default="cpu", help="torch device (default cpu)")
    bench.add_argument("--only", nargs="+", default=None, help="run only these rows (e.g. teacher zskd-ours)")
    bench.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write the table from the rows recorded under --out (no checkpoint needed)",
    )
    bench.add_argument(
        "--configs-root", default=".", help="the folder holding yaml_configs/ (default: the current one)"
    )
    return parser


def _benchmark(args: argparse.Namespace) -> int:
    from .benchmark import run_suite
    from .outputs import check_output_folder

    check_output_folder(args.out, "--out")  # before any row runs
    report = run_suite(
        args.suite,
        args.scale,
        args.out,
        device=args.device,
        only=args.only,
        configs_root=args.configs_root,
        report_only=args.report_only,
    )
    for row, entry in report["rows"].items():
        acc = entry["accuracy"]
        paper = "" if entry["paper"] is None else f"  (paper {entry['paper']:.2f})"
        planned = entry["seeds_planned"]
        seeds = f"n={acc['n']}" if acc["n"] >= planned else f"n={acc['n']} of {planned}"
        print(f"{row:12s} {acc['mean']:6.2f} ± {acc['std']:.2f} ({seeds}){paper}")
    for point in report["sweep"]:
        print(f"sweep {point['num_impressions']:>6d} DIs: {point['test_acc_last']:.2f}")
    if report["stale"]:
        print(f"left out (config or teacher changed; rerun with --only): {', '.join(report['stale'])}")
    if report["not_measured"]:
        print(f"not measured yet (rerun without --only to resume): {', '.join(report['not_measured'])}")
    return 0


def _init_distributed() -> bool:
    """Join the process group torchrun describes (gloo on CPU, NCCL on GPU); False when not under torchrun."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


def _synthesize(config_path: str) -> int:
    from ..dataset import DataImpressionDataset
    from .runner import load_config  # loading the YAML builds its datasets, synthesising stores

    joined = _init_distributed()  # under torchrun every rank makes its share of each store
    try:
        config = load_config(config_path)
    finally:
        if joined:
            import torch

            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    stores = {
        name: ds.store_path
        for name, ds in config["datasets"].items()
        if isinstance(ds, DataImpressionDataset) and ds.store_path is not None
    }
    if not stores:
        print(f"{config_path} has no Data Impression dataset", file=sys.stderr)
        return 2
    for name, path in stores.items():
        print(f"{name}: {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .outputs import check_output_file
    from .runner import run_pipeline

    if args.result_json:
        check_output_file(args.result_json, "--result-json")  # before the training, not after it
    result = run_pipeline(args.config, device=args.device, seed=args.seed)
    if result.teacher_test_acc is not None:
        print(f"teacher test accuracy: {result.teacher_test_acc:.2f}%")
    role = "student" if result.teacher_test_acc is not None else "model"  # distilled, or trained on its own
    print(
        f"{role} ({result.student_key}) test accuracy: {result.student_test_acc_last:.2f}% at the last epoch, "
        f"{result.student_test_acc:.2f}% for the epoch chosen on validation (val {result.best_val_acc:.2f}%) "
        f"[{result.num_epochs} epochs, {result.train_seconds:.0f} s]"
    )
    if args.result_json:
        Path(args.result_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.result_json).write_text(json.dumps(dataclasses.asdict(result), indent=2))
    return 0


def _show_progress(enabled: bool) -> None:
    """Progress lines (synthesis, epochs) as plain lines on stderr, whatever the log level of the rest (WARNING
    keeps the library's INFO chatter out, not the progress); ERROR silences them too."""
    progress = logging.getLogger(PROGRESS_LOGGER)
    progress.handlers.clear()  # the command line owns this logger: one handler, on the current stderr
    if enabled:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        progress.addHandler(handler)
    progress.setLevel(logging.INFO if enabled else logging.ERROR)
    progress.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "" not in sys.path and os.getcwd() not in sys.path:
        # dotted paths in a config (a custom teacher, a dependency) resolve from where `zskd` runs, as they do under
        # `python -m zskd_plugin.app.cli`
        sys.path.append(os.getcwd())  # after the installed packages: a local folder never shadows them
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _show_progress(args.log_level != "ERROR")
    try:
        if args.command == "prepare-data":
            print(prepare_dataset(args.dataset, args.root, allow_download=not args.offline))
            return 0
        if args.command == "synthesize":
            return _synthesize(args.config)
        if args.command == "benchmark":
            return _benchmark(args)
        return _train(args)
    except KeyError as exc:  # torchdistill reads config sections with plain indexing
        print(
            f"zskd {args.command}: error: config key {exc} is missing or misspelled; compare with the configs in "
            "yaml_configs/",
            file=sys.stderr,
        )
        return 2
    except USER_ERRORS as exc:
        print(f"zskd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if "Dataset not found" not in str(exc):  # torchvision's message for a data set missing from its root
            raise
        print(
            f"zskd {args.command}: error: a data set of the config is not under its root ({exc}); put it there "
            f"with `zskd prepare-data <{'|'.join(sorted(DATASETS))}> --root <the config's root>` (it works offline)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
