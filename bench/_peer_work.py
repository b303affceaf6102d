"""The work behind ``updateWorkflowStepStatus`` that the graphene-django peer and the plain-view
floor do, exactly what ours does (``graphql_api.api.mutations``): the
``change_workflowinstance`` permission before anything is looked up, the instance named by its
global ID looked up through the visibility rule (hidden is not found), the service called with
the user as actor (the whole rule again, in the engine) and ``expectedVersion``, the instance
reloaded with its workflow, step and status for the answer. Expected errors come back as the
answer's ``OperationInfo`` with the engine's code, as ours does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django_steps import authorization, services
from django_steps.exceptions import InstanceNotFound, NotPermitted, WorkflowError
from django_steps.models import WorkflowInstance


def update_status(
    user: Any, global_id: str, status_name: str, expected_version: Any
) -> WorkflowInstance | dict:
    """The instance changed and reloaded, or the answer's ``OperationInfo`` (a dict: the
    error's code and message)."""
    try:
        if not (
            user.is_authenticated
            and user.is_active
            and user.has_perm(authorization.CHANGE_INSTANCE)
        ):
            raise NotPermitted("You may not change workflow instances.")
        instance = _visible_instance(user, global_id)
        services.update_workflow_step_status(
            instance, status_name, None, actor=user, expected_version=expected_version
        )
    except WorkflowError as error:
        return {
            "__typename": "OperationInfo",
            "messages": [{"code": str(error.code), "message": str(error)}],
        }
    return WorkflowInstance.objects.select_related(
        "workflow", "current_step", "current_step_status"
    ).get(pk=instance.pk)


def _visible_instance(user: Any, global_id: str) -> WorkflowInstance:
    try:
        type_name, _, key = base64.b64decode(global_id, validate=True).decode().partition(":")
        pk = int(key)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InstanceNotFound("No instance has this ID.") from None
    found = None
    if type_name == "WorkflowInstance":
        found = authorization.visible_instances(
            user, WorkflowInstance.objects.filter(pk=pk)
        ).first()
    if found is None:
        raise InstanceNotFound("No instance has this ID.")
    return found
