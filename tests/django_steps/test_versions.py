"""Published versions: instances pinned to theirs, the diff, and migrating instances (services
and the CLI)."""

from __future__ import annotations

import copy
import io
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.db.models.signals import pre_save

from claims.models import Claim
from django_steps import selectors, services
from django_steps.definitions import export_workflow, import_workflow
from django_steps.exceptions import InvalidDefinition, NotPermitted
from django_steps.models import Workflow, WorkflowEvent, WorkflowInstance
from django_steps.signals import workflow_event_committed
from django_steps.versions import (
    diff_versions,
    get_version,
    migrate_instances,
    plan_migration,
    publish_workflow,
)
from tests.conftest import CLAIM_PROCESSING, make_workflow, statuses
from tests.graphql_api.conftest import make_user

pytestmark = pytest.mark.django_db


def claims_doc() -> dict:
    doc = {"name": "Claims", **copy.deepcopy(CLAIM_PROCESSING)}
    doc["steps"].insert(
        2,
        {"name": "Senior Review", "order": 3, "statuses": statuses("Waiting", "Approved")},
    )
    doc["steps"][3]["order"] = 4
    doc["transitions"] = [
        {
            "from_step": "Submit Claim",
            "to_step": "Senior Review",
            "condition": "claim.amount > 1000",
            "priority": 10,
        },
        {"from_step": "Submit Claim", "to_step": "Review Claim"},
        {"from_step": "Review Claim", "to_step": "Approve/Reject"},
        {"from_step": "Senior Review", "to_step": "Approve/Reject"},
    ]
    return doc


def _step(doc: dict, name: str) -> dict:
    return next(s for s in doc["steps"] if s["name"] == name)


def claim(amount: str = "1500") -> Claim:
    return Claim.objects.create(title="Window", claimant="Ada", amount=Decimal(amount))


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --------------------------------------------------------------------------- pinning


def test_an_instance_keeps_its_versions_condition_while_a_new_one_follows_the_new_version():
    workflow = import_workflow(claims_doc())
    old = services.start_workflow_instance("Claims", claim("1500"))

    doc = export_workflow(workflow)
    doc["transitions"][0]["condition"] = "claim.amount > 5000"  # v2: senior review above 5000
    workflow = import_workflow(doc, replace=True)
    assert workflow.definition_version == 2

    new = services.start_workflow_instance("Claims", claim("1500"))
    services.update_workflow_step_status(old, "Submitted")
    services.update_workflow_step_status(new, "Submitted")
    assert old.current_step.name == "Senior Review"  # v1's "> 1000"
    assert new.current_step.name == "Review Claim"  # v2's "> 5000"
    assert (old.definition_version.number, new.definition_version.number) == (1, 2)
    # Each event records the version it happened on.
    assert [e.definition_version.number for e in old.events.order_by("sequence")] == [1, 1]
    assert [e.definition_version.number for e in new.events.order_by("sequence")] == [2, 2]


def test_the_dry_run_and_the_allowed_actions_read_the_instances_version():
    from django_steps import authorization, compiled

    workflow = import_workflow(claims_doc())
    old = services.start_workflow_instance("Claims", claim("1500"))
    doc = export_workflow(workflow)
    doc["transitions"][0]["condition"] = "claim.amount > 5000"
    _step(doc, "Submit Claim")["statuses"].append({"name": "Parked"})
    import_workflow(doc, replace=True)

    dry = selectors.evaluate_transitions(old)
    assert dry.fired.transition.to_step.name == "Senior Review"
    boss = make_user("boss", superuser=True)
    actions = authorization.allowed_actions(boss, old, compiled.for_instance(old))
    assert "Parked" not in {s.name for s in actions.statuses}
    with pytest.raises(Exception) as info:
        services.update_workflow_step_status(old, "Parked")
    assert info.value.code == "UNKNOWN_STATUS"


def test_orm_edits_are_a_draft_until_published():
    workflow = import_workflow(claims_doc())
    transition = workflow.transitions.get(to_step__name="Senior Review")
    transition.condition = "claim.amount > 5000"
    transition.save()
    instance = services.start_workflow_instance("Claims", claim("1500"))
    services.update_workflow_step_status(instance, "Submitted")
    assert instance.current_step.name == "Senior Review"  # the published v1
    version = publish_workflow(workflow)
    assert version.number == 2
    assert publish_workflow(workflow) == version  # nothing new to publish
    later = services.start_workflow_instance("Claims", claim("1500"))
    services.update_workflow_step_status(later, "Submitted")
    assert later.current_step.name == "Review Claim"


