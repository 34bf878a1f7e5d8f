"""torchdistill glue: registers the ZSKD dataset builder, loss and models in torchdistill's registries.

Shipped as ``zskd_plugin.registry`` (the source folder ``registry/`` is mapped there by ``pyproject.toml``); it is
imported by ``import zskd_plugin``, which is what a YAML's ``dependencies: [{name: zskd_plugin}]`` does.
"""

from __future__ import annotations

from . import datasets, epoch_hooks, losses, models, teacher_outputs

__all__ = ["datasets", "epoch_hooks", "losses", "models", "teacher_outputs"]
