"""``workflowStats``: a workflow's figures for charts (:mod:`django_steps.stats`), as typed series.

Every series has one point per bucket of the window (``buckets``), so a chart library takes
them as they come. The window is bounded (at most ``MAX_BUCKETS`` buckets), and so is every
list: the cost estimate counts them with those bounds (``graphql_api.security.cost_bounds``).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Optional

import strawberry
from strawberry.types import Info
from strawberry_django.resolvers import django_resolver

from django_steps import authorization
from django_steps.models import Workflow, WorkflowStep, WorkflowStepStatus
from django_steps.stats import MAX_BUCKETS, Bucket, WindowError, WorkflowStats, workflow_stats
from graphql_api.api import queries
from graphql_api.api.enums import _mirror
from graphql_api.api.ids import get_by_global_id
from graphql_api.api.results import copied
from graphql_api.api.types import WorkflowStepStatusType, WorkflowStepType, WorkflowType
from graphql_api.security.cost_bounds import MAX_ITEMS, WORK
from graphql_api.security.error_codes import ErrorCode, TransportCode
from graphql_api.security.errors import ApiError, query_error
from graphql_api.security.permissions import VIEW_WORKFLOW, current_user, visible

__all__ = ["Query", "StatsBucket", "StatsWorkflowInput", "WorkflowStatsType"]

StatsBucket = _mirror(
    Bucket,
    name="StatsBucket",
    description="The length of one point of a `workflowStats` series (aligned in UTC).",
    members={"HOUR": "One hour.", "DAY": "One day, midnight to midnight UTC."},
)


@strawberry.type(
    name="WorkflowThroughput",
    description="Instances started, completed and cancelled in one bucket.",
)
class WorkflowThroughputType:
    start: datetime.datetime = strawberry.field(description="The bucket's start.")
    started: int = strawberry.field(description="Instances started in the bucket.")
    completed: int = strawberry.field(description="Instances completed in the bucket.")
    cancelled: int = strawberry.field(description="Instances cancelled in the bucket.")


#: A step's and a status's series are read at the same instants.
_AT_EACH_BUCKET_END = "At the end of each bucket of `buckets` (the bucket running now: now)."


@strawberry.type(
    name="WorkflowStepSeries",
    description="Unfinished instances (`ACTIVE` or `ON_HOLD`) on one step, bucket by bucket.",
)
class WorkflowStepSeriesType:
    step: WorkflowStepType = strawberry.field(description="The step.")
    counts: list[int] = strawberry.field(description=_AT_EACH_BUCKET_END)


@strawberry.type(
    name="WorkflowStatusSeries",
    description="Unfinished instances (`ACTIVE` or `ON_HOLD`) on one status, bucket by bucket.",
)
class WorkflowStatusSeriesType:
    status: WorkflowStepStatusType = strawberry.field(description="The status.")
    counts: list[int] = strawberry.field(description=_AT_EACH_BUCKET_END)


@strawberry.type(
    name="WorkflowStepTime",
    description="How long instances stayed on one step, over the visits that ended in the "
    "window (from entering the step to leaving it or finishing on it).",
)
class WorkflowStepTimeType:
    step: WorkflowStepType = strawberry.field(description="The step.")
    visits: int = strawberry.field(description="Visits that ended in the window.")
    p50_seconds: float = strawberry.field(description="Median time on the step, in seconds.")
    p90_seconds: float = strawberry.field(
        description="90th percentile of the time on the step, in seconds."
    )


@strawberry.type(
    name="WorkflowStats",
    description="A workflow's figures over a window of whole buckets, counting only the "
    "instances the viewer may see. Series have one point per bucket of `buckets`.",
)
class WorkflowStatsType:
    workflow: WorkflowType = strawberry.field(description="The workflow.")
    since: datetime.datetime = strawberry.field(description="The first bucket's start.")
    until: datetime.datetime = strawberry.field(
        description="The last bucket's end (exclusive; may be later than now)."
    )
    bucket: StatsBucket = strawberry.field(description="The length of a bucket.")
    buckets: list[datetime.datetime] = strawberry.field(
        description="The start of each bucket, oldest first."
    )
    throughput: list[WorkflowThroughputType] = strawberry.field(
        description="Instances started, completed and cancelled, per bucket.",
        metadata={MAX_ITEMS: MAX_BUCKETS},
    )
    instances_on_step: list[WorkflowStepSeriesType] = strawberry.field(
        description="Unfinished instances per step over time: every step of the current "
        "definition (in its order), and removed ones that held instances in the window."
    )
    instances_on_status: list[WorkflowStatusSeriesType] = strawberry.field(
        description="Unfinished instances per status over time (the steps' series split by status)."
    )
    time_on_step: list[WorkflowStepTimeType] = strawberry.field(
        description="Time spent per step (median and 90th percentile), for the steps left or "
        "finished on in the window."
    )


@strawberry.input(
    name="StatsWorkflow",
    one_of=True,
    description="The workflow of `workflowStats`: by global ID or by name (give one).",
)
class StatsWorkflowInput:
    id: Optional[strawberry.ID] = strawberry.field(
        default=strawberry.UNSET, description="Global ID of the `Workflow`."
    )
    name: Optional[str] = strawberry.field(
        default=strawberry.UNSET, description="Name of the workflow."
    )


def _workflow(info: Info, workflow: StatsWorkflowInput) -> Workflow | None:
    rows = visible(Workflow.objects.all(), info, VIEW_WORKFLOW)
    if workflow.name is not strawberry.UNSET and workflow.name is not None:
        return rows.filter(name=workflow.name).first()
    try:
        return get_by_global_id(rows, workflow.id, "Workflow", field="workflow.id", info=info)
    except ApiError as error:
        if error.code == ErrorCode.WORKFLOW_NOT_FOUND:  # no such workflow, or not visible: null
            return None
        raise query_error(error.code, error.message, field=error.field) from error


def _stats(workflow: Workflow, stats: WorkflowStats) -> WorkflowStatsType:
    status_ids = [series.status_id for series in stats.on_status]
    statuses = WorkflowStepStatus.all_objects.in_bulk(status_ids)
    step_ids = {series.step_id for series in stats.on_step}
    step_ids |= {time.step_id for time in stats.time_on_step}
    steps = WorkflowStep.all_objects.in_bulk(list(step_ids))
    window = stats.window
    return WorkflowStatsType(
        workflow=workflow,
        since=window.since,
        until=window.until,
        bucket=StatsBucket(window.bucket),
        buckets=window.starts,
        throughput=[copied(WorkflowThroughputType, point) for point in stats.throughput],
        instances_on_step=[
            WorkflowStepSeriesType(step=steps[series.step_id], counts=series.counts)
            for series in stats.on_step
        ],
        instances_on_status=[
            WorkflowStatusSeriesType(status=statuses[series.status_id], counts=series.counts)
            for series in stats.on_status
        ],
        time_on_step=[
            copied(
                WorkflowStepTimeType,
                time,
                step=steps[time.step_id],
                p50_seconds=time.p50.total_seconds(),
                p90_seconds=time.p90.total_seconds(),
            )
            for time in stats.time_on_step
        ],
    )


@strawberry.type(name="Query", description=queries.Query.__strawberry_definition__.description)
class Query(queries.Query):
    @strawberry.field(
        description=(
            "A workflow's figures for charts, over a window of whole buckets (hours or days, "
            "UTC): unfinished instances per step and per status at the end of each bucket, time "
            "spent per step (median, 90th percentile) and instances started, completed and "
            "cancelled per bucket. Computed in the database from the history of the window (and "
            f"of the time since); at most {MAX_BUCKETS} buckets (a longer window is "
            "BAD_USER_INPUT). Counts only the instances the viewer may see; needs "
            "`view_workflowinstance` (PERMISSION_DENIED) and `view_workflow` (null without it, "
            "or when no workflow has this name or ID)."
        ),
        metadata={WORK: MAX_BUCKETS},
    )
    @django_resolver(qs_hook=None)
    def workflow_stats(
        self,
        info: Info,
        workflow: Annotated[
            StatsWorkflowInput,
            strawberry.argument(description="The workflow: `{name: …}` or `{id: …}`."),
        ],
        since: Annotated[
            Optional[datetime.datetime],
            strawberry.argument(
                description="Start of the window, rounded down to a bucket's start (default: "
                "30 days, or 48 hours, before the end)."
            ),
        ] = None,
        until: Annotated[
            Optional[datetime.datetime],
            strawberry.argument(
                description="End of the window, rounded up to a bucket's end (default: now, the "
                "bucket running now included)."
            ),
        ] = None,
        bucket: Annotated[
            StatsBucket, strawberry.argument(description="The length of one point.")
        ] = StatsBucket.DAY,
    ) -> Optional[WorkflowStatsType]:
        user = current_user(info)
        if not authorization.may_read_instances(user):
            raise query_error(
                ErrorCode.PERMISSION_DENIED,
                "You do not have permission to view workflow instances.",
            )
        found = _workflow(info, workflow)
        if found is None:
            return None
        try:
            stats = workflow_stats(found, actor=user, since=since, until=until, bucket=bucket.value)
        except WindowError as error:
            raise query_error(
                TransportCode.BAD_USER_INPUT, error.message, field=error.field
            ) from None
        return _stats(found, stats)