def test_an_invalid_draft_is_not_published_and_a_never_published_one_is_published_on_start():
    workflow = make_workflow("Draft", CLAIM_PROCESSING, publish=False)
    assert workflow.definition_version == 0
    instance = services.start_workflow_instance("Draft", claim())  # published now
    assert instance.definition_version.number == 1
    workflow.steps.filter(name="Approve/Reject").update(is_final_step=False)
    with pytest.raises(InvalidDefinition):
        publish_workflow(workflow)
    assert workflow.versions.count() == 1

    broken = make_workflow("Broken", CLAIM_PROCESSING, publish=False)
    broken.steps.filter(name="Approve/Reject").update(is_final_step=False)
    with pytest.raises(InvalidDefinition):
        services.start_workflow_instance("Broken", claim())
    assert not WorkflowInstance.objects.filter(workflow=broken).exists()


# --------------------------------------------------------------------------- diff


def test_diff_names_what_was_added_removed_and_changed():
    workflow = import_workflow(claims_doc())
    doc = export_workflow(workflow)
    doc["transitions"][0]["condition"] = "claim.amount > 5000"
    _step(doc, "Review Claim")["statuses"][1]["permission"] = "claims.decide_claim"
    _step(doc, "Review Claim")["statuses"].append({"name": "Escalated"})
    doc["steps"] = [s for s in doc["steps"] if s["name"] != "Senior Review"]
    doc["transitions"] = [t for t in doc["transitions"] if "Senior Review" not in t.values()]
    import_workflow(doc, replace=True)

    changes = diff_versions(get_version(workflow, 1), get_version(workflow, 2))
    summary = {(c.part, c.action, c.name) for c in changes}
    assert ("step", "removed", "Senior Review") in summary
    assert ("status", "added", "Review Claim / Escalated") in summary
    assert ("transition", "removed", "Submit Claim → Senior Review") in summary
    permission = next(c for c in changes if c.name == "Review Claim / Approved")
    assert permission.changes == {"permission": ("", "claims.decide_claim")}

    out = run("diff_workflow", "Claims", "1", "2")
    assert "- step Senior Review" in out
    assert "+ status Review Claim / Escalated" in out
    assert "    permission: '' -> 'claims.decide_claim'" in out
    with pytest.raises(CommandError, match="no published version"):
        run("diff_workflow", "Claims", "1", "9")


def test_diff_shows_a_changed_condition():
    workflow = import_workflow(claims_doc())
    doc = export_workflow(workflow)
    doc["transitions"][0]["condition"] = "claim.amount > 5000"
    import_workflow(doc, replace=True)
    (change,) = diff_versions(get_version(workflow, 1), get_version(workflow, 2))
    assert (change.part, change.action, change.name) == (
        "transition",
        "changed",
        "Submit Claim → Senior Review",
    )
    assert change.changes == {"condition": ("claim.amount > 1000", "claim.amount > 5000")}


# --------------------------------------------------------------------------- migration


def _v2_without_review(workflow: Workflow) -> None:
    """v2: "Review Claim" removed, "Submit Claim" loses "Draft" (new default "Drafting")."""
    doc = export_workflow(workflow)
    doc["steps"] = [s for s in doc["steps"] if s["name"] != "Review Claim"]
    doc["transitions"] = [t for t in doc["transitions"] if "Review Claim" not in t.values()]
    doc["transitions"].append({"from_step": "Submit Claim", "to_step": "Approve/Reject"})
    submit = _step(doc, "Submit Claim")
    submit["statuses"] = [s for s in submit["statuses"] if s["name"] != "Draft"]
    submit["statuses"].insert(0, {"name": "Drafting", "is_default_status": True})
    import_workflow(doc, replace=True)


