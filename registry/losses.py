"""The ZSKD loss in torchdistill's mid-level loss registry under the key ``ZSKDLoss``."""

from __future__ import annotations

import torchvision  # noqa: F401  (torchdistill's registries need torchvision imported first)
from torchdistill.losses.registry import MIDDLE_LEVEL_LOSS_DICT, register_mid_level_loss

from zskd_plugin.losses import ZSKDLoss

from .unique_keys import register_unique

register_unique(MIDDLE_LEVEL_LOSS_DICT, register_mid_level_loss, "ZSKDLoss", ZSKDLoss)
