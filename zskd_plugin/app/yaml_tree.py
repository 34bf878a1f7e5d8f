"""Read and write torchdistill YAML without running it, so a pipeline can be derived from a shipped config.

torchdistill's tags (``!import_call``, ``!import_get``, ...) are kept as :class:`Tagged` nodes on load and written
back unchanged; nothing is imported or called. Anchors become plain copies or fresh anchors on output, which means
the same to torchdistill's loader.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zskd_plugin.validation import number_text_hint

__all__ = [
    "Tagged",
    "dump_config",
    "find_calls",
    "load_config_tree",
    "mappings",
    "render_config",
    "yaml_error_message",
]


@dataclass(eq=False)
class Tagged:
    """A tagged YAML node: ``tag`` (e.g. ``!import_call``) and its mapping, sequence or scalar ``value``."""

    tag: str
    value: Any


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps tags as :class:`Tagged` and notes plain scalars YAML 1.1 leaves as text although they
    read as numbers (``1e-3``)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.number_texts: list[tuple[str, yaml.Mark]] = []


class _Dumper(yaml.SafeDumper):
    pass


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return Tagged("!" + suffix, value)


def _represent(dumper: yaml.SafeDumper, node: Tagged) -> yaml.Node:
    if isinstance(node.value, dict):
        return dumper.represent_mapping(node.tag, node.value)
    if isinstance(node.value, list):
        return dumper.represent_sequence(node.tag, node.value)
    return dumper.represent_scalar(node.tag, "" if node.value is None else str(node.value))


def _construct_number_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    text = loader.construct_scalar(node)
    loader.number_texts.append((text, node.start_mark))
    return text


_NUMBER_TEXT_TAG = "tag:zskd-torchdistill,2026:number-text"
_NUMBER_TEXT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")
_Loader.add_multi_constructor("!", _construct)
_Loader.add_constructor(_NUMBER_TEXT_TAG, _construct_number_text)
# Added after PyYAML's own float resolver, so only what it leaves as text lands here. The dumper knows it too, so
# a string such as '1e-3' is written quoted and reads back as the string it is.
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(_NUMBER_TEXT_TAG, _NUMBER_TEXT, list("-+.0123456789"))
_Dumper.add_representer(Tagged, _represent)


def _where(path: str | Path, mark: yaml.Mark | None) -> str:
    return f"{path}" if mark is None else f"{path}, line {mark.line + 1}, column {mark.column + 1}"


def yaml_error_message(path: str | Path, exc: yaml.YAMLError) -> str:
    """A YAML error as one line: file, line, column and the problem, without PyYAML's traceback or snippet."""
    if isinstance(exc, yaml.MarkedYAMLError):
        context = ""
        if exc.context:
            at = exc.context_mark
            context = exc.context + ("" if at is None else f" (from line {at.line + 1}, column {at.column + 1})")
            context += ": "
        return f"{_where(path, exc.problem_mark or exc.context_mark)}: YAML error: {context}{exc.problem}"
    return f"{path}: YAML error: {exc}"


def load_config_tree(path: str | Path) -> dict[str, Any]:
    """The YAML file as plain dicts and lists, tags kept as :class:`Tagged`.

    Raises:
        ValueError: the file is not valid YAML (file, line, column and the problem), holds a number that YAML 1.1
            reads as text (``1e-3``: write ``1.0e-3``), or is not a mapping.
    """
    text = Path(path).read_text()
    loader = _Loader(text)
    try:
        tree = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ValueError(yaml_error_message(path, exc)) from None
    finally:
        loader.dispose()
    if loader.number_texts:
        number, mark = loader.number_texts[0]
        line = text.splitlines()[mark.line].strip()
        raise ValueError(
            f"{_where(path, mark)} (`{line}`): {number} is read as the string {number!r} by PyYAML (YAML 1.1, which "
            f"torchdistill uses); write it as {number_text_hint(number)}"
        )
    if not isinstance(tree, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return tree


def render_config(tree: dict[str, Any], header: str = "") -> str:
    """``tree`` as YAML text torchdistill can load, with ``header`` as leading comment lines."""
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + yaml.dump(tree, Dumper=_Dumper, sort_keys=False, width=120)


def dump_config(tree: dict[str, Any], path: str | Path, header: str = "") -> Path:
    """Write ``tree`` as YAML torchdistill can load, with ``header`` as leading comment lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_config(tree, header))
    return path


def mappings(tree: Any) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every mapping in ``tree`` with its tag (None when untagged), each object once (an alias is one object)."""
    seen: set[int] = set()
    stack: list[tuple[Any, str | None]] = [(tree, None)]
    while stack:
        node, tag = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Tagged):
            stack.append((node.value, node.tag))
        elif isinstance(node, dict):
            yield node, tag
            stack.extend((value, None) for value in node.values())
        elif isinstance(node, list):
            stack.extend((item, None) for item in node)


def find_calls(tree: Any, key_suffix: str) -> Iterator[dict[str, Any]]:
    """Every ``!import_call`` mapping whose ``key`` ends with ``key_suffix``."""
    for node, tag in mappings(tree):
        if tag == "!import_call" and str(node.get("key", "")).endswith(key_suffix):
            yield node