def test_a_dry_run_names_the_instances_that_cannot_move_and_why():
    workflow = import_workflow(claims_doc())
    on_draft = services.start_workflow_instance("Claims", claim("10"))
    on_review = services.update_workflow_step_status(
        services.start_workflow_instance("Claims", claim("10")), "Submitted"
    )
    held = services.set_workflow_on_hold(services.start_workflow_instance("Claims", claim("10")))
    _v2_without_review(workflow)

    plan = plan_migration("Claims", 2)
    moves = {m.instance_id: m for m in plan.moves}
    assert moves[on_review.pk].blocked == "UNMAPPED_STEP"
    assert "Review Claim" in moves[on_review.pk].reason
    assert (moves[on_draft.pk].to_step, moves[on_draft.pk].to_status) == (
        "Submit Claim",
        "Drafting",  # "Draft" is gone: the target step's default
    )
    assert (moves[held.pk].to_status, moves[held.pk].can_move) == ("On Hold", True)  # kept
    # Nothing changed.
    assert WorkflowInstance.objects.filter(definition_version__number=2).count() == 0

    # A mapping moves them: a step to another, a status to a chosen one.
    plan = plan_migration(
        "Claims",
        2,
        {
            "steps": {"Review Claim": "Approve/Reject"},
            "statuses": {
                "Review Claim": {"Under Review": "Awaiting Decision"},
                "Submit Claim": {"Draft": "Withdrawn"},
            },
        },
    )
    moves = {m.instance_id: m for m in plan.moves}
    assert (moves[on_review.pk].to_step, moves[on_review.pk].to_status) == (
        "Approve/Reject",
        "Awaiting Decision",
    )
    assert moves[on_draft.pk].blocked == "TARGET_STATUS_ROLE"  # it would cancel the instance
    with pytest.raises(InvalidDefinition) as info:
        plan_migration("Claims", 2, {"steps": {"Review Claim": "Nowhere"}})
    assert info.value.problems == [
        {"path": "mapping.steps[0]", "message": "names no step of the target version"}
    ]
    with pytest.raises(InvalidDefinition) as info:
        plan_migration("Claims", 2, {"statuses": {"Submit Claim": {"Draft": "Gone"}}})
    assert info.value.problems[0]["path"] == "mapping.statuses[0][0]"
    with pytest.raises(InvalidDefinition):
        plan_migration("Claims", 9)


def test_migrating_needs_its_permission_and_sees_only_visible_instances(settings):
    workflow = import_workflow(claims_doc())
    mine = services.start_workflow_instance("Claims", claim("10"))
    hidden = services.start_workflow_instance("Claims", claim("20"))
    _v2_without_review(workflow)
    changer = make_user("changer", "django_steps.change_workflowinstance")
    with pytest.raises(NotPermitted):
        plan_migration("Claims", 2, actor=changer)
    with pytest.raises(NotPermitted):
        migrate_instances("Claims", 2, actor=changer)
    migrator = make_user(
        "migrator",
        "django_steps.migrate_workflowinstance",
        "django_steps.view_workflowinstance",
        "claims.view_claim",
    )
    settings.DJANGO_STEPS = {
        "VISIBLE_INSTANCES": lambda user, queryset: queryset.exclude(pk=hidden.pk)
    }
    result = migrate_instances("Claims", 2, actor=migrator)
    assert result.migrated == [mine.pk]
    hidden.refresh_from_db()
    assert hidden.definition_version.number == 1
    assert mine.events.order_by("sequence").last().actor == migrator


def test_a_status_permission_blocks_the_move_for_an_actor_without_it(settings):
    settings.DJANGO_STEPS = {}  # the default rule: who may view claims sees their instances
    doc = claims_doc()
    workflow = import_workflow(doc)
    instance = services.start_workflow_instance("Claims", claim("10"))
    doc = export_workflow(workflow)
    _step(doc, "Submit Claim")["statuses"][0]["name"] = "Drafted"
    _step(doc, "Submit Claim")["statuses"].append(
        {"name": "Draft", "permission": "claims.decide_claim"}
    )
    import_workflow(doc, replace=True)
    migrator = make_user(
        "migrator",
        "django_steps.migrate_workflowinstance",
        "django_steps.view_workflowinstance",
        "claims.view_claim",
    )
    (move,) = plan_migration("Claims", 2, actor=migrator).moves
    assert (move.blocked, move.to_status) == ("PERMISSION_DENIED", "Draft")
    (move,) = plan_migration("Claims", 2).moves  # the trusted path checks nothing
    assert move.can_move and instance.pk == move.instance_id


