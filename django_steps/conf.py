"""Settings of the engine: ``settings.DJANGO_STEPS`` (a dict), read at call time.

Every key has a default here; the README's "Configuration" section lists them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

__all__ = ["DEFAULTS", "steps_setting"]

DEFAULTS: dict[str, Any] = {
    # CEL conditions, checked when a condition is compiled (a definition problem when over).
    "CEL_MAX_LENGTH": 2000,  # characters of one condition
    "CEL_MAX_NESTING": 16,  # brackets (), [], {} open at once, counted before parsing
    "CEL_MAX_AST_DEPTH": 250,  # depth of the parse tree (each bracket level is about 10)
    "CEL_MAX_AST_NODES": 4000,  # nodes of the parse tree
    # Evaluation: steps one condition may take (about one parse-tree node evaluated each); a
    # condition whose estimate with lists of CEL_ASSUMED_LIST_SIZE items is over it is refused
    # at definition time, and one that runs over it is a CONDITION_ERROR.
    "CEL_BUDGET": 20000,
    "CEL_ASSUMED_LIST_SIZE": 20,
    # Client-supplied context (``context_data`` / GraphQL ``context``).
    "CONTEXT_MAX_ITEMS": 10000,  # values, nested ones included
    "CONTEXT_MAX_LENGTH": 100000,  # characters of every string and key together
    "CONTEXT_MAX_DEPTH": 10,  # nested mappings/lists, the context itself being 1
    # Definitions: all distinct conditions of one definition together (compiling is ~0.1 s
    # per 2,000 characters of dense code), and documents read from text (JSON/YAML), measured
    # after YAML aliases are expanded.
    "DEFINITION_MAX_CONDITIONS_LENGTH": 20000,  # characters
    "DOCUMENT_MAX_SIZE": 1000000,  # characters
}


def steps_setting(name: str) -> Any:
    """A key of ``settings.DJANGO_STEPS`` (its default when unset)."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown django-steps setting {name!r}")
    return (getattr(settings, "DJANGO_STEPS", None) or {}).get(name, DEFAULTS[name])
