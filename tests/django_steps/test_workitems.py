"""Work items through the engine's public surfaces: steps with ``assignees`` open and close work
items with the changes, only candidates (or the claimant) act on them, and claim, release and
delegate are race-safe notes that never move the instance's version."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core import checks
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from claims.models import Claim
from django_steps import selectors, services
from django_steps.choices import EventKind
from django_steps.definitions import export_workflow, import_workflow, validate_definition
from django_steps.exceptions import (
    InvalidDefinition,
    NotPermitted,
    WorkItemClaimed,
    WorkItemNotClaimed,
)
from django_steps.models import WorkItem
from tests.conftest import CLAIM_PROCESSING

pytestmark = pytest.mark.django_db

User = get_user_model()

ASSIGNED = {
    **CLAIM_PROCESSING,
    "name": "Assigned Claims",
    "steps": [
        {**CLAIM_PROCESSING["steps"][0], "assignees": {"expression": "claim.owner"}},
        {**CLAIM_PROCESSING["steps"][1], "assignees": {"groups": ["reviewers"]}},
        CLAIM_PROCESSING["steps"][2],
    ],
}

ACTING = (
    "django_steps.view_workflowinstance",
    "django_steps.change_workflowinstance",
    "claims.view_claim",
)


def user(name: str, *perms: str, groups: tuple[str, ...] = ()) -> User:
    account = User.objects.create_user(name, password="pw")
    for perm in (*ACTING, *perms):
        app_label, codename = perm.split(".")
        account.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    for group in groups:
        account.groups.add(Group.objects.get_or_create(name=group)[0])
    return User.objects.get(pk=account.pk)  # permissions and groups read afresh


@pytest.fixture
def alice(db):
    return user("alice")


@pytest.fixture
def rita(db):
    return user("rita", groups=("reviewers",))


@pytest.fixture
def workflow(db):
    return import_workflow(ASSIGNED)


@pytest.fixture
def instance(workflow, alice):
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("10"), owner=alice)
    return services.start_workflow_instance("Assigned Claims", claim)


def open_item(instance) -> WorkItem | None:
    return WorkItem.objects.filter(instance=instance, closed_at__isnull=True).first()


# --------------------------------------------------------------------------- definitions


def test_assignees_survive_import_and_export(workflow):
    steps = export_workflow(workflow)["steps"]
    assert [s.get("assignees") for s in steps] == [
        {"expression": "claim.owner"},
        {"groups": ["reviewers"]},
        None,
    ]
    assert "assignees" not in steps[2]  # optional: a step without left out, as before the key


@pytest.mark.parametrize(
    ("assignees", "path"),
    [
        ({"groups": "reviewers"}, "steps[0].assignees.groups"),
        ({"groups": [""]}, "steps[0].assignees.groups[0]"),
        ({"expression": "claim.owner +"}, "steps[0].assignees.expression"),
        ({"team": ["x"]}, "steps[0].assignees"),
        ({}, "steps[0].assignees"),
        (["reviewers"], "steps[0].assignees"),
    ],
)
def test_a_malformed_assignees_value_is_refused_with_its_path(assignees, path):
    document = {**ASSIGNED, "steps": [{**ASSIGNED["steps"][0], "assignees": assignees}]}
    document["steps"] += ASSIGNED["steps"][1:]
    with pytest.raises(InvalidDefinition) as refused:
        validate_definition(document)
    assert path in {problem["path"] for problem in refused.value.problems}


def test_check_warns_about_an_assignees_group_that_does_not_exist(workflow):
    Group.objects.filter(name="reviewers").delete()
    found = [m for m in checks.run_checks(databases=["default"]) if m.id == "django_steps.W030"]
    assert found and "reviewers" in found[0].msg
    Group.objects.create(name="reviewers")
    assert not [m for m in checks.run_checks(databases=["default"]) if m.id == "django_steps.W030"]


# --------------------------------------------------------------------------- open and close


def test_entering_an_assigned_step_opens_a_work_item_for_the_expression_s_user(instance, alice):
    item = open_item(instance)
    assert item.step.name == "Submit Claim"
    assert list(item.candidate_users.all()) == [alice]
    assert item.candidate_groups == []
    assert item.opened_event == instance.last_event


def test_leaving_the_step_closes_its_item_and_the_next_assigned_step_opens_one(instance):
    first = open_item(instance)
    services.update_workflow_step_status(instance, "Submitted")
    first.refresh_from_db()
    assert first.closed_at is not None and first.closed_event == instance.last_event
    second = open_item(instance)
    assert second.step.name == "Review Claim"
    assert second.candidate_groups == ["reviewers"]
    assert list(second.candidate_users.all()) == []


def test_an_unassigned_step_opens_nothing_and_finishing_closes_the_item(instance):
    services.update_workflow_step_status(instance, "Submitted")
    services.update_workflow_step_status(instance, "Approved")
    assert instance.current_step.name == "Approve/Reject"
    assert open_item(instance) is None
    assert WorkItem.objects.filter(instance=instance).count() == 2


def test_cancelling_closes_the_item_and_a_hold_keeps_it(instance):
    services.set_workflow_on_hold(instance)
    assert open_item(instance) is not None
    services.resume_workflow_instance(instance)
    services.cancel_workflow_instance(instance)
    assert open_item(instance) is None


def test_a_status_change_on_an_unassigned_step_costs_no_work_item_query(instance):
    services.update_workflow_step_status(instance, "Submitted")
    services.update_workflow_step_status(instance, "Approved")  # onto the unassigned final step
    with CaptureQueriesContext(connection) as queries:
        services.update_workflow_step_status(instance, "Awaiting Decision")
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "workitem" in q["sql"]]


def test_an_expression_naming_usernames_and_unknown_users_keeps_the_known_ones(workflow, alice):
    bob = user("bob")
    document = {
        **ASSIGNED,
        "steps": [
            {**ASSIGNED["steps"][0], "assignees": {"expression": '["bob", "nobody", 999999]'}},
            *ASSIGNED["steps"][1:],
        ],
    }
    import_workflow(document, replace=True)
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"), owner=alice)
    started = services.start_workflow_instance("Assigned Claims", claim)
    assert list(open_item(started).candidate_users.all()) == [bob]


# --------------------------------------------------------------------------- who acts


def test_only_a_candidate_may_move_an_assigned_step(instance, alice, rita):
    with pytest.raises(NotPermitted):
        services.update_workflow_step_status(instance, "Submitted", actor=rita)
    services.update_workflow_step_status(instance, "Submitted", actor=alice)
    with pytest.raises(NotPermitted):  # the review step is the reviewers' now
        services.set_workflow_on_hold(instance, actor=alice)
    services.set_workflow_on_hold(instance, actor=rita)


def test_once_claimed_only_the_claimant_acts(instance, rita):
    services.update_workflow_step_status(instance, "Submitted")
    other = user("rex", groups=("reviewers",))
    services.claim_work_item(open_item(instance), rita)
    with pytest.raises(NotPermitted):
        services.update_workflow_step_status(instance, "Approved", actor=other)
    services.update_workflow_step_status(instance, "Approved", actor=rita)


def test_the_override_permission_acts_without_being_a_candidate(instance):
    boss = user("boss", "django_steps.override_workitem")
    services.update_workflow_step_status(instance, "Submitted", actor=boss)


def test_the_system_actor_is_exempt_and_recorded_as_none(instance):
    services.update_workflow_step_status(instance, "Submitted")
    assert instance.last_event.actor is None


# --------------------------------------------------------------------------- claim and co.


def test_claim_release_and_delegate_are_notes_that_keep_the_version(instance, alice):
    version = instance.version
    item = open_item(instance)
    services.claim_work_item(item, alice)
    bob = user("bob")
    services.delegate_work_item(item, bob, alice)
    services.release_work_item(item, bob)
    kinds = list(instance.events.order_by("sequence").values_list("kind", "version", "detail"))
    assert kinds[-3:] == [
        (EventKind.CLAIMED, version, {"workItem": item.pk}),
        (EventKind.DELEGATED, version, {"workItem": item.pk, "to": bob.pk}),
        (EventKind.RELEASED, version, {"workItem": item.pk, "from": bob.pk}),
    ]
    instance.refresh_from_db()
    assert instance.version == version
    services.update_workflow_step_status(instance, "Submitted", expected_version=version)


def test_a_second_claim_is_already_claimed_and_a_release_of_nobody_s_is_not_claimed(
    instance, alice
):
    item = open_item(instance)
    with pytest.raises(WorkItemNotClaimed):
        services.release_work_item(item, alice)
    services.claim_work_item(item, alice)
    with pytest.raises(WorkItemClaimed):
        services.claim_work_item(item, alice)


def test_a_non_candidate_may_neither_claim_nor_delegate(instance, alice, rita):
    item = open_item(instance)
    with pytest.raises(NotPermitted):
        services.claim_work_item(item, rita)
    with pytest.raises(NotPermitted):
        services.delegate_work_item(item, rita, rita)


def test_a_work_item_goes_only_to_a_user_who_may_act(instance, alice):
    stranger = User.objects.create_user("stranger", password="pw")
    with pytest.raises(NotPermitted):
        services.delegate_work_item(open_item(instance), stranger, alice)


def test_a_delegated_item_is_its_new_holder_s_to_act_on(instance, alice):
    bob = user("bob")
    services.delegate_work_item(open_item(instance), bob, alice)
    with pytest.raises(NotPermitted):
        services.update_workflow_step_status(instance, "Submitted", actor=alice)
    services.update_workflow_step_status(instance, "Submitted", actor=bob)


@pytest.mark.postgres  # concurrent writers (SQLite serialises them)
@pytest.mark.django_db(transaction=True)
def test_two_claims_at_once_one_wins_the_other_is_already_claimed(instance):
    rivals = [user("r1", groups=("reviewers",)), user("r2", groups=("reviewers",))]
    services.update_workflow_step_status(instance, "Submitted")
    item = open_item(instance)
    barrier, results = threading.Barrier(2), {}

    def claim(rival):
        try:
            barrier.wait()
            services.claim_work_item(item, rival)
            results[rival.username] = "won"
        except WorkItemClaimed as error:
            results[rival.username] = error.code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(rival,)) for rival in rivals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["ALREADY_CLAIMED", "won"]
    item.refresh_from_db()
    assert item.claimed_by.username == next(k for k, v in results.items() if v == "won")


# --------------------------------------------------------------------------- the inbox


def test_the_inbox_holds_mine_and_my_groups_items_until_someone_else_claims(instance, alice, rita):
    assert list(selectors.inbox(alice)) == [open_item(instance)]
    assert list(selectors.inbox(rita)) == []
    services.update_workflow_step_status(instance, "Submitted")
    item = open_item(instance)
    assert list(selectors.inbox(rita)) == [item]
    assert list(selectors.inbox(alice)) == []
    rex = user("rex", groups=("reviewers",))
    services.claim_work_item(item, rex)
    assert list(selectors.inbox(rita)) == []
    assert list(selectors.inbox(rex)) == [item]


def test_the_inbox_keeps_to_the_visibility_rule(instance, alice, settings):
    settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, "VISIBLE_INSTANCES": lambda u, qs: qs.none()}
    assert list(selectors.inbox(alice)) == []


def test_a_host_may_say_who_is_in_which_group(instance, settings):
    settings.DJANGO_STEPS = {
        **settings.DJANGO_STEPS,
        "GROUPS_OF": lambda account: ["reviewers"] if account.username == "outsider" else [],
    }
    services.update_workflow_step_status(instance, "Submitted")
    outsider = user("outsider")
    assert list(selectors.inbox(outsider)) == [open_item(instance)]
    services.update_workflow_step_status(instance, "Approved", actor=outsider)


def test_the_admin_lists_work_items_with_their_candidates(instance, admin_client):
    item = open_item(instance)
    listed = admin_client.get("/admin/django_steps/workitem/")
    assert listed.status_code == 200 and str(instance) in listed.content.decode()
    shown = admin_client.get(f"/admin/django_steps/workitem/{item.pk}/change/")
    assert shown.status_code == 200 and "alice" in shown.content.decode()