@pytest.mark.django_db(transaction=True)
def test_migrating_a_thousand_instances_in_batches_one_event_each_and_a_concurrent_change_conflicts():  # noqa: E501
    workflow = import_workflow(claims_doc())
    claims = Claim.objects.bulk_create(
        [Claim(title=f"c{i}", claimant="Ada", amount=Decimal("10")) for i in range(1000)]
    )
    instances = [services.start_workflow_instance("Claims", c) for c in claims]
    _v2_without_review(workflow)
    plan = plan_migration("Claims", 2)
    assert len(plan.movable) == 1000

    # While the migration runs, someone changes an instance it has not reached yet.
    late = instances[-1]
    progress = []

    def on_progress(done, total):
        progress.append((done, total))
        if done == 250:
            services.update_workflow_step_status(late, "Submitted")

    published = []

    def on_event(sender, event, **kwargs):
        published.append(event.kind)

    # One instance's event write fails: that instance is left exactly as it was.
    broken = instances[500]

    def fail(sender, instance, **kwargs):
        if instance.kind == "MIGRATED" and instance.instance_id == broken.pk:
            raise IntegrityError("simulated failure")

    workflow_event_committed.connect(on_event)
    pre_save.connect(fail, sender=WorkflowEvent)
    try:
        result = migrate_instances(workflow, 2, batch_size=250, progress=on_progress, plan=plan)
    finally:
        pre_save.disconnect(fail, sender=WorkflowEvent)
        workflow_event_committed.disconnect(on_event)

    assert progress == [(250, 1000), (500, 1000), (750, 1000), (1000, 1000)]
    assert result.failed == {late.pk: "VERSION_CONFLICT", broken.pk: "DATABASE_ERROR"}
    assert len(result.migrated) == 998
    assert published.count("MIGRATED") == 998  # each one live, after its own commit
    assert WorkflowEvent.objects.filter(kind="MIGRATED").count() == 998
    assert WorkflowInstance.objects.filter(definition_version__number=2).count() == 998
    for untouched in (late, broken):
        untouched.refresh_from_db()
        assert untouched.definition_version.number == 1
        assert not untouched.events.filter(kind="MIGRATED").exists()
    late.refresh_from_db()
    assert (late.current_step.name, late.version) == ("Review Claim", 2)  # not corrupted
    broken.refresh_from_db()
    assert broken.version == 1
    migrated = WorkflowInstance.objects.get(pk=instances[0].pk)
    assert (migrated.version, migrated.current_step_status.name) == (2, "Drafting")


def test_the_history_of_a_migrated_instance_reads_across_both_versions():
    workflow = import_workflow(claims_doc())
    instance = services.start_workflow_instance("Claims", claim("10"))
    services.update_workflow_step_status(instance, "Submitted")  # Review Claim, v1
    _v2_without_review(workflow)
    result = migrate_instances(
        "Claims",
        2,
        {"steps": {"Review Claim": "Approve/Reject"}},
    )
    assert result.migrated == [instance.pk]
    instance.refresh_from_db()
    services.update_workflow_step_status(instance, "Approved")  # completes on v2
    rows = [
        (
            e.kind,
            e.definition_version.number,
            e.from_step.name if e.from_step else None,
            e.to_step.name,
            e.to_status.name,
        )
        for e in selectors.history(instance)
    ]
    assert rows == [
        ("STARTED", 1, None, "Submit Claim", "Draft"),
        ("ADVANCED", 1, "Submit Claim", "Review Claim", "Under Review"),
        ("MIGRATED", 2, "Review Claim", "Approve/Reject", "Awaiting Decision"),
        ("COMPLETED", 2, "Approve/Reject", "Approve/Reject", "Approved"),
    ]
    assert instance.version == 4


def test_the_cli_prints_the_plan_on_a_dry_run_and_migrates_without_it(tmp_path):
    workflow = import_workflow(claims_doc())
    on_draft = services.start_workflow_instance("Claims", claim("10"))
    on_review = services.update_workflow_step_status(
        services.start_workflow_instance("Claims", claim("10")), "Submitted"
    )
    _v2_without_review(workflow)

    out = run("migrate_instances", "Claims", "--to", "2", "--dry-run")
    assert (
        f"instance {on_review.pk}: v1 Review Claim / Under Review cannot move: UNMAPPED_STEP" in out
    )
    assert f"instance {on_draft.pk}: v1 Submit Claim / Draft -> v2 Submit Claim / Drafting" in out
    assert "Dry run: 1 can move, 1 cannot" in out
    assert not WorkflowEvent.objects.filter(kind="MIGRATED").exists()

    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"steps": {"Review Claim": "Approve/Reject"}}))
    out = run(
        "migrate_instances", "Claims", "--to", "2", "--mapping", str(mapping), "--batch-size", "1"
    )
    assert "migrated 1/2" in out and "migrated 2/2" in out
    assert "2 instance(s) migrated to version 2" in out
    assert WorkflowEvent.objects.filter(kind="MIGRATED").count() == 2

    mapping.write_text(json.dumps({"steps": {"Review Claim": "Nowhere"}}))
    with pytest.raises(CommandError, match=r"mapping.steps\[0\]"):
        run("migrate_instances", "Claims", "--to", "2", "--mapping", str(mapping))


def test_each_version_has_its_own_diagram():
    from django_steps.diagram import version_to_mermaid, workflow_to_mermaid

    workflow = import_workflow(claims_doc())
    v1_diagram = workflow_to_mermaid(workflow)
    _v2_without_review(workflow)
    assert version_to_mermaid(get_version(workflow, 1)) == v1_diagram
    assert "Review Claim" in v1_diagram
    v2_diagram = version_to_mermaid(get_version(workflow, 2))
    assert "Review Claim" not in v2_diagram
    assert v2_diagram == workflow_to_mermaid(workflow)
