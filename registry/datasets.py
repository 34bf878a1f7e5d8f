"""The Data Impression dataset builder for torchdistill YAML pipelines.

In torchdistill 1.x the ``datasets:`` block is built while the YAML loads, so a config reaches the builder by its
dotted path (it is also registered with ``register_dataset`` under its own name, to be discoverable)::

    datasets:
      &zskd_train zskd/train: !import_call
        key: 'zskd_plugin.registry.datasets.data_impression_dataset'
        init:
          kwargs:
            teacher: {key: 'lenet5', kwargs: {num_classes: 10}, src_ckpt: './resource/ckpt/mnist/lenet5.pt'}
            num_impressions: 24000
            synthesis: {num_iters: 200, lr: 0.05, batch_size: 200, temperature: 20.0}
            dirichlet: {betas: [1.0, 0.1], beta_shares: [0.5, 0.5]}
            split: 'train'
            val_fraction: 0.1
            transform: !import_call
              key: 'torchvision.transforms.Normalize'
              init: {kwargs: {mean: [0.1307], std: [0.3081]}}
"""

from __future__ import annotations

from typing import Any

import torchvision  # noqa: F401  (torchdistill's registries need torchvision imported first)
from torchdistill.datasets.registry import DATASET_DICT, register_dataset

from zskd_plugin.builder import build_impression_dataset
from zskd_plugin.dataset import DataImpressionDataset

from .models import resolve_registry_model
from .unique_keys import register_unique


def data_impression_dataset(**kwargs: Any) -> DataImpressionDataset:
    """:func:`zskd_plugin.builder.build_impression_dataset` with torchdistill's model registry for the teacher."""
    kwargs.setdefault("resolver", resolve_registry_model)
    return build_impression_dataset(**kwargs)


register_unique(DATASET_DICT, register_dataset, "data_impression_dataset", data_impression_dataset)
