#!/usr/bin/env bash
# README command 1: on a fresh machine, install, prepare real MNIST, train the LeNet-5 teacher, synthesise Data
# Impressions, distil LeNet-5-half on them alone, and print teacher and student accuracy on the real MNIST test set.
#   bash scripts/main_job.sh                 quick default: 24,000 Data Impressions, 200 epochs (timings: results/README.md)
#   bash scripts/main_job.sh --full          the full config: the same DIs, 320 epochs
set -euo pipefail
cd "$(dirname "$0")/.."
ZSKD_CONFIG=yaml_configs/mnist/zskd-lenet5_half_from_lenet5-quick.yaml
case "${1:-}" in
    "") ;;
    --full) ZSKD_CONFIG=yaml_configs/mnist/zskd-lenet5_half_from_lenet5.yaml ;;
    *) echo "usage: bash scripts/main_job.sh [--full]" >&2; exit 2 ;;
esac
OUT=results/main_job
mkdir -p "$OUT"
start=$(date +%s)
bash scripts/setup.sh
.venv/bin/zskd prepare-data mnist --root ./data --log-level WARNING
# Seeded, so a second run gets the same teacher weights and reuses the Data Impression store. --log-level WARNING
# keeps the library's INFO records out; the progress lines (synthesis, one per epoch) show all the same.
echo "== 1/3 the teacher: LeNet-5, cross-entropy on real MNIST =="
.venv/bin/zskd train --config yaml_configs/mnist/ce-lenet5.yaml --seed 0 --log-level WARNING --result-json "$OUT/teacher.json"
echo "== 2/3 Data Impressions from the teacher alone =="
.venv/bin/zskd synthesize --config "$ZSKD_CONFIG" --log-level WARNING
echo "== 3/3 the student: LeNet-5-half, distilled on the Data Impressions only =="
.venv/bin/zskd train --config "$ZSKD_CONFIG" --seed 0 --log-level WARNING --result-json "$OUT/student.json"
.venv/bin/python - "$OUT" "$start" "$ZSKD_CONFIG" <<'PY'
import json, sys, time
out, start, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]
teacher, student = (json.load(open(f"{out}/{n}.json")) for n in ("teacher", "student"))
print(f"\n== ZSKD on real MNIST ({config}) ==")
print(f"teacher LeNet-5 test accuracy:                 {teacher['student_test_acc']:.2f}%")
print(f"student LeNet-5-half (Data Impressions only):  {student['student_test_acc']:.2f}%")
print(f"total wall time (setup included):              {time.time() - start:.0f} s")
PY
