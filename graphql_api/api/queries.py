"""The Query type."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Optional

import strawberry
import strawberry_django
from django.db.models import prefetch_related_objects
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry_django.optimizer import OptimizerStore, optimize
from strawberry_django.resolvers import django_resolver

from django_steps import authorization, models, services
from django_steps.cel import check_context
from django_steps.exceptions import InvalidContext, WorkflowError
from django_steps.models import Workflow, WorkflowInstance
from django_steps.selectors import events_after, newest_cursor
from graphql_api.api.connections import Connection, connection
from graphql_api.api.feed import WorkflowEventFeedEdgeType, WorkflowEventFeedType
from graphql_api.api.ids import NOT_FOUND_CODES, our_name, parse_global_id, workflow_named
from graphql_api.api.results import TransitionDryRunType, TransitionEvaluationType, copied
from graphql_api.api.types import (
    MAX_PAGE_SIZE,
    UserType,
    WorkflowInstanceType,
    WorkflowType,
)
from graphql_api.security import permissions
from graphql_api.security.error_codes import ErrorCode, TransportCode
from graphql_api.security.errors import ApiError, query_error, raise_for_query
from graphql_api.security.permissions import VIEW_WORKFLOW, current_user, visible


def _definitions(model, manager: str = "objects"):
    return lambda info: visible(getattr(model, manager).all(), info, VIEW_WORKFLOW)


#: Global ID type name -> the rows of it the viewer may read.
NODE_MODELS = {
    "Workflow": _definitions(models.Workflow),
    "WorkflowVersion": _definitions(models.WorkflowVersion),
    # steps, statuses and transitions a later version removed too (`all_objects`): history and
    # earlier versions refer to them
    "WorkflowStep": _definitions(models.WorkflowStep, "all_objects"),
    "WorkflowStepStatus": _definitions(models.WorkflowStepStatus, "all_objects"),
    "WorkflowTransition": _definitions(models.WorkflowTransition, "all_objects"),
    "WorkflowInstance": lambda info: permissions.visible_instances(
        models.WorkflowInstance.objects.all(), info
    ),
    "WorkflowEvent": lambda info: permissions.visible_events(
        models.WorkflowEvent.objects.all(), info
    ),
    "User": lambda info: permissions.visible_users(info),
    "WorkItem": lambda info: authorization.visible_work_items(
        current_user(info), models.WorkItem.objects.all()
    ),
}


@strawberry.type(
    name="Query", description="Read workflow definitions, instances and their history."
)
class Query:
    # Plain resolvers that query run through django_resolver: in a worker thread when executed
    # asynchronously (over a WebSocket), as strawberry-django's fields do (permissions.py).
    @strawberry.field(
        description="Any object by its global ID (null if it does not exist or you may not read "
        "it)."
    )
    @django_resolver(qs_hook=None)
    def node(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="A global ID (an `id` field's value).")
        ],
    ) -> Optional[relay.Node]:
        try:
            gid = relay.GlobalID.from_id(str(id))
        except ValueError:
            raise query_error(TransportCode.INVALID_ID, "Not a valid global ID.") from None
        ours = our_name(info, gid.type_name)
        readable = NODE_MODELS.get(ours)
        if readable is None:
            raise query_error(
                TransportCode.INVALID_ID, "The global ID names a type this API does not serve."
            )
        try:
            pk = parse_global_id(str(id), ours, info=info)
        except ApiError as error:
            if error.code in NOT_FOUND_CODES:
                return None
            raise_for_query(error)
        return readable(info).filter(pk=pk).first()

    @connection(
        Connection[WorkflowType],
        description="Workflow definitions (needs `view_workflow`), by name.",
        max_results=MAX_PAGE_SIZE,
    )
    def workflows(self, info: Info) -> Iterable[Workflow]:
        return visible(Workflow.objects.all(), info, VIEW_WORKFLOW)

    workflow_instances: Connection[WorkflowInstanceType] = connection(
        description=(
            "Workflow instances the viewer may see (`view_workflowinstance`, narrowed by the "
            "project's visibility rule), newest first unless ordered."
        ),
        max_results=MAX_PAGE_SIZE,
    )

    @strawberry_django.field(
        description="The workflow with this name (null if none, or not readable)."
    )
    def workflow(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="The workflow's unique name.")],
    ) -> Optional[WorkflowType]:
        return visible(Workflow.objects.filter(name=name), info, VIEW_WORKFLOW)

    @strawberry_django.field(
        description="The workflow instance with this global ID (null if none, or the viewer may "
        "not see it)."
    )
    def workflow_instance(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global ID of the instance.")],
    ) -> Optional[WorkflowInstanceType]:
        try:
            pk = parse_global_id(id, "WorkflowInstance", info=info)
        except ApiError as error:
            if error.code in NOT_FOUND_CODES:
                return WorkflowInstance.objects.none()
            raise_for_query(error)
        return WorkflowInstance.objects.filter(pk=pk)

    @strawberry_django.field(
        description=(
            "Dry run: evaluate every outgoing transition of the instance's current step as a "
            "change would (the attached object's fields from the database, `context` as `input`) "
            "and tell which one a completion status would fire. Changes nothing. Null if the "
            "instance does not exist or the viewer may not see it."
        )
    )
    def evaluate_transitions(
        self,
        info: Info,
        instance_id: Annotated[
            strawberry.ID, strawberry.argument(description="Global ID of the instance.")
        ],
        context: Annotated[
            Optional[JSON],
            strawberry.argument(description="Your values, read by conditions as `input.<key>`."),
        ] = None,
    ) -> Optional[TransitionDryRunType]:
        try:
            pk = parse_global_id(instance_id, "WorkflowInstance", field="instanceId", info=info)
        except ApiError as error:
            if error.code in NOT_FOUND_CODES:
                return None
            raise_for_query(error)
        if context is not None:
            try:
                if not isinstance(context, dict):
                    raise InvalidContext("`context` must be a JSON object.")
                check_context(context)  # size, depth, NaN/Infinity, integers beyond 64 bits
            except InvalidContext as invalid:
                error = query_error(ErrorCode.INVALID_CONTEXT, invalid.message)
                error.extensions["field"] = "context"
                raise error from None
        instance = (
            permissions.visible_instances(WorkflowInstance.objects.all(), info)
            .filter(pk=pk)
            .first()
        )
        if instance is None:
            return None
        permissions.vouch(info, instance.pk)  # the dry run's instance: loaded through the rule
        try:
            dry_run = services.evaluate_transitions(instance, context)
        except WorkflowError as error:
            raise_for_query(error)
        return TransitionDryRunType(
            instance=dry_run.instance,
            evaluations=[_evaluation(e) for e in dry_run.evaluations],
            fired=_evaluation(dry_run.fired) if dry_run.fired else None,
            error=dry_run.error,
        )

    @strawberry.field(
        description=(
            "The commit-ordered history over HTTP: the events after `after` (an event `cursor`, "
            "the same cursors `workflowInstanceEvents` hands out) that the viewer may see, of one "
            "instance (`instanceId`), one workflow (`workflowName` or `workflowId`) or all, "
            "oldest first, at most `first` (default and largest: `MAX_PAGE_SIZE`). To catch up, "
            "then stay live: read pages until `pageInfo.hasNextPage` is false, then subscribe "
            "with `after: cursor` — nothing is missed or repeated. Only events no running "
            "transaction can precede are returned (see the README)."
        )
    )
    @django_resolver(qs_hook=None)
    def workflow_events(
        self,
        info: Info,
        after: Annotated[
            Optional[str],
            strawberry.argument(description="An event `cursor`: return the events after it."),
        ] = None,
        first: Annotated[
            Optional[int],
            strawberry.argument(description="How many events at most (default and largest: 100)."),
        ] = None,
        instance_id: Annotated[
            Optional[strawberry.ID],
            strawberry.argument(description="Global ID of one `WorkflowInstance`."),
        ] = None,
        workflow_name: Annotated[
            Optional[str], strawberry.argument(description="Name of a workflow: all its instances.")
        ] = None,
        workflow_id: Annotated[
            Optional[strawberry.ID],
            strawberry.argument(description="Global ID of a workflow (instead of `workflowName`)."),
        ] = None,
    ) -> WorkflowEventFeedType:

        # The live path builds on these query types (graphql_api.live.subscriptions imports
        # this module): its stream readers are imported on use.
        from graphql_api.live.streams import InvalidCursor, parse_cursor, read_events
        from graphql_api.live.subscriptions import resolve_stream, resume_cursor

        try:
            position = parse_cursor(after)
        except InvalidCursor as error:
            raise query_error(error.code, str(error), field="after") from error
        if first is not None and not 0 <= first <= MAX_PAGE_SIZE:
            raise query_error(
                TransportCode.BAD_USER_INPUT,
                f"`first` must be between 0 and {MAX_PAGE_SIZE}.",
                field="first",
            )
        size = MAX_PAGE_SIZE if first is None else first
        if workflow_id is not None:
            try:
                workflow_name = workflow_named(info, workflow_name, workflow_id)
            except ApiError as error:
                raise query_error(error.code, error.message, field=error.field) from None
        user = current_user(info)
        spec = resolve_stream(user, instance_id, workflow_name, position, info=info)
        position = resume_cursor(user, spec, position)  # past the newest: no refusal, no leak
        visible = authorization.visible_events(
            user,
            events_after(position or 0, instance_id=spec.instance_id, workflow_id=spec.workflow_id),
        )
        # `first: 0` without `after` is a head read: the newest cursor, and nothing after it
        events = read_events(visible, size + 1) if size or position is not None else []
        for event in events:
            permissions.vouch(info, event.instance_id)
        has_next = len(events) > size
        events = events[:size]
        edges = [
            WorkflowEventFeedEdgeType(cursor=str(event.cursor), node=node)
            for event, node in zip(events, _with_selection(info, events), strict=False)
        ]
        if events:
            resume = events[-1].cursor
        elif position is not None:
            resume = position
        else:
            resume = newest_cursor(
                instance_id=spec.instance_id, workflow_id=spec.workflow_id, user=user
            )
        return WorkflowEventFeedType(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=has_next,
                has_previous_page=position is not None and position > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=str(resume),  # set also on an empty page: where to continue
            ),
            cursor=str(resume),
        )

    @strawberry_django.field(description="The logged-in user, or null.")
    def me(self, info: Info) -> Optional[UserType]:
        user = current_user(info)
        return user if getattr(user, "is_authenticated", False) else None


def _node_fields(info: Info) -> list[FieldNode]:
    """The ``edges { node }`` field nodes of this ``workflowEvents`` field, fragments included."""
    raw = info._raw_info

    def fields(nodes: Iterable[Any], name: str) -> list[FieldNode]:
        found: list[FieldNode] = []
        stack = [s for node in nodes if node.selection_set for s in node.selection_set.selections]
        while stack:
            selection = stack.pop()
            if isinstance(selection, FieldNode):
                if selection.name.value == name:
                    found.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                stack.extend(selection.selection_set.selections)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = raw.fragments.get(selection.name.value)
                if fragment is not None:
                    stack.extend(fragment.selection_set.selections)
        return found

    return fields(fields(raw.field_nodes, "edges"), "node")


def _with_selection(info: Info, events: list[models.WorkflowEvent]) -> list[models.WorkflowEvent]:
    """``events`` loaded again with what their selection needs, joined and prefetched by
    strawberry-django's optimizer as for any list of the schema (one query per relation, not
    one per event): ``workflowEvents`` returns its own type, so the optimizer does not see it."""
    nodes = _node_fields(info)
    if not events or not nodes:
        return events
    raw = info._raw_info
    schema = raw.schema
    node_info = raw._replace(
        field_name="node",
        field_nodes=nodes,
        return_type=schema.get_type("WorkflowEvent"),
        parent_type=schema.get_type("WorkflowEventFeedEdge"),
    )
    rows = models.WorkflowEvent.objects.filter(pk__in=[event.pk for event in events])
    # is_type_of reads instance_id (vouched for above): never a deferred load per event
    store = OptimizerStore(only=["instance_id", "txid", "position"])
    loaded = {event.pk: event for event in optimize(rows, node_info, store=store)}
    page = [loaded.get(event.pk, event) for event in events]
    if any(node.name.value == "context" for field in nodes for node in _direct_fields(field)):
        # `context` asks whether the viewer may view each attached object: load them together
        # (one query per model), not one by one
        prefetch_related_objects(page, "instance__content_object")
    return page


def _direct_fields(field: FieldNode) -> list[FieldNode]:
    selections = field.selection_set.selections if field.selection_set else ()
    return [s for s in selections if isinstance(s, FieldNode)]


def _evaluation(e: services.TransitionEvaluation):
    return copied(TransitionEvaluationType, e)
