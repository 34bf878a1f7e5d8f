"""Time to accuracy: synthesis plus distillation of a ZSKD config, from the teacher alone, timed end to end.

    python benchmarks/time_to_accuracy.py                                   # the main job's config
    python benchmarks/time_to_accuracy.py --config yaml_configs/mnist/zskd-lenet5_half_from_lenet5.yaml

The teacher must exist (``zskd train --config yaml_configs/mnist/ce-lenet5.yaml --seed 0``); it is not timed.
Data Impressions go to a fresh store (``--store-root``, emptied first), so their synthesis is always timed.
Prints synthesis seconds, distillation seconds, the total and the student's accuracy on the real test set at the
last epoch and at the epoch chosen on held-out Data Impressions.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from zskd_plugin.app.runner import run_pipeline
from zskd_plugin.app.yaml_tree import dump_config, find_calls, load_config_tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="yaml_configs/mnist/zskd-lenet5_half_from_lenet5-quick.yaml")
    parser.add_argument("--store-root", default=None, help="fresh store folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    store_root = Path(args.store_root or tempfile.mkdtemp(prefix="zskd-tta-"))
    shutil.rmtree(store_root, ignore_errors=True)
    tree = load_config_tree(args.config)
    for call in find_calls(tree, "data_impression_dataset"):
        call["init"]["kwargs"]["store_root"] = str(store_root)
    run_config = dump_config(tree, store_root.parent / f"{store_root.name}.yaml", f"{args.config}, fresh store")

    start = time.time()
    result = run_pipeline(run_config, seed=args.seed, progress=False)
    total = time.time() - start
    figures = {
        "config": args.config,
        "seed": args.seed,
        "synthesis_and_setup_seconds": round(total - result.train_seconds, 1),
        "distillation_seconds": round(result.train_seconds, 1),
        "total_seconds": round(total, 1),
        "student_test_acc_last": result.student_test_acc_last,
        "student_test_acc_best_val": result.student_test_acc,
        "teacher_test_acc": result.teacher_test_acc,
        "epochs": result.num_epochs,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
