"""Register our objects under distinctive keys without overwriting anyone else's."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any


def register_unique(table: MutableMapping[str, Any], register: Callable[..., Any], key: str, obj: Any) -> None:
    """Register ``obj`` as ``key`` with torchdistill's ``register`` decorator unless that key is taken.

    Importing our module twice (the same object) is a no-op; a key that belongs to another object raises, because
    torchdistill itself would silently overwrite it.
    """
    existing = table.get(key)
    if existing is obj or (
        existing is not None
        and getattr(existing, "__qualname__", None) == obj.__qualname__
        and getattr(existing, "__module__", None) == obj.__module__
    ):
        return
    if existing is not None:
        raise RuntimeError(
            f"torchdistill registry key {key!r} already belongs to {existing!r}; zskd_plugin will not overwrite it. "
            "Rename the other registration"
        )
    register(key=key)(obj)
