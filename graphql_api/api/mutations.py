"""The Mutation type. Each mutation is thin: resolve the IDs, call one service of
:mod:`django_steps` with the current user as actor, return the object.

The rest is the same for every mutation and lives in :func:`graphql_api.api.payloads.mutation`:
the permission the mutation needs (``PERMISSION_DENIED`` before anything is looked up, so a
refused client learns nothing about IDs), the mapping of expected errors to ``OperationInfo``
(:mod:`graphql_api.security.errors`) with one of the codes the mutation declares (``codes=``),
and ``VersionConflict`` for a change at a stale ``expectedVersion``. Instances are looked up
through the visibility rule, so a hidden instance is ``INSTANCE_NOT_FOUND`` exactly like a
missing one."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import strawberry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http import HttpRequest
from strawberry import relay
from strawberry.types import Info
from strawberry_django.auth.mutations import resolve_login, resolve_logout
from strawberry_django.resolvers import django_resolver
from strawberry_django.utils.requests import get_request

from django_steps import authorization, compiled, definitions, services
from django_steps.cel import check_context
from django_steps.exceptions import (
    ContentObjectNotFound,
    InvalidContext,
    ModelNotAllowed,
    UnknownStatus,
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
from graphql_api.api.payloads import deprecated, mutation, same_mutation
from graphql_api.api.results import DeletedWorkflowType
from graphql_api.api.types import UserType, WorkflowInstanceType, WorkflowType
from graphql_api.security import permissions
from graphql_api.security.error_codes import ErrorCode, TransportCode
from graphql_api.security.errors import ApiError, Kind
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
)

# The codes each mutation can return in OperationInfo (its `codes=`: its description lists them and
# its `<Name>ErrorCode` enum has them). A change at a stale `expectedVersion` is VersionConflict.
E, T = ErrorCode, TransportCode
#: Any guarded mutation: a missing permission; a value the database cannot store, or a host
#: model's own validation (BAD_USER_INPUT).
_ANY = (E.PERMISSION_DENIED, T.BAD_USER_INPUT)
#: A change of the instance `instanceId` names.
_CHANGE = (*_ANY, T.INVALID_ID, E.INSTANCE_NOT_FOUND, E.INSTANCE_FINISHED)
#: A change that evaluates transitions with the client's `context`.
_EVALUATES = (E.INSTANCE_ON_HOLD, E.INVALID_CONTEXT, E.CONDITION_ERROR)
_WORK_ITEM = (*_ANY, T.INVALID_ID, E.WORK_ITEM_NOT_FOUND)
_DEFINITION = (*_ANY, E.INVALID_DEFINITION, E.CONDITION_SYNTAX_ERROR)


def _instance(info: Info, input_id: str) -> WorkflowInstance:
    """The instance ``input_id`` names, if the viewer may see it (else INSTANCE_NOT_FOUND, as
    for none)."""
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


def _chosen_status(info: Info, input: UpdateWorkflowStepStatusInput) -> tuple[Any, Any, str]:
    """``(name, primary key, field)`` of the status ``input`` names: by ``status`` (a ``@oneOf``:
    GraphQL guarantees exactly one of its fields) or by the deprecated ``statusName`` /
    ``statusId``, exactly one of the three. A status ID of nothing is UNKNOWN_STATUS, as one
    of another step's status."""
    given = {  # SetWorkflowInstanceStatusInput has no deprecated fields
        "status": input.status,
        "statusName": getattr(input, "status_name", None),
        "statusId": getattr(input, "status_id", None),
    }
    given = {name: value for name, value in given.items() if value is not None}
    if len(given) != 1:
        raise ApiError(
            TransportCode.BAD_USER_INPUT,
            "Give the status as `status: {name: …}` or `status: {id: …}`.",
            kind=Kind.VALIDATION,
            field="status",
        )
    ((field, value),) = given.items()
    if field == "status":
        if value.name is not None and value.name is not strawberry.UNSET:
            return value.name, None, "status.name"
        field, value = "status.id", value.id
    elif field == "statusName":
        return value, None, field
    try:
        return None, parse_global_id(value, "WorkflowStepStatus", field=field, info=info), field
    except ApiError as error:
        if error.code != TransportCode.NOT_FOUND:
            raise
        raise ApiError(
            ErrorCode.UNKNOWN_STATUS,
            "The current step has no status with this ID.",
            kind=Kind.VALIDATION,
            field=field,
        ) from None


_SET_STATUS = "The instance, the status to set, the context, the expected version."
_NOT_ALLOWED = "This workflow cannot be started on this model."
_NO_OBJECT = "No object with this primary key, or you may not view it."


def _startable_object(info: Info, workflow_name: str, content_type: str, object_id: str) -> Any:
    """The object to start ``workflow_name`` on, checked in an order that reveals nothing: the
    model first (the same refusal whether or not the object exists), then the object, which the
    viewer must be allowed to view (a hidden one is refused exactly like a missing one)."""
    workflow = Workflow.objects.filter(name=workflow_name).first()
    if workflow is None:
        raise WorkflowNotFound("No workflow has this name.", field="workflowName")
    app_label, _, model = content_type.partition(".")
    try:
        ct = ContentType.objects.get_by_natural_key(app_label, model.lower())
    except ContentType.DoesNotExist:
        ct = None
    model_class = ct.model_class() if ct else None
    if model_class is None or ct.pk not in compiled.load(workflow).content_type_ids:
        raise ModelNotAllowed(_NOT_ALLOWED, field="contentType")
    try:
        obj = model_class._default_manager.filter(pk=object_id).first()
    except (ValueError, TypeError, OverflowError, ValidationError, DatabaseError):
        obj = None
    if obj is None or not authorization.may_view_object(current_user(info), obj):
        raise ContentObjectNotFound(_NO_OBJECT, field="objectId")
    return obj


