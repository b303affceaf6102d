"""Who may see which workflow instance, and who may set which status: the one rule.

Every read and every change of instances, in this package and in :mod:`graphql_api`, asks
this module; nothing else decides. The rule has four parts.

Reading instances
    A user reads instances (and their history) only with ``django_steps.view_workflowinstance``
    (:func:`may_read_instances`), and then only those the **visibility rule** keeps
    (:func:`visible_instances`). The default rule (:func:`default_visible_instances`): an
    instance is visible to a user who may view the object it is attached to —

    - every instance on a model whose ``<app_label>.view_<model>`` permission the user holds
      globally — listed by the backends' ``get_all_permissions`` (Django's: the user's and
      their groups' permissions), or, for a model with an object rule, ``has_perm(perm)`` from
      any backend (django-rules' reviewers); active superusers hold them all: the fast path,
      one filter on the content type;
    - on a model named in ``settings.DJANGO_STEPS["VISIBLE_OBJECTS"]`` (``{"app_label.model":
      callable or dotted path}``), the instances on the objects that **object rule** keeps: a
      callable ``(user, queryset of the model) -> queryset`` (the per-object hook: e.g. "the
      claims the user owns"), applied as an SQL semi-join;
    - nothing else (so a workflow on a model nobody thought about — users, say — shows its
      instances only to who may view that model).

    Object-permission backends (django-rules, django-guardian) answer one object at a time, which
    no list can use: name an object rule for their models (the demo's ``claims.claim`` does).
    ``settings.DJANGO_STEPS["VISIBLE_INSTANCES"]`` (a callable ``(user, queryset) -> queryset``
    or its dotted path) replaces the whole default; a rule of your own can start from
    :func:`default_visible_instances`. Every rule narrows with a queryset filter (no Python per
    row), so a list page costs the same whatever the rule. Events are visible with their
    instance.

    Beside the rule, its **visibility classes** (:func:`visibility_class`): users with the same
    class see exactly the same instances, so what is computed from visibility alone (a live
    event's result, shared by every subscriber of the class) is computed once per class. The
    default rule derives them (:func:`default_visibility_class`: active superusers form one
    class; users whose visibility is one filter on content types form one class per set of
    content types; anyone an object rule applies to is opaque). A ``VISIBLE_INSTANCES`` rule of
    your own is opaque unless ``settings.DJANGO_STEPS["VISIBILITY_CLASS"]`` (a callable ``user ->
    hashable or None``, or its dotted path) names its classes; ``None`` means opaque: a class of
    that user alone. Two users in one class must see the same instances whatever they are.

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

Acting on an assigned step
    A step may name who acts on it (``assignees``, see :mod:`django_steps.workitems`): while an
    instance is on it, only the candidates of its open work item — a candidate user, or a
    member of a candidate group (:func:`groups_of`) — or, once someone claimed it, the claimant
    may move it (set a status, hold, resume, cancel, retry, migrate), unless they hold
    ``django_steps.override_workitem`` (:data:`OVERRIDE_WORKITEM`). Claiming needs to be a
    candidate; releasing, to be the claimant; handing over (delegating, :func:`may_delegate`),
    to be the claimant, or, while unclaimed, one who may claim it — each, or the override. Who
    claims an item, or is handed it, must also be able to complete its step
    (:func:`may_complete`): a claimant who could do nothing with it would lock every other
    candidate out, and a candidate who could not claim it must not pick who does. The groups
    of a user are their Django groups' names, or what ``settings.DJANGO_STEPS["GROUPS_OF"]``
    (a callable ``user -> names``, or its dotted path) says. The trusted path (no actor) is exempt.

Stored context
    An event's stored context holds the object's fields (secrets left out, see
    :mod:`django_steps.context`) and the caller's input: it is shown only to users who may view
    the object (:func:`may_view_object`: ``<app_label>.view_<model>`` globally, else the model's
    object rule if it has one, else ``has_perm`` for the object).

Active superusers pass every ``has_perm`` check (Django's rule); inactive and anonymous users
pass none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, QuerySet

from . import compiled, workitems
from .choices import FINISHED_STATES, InstanceState
from .conf import steps_setting
from .exceptions import ModelNotAllowed, NotPermitted
from .models import WorkflowInstance
from .visibility import (
    _callable,
    _default_filter,
    _globally_viewable,
    _objects_kept,
    _view_permission,
    default_visibility_class,
    default_visible_instances,
    object_rules,
    resolve_callable,
)

__all__ = [
    "VIEW_INSTANCE",
    "CHANGE_INSTANCE",
    "AllowedActions",
    "allowed_actions",
    "check_startable",
    "default_visibility_class",
    "default_visible_instances",
    "groups_of",
    "may_act_on_item",
    "may_change_instances",
    "may_delegate",
    "may_move",
    "may_read_instances",
    "may_see_instance",
    "may_set_status",
    "required_permission",
    "may_view_object",
    "object_rules",
    "resolve_callable",
    "sees_every_instance_on",
    "visibility_class",
    "visible_events",
    "visible_work_items",
    "visible_instances",
]

VIEW_INSTANCE = "django_steps.view_workflowinstance"
CHANGE_INSTANCE = "django_steps.change_workflowinstance"
#: Acting on an assigned step without being a candidate or the claimant.
OVERRIDE_WORKITEM = "django_steps.override_workitem"


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


def visibility_class(user: Any) -> Any:
    """A key shared by the users who see exactly the same instances as ``user`` (the visibility
    class of the configured rule), or None: opaque, ``user`` is a class of their own. Users who
    may not read instances are None too."""
    if not may_read_instances(user):
        return None
    hook = steps_setting("VISIBILITY_CLASS")
    if hook is not None:
        key = _callable(hook)(user)
    elif steps_setting("VISIBLE_INSTANCES") is None:
        key = default_visibility_class(user)
    else:  # a rule of the project's own, with no classes named: nothing is known
        return None
    return None if key is None else ("visibility class", key)


def visibility_rule() -> Callable[[Any, QuerySet], QuerySet]:
    """The configured visibility rule (read at call time, so changing the setting takes effect)."""
    rule = steps_setting("VISIBLE_INSTANCES")
    return default_visible_instances if rule is None else _callable(rule)


def visible_instances(user: Any, queryset: QuerySet) -> QuerySet:
    """The instances of ``queryset`` that ``user`` may see (none without the view permission)."""
    if not may_read_instances(user):
        return queryset.none()
    return visibility_rule()(user, queryset)


def sees_every_instance_on(user: Any, content_type_ids: Iterable[int]) -> bool:
    """Whether the visibility rule shows ``user`` every instance attached to an object of the
    models ``content_type_ids`` — so filtering by it would keep them all, and a caller counting
    such instances may skip the filter. True for active superusers, and, under the default rule,
    for a user who may view each of these models globally (as :func:`default_visible_instances`
    decides it); never known of a ``VISIBLE_INSTANCES`` rule of a project's own."""
    if not may_read_instances(user) or steps_setting("VISIBLE_INSTANCES") is not None:
        return False
    if getattr(user, "is_superuser", False):
        return True
    missing = set(content_type_ids) - _globally_viewable(user)
    if not missing:
        return True
    rules = object_rules()
    for content_type in missing:
        model = ContentType.objects.get_for_id(content_type).model_class()
        if model is None or model._meta.concrete_model not in rules:
            return False
        if not user.has_perm(_view_permission(model)):  # as the default filter grants it
            return False
    return True


