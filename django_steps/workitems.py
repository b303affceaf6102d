"""Work items: who must act on a step, opened and closed with the steps.

A step may declare who acts on it (document key ``assignees``)::

    assignees:
      groups: [reviewers]          # group names (Django groups by default)
      expression: claim.owner      # CEL over the object: a user id or username, or a list

Entering an assigned step (start, advance, migration) opens a :class:`WorkItem` in the same
transaction, with its candidates computed on entry: the groups named, and the users the
expression gives (ids or usernames of existing users; an expression that fails or names nobody
is logged and adds no user). Leaving the step, completing or cancelling closes it; a hold keeps
it open. :func:`plan` says what a change does, written with its history row; for steps without
``assignees`` it costs nothing (it reads the compiled, cached step: no query).

Who acts on an assigned step (candidates, or the claimant; groups of a user) is
:mod:`django_steps.authorization`'s rule; the inbox is :func:`django_steps.selectors.inbox`;
claiming, releasing and delegating are services (:mod:`django_steps.services`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core import checks
from django.db import DatabaseError
from django.db.models import Prefetch, Q
from django.utils import timezone

from . import cel, compiled
from .choices import FINISHED_STATES, EventKind
from .conf import steps_setting
from .context import on_entry
from .exceptions import ConditionError, ConditionSyntaxError
from .models import WorkflowEvent, WorkflowInstance, WorkflowStep, WorkItem, WorkItemCandidate

__all__ = [
    "Plan",
    "apply",
    "assignee_problems",
    "check_groups",
    "plan",
    "open_item_of",
    "open_items_prefetch",
]

logger = logging.getLogger("django_steps")

#: Longest group name (Django's ``Group.name``).
MAX_GROUP = 150
#: Most groups a step names, and most users its expression may give (more are left out, logged):
#: ``WorkItem.candidateUsers`` / ``candidateGroups`` are lists the GraphQL cost counts this way.
MAX_CANDIDATES = 50

#: Events that move an instance off its step or onto one (the others keep its work item).
_MOVES = frozenset({EventKind.STARTED, EventKind.ADVANCED, EventKind.MIGRATED})


# --------------------------------------------------------------------------- definitions


def assignee_problems(value: Any) -> list[tuple[str, str]]:
    """What is wrong with a step's ``assignees`` value: ``(sub-path, message)`` pairs."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [("", "must be a mapping with groups and/or expression")]
    problems = [("", f"unknown key {k!r}") for k in value if k not in ("groups", "expression")]
    groups, expression = value.get("groups") or [], value.get("expression") or ""
    if not isinstance(groups, list):
        problems.append((".groups", "must be a list of group names"))
        groups = []
    elif len(groups) > MAX_CANDIDATES:
        problems.append((".groups", f"names more than {MAX_CANDIDATES} groups"))
    for i, name in enumerate(groups):
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_GROUP:
            message = f"must be a group name of 1 to {MAX_GROUP} characters"
            problems.append((f".groups[{i}]", message))
    if not isinstance(expression, str):
        problems.append((".expression", "must be a CEL expression (a string)"))
    elif expression.strip():
        try:
            cel.compile_condition(expression)
        except ConditionSyntaxError as exc:
            problems.append((".expression", exc.message))
    if not groups and not (isinstance(expression, str) and expression.strip()) and not problems:
        problems.append(("", "names no group and no expression"))
    return problems


def _assigned(step: Any) -> bool:
    return bool(step is not None and step.assignees)


