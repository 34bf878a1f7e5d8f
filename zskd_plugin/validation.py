"""Plain YAML mappings to the frozen dataclasses that configure the method; typos and bad values fail here, by name.

YAML hands over whatever the user wrote: ``'false'`` (a string, and truthy), ``1e-3`` (PyYAML reads it as the
string ``'1e-3'``), ``.nan``, a scalar where a list belongs. Every setting the plugin reads goes through one of the
checks below, which accept exactly the documented type and name the setting in their message.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "check_bool",
    "check_choice",
    "check_image_size",
    "check_int",
    "check_number",
    "check_numbers",
    "check_optional_str",
    "config_from_mapping",
    "number_text_hint",
]

T = TypeVar("T")

# Numbers with an exponent that YAML 1.1 (PyYAML) does not read as floats: no dot in the mantissa or no sign in
# the exponent, e.g. 1e-3 or 1.0e3. PyYAML returns them as strings.
_NUMBER_TEXT = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+))[eE]([-+]?)(\d+)$")


def number_text_hint(text: str) -> str | None:
    """For a string such as ``'1e-3'`` that YAML 1.1 leaves as text, the spelling it reads as a float (``1.0e-3``)."""
    match = _NUMBER_TEXT.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    mantissa, sign, exponent = match.groups()
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{sign or '+'}{exponent}"


def _got(value: Any) -> str:
    """``got <value>``, explaining strings that look like numbers or booleans."""
    text = f"got {value!r}"
    if isinstance(value, str):
        hint = number_text_hint(value)
        if hint is not None:
            return f"{text}, a string (YAML 1.1 reads {value} as text: write {hint})"
        try:
            float(value)
        except ValueError:
            pass
        else:
            return f"{text}, a string (write the number without quotes)"
        if value.strip().lower() in ("true", "false", "yes", "no", "on", "off", "0", "1"):
            return f"{text}, a string (write true or false without quotes)"
    return text


def check_bool(value: Any, name: str) -> bool:
    """``value`` when it is a YAML boolean (``true``/``false``); anything else, ``'false'`` included, is refused."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, {_got(value)}")
    return value


def check_int(value: Any, name: str, least: int | None = None) -> int:
    """An integer (not a bool, not a float, not a string) of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or (least is not None and value < least):
        bound = "" if least is None else f" >= {least}"
        raise ValueError(f"{name} must be an integer{bound}, {_got(value)}")
    return value


def check_number(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number (int or float, not a bool or string) within the given bounds; returned as float."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be a finite number{' ' if bounds else ''}{' and '.join(bounds)}, {_got(value)}")
    return float(value)


def check_numbers(value: Any, name: str, length: int | None = None, **bounds: Any) -> tuple[float, ...]:
    """A non-empty list of numbers, each passing :func:`check_number` with ``bounds``; ``length`` when given."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list of numbers, {_got(value)}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(value)}: {list(value)}")
    return tuple(check_number(v, f"{name}[{i}]", **bounds) for i, v in enumerate(value))


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """One of ``choices`` (compared by type too, so ``1`` is not ``True``)."""
    if not any(type(value) is type(c) and value == c for c in choices):
        raise ValueError(f"{name} must be one of {list(choices)}, {_got(value)}")
    return value


def check_optional_str(value: Any, name: str) -> str | None:
    """None or a non-empty string (a path, a module path, a model name)."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string, {_got(value)}")
    return value


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
        raise TypeError(f"`{what}` must be a mapping of settings, got {type(mapping).__name__} {mapping!r}")
    valid = [f.name for f in dataclasses.fields(cls)]
    kept = {k: v for k, v in mapping.items() if k not in ignored and not (allow_anchors and str(k).startswith("_"))}
    unknown = [k for k in kept if k not in valid]
    if unknown:
        raise TypeError(f"unknown `{what}` key(s) {unknown}; valid keys: {valid}")
    return cls(**kept)


def check_image_size(size: Any, name: str = "image_size") -> tuple[int, int] | None:
    """None, or ``[height, width]`` as two positive integers."""
    if size is None:
        return None
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"{name} must be [height, width] (e.g. [32, 32]), got {size!r}")
    return check_int(size[0], name, least=1), check_int(size[1], name, least=1)
