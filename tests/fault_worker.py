"""Run one Data Impression synthesis in its own process (for kill / concurrency / torchrun tests).

python fault_worker.py TEACHER_CKPT STORE_ROOT NUM_ITERS [warm]
torchrun --standalone --nproc_per_node 2 fault_worker.py TEACHER_CKPT STORE_ROOT NUM_ITERS [warm]
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from zskd_plugin.builder import make_impression_store  # noqa: E402

WORKER_KWARGS = {"num_impressions": 160, "synthesis": {"lr": 0.05, "batch_size": 8}, "progress": False}


def main() -> None:
    ckpt, root, num_iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
    warm = sys.argv[4:] == ["warm"]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.init_process_group("gloo")
    teacher = {"key": "conftest.TinyTeacher", "source": "import", "src_ckpt": ckpt}
    synthesis = dict(WORKER_KWARGS["synthesis"], num_iters=num_iters, warm_start=warm)
    kwargs = dict(WORKER_KWARGS, synthesis=synthesis)
    store = make_impression_store(dict(teacher=teacher, store_root=root, device="cpu", **kwargs))
    print(f"STORE {store.path}", flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
