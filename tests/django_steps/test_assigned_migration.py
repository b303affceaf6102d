"""Migrating an instance on an assigned step follows the rule every other move follows: only its
candidates, or its claimant once claimed, move it — or who holds ``override_workitem``. A dry run
shows the others' instances as blocked (``PERMISSION_DENIED``), and a plan made before someone
claimed the item is refused when applied."""

from __future__ import annotations

from decimal import Decimal

import pytest

from claims.models import Claim
from django_steps import services
from django_steps.definitions import import_workflow
from django_steps.models import WorkItem
from django_steps.versions import migrate_instances, plan_migration
from tests.django_steps.test_workitems import ASSIGNED, user
from tests.graphql_api.conftest import client_for

pytestmark = pytest.mark.django_db

MIGRATE = "django_steps.migrate_workflowinstance"


@pytest.fixture
def claimed(db):
    """An instance on the reviewers' step, claimed by reviewer rita; version 2 published."""
    import_workflow(ASSIGNED)
    owner = user("owner")
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("10"), owner=owner)
    instance = services.start_workflow_instance("Assigned Claims", claim)
    services.update_workflow_step_status(instance, "Submitted")
    rita = user("rita", MIGRATE, groups=("reviewers",))
    services.claim_work_item(open_item(instance), rita)
    import_workflow({**ASSIGNED, "description": "version 2"}, replace=True)
    instance.refresh_from_db()
    return instance, rita


def open_item(instance) -> WorkItem:
    return WorkItem.objects.get(instance=instance, closed_at__isnull=True)


def test_a_migrator_who_may_not_act_on_the_step_sees_it_blocked_and_moves_nothing(claimed):
    instance, rita = claimed
    mallory = user("mallory", MIGRATE)
    plan = plan_migration("Assigned Claims", 2, actor=mallory)
    assert [(m.instance_id, m.blocked) for m in plan.moves] == [(instance.pk, "PERMISSION_DENIED")]
    assert "assigned" in plan.moves[0].reason
    result = migrate_instances("Assigned Claims", 2, actor=mallory)
    assert result.migrated == [] and result.failed == {}
    instance.refresh_from_db()
    assert instance.definition_version.number == 1
    assert open_item(instance).claimed_by == rita


def test_a_candidate_may_not_migrate_an_item_another_reviewer_claimed(claimed):
    instance, _ = claimed
    rex = user("rex", MIGRATE, groups=("reviewers",))
    assert plan_migration("Assigned Claims", 2, actor=rex).moves[0].blocked == "PERMISSION_DENIED"


def test_the_claimant_and_the_override_migrate(claimed):
    instance, rita = claimed
    assert migrate_instances("Assigned Claims", 2, actor=rita).migrated == [instance.pk]
    instance.refresh_from_db()
    assert instance.definition_version.number == 2
    import_workflow({**ASSIGNED, "description": "version 3"}, replace=True)
    boss = user("boss", MIGRATE, "django_steps.override_workitem")
    assert migrate_instances("Assigned Claims", 3, actor=boss).migrated == [instance.pk]


def test_the_trusted_path_migrates_whoever_holds_the_item(claimed):
    instance, _ = claimed
    assert migrate_instances("Assigned Claims", 2).migrated == [instance.pk]


def test_a_plan_made_before_someone_else_claimed_is_refused_when_applied(claimed):
    instance, rita = claimed
    rex = user("rex", MIGRATE, groups=("reviewers",))
    services.release_work_item(open_item(instance), rita)
    plan = plan_migration("Assigned Claims", 2, actor=rex)
    assert plan.moves[0].can_move  # rex is a candidate of the unclaimed item
    services.claim_work_item(open_item(instance), rita)  # a note: the version stays
    result = migrate_instances("Assigned Claims", 2, actor=rex, plan=plan)
    assert result.migrated == [] and result.failed == {instance.pk: "PERMISSION_DENIED"}
    instance.refresh_from_db()
    assert instance.definition_version.number == 1
    assert open_item(instance).claimed_by == rita


# --------------------------------------------------------------------------- over GraphQL

MIGRATE_MUTATION = """mutation($input: MigrateWorkflowInstancesInput!) {
  migrateWorkflowInstances(input: $input) {
    __typename
    ... on WorkflowMigration { migratedCount blockedCount moves { outcome reason message } }
    ... on OperationInfo { messages { code } }
  } }"""


@pytest.mark.parametrize("dry_run", [True, False])
def test_over_graphql_another_user_s_claimed_item_is_blocked_in_both_modes(claimed, dry_run):
    instance, rita = claimed
    mallory = user("mallory", MIGRATE)
    data = {"workflowName": "Assigned Claims", "toVersion": 2, "dryRun": dry_run}
    result = client_for(mallory).data(MIGRATE_MUTATION, {"input": data})
    answer = result["migrateWorkflowInstances"]
    assert (answer["migratedCount"], answer["blockedCount"]) == (0, 1)
    assert [(m["outcome"], m["reason"]) for m in answer["moves"]] == [
        ("BLOCKED", "PERMISSION_DENIED")
    ]
    assert open_item(instance).claimed_by == rita
    assert client_for(rita).data(MIGRATE_MUTATION, {"input": data})["migrateWorkflowInstances"][
        "moves"
    ][0]["outcome"] == ("WOULD_MIGRATE" if dry_run else "MIGRATED")
