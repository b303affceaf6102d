"""Who may see which workflow instance, and who may set which status: the one rule.

Every read and every change of instances, in this package and in :mod:`graphql_api`, asks
this module; nothing else decides. The rule has four parts.

Reading instances
    A user reads instances (and their history) only with ``django_steps.view_workflowinstance``
    (:func:`may_read_instances`), and then only those the **visibility rule** keeps
    (:func:`visible_instances`). The rule is a callable ``(user, queryset) -> queryset`` named
    by ``settings.DJANGO_STEPS["VISIBLE_INSTANCES"]`` (a dotted path, or the callable itself);
    by default it keeps everything. It must narrow with a queryset filter (no Python per row),
    so a list page costs the same whatever the rule. Events are visible with their instance.

Starting
    A workflow lists the models it may be started on (``Workflow.content_types``; document key
    ``content_types``). Starting it on an object of any other model is refused with
    ``MODEL_NOT_ALLOWED`` whoever asks (:func:`check_startable`); a workflow listing no model
    cannot be started at all (the safe default: a definition says what it runs on).

Changing
    Changing an instance needs ``django_steps.change_workflowinstance``
    (:func:`may_change_instances`) on an instance the user may see (:func:`may_see_instance`).
    A status may name a permission (``WorkflowStepStatus.permission``, ``"app_label.codename"``),
    and **a decision sticks**:
    every move of an instance — setting a status, holding, resuming, cancelling, retrying its
    transitions — goes from the current status to a target status, and needs one permission
    (:func:`required_permission`): the target's if it names one, else the current status's if
    that names one, else none. So setting a status that names a permission needs it (directly,
    or by holding or cancelling through it); a status set through a permission is undone only
    by someone who holds it, or by moving to a status whose own permission the user holds (a
    claimant may still withdraw a claim a reviewer put on "Waiting for Documents", through a
    "Withdrawn" status naming the claimant's permission); resuming from an on-hold status goes
    to the step's default status, so it needs the on-hold status's permission unless the
    default names one. A hold or cancel on a step without an on-hold (cancellation) status keeps
    the current status: it needs the current status's permission, if any. Object-level backends
    (django-rules, django-guardian) decide per object through ``user.has_perm(permission,
    obj)``; a global permission (``user.has_perm(permission)``, e.g. from Django's
    ``ModelBackend``, which never grants object-level checks) allows it on every object.
    :func:`allowed_actions` says what a user may do with an instance now, from the same
    checks, so a UI shows only what will succeed. The services apply all of it when given an
    ``actor``; without one they are the trusted (system) path and check nothing.

Stored context
    An event's stored context holds the object's fields (secrets left out, see
    :mod:`django_steps.context`) and the caller's input: it is shown only to users who may view
    the object (:func:`may_view_object`: ``<app_label>.view_<model>``, globally or for it).

Active superusers pass every ``has_perm`` check (Django's rule); inactive and anonymous users
pass none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Model, QuerySet
from django.utils.module_loading import import_string

from .conf import steps_setting

__all__ = [
    "VIEW_INSTANCE",
    "CHANGE_INSTANCE",
    "AllowedActions",
    "allowed_actions",
    "check_startable",
    "may_change_instances",
    "may_move",
    "may_read_instances",
    "may_see_instance",
    "may_set_status",
    "required_permission",
    "may_view_object",
    "visible_events",
    "visible_instances",
]

VIEW_INSTANCE = "django_steps.view_workflowinstance"
CHANGE_INSTANCE = "django_steps.change_workflowinstance"


def _active(user: Any) -> bool:
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
    )


def may_read_instances(user: Any) -> bool:
    return _active(user) and user.has_perm(VIEW_INSTANCE)


def may_change_instances(user: Any) -> bool:
    return _active(user) and user.has_perm(CHANGE_INSTANCE)


def _keep_all(user: Any, queryset: QuerySet) -> QuerySet:
    return queryset


@functools.lru_cache(maxsize=8)
def _import(path: str) -> Callable[[Any, QuerySet], QuerySet]:
    return import_string(path)


def visibility_rule() -> Callable[[Any, QuerySet], QuerySet]:
    """The configured visibility rule (read at call time, so changing the setting takes effect)."""
    rule = steps_setting("VISIBLE_INSTANCES")
    if rule is None:
        return _keep_all
    return _import(rule) if isinstance(rule, str) else rule


def visible_instances(user: Any, queryset: QuerySet) -> QuerySet:
    """The instances of ``queryset`` that ``user`` may see (none without the view permission)."""
    if not may_read_instances(user):
        return queryset.none()
    return visibility_rule()(user, queryset)


def visible_events(user: Any, queryset: QuerySet) -> QuerySet:
    """The events of ``queryset`` whose instance ``user`` may see."""
    if not may_read_instances(user):
        return queryset.none()
    from .models import WorkflowInstance

    instances = visibility_rule()(user, WorkflowInstance.objects.all())
    if not instances.query.has_filters():  # the rule keeps everything: no semi-join
        return queryset
    return queryset.filter(instance__in=instances.values("pk"))


def may_view_object(user: Any, obj: Model | None) -> bool:
    if obj is None or not _active(user):
        return False
    perm = f"{obj._meta.app_label}.view_{obj._meta.model_name}"
    return user.has_perm(perm) or user.has_perm(perm, obj)


def may_set_status(user: Any, permission: str, obj: Model | None) -> bool:
    """Whether ``user`` may set a status that names ``permission`` on an instance of ``obj``."""
    if not permission:
        return True
    if not _active(user):
        return False
    return user.has_perm(permission) or (obj is not None and user.has_perm(permission, obj))


def may_see_instance(user: Any, instance: Model) -> bool:
    """Whether ``user`` may see ``instance`` (the view permission and the visibility rule):
    one query, none when the rule keeps every instance for this user."""
    if not may_read_instances(user):
        return False
    from .models import WorkflowInstance

    everything = WorkflowInstance.objects.using(instance._state.db or "default").all()
    seen = visible_instances(user, everything)
    query = seen.query
    if not query.has_filters() and not query.is_sliced and not query.combinator:
        return True
    return seen.filter(pk=instance.pk).exists()


def required_permission(current: Any, target: Any) -> str:
    """The permission moving an instance from status ``current`` to status ``target`` needs
    (``""``: none): the target's if it names one, else the current status's — a status set
    through a permission is left only by who holds it, or for a status whose own permission
    they hold. ``target`` is ``None`` when the move keeps the status (a hold or cancel on a step
    without an on-hold or cancellation status)."""
    if target is not None and target.permission:
        return target.permission
    if current is not None and current.permission:
        return current.permission
    return ""


def may_move(user: Any, current: Any, target: Any, obj: Model | None) -> bool:
    """Whether ``user`` may move an instance of ``obj`` from ``current`` to ``target`` (status
    definitions, see :func:`required_permission`)."""
    return may_set_status(user, required_permission(current, target), obj)


def check_startable(definition: Any, content_type: Any) -> None:
    """Raise ``ModelNotAllowed`` unless the compiled ``definition`` lists ``content_type``."""
    from .exceptions import ModelNotAllowed

    if content_type.pk not in definition.content_type_ids:
        raise ModelNotAllowed(
            f'Workflow "{definition.name}" cannot be started on this model: its definition does not list it '
            "in content_types.",
            workflow_name=definition.name,
        )


@dataclass(frozen=True)
class AllowedActions:
    """What a user may do with one instance now (each would succeed if tried)."""

    statuses: tuple[Any, ...]  # StatusDef of the current step, in definition order
    hold: bool
    resume: bool
    cancel: bool
    advance: bool


NOTHING = AllowedActions((), hold=False, resume=False, cancel=False, advance=False)


def allowed_actions(
    user: Any, instance: Any, definition: Any, *, visible: bool | None = None
) -> AllowedActions:
    """The statuses ``user`` may set on ``instance`` now and whether they may hold, resume,
    cancel or retry it, given the compiled version it runs on
    (:func:`django_steps.compiled.for_instance`):
    exactly what the services accept with ``actor=user``.

    ``visible``: whether the user may see the instance, if the caller knows (an instance loaded
    through :func:`visible_instances`); otherwise it is checked (:func:`may_see_instance`). The
    instance's object is read only when a status involved names a permission (prefetch
    ``content_object`` for lists: the checks then run no query of their own, except what an
    object-level backend does)."""
    from .choices import FINISHED_STATES, InstanceState

    if instance.state in FINISHED_STATES or not may_change_instances(user):
        return NOTHING
    step = definition.steps.get(instance.current_step_id)
    if step is None:
        return NOTHING
    if not (may_see_instance(user, instance) if visible is None else visible):
        return NOTHING
    current = definition.statuses.get(instance.current_step_status_id)
    obj: list[Any] = []

    def permitted(target: Any) -> bool:
        permission = required_permission(current, target)
        if not permission:
            return True
        if not obj:
            obj.append(instance.content_object)
        return may_set_status(user, permission, obj[0])

    cancellation = step.cancellation_status
    may_cancel = permitted(cancellation)
    if instance.state == InstanceState.ON_HOLD:
        statuses = (cancellation,) if cancellation is not None and may_cancel else ()
        held_on = current is not None and current.is_on_hold_status
        may_resume = permitted(step.default_status if held_on else current)
        return AllowedActions(
            statuses, hold=False, resume=may_resume, cancel=may_cancel, advance=False
        )
    statuses = tuple(status for status in step.statuses.values() if permitted(status))
    awaiting = current is not None and current.is_completion_status
    return AllowedActions(
        statuses,
        hold=permitted(step.on_hold_status),
        resume=False,
        cancel=may_cancel,
        advance=awaiting and permitted(current),
    )
