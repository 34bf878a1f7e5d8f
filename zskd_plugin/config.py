"""Plain YAML mappings to the frozen dataclasses that configure the method; typos fail here, by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["config_from_mapping"]

T = TypeVar("T")


def config_from_mapping(
    cls: type[T],
    mapping: Mapping[str, Any] | T | None,
    what: str,
    ignored: tuple[str, ...] = (),
    allow_anchors: bool = False,
) -> T:
    """Build the frozen dataclass ``cls`` from a YAML mapping.

    Keys in ``ignored`` (and, with ``allow_anchors``, ``_``-prefixed YAML anchor keys) are dropped; any other key
    that is not a field of ``cls`` raises a ``TypeError`` naming it and listing the valid ones.
    """
    if mapping is None:
        return cls()
    if isinstance(mapping, cls):
        return mapping
    if not isinstance(mapping, Mapping):
        raise TypeError(f"`{what}` must be a mapping of settings, got {type(mapping).__name__}")
    valid = [f.name for f in dataclasses.fields(cls)]
    kept = {k: v for k, v in mapping.items() if k not in ignored and not (allow_anchors and str(k).startswith("_"))}
    unknown = [k for k in kept if k not in valid]
    if unknown:
        raise TypeError(f"unknown `{what}` key(s) {unknown}; valid keys: {valid}")
    return cls(**kept)