def visible_events(user: Any, queryset: QuerySet) -> QuerySet:
    """The events of ``queryset`` whose instance ``user`` may see."""
    if not may_read_instances(user):
        return queryset.none()
    if steps_setting("VISIBLE_INSTANCES") is None:
        condition = _default_filter(user, "instance__")
        return queryset if condition is None else queryset.filter(condition)
    instances = visibility_rule()(user, WorkflowInstance.objects.all())
    if not instances.query.has_filters():  # the rule keeps everything: no semi-join
        return queryset
    return queryset.filter(instance__in=instances.values("pk"))


def visible_work_items(user: Any, queryset: QuerySet) -> QuerySet:
    """The work items of ``queryset`` whose instance ``user`` may see (as events: through their
    ``instance``, the default rule a join filter, not a semi-join over every instance)."""
    return visible_events(user, queryset)


def seeing_an_instance_is_viewing_its_object() -> bool:
    """Whether every instance a user may see is attached to an object they may view: true of
    the default rule (it shows an instance exactly for an object the user may view), not
    known of a ``VISIBLE_INSTANCES`` rule of a project's own."""
    return steps_setting("VISIBLE_INSTANCES") is None


def may_view_object(user: Any, obj: Model | None) -> bool:
    """Whether ``user`` may view ``obj``: ``<app_label>.view_<model>`` globally; else the
    model's object rule (``VISIBLE_OBJECTS``) if it has one; else ``has_perm`` for the object
    (object-permission backends)."""
    if obj is None or not _active(user):
        return False
    perm = _view_permission(type(obj))
    if user.has_perm(perm):
        return True
    model = obj._meta.concrete_model
    rule = object_rules().get(model)
    if rule is not None:
        return rule(user, model._default_manager.filter(pk=obj.pk)).exists()
    return user.has_perm(perm, obj)


