"""Settings of the engine: ``settings.DJANGO_STEPS`` (a dict), read at call time.

Every key has a default here; the README's "Configuration" section lists them. The merged
dict is kept between calls (CEL reads its budget on every evaluation, and a missing
``settings.DJANGO_STEPS`` costs Django an exception per read) and dropped whenever Django
announces a change of ``DJANGO_STEPS`` (``setting_changed``: ``override_settings``, the
pytest-django ``settings`` fixture).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

__all__ = ["DEFAULTS", "steps_setting"]

DEFAULTS: dict[str, Any] = {
    # The visibility rule: a callable (user, queryset) -> queryset, or its dotted path; None: the
    # default, an instance is visible to who may view its object (see authorization.py).
    "VISIBLE_INSTANCES": None,
    # Object rules of the default: {"app_label.model": callable (user, queryset of the model) ->
    # the objects the user may view, or its dotted path} for models viewed per object.
    "VISIBLE_OBJECTS": {},
    # The visibility class of a user: a callable user -> hashable key (users with equal keys see
    # exactly the same instances) or None (opaque: a class of their own), or its dotted path;
    # None: derived from the default rule (authorization.default_visibility_class).
    "VISIBILITY_CLASS": None,
    # Who is in which group, for steps assigned to groups (workitems.py): a callable user ->
    # iterable of group names, or its dotted path; None: the user's Django groups.
    "GROUPS_OF": None,
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
    # What conditions read from the attached object, and history stores (see context.py). Per
    # model ("app_label.model"): {"include": [names]} reads only these fields, {"exclude":
    # [names]} leaves these out. A field named "password" is never read.
    "CONTEXT_FIELDS": {},
    # Field names (fnmatch patterns, case-insensitive) left out of every model's context unless
    # its "include" names them.
    "CONTEXT_SECRET_FIELDS": ("*password*", "*secret*", "*token*", "*api_key*", "*private_key*"),
    # Client-supplied context (``context_data`` / GraphQL ``context``), read as ``input``.
    "CONTEXT_MAX_ITEMS": 10000,  # values, nested ones included
    "CONTEXT_MAX_LENGTH": 100000,  # characters of every string and key together
    "CONTEXT_MAX_DEPTH": 10,  # nested mappings/lists, the context itself being 1
    # Definitions: all distinct conditions of one definition together (compiling is ~0.1 s
    # per 2,000 characters of dense code), and documents read from text (JSON/YAML), measured
    # after YAML aliases are expanded.
    "DEFINITION_MAX_CONDITIONS_LENGTH": 20000,  # characters
    "DOCUMENT_MAX_SIZE": 1000000,  # characters
    # Definition size (a definition problem when over). The GraphQL cost estimate counts the
    # lists of a definition (Workflow.steps, WorkflowStep.statuses, …) with these bounds, so
    # they are what keeps that estimate true (graphql_api/cost.py reads them).
    "DEFINITION_MAX_STEPS": 20,
    "DEFINITION_MAX_STATUSES_PER_STEP": 10,
    "DEFINITION_MAX_TRANSITIONS": 60,
    "DEFINITION_MAX_TRANSITIONS_PER_STEP": 10,  # leaving one step
    # History: the CEL context stored with an event, measured as compact JSON with non-ASCII
    # characters escaped (as it is sent to clients). Over it, the event stores a marker instead
    # ({"_omitted": "TOO_LARGE", "size": …, "maxSize": …}), never part of the value. None: no limit.
    "HISTORY_CONTEXT_MAX_SIZE": 65536,  # bytes
    # The label of an instance's attached object shown to readers who may view it
    # (GraphQL `WorkflowInstance.subject.label`): a callable (obj) -> str, or its dotted path;
    # None: str(obj).
    "SUBJECT_LABEL": None,
    # The cache (an alias of CACHES) keeping `workflow_stats`' closed buckets (stats.py); None:
    # none kept, every call reads its whole window.
    "STATS_CACHE": "default",
    # Deadlines (see deadlines.py): seconds between the sweeps of `manage.py steps_worker`, and
    # timers fired per transaction.
    "WORKER_POLL_SECONDS": 0.5,
    "WORKER_BATCH_SIZE": 200,
}


_merged: dict[str, Any] | None = None


def steps_setting(name: str) -> Any:
    """A key of ``settings.DJANGO_STEPS`` (its default when unset)."""
    global _merged
    if name not in DEFAULTS:
        raise KeyError(f"Unknown django-steps setting {name!r}")
    merged = _merged
    if merged is None:
        merged = _merged = {**DEFAULTS, **(getattr(settings, "DJANGO_STEPS", None) or {})}
    return merged[name]


def _forget(*, setting: str, **kwargs: Any) -> None:
    global _merged
    if setting == "DJANGO_STEPS":
        _merged = None


setting_changed.connect(_forget, dispatch_uid="django_steps.conf")
