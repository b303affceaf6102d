"""The default visibility rule's parts: the object rules, the models a user may view
globally, the rule as a queryset filter, and the visibility classes it derives.

Described, and used, by :mod:`django_steps.authorization` (the one rule: ask it, not this
module): kept apart so that module stays one readable page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db.models import CharField, Model, Q, QuerySet
from django.db.models.functions import Cast
from django.utils.module_loading import import_string

from .conf import steps_setting


@functools.lru_cache(maxsize=64)
def _import(path: str) -> Callable[[Any, QuerySet], QuerySet]:
    return import_string(path)


def _callable(rule: Any) -> Callable[[Any, QuerySet], QuerySet]:
    return _import(rule) if isinstance(rule, str) else rule


#: A setting that is a callable or its dotted path, as a callable (imported once).
resolve_callable = _callable


def _view_permission(model: type[Model]) -> str:
    return f"{model._meta.app_label}.view_{model._meta.model_name}"


def object_rules() -> dict[type[Model], Callable[[Any, QuerySet], QuerySet]]:
    """``settings.DJANGO_STEPS["VISIBLE_OBJECTS"]`` as {concrete model: callable}."""
    rules: dict[type[Model], Callable[[Any, QuerySet], QuerySet]] = {}
    for label, rule in (steps_setting("VISIBLE_OBJECTS") or {}).items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError) as error:
            raise ImproperlyConfigured(
                f'DJANGO_STEPS["VISIBLE_OBJECTS"] names {label!r}, which is no installed model '
                '("app_label.model").'
            ) from error
        rules[model._meta.concrete_model] = _callable(rule)
    return rules


def _globally_viewable(user: Any) -> set[int]:
    """Content type ids of the models the user may view globally, from the permissions the
    backends list (``get_all_permissions``; Django's backend caches them on the user)."""
    found: set[int] = set()
    for perm in getattr(user, "get_all_permissions", set)():
        app_label, _, codename = perm.partition(".")
        if not codename.startswith("view_"):
            continue
        try:
            model = apps.get_model(app_label, codename[5:])
        except LookupError:  # a custom permission named view_something
            continue
        if model._meta.proxy:  # viewing a proxy's rows is not viewing every row of its table
            continue
        found.add(ContentType.objects.get_for_model(model).pk)
    return found


def _objects_kept(rule: Callable, user: Any, model: type[Model]) -> QuerySet:
    """The keys (as text, like ``WorkflowInstance.object_id``) of the objects ``rule`` keeps."""
    kept = rule(user, model._default_manager.all())
    return kept.annotate(_steps_key=Cast("pk", CharField())).values("_steps_key")


def _default_filter(user: Any, prefix: str = "") -> Q | None:
    """The default rule as a filter on instances (``prefix``: the path to the instance, e.g.
    ``"instance__"`` for events); ``None``: every instance."""
    if getattr(user, "is_superuser", False):
        return None
    everywhere = _globally_viewable(user)
    per_object = Q()
    for model, rule in object_rules().items():
        content_type = ContentType.objects.get_for_model(model).pk
        if content_type in everywhere:
            continue
        if user.has_perm(_view_permission(model)):  # a backend granting it without listing it
            everywhere.add(content_type)
            continue
        per_object |= Q(
            **{
                f"{prefix}content_type_id": content_type,
                f"{prefix}object_id__in": _objects_kept(rule, user, model),
            }
        )
    return Q(**{f"{prefix}content_type_id__in": sorted(everywhere)}) | per_object


def default_visible_instances(user: Any, queryset: QuerySet) -> QuerySet:
    """The default visibility rule: the instances of ``queryset`` whose object ``user`` may
    view (see the module docstring). Expects a user who may read instances."""
    condition = _default_filter(user)
    return queryset if condition is None else queryset.filter(condition)


def default_visibility_class(user: Any) -> Any:
    """The visibility class the default rule gives ``user`` (see the module docstring): equal
    keys see the same instances; None when an object rule applies to them (opaque)."""
    if getattr(user, "is_superuser", False):
        return ("everything",)
    everywhere = _globally_viewable(user)
    for model in object_rules():
        content_type = ContentType.objects.get_for_model(model).pk
        if content_type in everywhere:
            continue
        if not user.has_perm(_view_permission(model)):
            return None  # the object rule decides per user
        everywhere.add(content_type)
    return ("content types", tuple(sorted(everywhere)))