def may_set_status(user: Any, permission: str, obj: Model | None) -> bool:
    """Whether ``user`` may set a status that names ``permission`` on an instance of ``obj``."""
    if not permission:
        return True
    if not _active(user):
        return False
    return user.has_perm(permission) or (obj is not None and user.has_perm(permission, obj))


def may_see_instance(user: Any, instance: Model) -> bool:
    """Whether ``user`` may see ``instance`` (the view permission and the visibility rule):
    no query when a global permission decides, else one."""
    if not may_read_instances(user):
        return False
    if steps_setting("VISIBLE_INSTANCES") is None:
        if getattr(user, "is_superuser", False):
            return True
        content_type = ContentType.objects.get_for_id(instance.content_type_id)
        model = content_type.model_class()
        if model is None:  # the model is gone: nobody but superusers can view its objects
            return False
        if user.has_perm(_view_permission(model)):
            return True
        rule = object_rules().get(model._meta.concrete_model)
        if rule is None:
            return False
        return _objects_kept(rule, user, model).filter(_steps_key=instance.object_id).exists()
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
    if content_type.pk not in definition.content_type_ids:
        raise ModelNotAllowed(
            f'Workflow "{definition.name}" cannot be started on this model: '
            "its definition does not list it in content_types.",
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
    claim: bool = False
    release: bool = False
    delegate: bool = False


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
    if instance.state in FINISHED_STATES or not may_change_instances(user):
        return NOTHING
    step = definition.steps.get(instance.current_step_id)
    if step is None:
        return NOTHING
    if not (may_see_instance(user, instance) if visible is None else visible):
        return NOTHING
    item = workitems.open_item_of(instance) if step.assignees else None
    claims = {
        "claim": item is not None and may_claim(user, item, instance, definition),
        "release": item is not None and may_release(user, item),
        "delegate": item is not None and may_delegate(user, item, instance, definition),
    }
    if not may_act_on_item(user, item):
        return AllowedActions((), hold=False, resume=False, cancel=False, advance=False, **claims)
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
            statuses, hold=False, resume=may_resume, cancel=may_cancel, advance=False, **claims
        )
    statuses = tuple(status for status in step.statuses.values() if permitted(status))
    awaiting = current is not None and current.is_completion_status
    return AllowedActions(
        statuses,
        hold=permitted(step.on_hold_status),
        resume=False,
        cancel=may_cancel,
        advance=awaiting and permitted(current),
        **claims,
    )


# --------------------------------------------------------------------------- assigned steps


