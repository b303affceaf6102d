"""Definition documents as text: read from YAML or JSON within size limits (the text, the
document its YAML aliases expand to, the integer literals), written back as YAML or JSON.
:mod:`django_steps.definitions` re-exports :func:`load_document` and :func:`dump_document`.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from .conf import steps_setting
from .exceptions import InvalidDefinition

__all__ = ["dump_document", "load_document"]

#: Characters of an integer literal in a document text past which it is out of every range a
#: document checks, and is not computed (see _TooLong).
_MAX_INT_LITERAL = 40


class _TooLong(int):
    """Stands for an integer literal of a document text too long to be any field's value. Its
    value is never computed: Python refuses to convert more than 4300 decimal digits (a bare
    ``ValueError``), and a hexadecimal literal would build a number of any size. Out of every
    range a document checks (``Key.range`` in :mod:`django_steps.shape`), so validation reports
    it with its path."""

    length: int

    def __new__(cls, length: int) -> _TooLong:
        value = super().__new__(cls, 2**63)
        value.length = length
        return value

    def __repr__(self) -> str:
        return f"<an integer of {self.length} characters>"

    __str__ = __repr__


def _parse_int(text: str) -> int:
    """``parse_int`` of ``json.loads``."""
    return _TooLong(len(text)) if len(text) > _MAX_INT_LITERAL else int(text)


def _kind(value: Any) -> str:
    """The type of ``value`` as problems name it."""
    return "int" if isinstance(value, _TooLong) else type(value).__name__


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Characters (scalars) plus nodes of the document as it would be once every alias is
    expanded, counted on the composed node graph (each node once, memoised by identity), so
    a "billion laughs" document is measured without being built. Stops past ``limit``."""
    sizes: dict[int, int] = {}
    expanding: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1 + len(node.value)
            continue
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = list(node.value)
        if not children_done:
            if key in expanding:  # reached again from inside itself: a recursive alias
                return limit + 1
            expanding.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        expanding.discard(key)
        sizes[key] = min(limit + 1, 1 + sum(sizes[id(child)] for child in children))
    return sizes[id(root)]


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader (libyaml's when available), with integers too long for any field left
    uncomputed (:class:`_TooLong`)."""


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    if len(node.value) > _MAX_INT_LITERAL:
        return _TooLong(len(node.value))
    return loader.construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _load_yaml(text: str, limit: int) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, limit) > limit:
            problem = f"larger than {limit} characters once its YAML aliases are expanded"
            raise InvalidDefinition(
                f"The document would be {problem}.", problems=[{"path": "", "message": problem}]
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_document(text: str) -> dict:
    """Parse a JSON or YAML definition document. Raises :class:`InvalidDefinition` when the
    text does not parse, is not a mapping, or is larger than ``DOCUMENT_MAX_SIZE`` characters
    — as text, or once its YAML aliases (``*anchor``) are expanded: aliases are allowed (to
    share a list of statuses, say), but a document whose aliases multiply it past the limit
    (a "billion laughs") is refused before anything is built from it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    limit = int(steps_setting("DOCUMENT_MAX_SIZE"))
    if len(text) > limit:
        raise InvalidDefinition(
            f"The document is {len(text)} characters long, over the limit of {limit}.",
            problems=[{"path": "", "message": f"longer than {limit} characters"}],
        )
    try:
        document = json.loads(text, parse_int=_parse_int)
    except ValueError as json_error:
        try:
            document = _load_yaml(text, limit)
        except yaml.YAMLError as exc:
            message = " ".join(str(exc).split())
            looks_json = text.lstrip().startswith(("{", "["))
            if looks_json:
                message = f"{json_error}"
            raise InvalidDefinition(
                f"The document is neither valid JSON nor YAML: {message}",
                problems=[{"path": "", "message": f"neither valid JSON nor YAML: {message}"}],
            ) from exc
        except RecursionError:
            document = RecursionError
    except RecursionError:
        document = RecursionError
    if document is RecursionError:
        raise InvalidDefinition(
            "The document is nested too deeply.",
            problems=[{"path": "", "message": "nested too deeply"}],
        )
    if not isinstance(document, dict):
        name = _kind(document)
        kind = "empty" if document is None else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
        raise InvalidDefinition(
            f"A workflow document must be a mapping; this one is {kind}.",
            problems=[{"path": "", "message": f"must be a mapping, not {kind}"}],
        )
    return document


def dump_document(doc: dict, format: str = "yaml") -> str:
    """Render a document as YAML (default) or JSON text."""
    if format == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if format == "yaml":
        return yaml.safe_dump(
            doc, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
        )
    raise ValueError(f"unknown format {format!r}; use 'yaml' or 'json'")
