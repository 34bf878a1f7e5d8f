"""Run one Data Impression synthesis in its own process (for kill / concurrency tests).

python fault_worker.py TEACHER_CKPT STORE_ROOT NUM_ITERS
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zskd_plugin.builder import make_impression_store  # noqa: E402

WORKER_KWARGS = {"num_impressions": 160, "synthesis": {"lr": 0.05, "batch_size": 8}, "progress": False}


def main() -> None:
    ckpt, root, num_iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    teacher = {"key": "conftest.TinyTeacher", "source": "import", "src_ckpt": ckpt}
    kwargs = dict(WORKER_KWARGS, synthesis=dict(WORKER_KWARGS["synthesis"], num_iters=num_iters))
    store = make_impression_store(teacher=teacher, store_root=root, device="cpu", **kwargs)
    print(f"STORE {store.path}", flush=True)


if __name__ == "__main__":
    main()
