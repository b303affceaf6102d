"""Who may read and change what, with Django model permissions.

Reading
    * definitions (``Workflow`` and its steps, statuses and transitions) need
      ``django_steps.view_workflow``;
    * instances and their history (``WorkflowInstance``, ``WorkflowEvent``) need
      ``django_steps.view_workflowinstance``. The definition an instance runs on is shown with the
      instance (a client cannot interpret an instance without it).

  A reader without the permission sees nothing: lists are empty, ``node``/single lookups are
  ``null``. Anonymous users have no permissions, so they see nothing private.

Changing
    * every instance mutation needs ``django_steps.change_workflowinstance``;
    * ``createWorkflow`` / ``updateWorkflow`` / ``deleteWorkflow`` need ``add_workflow`` /
      ``change_workflow`` / ``delete_workflow``.

  A refused mutation returns ``OperationInfo`` with kind ``PERMISSION`` and code
  ``PERMISSION_DENIED``. Active superusers may do everything (Django's own rule).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from strawberry.types import Info
from strawberry_django.auth.utils import get_current_user

VIEW_WORKFLOW = "django_steps.view_workflow"
VIEW_INSTANCE = "django_steps.view_workflowinstance"
CHANGE_INSTANCE = "django_steps.change_workflowinstance"
ADD_WORKFLOW = "django_steps.add_workflow"
CHANGE_WORKFLOW = "django_steps.change_workflow"
DELETE_WORKFLOW = "django_steps.delete_workflow"


def current_user(info: Info) -> Any:
    """The request's user (``AnonymousUser`` when nobody is logged in), HTTP or WebSocket."""
    try:
        return get_current_user(info)
    except Exception:  # no request/user in this context at all
        return None


def has_perm(info: Info, perm: str) -> bool:
    user = current_user(info)
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    return user.has_perm(perm)


def visible(queryset: QuerySet, info: Info, perm: str) -> QuerySet:
    """``queryset`` if the user may read it, else an empty one (no query is run for it)."""
    return queryset if has_perm(info, perm) else queryset.none()
