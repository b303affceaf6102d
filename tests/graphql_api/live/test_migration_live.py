"""A migration reaches subscribers: one MIGRATED event per instance, carrying the version it
moved to (``migrateWorkflowInstances`` over HTTP, the event over a real WebSocket stack)."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from django_steps import services
from django_steps.models import WorkflowStep, WorkflowStepStatus
from django_steps.versions import publish_workflow

from .conftest import login_session, make_user, new_claim
from .helpers import PROTOCOLS, GraphQLSocket, instance_gid

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

EVENTS = """subscription($instanceId: ID, $after: String) {
  workflowInstanceEvents(instanceId: $instanceId, after: $after) {
  kind sequence definitionVersion toStatus { name } } }"""
MIGRATE = """mutation($input: MigrateWorkflowInstancesInput!) {
  migrateWorkflowInstances(input: $input) { ... on WorkflowMigration { migratedCount } } }"""


def publish_v2(workflow) -> None:
    """Version 2: the first step gets a status "Parked" (the running instance stays on 1)."""
    step = WorkflowStep.objects.get(workflow=workflow, name="Submit Claim")
    WorkflowStepStatus.objects.create(step=step, name="Parked")
    publish_workflow(workflow, validate=False)


def migrate_over_http() -> dict:
    user = make_user(
        "migrator",
        "django_steps.view_workflowinstance",
        "django_steps.migrate_workflowinstance",
        groups=("reviewers",),
    )
    client = Client()
    client.force_login(user)
    body = {
        "query": MIGRATE,
        "variables": {"input": {"workflowName": "Claim Processing", "toVersion": 2}},
    }
    response = client.post("/graphql/", json.dumps(body), content_type="application/json")
    return response.json()["data"]["migrateWorkflowInstances"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_migration_is_pushed_as_one_migrated_event(
    application, claim_workflows, viewer_session, protocol
):
    instance = await run(
        lambda: services.start_workflow_instance("Claim Processing", new_claim())
    )()
    await run(publish_v2)(claim_workflows[0])
    started = await run(lambda: str(instance.events.get().cursor))()
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        sub = await ws.subscribe(EVENTS, instanceId=instance_gid(instance), after=started)
        assert await ws.nothing_more(sub, 0.3)  # joined after STARTED: nothing before the migration
        assert await run(migrate_over_http)() == {"migratedCount": 1}
        [event] = await ws.events(sub, 1)
        assert event == {
            "kind": "MIGRATED",
            "sequence": 2,
            "definitionVersion": 2,
            "toStatus": {"name": "Draft"},
        }
        assert await ws.nothing_more(sub, 0.3)


SOCKET_MIGRATE = """mutation($input: MigrateWorkflowInstancesInput!) {
  migrateWorkflowInstances(input: $input) {
    __typename
    ... on WorkflowMigration { dryRun migratedCount
      moves { outcome instance { id definitionVersion currentStep { name } } } }
    ... on OperationInfo { messages { code } } } }"""


async def test_a_migration_over_a_websocket_answers_its_instances(application, claim_workflows):
    """The mutation runs over the socket too; the instances it answers were selected through
    the visibility rule, so their type check runs no query in the event loop."""
    instance = await run(
        lambda: services.start_workflow_instance("Claim Processing", new_claim())
    )()
    await run(publish_v2)(claim_workflows[0])
    user = await run(make_user)(
        "migrator",
        "django_steps.view_workflowinstance",
        "django_steps.migrate_workflowinstance",
        groups=("reviewers",),
    )
    session = await run(login_session)(user)
    async with GraphQLSocket(application, session_key=session) as ws:
        for dry_run, outcome, version in ((True, "WOULD_MIGRATE", 1), (False, "MIGRATED", 2)):
            input_ = {"workflowName": "Claim Processing", "toVersion": 2, "dryRun": dry_run}
            payload = await ws.result(await ws.subscribe(SOCKET_MIGRATE, input=input_))
            assert "errors" not in payload, payload
            result = payload["data"]["migrateWorkflowInstances"]
            assert result["moves"] == [
                {
                    "outcome": outcome,
                    "instance": {
                        "id": instance_gid(instance),
                        "definitionVersion": version,
                        "currentStep": {"name": "Submit Claim"},
                    },
                }
            ]