def check_groups(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``django_steps.W030``: a step's ``assignees`` names a Django group that does not exist
    (nobody would be its candidate). A database check: it reads the ``databases`` it is given
    (none by default, as Django's own); skipped when ``GROUPS_OF`` resolves groups, or before
    the tables exist."""
    if steps_setting("GROUPS_OF") is not None or not databases:
        return []
    from django.contrib.auth.models import Group  # the auth app may not be installed

    using = "default" if "default" in databases else next(iter(databases))
    try:
        named = {
            (step.workflow.name, step.name, group)
            for step in WorkflowStep.objects.using(using)
            .exclude(assignees=None)
            .select_related("workflow")
            if isinstance(step.assignees, dict)
            for group in step.assignees.get("groups") or []
        }
        existing = set(
            Group.objects.using(using)
            .filter(name__in={g for *_, g in named})
            .values_list("name", flat=True)
        )
    except DatabaseError:  # not migrated yet
        return []
    return [
        checks.Warning(
            f'Step "{step}" of workflow "{workflow}" is assigned to the group "{group}", which '
            "does not exist: nobody is its candidate.",
            hint="Create the group, or fix the step's assignees.",
            id="django_steps.W030",
        )
        for workflow, step, group in sorted(named)
        if group not in existing
    ]


# --------------------------------------------------------------------------- the hook


@dataclass(frozen=True)
class Plan:
    """What one change does to its instance's work items: close the open one, open one on
    ``step_id`` with these candidates. Written with the change's history row (on PostgreSQL in
    the same statement: :func:`django_steps.statements.write_in_one_statement`)."""

    close: bool
    step_id: int | None = None
    groups: tuple[str, ...] = ()
    users: tuple[int, ...] = ()


def plan(
    instance: WorkflowInstance,
    kind: str,
    *,
    from_step_id: int | None,
    to_step_id: int,
    state: str,
    definition: Any = None,
) -> Plan | None:
    """The work items a change of ``instance`` (``kind``, from one step to another, to
    ``state``) opens and closes, computed before it is written (candidates included: the
    expression reads the object). ``None`` — and no query — unless a step involved is assigned
    or the change is a migration."""
    finished = state in FINISHED_STATES
    if kind not in _MOVES and not finished:
        return None  # a status set, a hold, a resume: the work item stays as it is
    definition = definition or compiled.for_instance(instance)
    close = False
    if kind != EventKind.STARTED:
        leaving = from_step_id != to_step_id or finished or kind == EventKind.MIGRATED
        # a migration's from_step is of the older version: close whatever is open
        close = leaving and (
            kind == EventKind.MIGRATED or _assigned(definition.steps.get(from_step_id))
        )
        if not leaving:
            return None
    step = definition.steps.get(to_step_id)
    if finished or not _assigned(step):
        return Plan(close=True) if close else None
    groups = tuple(g for g in dict.fromkeys(step.assignees.get("groups") or []) if g)
    users = _users_of(instance, step.assignees.get("expression") or "")
    return Plan(close=close, step_id=step.id, groups=groups, users=tuple(users))


def apply(plan: Plan, instance: WorkflowInstance, event: WorkflowEvent) -> None:
    """Write ``plan`` through the ORM (SQLite, or model save signals connected)."""
    using = instance._state.db or "default"
    now = timezone.now()
    if plan.close:
        WorkItem.objects.using(using).filter(
            instance_id=instance.pk, closed_at__isnull=True
        ).update(closed_at=now, closed_event=event)
    if plan.step_id is None:
        return
    item = WorkItem.objects.using(using).create(
        instance=instance,
        step_id=plan.step_id,
        candidate_groups=list(plan.groups),
        opened_at=now,
        opened_event=event,
    )
    rows = [WorkItemCandidate(item=item, user_id=pk) for pk in plan.users]
    rows += [WorkItemCandidate(item=item, group=name) for name in plan.groups]
    WorkItemCandidate.objects.using(using).bulk_create(rows)


def _users_of(instance: WorkflowInstance, expression: str) -> list[int]:
    """The ids of the existing users ``expression`` names (ids or usernames)."""
    if not expression.strip():
        return []
    try:
        value = cel.to_json(
            cel.evaluate_value(expression, on_entry(instance).activation(expression))
        )
    except (ConditionError, ConditionSyntaxError) as error:
        logger.warning(
            "assignees expression of step %s failed for instance %s: %s",
            instance.current_step_id,
            instance.pk,
            error.details.get("reason"),
        )
        return []
    values = value if isinstance(value, list) else [value]
    ids = {int(v) for v in values if isinstance(v, int) and not isinstance(v, bool)}
    names = {str(v) for v in values if isinstance(v, str)}
    if not ids and not names:
        return []
    User = get_user_model()
    found = User._default_manager.db_manager(instance._state.db or "default").filter(
        Q(pk__in=ids) | Q(**{f"{User.USERNAME_FIELD}__in": names})
    )
    users = sorted(found.values_list("pk", flat=True)[: MAX_CANDIDATES + 1])
    if len(users) > MAX_CANDIDATES:
        logger.warning(
            "assignees expression of step %s names more than %s users for instance %s: the "
            "first %s are candidates",
            instance.current_step_id,
            MAX_CANDIDATES,
            instance.pk,
            MAX_CANDIDATES,
        )
    return users[:MAX_CANDIDATES]


# --------------------------------------------------------------------------- reads


def open_item_of(instance: WorkflowInstance) -> WorkItem | None:
    """The open work item of ``instance``: prefetched (:func:`open_items` into
    ``_django_steps_open_items``) or read."""
    prefetched = getattr(instance, "_django_steps_open_items", None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return (
        WorkItem.objects.using(instance._state.db or "default")
        .filter(instance_id=instance.pk, closed_at__isnull=True)
        .prefetch_related("candidates")
        .first()
    )


def open_items_prefetch() -> Prefetch:
    """Prefetch the open work item of each instance of a list, with its candidates (read by
    :func:`open_item_of`: the access rule then runs no query per instance)."""
    items = WorkItem.objects.filter(closed_at__isnull=True).prefetch_related("candidates")
    return Prefetch("work_items", items, to_attr="_django_steps_open_items")