def _lifecycle_mutation(
    input_type: type, name: str, description: str, codes: tuple[str, ...]
) -> Any:
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
    return mutation(description, perm=CHANGE_INSTANCE, codes=codes)(resolver)


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
        codes=(*_ANY, T.INVALID_ID, E.WORKFLOW_NOT_FOUND, E.MODEL_NOT_ALLOWED, E.OBJECT_NOT_FOUND),
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
        codes=(*_CHANGE, E.UNKNOWN_STATUS, *_EVALUATES),
    )
    def update_workflow_step_status(
        self,
        info: Info,
        input: Annotated[
            UpdateWorkflowStepStatusInput, strawberry.argument(description=_SET_STATUS)
        ],
    ) -> WorkflowInstanceType:
        instance = _instance(info, input.instance_id)
        status_name, status_id, field = _chosen_status(info, input)
        context = _context(input.context)
        try:
            return _changed(
                info,
                instance,
                input,
                services.update_workflow_step_status,
                status_name,
                context,
                status_id=status_id,
            )
        except UnknownStatus as error:
            error.details["field"] = field  # the input that named it
            raise

    set_workflow_instance_status = same_mutation(
        update_workflow_step_status, "set_workflow_instance_status", SetWorkflowInstanceStatusInput
    )

    @mutation(
        "Retry the transitions of an instance whose completion status found no match "
        "(`isAwaitingTransition`), e.g. with new context. Needs `change_workflowinstance`, and the "
        "permission of the completion status it retries, if it names one.",
        perm=CHANGE_INSTANCE,
        codes=(*_CHANGE, E.NOT_AWAITING_TRANSITION, *_EVALUATES),
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
            (*_CHANGE, E.INSTANCE_ON_HOLD),
        ),
        "Use `holdWorkflowInstance`.",
    )
    hold_workflow_instance = same_mutation(
        set_workflow_on_hold, "hold_workflow_instance", HoldWorkflowInstanceInput
    )
    resume_workflow_instance = _lifecycle_mutation(
        ResumeWorkflowInstanceInput,
        "resume_workflow_instance",
        "Resume an instance on hold (from an on-hold status, back to the step's default status). "
        "Needs `change_workflowinstance`.",
        (*_CHANGE, E.NOT_ON_HOLD),
    )
    cancel_workflow_instance = _lifecycle_mutation(
        CancelWorkflowInstanceInput,
        "cancel_workflow_instance",
        "Cancel an unfinished instance (the step's cancellation status if it has one). Needs "
        "`change_workflowinstance`, and that status's permission if it names one.",
        _CHANGE,
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
        codes=(
            *_ANY,
            T.INVALID_ID,
            E.INSTANCE_NOT_FOUND,
            E.WORKFLOW_NOT_FOUND,
            E.INVALID_DEFINITION,
        ),
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

    claim_work_item = mutation(
        inbox.CLAIM, perm=CHANGE_INSTANCE, codes=(*_WORK_ITEM, E.ALREADY_CLAIMED)
    )(inbox.claim_work_item)
    release_work_item = mutation(
        inbox.RELEASE, perm=CHANGE_INSTANCE, codes=(*_WORK_ITEM, E.NOT_CLAIMED)
    )(inbox.release_work_item)
    delegate_work_item = mutation(
        inbox.DELEGATE, perm=CHANGE_INSTANCE, codes=(*_WORK_ITEM, E.ALREADY_CLAIMED)
    )(inbox.delegate_work_item)

    # ------------------------------------------------------------------ definitions

    @mutation(
        "Create a workflow from a whole definition, validated as a whole (one initial step, a "
        "final step, one default status per step, known steps, compiling CEL) and saved "
        "atomically. Needs `add_workflow`.",
        perm=ADD_WORKFLOW,
        codes=_DEFINITION,
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
        codes=(*_DEFINITION, E.WORKFLOW_NOT_FOUND, E.WORKFLOW_IN_USE),
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
            raise WorkflowNotFound("No workflow has this name.", field="name")
        return definitions.import_workflow(
            definition_document(input), replace=True, actor=current_user(info)
        )

    @mutation(
        "Delete a workflow definition. Refused with WORKFLOW_IN_USE while instances of it exist. "
        "Needs `delete_workflow`.",
        perm=DELETE_WORKFLOW,
        codes=(*_ANY, T.INVALID_ID, E.WORKFLOW_NOT_FOUND, E.WORKFLOW_IN_USE),
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
            raise WorkflowNotFound("No workflow has this name.", field="name")
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
        codes=(T.INVALID_CREDENTIALS, T.TOO_MANY_ATTEMPTS, T.BAD_USER_INPUT),  # NUL: PostgreSQL,
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
