"""zskd_plugin: Zero-Shot Knowledge Distillation (Nayak et al., ICML 2019) for torchdistill.

``import zskd_plugin`` registers the Data Impression dataset builder, the ``ZSKDLoss`` loss and the paper's models
(``lenet5``, ``lenet5_half``, ``alexnet_cifar``, ``alexnet_cifar_half``) in torchdistill's registries.
"""

from __future__ import annotations

from . import registry  # noqa: F401  (fills torchdistill's registries)
from .builder import build_impression_dataset, make_impression_store
from .dataset import DataImpressionDataset
from .dirichlet import DirichletConfig, sample_soft_targets
from .impressions import ImpressionConfig, synthesize_impressions
from .losses import ZSKDLoss, zskd_kd_loss
from .models import create_model, list_models
from .similarity import class_similarity, find_classifier
from .store import ImpressionStore, StoreError
from .synthesis import SynthesisConfig, synthesize_batch
from .teacher import TeacherSpec, load_teacher
from .version import __version__

__all__ = [
    "DataImpressionDataset",
    "DirichletConfig",
    "ImpressionConfig",
    "ImpressionStore",
    "StoreError",
    "SynthesisConfig",
    "TeacherSpec",
    "ZSKDLoss",
    "__version__",
    "build_impression_dataset",
    "class_similarity",
    "create_model",
    "find_classifier",
    "list_models",
    "load_teacher",
    "make_impression_store",
    "sample_soft_targets",
    "synthesize_batch",
    "synthesize_impressions",
    "zskd_kd_loss",
]
