"""The Mutation type. Each mutation is thin: resolve the IDs, call one service of
:mod:`django_steps` with the current user as actor, return the object.

The rest is the same for every mutation and lives in :func:`mutation`: the permission the
mutation needs (``PERMISSION_DENIED`` before anything is looked up, so a refused client learns
nothing about IDs), and the mapping of expected errors to ``OperationInfo``
(:mod:`graphql_api.security.errors`). Instances are looked up through the visibility rule, so a
hidden
instance is ``NOT_FOUND`` exactly like a missing one. Each returns ``<Type> | OperationInfo``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, Union

import strawberry
import strawberry_django
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http import HttpRequest
from strawberry import relay
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case
from strawberry_django.auth.mutations import resolve_login, resolve_logout
from strawberry_django.resolvers import django_resolver
from strawberry_django.utils.requests import get_request

from django_steps import authorization, compiled, definitions, services
from django_steps.cel import check_context
from django_steps.exceptions import (
    ContentObjectNotFound,
    InvalidContext,
    ModelNotAllowed,
    WorkflowNotFound,
)
from django_steps.models import Workflow, WorkflowInstance
from graphql_api.api import inbox, migration
from graphql_api.api.ids import get_by_global_id, parse_global_id, schema_name, workflow_named
from graphql_api.api.inputs import (
    AdvanceWorkflowInstanceInput,
    CancelWorkflowInstanceInput,
    DeleteWorkflowInput,
    HoldWorkflowInstanceInput,
    MigrateWorkflowInstancesInput,
    ResumeWorkflowInstanceInput,
    SetWorkflowInstanceStatusInput,
    SetWorkflowOnHoldInput,
    StartWorkflowInstanceInput,
    UpdateWorkflowStepStatusInput,
    WorkflowDefinitionInput,
    definition_document,
)
from graphql_api.api.migration import WorkflowMigrationType
from graphql_api.api.results import DeletedWorkflowType
from graphql_api.api.types import UserType, WorkflowInstanceType, WorkflowType
from graphql_api.security import permissions
from graphql_api.security.error_codes import ErrorCode, TransportCode
from graphql_api.security.error_codes import OperationInfoType as OperationInfo
from graphql_api.security.errors import ApiError, Kind, permission_denied, to_operation_info
from graphql_api.security.login import (
    login_on_socket,
    login_refused,
    logout_on_socket,
    longest_username,
)
from graphql_api.security.permissions import (
    ADD_WORKFLOW,
    CHANGE_INSTANCE,
    CHANGE_WORKFLOW,
    DELETE_WORKFLOW,
    MIGRATE_INSTANCE,
    current_user,
    has_perm,
)


def mutation(description: str, *, perm: str | None) -> Callable[[Callable[..., Any]], Any]:
    """A mutation that needs ``perm`` (``None``: anyone) and returns ``<Name>Payload``, the union
    of its object and ``OperationInfo``: expected errors (the engine's, this layer's, Django's
    ``PermissionDenied`` and ``ValidationError``) become ``OperationInfo`` with a
    ``WorkflowErrorCode``; anything else is a bug and is raised (masked and logged)."""

    def decorate(resolver: Callable[..., Any]) -> Any:
        @functools.wraps(resolver)
        def guarded(self: Any, info: Info, **kwargs: Any) -> Any:
            try:
                permissions.recheck_socket_user(
                    info
                )  # over a WebSocket: the user as of now, exactly
                if perm is not None and not has_perm(info, perm):
                    raise permission_denied()
                return resolver(self, info, **kwargs)
            except Exception as error:
                return to_operation_info(error)

        returns = typing.get_type_hints(resolver)["return"]
        if not isinstance(returns, type):  # e.g. `UserType | OperationInfo` written out already
            returns = next(t for t in typing.get_args(returns) if t is not OperationInfo)
        name = to_camel_case(resolver.__name__)
        union = Annotated[
            Union[returns, OperationInfo],
            strawberry.union(
                name[0].upper() + name[1:] + "Payload", description=payload_description(name)
            ),
        ]
        guarded.__signature__ = inspect.signature(resolver).replace(return_annotation=union)
        return strawberry_django.mutation(description=description)(guarded)

    return decorate


def payload_description(mutation_name: str) -> str:
    """The description of the payload union of the mutation ``mutation_name`` (camelCase)."""
    return (
        f"What `{mutation_name}` returns: its result when it succeeded, otherwise why it did not "
        "(each member says which it is: select `__typename`)."
    )


def deprecated(field: Any, reason: str) -> Any:
    """``field`` (a mutation) marked ``@deprecated(reason: ...)``: an old name kept working."""
    field.deprecation_reason = reason
    return field


def same_mutation(field: Any, name: str, input_type: type, *, perm: str | None) -> Any:
    """The mutation ``field`` under a second name ``name`` (snake_case), taking ``input_type``
    (an input with the same fields): the same resolver, description and permission; its own
    payload union. How a mutation is renamed: the old name stays, ``deprecated``."""
    resolver = field.base_resolver.wrapped_func.__wrapped__  # under `mutation`'s guard
    (argument,) = (a for a in field.arguments if a.python_name == "input")

    def renamed(self: Any, info: Info, input: Any) -> Any:
        return resolver(self, info, input)

    renamed.__name__ = renamed.__qualname__ = name
    renamed.__annotations__ = {
        "info": Info,
        "input": Annotated[input_type, strawberry.argument(description=argument.description)],
        "return": typing.get_type_hints(resolver)["return"],
    }
    return mutation(field.description, perm=perm)(renamed)


def _instance(info: Info, input_id: str) -> WorkflowInstance:
    """The instance ``input_id`` names, if the viewer may see it (else NOT_FOUND, as for none)."""
    visible = permissions.visible_instances(WorkflowInstance.objects.all(), info)
    instance = get_by_global_id(
        visible, input_id, "WorkflowInstance", field="instanceId", info=info
    )
    # The payload shows the instance the viewer just changed, reloaded (_reloaded): its type's
    # is_type_of reads this instead of querying (which it could not do in the event loop over
    # a WebSocket).
    permissions.vouch(info, instance.pk)
    return instance


def _context(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(
            ErrorCode.INVALID_CONTEXT,
            "`context` must be a JSON object.",
            kind=Kind.VALIDATION,
            field="context",
        )
    try:
        check_context(value)  # size, depth, NaN/Infinity, integers beyond 64 bits
    except InvalidContext as error:
        raise ApiError(
            ErrorCode.INVALID_CONTEXT, error.message, kind=Kind.VALIDATION, field="context"
        ) from None
    return value


def _changed(
    info: Info,
    instance: WorkflowInstance,
    input: Any,
    service: Callable[..., Any],
    *args: Any,
    **kw: Any,
) -> WorkflowInstance:
    """``service(instance, *args, **kw)`` as the viewer, at ``input.expected_version``; the
    instance reloaded."""
    service(
        instance, *args, actor=current_user(info), expected_version=input.expected_version, **kw
    )
    return _reloaded(instance)


def _reloaded(instance: WorkflowInstance) -> WorkflowInstance:
    return WorkflowInstance.objects.select_related(
        "workflow", "current_step", "current_step_status"
    ).get(pk=instance.pk)


_SET_STATUS = "The instance, the status to set, the context, the expected version."
_NOT_ALLOWED = "This workflow cannot be started on this model."
_NO_OBJECT = "No object with this primary key, or you may not view it."


def _startable_object(info: Info, workflow_name: str, content_type: str, object_id: str) -> Any:
    """The object to start ``workflow_name`` on, checked in an order that reveals nothing: the
    model first (the same refusal whether or not the object exists), then the object, which the
    viewer must be allowed to view (a hidden one is refused exactly like a missing one)."""
    workflow = Workflow.objects.filter(name=workflow_name).first()
    if workflow is None:
        raise WorkflowNotFound("No workflow has this name.", workflow_name=workflow_name)
    app_label, _, model = content_type.partition(".")
    try:
        ct = ContentType.objects.get_by_natural_key(app_label, model.lower())
    except ContentType.DoesNotExist:
        ct = None
    model_class = ct.model_class() if ct else None
    if model_class is None or ct.pk not in compiled.load(workflow).content_type_ids:
        raise ModelNotAllowed(_NOT_ALLOWED)
    try:
        obj = model_class._default_manager.filter(pk=object_id).first()
    except (ValueError, TypeError, OverflowError, ValidationError, DatabaseError):
        obj = None
    if obj is None or not authorization.may_view_object(current_user(info), obj):
        raise ContentObjectNotFound(_NO_OBJECT)
    return obj


def _lifecycle_mutation(input_type: type, name: str, description: str) -> Any:
    """The mutation ``name`` that applies the lifecycle service of that name (hold, resume,
    cancel) to the instance ``input.instanceId`` names: the three differ only in their service
    and input."""

    def resolver(self: Any, info: Info, input: Any) -> WorkflowInstanceType:
        # Looked up on each call, as `services.<name>` written in a method body would be.
        service = getattr(services, name)
        return _changed(info, _instance(info, input.instance_id), input, service)

    resolver.__name__ = resolver.__qualname__ = name  # names the field and its Payload union
    described = strawberry.argument(description="The instance, and the version you expect it at.")
    resolver.__annotations__ = {
        "info": Info,
        "input": Annotated[input_type, described],
        "return": WorkflowInstanceType,
    }
    return mutation(description, perm=CHANGE_INSTANCE)(resolver)


@strawberry.type(
    name="Mutation", description="Change workflow instances and definitions; log in and out."
)
class Mutation:
    # ------------------------------------------------------------------ instances

    @mutation(
        "Start a workflow for an object, on the initial step with its default status. If an "
        "unfinished instance of that workflow exists for the object, it is returned unchanged. "
        "Needs `change_workflowinstance` and the permission to view the object; the workflow must "
        "list the object's model (`contentTypes`, else MODEL_NOT_ALLOWED).",
        perm=CHANGE_INSTANCE,
    )
    def start_workflow_instance(
        self,
        info: Info,
        input: Annotated[
            StartWorkflowInstanceInput,
            strawberry.argument(description="The workflow, and the object to start it for."),
        ],
    ) -> WorkflowInstanceType:
        name = workflow_named(info, input.workflow_name, input.workflow_id)
        obj = _startable_object(info, name, input.content_type, str(input.object_id))
        instance = services.start_workflow_instance(name, obj, actor=current_user(info))
        # Loaded through the visibility rule when the viewer sees it (marked: no query in
        # is_type_of); otherwise is_type_of refuses it as over HTTP.
        seen = permissions.visible_instances(WorkflowInstance.objects.filter(pk=instance.pk), info)
        return seen.select_related(
            "workflow", "current_step", "current_step_status"
        ).first() or _reloaded(instance)

    @functools.partial(deprecated, reason="Use `setWorkflowInstanceStatus`.")
    @mutation(
        "Set a status of the current step. A completion status advances along the first matching "
        "transition (or completes on a final step, or records NO_TRANSITION); the on-hold and "
        "cancellation statuses hold and cancel. Needs `change_workflowinstance`, and the status's "
        "permission if it names one.",
        perm=CHANGE_INSTANCE,
    )
    def update_workflow_step_status(
        self,
        info: Info,
        input: Annotated[
            UpdateWorkflowStepStatusInput, strawberry.argument(description=_SET_STATUS)
        ],
    ) -> WorkflowInstanceType:
        instance = _instance(info, input.instance_id)
        if (input.status_name is None) == (input.status_id is None):
            raise ApiError(
                TransportCode.BAD_USER_INPUT,
                "Give either `statusName` or `statusId`.",
                kind=Kind.VALIDATION,
                field="statusName",
            )
        status_id = None
        if input.status_id is not None:
            status_id = parse_global_id(
                input.status_id, "WorkflowStepStatus", field="statusId", info=info
            )
        context = _context(input.context)
        return _changed(
            info,
            instance,
            input,
            services.update_workflow_step_status,
            input.status_name,
            context,
            status_id=status_id,
        )

    set_workflow_instance_status = same_mutation(
        update_workflow_step_status,
        "set_workflow_instance_status",
        SetWorkflowInstanceStatusInput,
        perm=CHANGE_INSTANCE,
    )

    @mutation(
        "Retry the transitions of an instance whose completion status found no match "
        "(`isAwaitingTransition`), e.g. with new context. Needs `change_workflowinstance`, and the "
        "permission of the completion status it retries, if it names one.",
        perm=CHANGE_INSTANCE,
    )
    def advance_workflow_instance(
        self,
        info: Info,
        input: Annotated[
            AdvanceWorkflowInstanceInput,
            strawberry.argument(description="The instance, the context, the expected version."),
        ],
    ) -> WorkflowInstanceType:
        instance = _instance(info, input.instance_id)
        context = _context(input.context)
        return _changed(info, instance, input, services.advance_workflow_instance, context)

    set_workflow_on_hold = deprecated(
        _lifecycle_mutation(
            SetWorkflowOnHoldInput,
            "set_workflow_on_hold",
            "Put an active instance on hold (the step's on-hold status if it has one). Needs "
            "`change_workflowinstance`, and that status's permission if it names one.",
        ),
        "Use `holdWorkflowInstance`.",
    )
    hold_workflow_instance = same_mutation(
        set_workflow_on_hold,
        "hold_workflow_instance",
        HoldWorkflowInstanceInput,
        perm=CHANGE_INSTANCE,
    )
    resume_workflow_instance = _lifecycle_mutation(
        ResumeWorkflowInstanceInput,
        "resume_workflow_instance",
        "Resume an instance on hold (from an on-hold status, back to the step's default status). "
        "Needs `change_workflowinstance`.",
    )
    cancel_workflow_instance = _lifecycle_mutation(
        CancelWorkflowInstanceInput,
        "cancel_workflow_instance",
        "Cancel an unfinished instance (the step's cancellation status if it has one). Needs "
        "`change_workflowinstance`, and that status's permission if it names one.",
    )

    @mutation(
        "Move running instances of a workflow to one of its published versions (`toVersion`), "
        "or with `dryRun` only tell where each would land or why it cannot move "
        "(UNMAPPED_STEP, TARGET_STATUS_ROLE, PERMISSION_DENIED). Each instance moves in its own "
        "transaction with one MIGRATED event (live over subscriptions); one changed meanwhile is "
        "FAILED with VERSION_CONFLICT and left as it was. At most `first` instances per request "
        "(largest: `MAX_PAGE_SIZE`): continue with `after`. Only instances the viewer may see are "
        "listed or moved. Needs `migrate_workflowinstance`, and the statuses' permissions.",
        perm=MIGRATE_INSTANCE,
    )
    def migrate_workflow_instances(
        self,
        info: Info,
        input: Annotated[
            MigrateWorkflowInstancesInput,
            strawberry.argument(
                description="The workflow, the target version, the mapping, which instances."
            ),
        ],
    ) -> WorkflowMigrationType:
        return migration.migrate_workflow_instances(info, input)

    claim_work_item = mutation(inbox.CLAIM, perm=CHANGE_INSTANCE)(inbox.claim_work_item)
    release_work_item = mutation(inbox.RELEASE, perm=CHANGE_INSTANCE)(inbox.release_work_item)
    delegate_work_item = mutation(inbox.DELEGATE, perm=CHANGE_INSTANCE)(inbox.delegate_work_item)

    # ------------------------------------------------------------------ definitions

    @mutation(
        "Create a workflow from a whole definition, validated as a whole (one initial step, a "
        "final step, one default status per step, known steps, compiling CEL) and saved "
        "atomically. Needs `add_workflow`.",
        perm=ADD_WORKFLOW,
    )
    def create_workflow(
        self,
        info: Info,
        input: Annotated[
            WorkflowDefinitionInput, strawberry.argument(description="The whole definition.")
        ],
    ) -> WorkflowType:
        # An existing name is refused by the engine (INVALID_DEFINITION on field "name").
        return definitions.import_workflow(definition_document(input), actor=current_user(info))

    @mutation(
        "Replace the definition of the workflow with this name (WORKFLOW_IN_USE if instances still "
        "need what would change). Needs `change_workflow`.",
        perm=CHANGE_WORKFLOW,
    )
    def update_workflow(
        self,
        info: Info,
        input: Annotated[
            WorkflowDefinitionInput,
            strawberry.argument(
                description="The whole new definition; its `name` names the workflow to replace."
            ),
        ],
    ) -> WorkflowType:
        if not Workflow.objects.filter(name=input.name).exists():
            raise WorkflowNotFound("No workflow has this name.", workflow_name=input.name)
        return definitions.import_workflow(
            definition_document(input), replace=True, actor=current_user(info)
        )

    @mutation(
        "Delete a workflow definition. Refused with WORKFLOW_IN_USE while instances of it exist. "
        "Needs `delete_workflow`.",
        perm=DELETE_WORKFLOW,
    )
    def delete_workflow(
        self,
        info: Info,
        input: Annotated[
            DeleteWorkflowInput, strawberry.argument(description="The workflow to delete.")
        ],
    ) -> DeletedWorkflowType:
        name = workflow_named(info, input.name, input.workflow_id, fields=("name", "workflowId"))
        workflow = Workflow.objects.filter(name=name).first()
        if workflow is None:
            raise WorkflowNotFound("No workflow has this name.", workflow_name=name)
        deleted = DeletedWorkflowType(
            id=strawberry.ID(relay.to_base64("DeletedWorkflow", workflow.pk)),
            workflow_id=strawberry.ID(relay.to_base64(schema_name(info, "Workflow"), workflow.pk)),
            name=workflow.name,
        )
        definitions.delete_workflow(workflow)
        return deleted

    # ------------------------------------------------------------------ session

    @mutation(
        "Log in with a Django session (sets the `sessionid` cookie and rotates `csrftoken`: read "
        "the new token before the next POST). After repeated failures from one client the login is "
        "refused for a while with TOO_MANY_ATTEMPTS.",
        perm=None,
    )
    def login(
        self,
        info: Info,
        username: Annotated[str, strawberry.argument(description="The account's username.")],
        password: Annotated[str, strawberry.argument(description="Its password.")],
    ) -> UserType:
        request = get_request(info)
        if len(username) > longest_username():
            # no account has it; nothing to check or throttle (django-axes could not store it)
            return login_refused(request)
        if not isinstance(request, HttpRequest):  # a WebSocket: the consumer
            return login_on_socket(request.scope, username, password)
        try:
            return resolve_login(info, username, password)
        except ValidationError:
            return login_refused(request)

    @strawberry.mutation(
        description=(
            "Log out of the session (over a WebSocket too: the session ends for the socket and for "
            "HTTP). True if someone was logged in."
        )
    )
    @django_resolver(qs_hook=None)
    def logout(self, info: Info) -> bool:
        request = get_request(info)
        if not isinstance(request, HttpRequest):  # a WebSocket: the consumer
            return logout_on_socket(request.scope)
        return resolve_logout(info)