def groups_of(user: Any) -> frozenset[str]:
    """The names of ``user``'s groups (``GROUPS_OF``, else their Django groups), kept on the
    user object for the rest of its request."""
    cached = getattr(user, "_django_steps_groups", None)
    if cached is not None:
        return cached
    rule = steps_setting("GROUPS_OF")
    if rule is None:
        names = frozenset(user.groups.values_list("name", flat=True)) if user.pk else frozenset()
    else:
        names = frozenset(_callable(rule)(user))
    user._django_steps_groups = names
    return names


def is_candidate(user: Any, item: Any) -> bool:
    """Whether ``user`` is a candidate of work item ``item``: a candidate user, or in a
    candidate group (reads ``item.candidates``: prefetch them for lists)."""
    if not _active(user):
        return False
    if any(candidate.user_id == user.pk for candidate in item.candidates.all()):
        return True
    groups = item.candidate_groups or []
    return bool(groups) and not groups_of(user).isdisjoint(groups)


def may_act_on_item(user: Any, item: Any) -> bool:
    """Whether ``user`` may move an instance whose open work item is ``item`` (None: its step
    is not assigned): the claimant, else a candidate — or who holds the override."""
    if item is None:
        return True
    if not _active(user):
        return False
    if item.claimed_by_id is not None:
        return item.claimed_by_id == user.pk or user.has_perm(OVERRIDE_WORKITEM)
    return is_candidate(user, item) or user.has_perm(OVERRIDE_WORKITEM)


def may_complete(user: Any, instance: Any, definition: Any = None) -> bool:
    """Whether ``user`` may set one of the completion statuses of ``instance``'s step from its
    current status (the permissions alone; True for a step without one): what taking the
    step's work item needs, so that a claimant can always finish what they took."""
    definition = definition or compiled.for_instance(instance)
    step = definition.steps.get(instance.current_step_id)
    targets = [s for s in step.statuses.values() if s.is_completion_status] if step else []
    current = definition.statuses.get(instance.current_step_status_id)
    needed = {required_permission(current, target) for target in targets}
    if not targets or "" in needed:
        return True
    obj = instance.content_object
    return any(may_set_status(user, permission, obj) for permission in needed)


def may_claim(user: Any, item: Any, instance: Any = None, definition: Any = None) -> bool:
    """Whether ``user`` may claim ``item`` (of ``instance``: read when not given): a candidate
    (or the override) who may complete its step."""
    return (
        item.claimed_by_id is None
        and _active(user)
        and (is_candidate(user, item) or user.has_perm(OVERRIDE_WORKITEM))
        and may_complete(user, instance or item.instance, definition)
    )


def may_release(user: Any, item: Any) -> bool:
    return (
        item.claimed_by_id is not None
        and _active(user)
        and (item.claimed_by_id == user.pk or user.has_perm(OVERRIDE_WORKITEM))
    )


def may_delegate(user: Any, item: Any, instance: Any = None, definition: Any = None) -> bool:
    """Whether ``user`` may hand ``item`` over: its claimant; if unclaimed, one who may claim
    it (else a candidate unable to complete the step would pick who takes it); or the override."""
    if not _active(user):
        return False
    if user.has_perm(OVERRIDE_WORKITEM):
        return True
    if item.claimed_by_id is not None:
        return item.claimed_by_id == user.pk
    return may_claim(user, item, instance, definition)


def may_receive(user: Any, instance: Any) -> bool:
    """Whether a work item of ``instance`` may be handed to ``user`` (delegated): one who may
    change and see it, and complete its step (as a claimant must)."""
    return (
        may_change_instances(user)
        and may_see_instance(user, instance)
        and may_complete(user, instance)
    )


def check_acts(actor: Any, instance: Any, step: Any) -> None:
    """With an acting user, on an assigned ``step`` (compiled): refuse unless they may act on
    its open work item (``NotPermitted``). One query, only on assigned steps."""
    if actor is None or not step.assignees:
        return
    if not may_act_on_item(actor, workitems.open_item_of(instance)):
        raise NotPermitted(
            "This step is assigned: only its candidates, or who claimed it, may act on it. "
            "Nothing was changed.",
            instance_id=instance.pk,
        )
