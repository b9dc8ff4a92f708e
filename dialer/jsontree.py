"""Walking JSON-like values (dicts, lists, leaves): the one recursion that config, templates
and redaction all need, so each of them says only what happens to a leaf."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Path = tuple[str | int, ...]


def map_leaves(
    value: Any, leaf: Callable[[Any, Path], Any], where: Path = (), *, key: Callable[[str], str] | None = None
) -> Any:
    """A copy of `value` with every leaf replaced by `leaf(value, path)` (and every object key by
    `key(name)` when given); tuples become lists."""
    if isinstance(value, dict):
        return {
            (key(name) if key and isinstance(name, str) else name): map_leaves(
                item, leaf, (*where, name), key=key
            )
            for name, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [map_leaves(item, leaf, (*where, index), key=key) for index, item in enumerate(value)]
    return leaf(value, where)


def iter_leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from iter_leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_leaves(item)
    else:
        yield value


def dotted(where: Path) -> str:
    """('leads', 'columns', 'phone') -> leads.columns.phone; list indexes as [i]."""
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
