"""The admin: pages render, definitions are validated on save, instance actions call the
services."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import path, reverse

from django_steps import services
from django_steps.definitions import export_workflow, import_workflow
from django_steps.models import (
    Workflow,
    WorkflowEvent,
    WorkflowInstance,
    WorkflowStep,
    WorkflowStepStatus,
    WorkflowTransition,
)

# The admin alone, so these tests do not depend on the rest of the project's URLs.
urlpatterns = [path("admin/", admin.site.urls)]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")


@pytest.fixture
def client(client, admin_user):
    client.force_login(admin_user)
    return client


def url(model, view: str, *args) -> str:
    return reverse(f"admin:django_steps_{model._meta.model_name}_{view}", args=args)


def form_data(response) -> dict:
    """The POST data a browser would send back for an admin change form, unchanged."""
    data: dict = {}

    def add(form):
        for name in form.fields:
            value = form[name].value()
            key = form.add_prefix(name)
            if value is True:
                data[key] = "on"
            elif value is False:
                continue
            elif value is None:
                data[key] = ""
            else:
                data[key] = value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        for form in formset.initial_forms:
            add(form)
    return data


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --------------------------------------------------------------------------- pages


def test_admin_pages_render(client, claim_workflow, claim):
    instance = services.start_workflow_instance("Claim Processing", claim)
    services.update_workflow_step_status(instance, "Submitted")
    step = claim_workflow.steps.get(name="Review Claim")
    event = WorkflowEvent.objects.filter(instance=instance).first()
    pages = [
        url(Workflow, "changelist"),
        url(Workflow, "add"),
        url(Workflow, "change", claim_workflow.pk),
        url(WorkflowStep, "changelist"),
        url(WorkflowStep, "change", step.pk),
        url(WorkflowInstance, "changelist"),
        url(WorkflowInstance, "change", instance.pk),
        url(WorkflowEvent, "changelist"),
        url(WorkflowEvent, "change", event.pk),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page

    workflow_page = client.get(url(Workflow, "change", claim_workflow.pk)).content.decode()
    assert "flowchart TD" in workflow_page  # the Mermaid diagram
    assert "Under Review (default)" in workflow_page  # the steps' statuses summary
    instance_page = client.get(url(WorkflowInstance, "change", instance.pk)).content.decode()
    assert "ADVANCED" in instance_page and "STARTED" in instance_page  # history inline
    assert "Broken window" in client.get(url(WorkflowInstance, "changelist")).content.decode()


def test_instances_and_history_are_read_only(client, claim_workflow, claim):
    instance = services.start_workflow_instance("Claim Processing", claim)
    event = WorkflowEvent.objects.get(instance=instance)
    assert client.get(url(WorkflowInstance, "add")).status_code == 403
    assert client.get(url(WorkflowEvent, "add")).status_code == 403
    assert (
        client.post(url(WorkflowInstance, "delete", instance.pk), {"post": "yes"}).status_code
        == 403
    )
    assert client.post(url(WorkflowEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    response = client.post(url(WorkflowInstance, "change", instance.pk), {"state": "COMPLETED"})
    assert response.status_code == 403
    instance.refresh_from_db()
    assert instance.state == "ACTIVE" and instance.version == 1


# --------------------------------------------------------------------------- definition editing


def test_editing_a_transition_inline_saves_it(client, claim_workflow):
    response = client.get(url(Workflow, "change", claim_workflow.pk))
    data = form_data(response)
    data["transitions-0-condition"] = "claim.amount > 10"
    data["transitions-0-priority"] = "7"
    response = client.post(url(Workflow, "change", claim_workflow.pk), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    t = WorkflowTransition.objects.get(workflow=claim_workflow, from_step__name="Submit Claim")
    assert (t.condition, t.priority) == ("claim.amount > 10", 7)


def test_the_models_a_workflow_runs_on_and_a_status_permission_are_edited_in_the_admin(
    client, claim_workflow, claim
):
    from django.contrib.contenttypes.models import ContentType

    from django_steps.exceptions import ModelNotAllowed, NotPermitted
    from tests.testapp.models import Document

    document_type = ContentType.objects.get_for_model(Document)
    data = form_data(client.get(url(Workflow, "change", claim_workflow.pk)))
    data["content_types"] = [
        str(ContentType.objects.get_for_model(claim).pk)
    ]  # claims only, as before
    response = client.post(url(Workflow, "change", claim_workflow.pk), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    with pytest.raises(ModelNotAllowed):
        services.start_workflow_instance("Claim Processing", Document.objects.create())
    data["content_types"] = [
        str(ContentType.objects.get_for_model(claim).pk),
        str(document_type.pk),
    ]
    assert client.post(url(Workflow, "change", claim_workflow.pk), data).status_code == 302
    assert services.start_workflow_instance("Claim Processing", Document.objects.create()).pk

    step = WorkflowStep.objects.get(workflow=claim_workflow, name="Submit Claim")
    data = form_data(client.get(url(WorkflowStep, "change", step.pk)))
    submitted = next(k for k, v in data.items() if k.endswith("-name") and v == "Submitted")
    data[submitted.replace("-name", "-permission")] = "claims.submit_claim"
    response = client.post(url(WorkflowStep, "change", step.pk), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    instance = services.start_workflow_instance("Claim Processing", claim)
    stranger = get_user_model().objects.create_user("stranger", password="pw")
    with pytest.raises(NotPermitted):
        services.update_workflow_step_status(instance, "Submitted", actor=stranger)


def test_a_condition_that_does_not_compile_is_a_form_error(client, claim_workflow):
    before = export_workflow(claim_workflow)
    data = form_data(client.get(url(Workflow, "change", claim_workflow.pk)))
    data["transitions-0-condition"] = "claim.amount >"
    response = client.post(url(Workflow, "change", claim_workflow.pk), data)
    assert response.status_code == 200
    assert "does not compile" in response.content.decode()
    assert export_workflow(claim_workflow) == before


def test_transition_choices_are_the_workflows_own_steps(client, claim_workflow):
    import_workflow({**export_workflow(claim_workflow), "name": "Other"})
    response = client.get(url(Workflow, "change", claim_workflow.pk))
    formset = next(
        f.formset
        for f in response.context["inline_admin_formsets"]
        if f.formset.prefix == "transitions"
    )
    choices = formset.forms[0].fields["from_step"].queryset
    assert set(choices.values_list("workflow__name", flat=True)) == {"Claim Processing"}


def test_an_invalid_save_of_a_live_workflow_is_a_draft_and_running_instances_are_unaffected(
    client, claim_workflow, claim
):
    instance = services.start_workflow_instance("Claim Processing", claim)
    data = form_data(client.get(url(Workflow, "change", claim_workflow.pk)))
    data["description"] = "edited"
    data.pop("steps-2-is_final_step")  # "Approve/Reject" is no longer final
    response = client.post(url(Workflow, "change", claim_workflow.pk), data)

    assert response.status_code == 302  # saved...
    assert any(
        "saved as a draft, not published" in m and "at least one step must be final" in m
        for m in messages_of(response)
    )
    claim_workflow.refresh_from_db()
    assert claim_workflow.description == "edited"
    assert claim_workflow.definition_version == 1  # ...but not published
    assert claim_workflow.versions.count() == 1
    # The running instance and new ones run on version 1, where Approve/Reject is final.
    for name in ("Submitted", "Approved", "Approved"):
        services.update_workflow_step_status(instance, name)
    assert instance.state == "COMPLETED"


def test_a_valid_save_publishes_a_version_with_its_author(client, admin_user, claim_workflow):
    data = form_data(client.get(url(Workflow, "change", claim_workflow.pk)))
    data["transitions-0-condition"] = "claim.amount > 10"
    response = client.post(url(Workflow, "change", claim_workflow.pk), data)
    assert response.status_code == 302
    assert any("Published version 2" in m for m in messages_of(response))
    latest = claim_workflow.versions.get(number=2)
    assert latest.created_by == admin_user
    # Saving again without a change publishes nothing.
    response = client.post(url(Workflow, "change", claim_workflow.pk), data)
    assert not any("Published version 3" in m for m in messages_of(response))
    assert claim_workflow.versions.count() == 2
    page = client.get(url(Workflow, "change", claim_workflow.pk)).content.decode()
    assert "published versions" in page.lower() and latest.content_hash in page


def test_deleting_a_step_in_use_in_the_admin_retires_it(client, claim_workflow, claim):
    instance = services.start_workflow_instance("Claim Processing", claim)
    services.update_workflow_step_status(instance, "Submitted")  # on Review Claim
    data = form_data(client.get(url(Workflow, "change", claim_workflow.pk)))
    review = WorkflowStep.objects.get(name="Review Claim")
    data["steps-1-DELETE"] = "on"
    data["transitions-1-DELETE"] = "on"
    data["transitions-0-to_step"] = str(WorkflowStep.objects.get(name="Approve/Reject").pk)
    response = client.post(url(Workflow, "change", claim_workflow.pk), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert any("Published version 2" in m for m in messages_of(response))
    assert WorkflowStep.all_objects.get(pk=review.pk).retired
    assert [s["name"] for s in export_workflow(claim_workflow)["steps"]] == [
        "Submit Claim",
        "Approve/Reject",
    ]
    services.update_workflow_step_status(instance, "Approved")  # on version 1 still
    assert instance.current_step.name == "Approve/Reject"


def test_a_draft_workflow_is_saved_with_its_problems_as_a_warning(client, claim_workflow):
    data = form_data(client.get(url(Workflow, "change", claim_workflow.pk)))
    data.pop("steps-2-is_final_step")
    response = client.post(url(Workflow, "change", claim_workflow.pk), data)
    assert response.status_code == 302
    assert not WorkflowStep.objects.get(name="Approve/Reject").is_final_step
    assert any(
        "not valid yet" in m and "at least one step must be final" in m
        for m in messages_of(response)
    )


def test_a_new_workflow_can_be_built_in_the_admin(client):
    data = {
        "name": "Built by hand",
        "description": "",
        "steps-TOTAL_FORMS": "2",
        "steps-INITIAL_FORMS": "0",
        "steps-0-name": "First",
        "steps-0-order": "1",
        "steps-0-is_initial_step": "on",
        "steps-1-name": "Last",
        "steps-1-order": "2",
        "steps-1-is_final_step": "on",
        "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0",
    }
    response = client.post(url(Workflow, "add"), data)
    assert response.status_code == 302
    workflow = Workflow.objects.get(name="Built by hand")
    assert any("default status" in m for m in messages_of(response))  # a draft: saved, warned
    first, last = workflow.steps.order_by("order")

    for step in (first, last):
        data = form_data(client.get(url(WorkflowStep, "change", step.pk)))
        data.update(
            {
                "statuses-TOTAL_FORMS": "2",
                "statuses-0-name": "Open",
                "statuses-0-is_default_status": "on",
                "statuses-1-name": "Done",
                "statuses-1-is_completion_status": "on",
            }
        )
        assert client.post(url(WorkflowStep, "change", step.pk), data).status_code == 302

    data = form_data(client.get(url(Workflow, "change", workflow.pk)))
    data.update(
        {
            "transitions-TOTAL_FORMS": "1",
            "transitions-0-from_step": str(first.pk),
            "transitions-0-to_step": str(last.pk),
            "transitions-0-priority": "0",
            "transitions-0-condition": "",
        }
    )
    response = client.post(url(Workflow, "change", workflow.pk), data)
    assert response.status_code == 302
    assert not any("not valid yet" in m for m in messages_of(response))
    assert check_is_valid(workflow)


def check_is_valid(workflow) -> bool:
    from django_steps.definitions import validate_definition

    validate_definition(export_workflow(workflow))
    return True


def test_removing_the_default_status_of_a_live_step_is_a_draft_not_published(
    client, claim_workflow, claim
):
    services.start_workflow_instance("Claim Processing", claim)
    step = claim_workflow.steps.get(name="Review Claim")
    data = form_data(client.get(url(WorkflowStep, "change", step.pk)))
    assert data["statuses-0-name"] == "Under Review"
    data.pop("statuses-0-is_default_status")
    response = client.post(url(WorkflowStep, "change", step.pk), data)
    assert response.status_code == 302
    assert any("exactly one default status" in m for m in messages_of(response))
    claim_workflow.refresh_from_db()
    assert claim_workflow.definition_version == 1


def test_a_live_workflow_can_still_be_changed_validly(client, claim_workflow, claim):
    services.start_workflow_instance("Claim Processing", claim)
    step = claim_workflow.steps.get(name="Review Claim")
    data = form_data(client.get(url(WorkflowStep, "change", step.pk)))
    data.update({"statuses-TOTAL_FORMS": "4", "statuses-3-name": "Escalated"})
    response = client.post(url(WorkflowStep, "change", step.pk), data)
    assert response.status_code == 302
    assert WorkflowStepStatus.objects.filter(step=step, name="Escalated").exists()
    claim_workflow.refresh_from_db()
    assert claim_workflow.definition_version == 2


def test_validate_action_reports_each_workflow(client, claim_workflow):
    broken = import_workflow({**export_workflow(claim_workflow), "name": "Broken"})
    broken.steps.filter(name="Approve/Reject").update(is_final_step=False)
    response = client.post(
        url(Workflow, "changelist"),
        {"action": "validate_definitions", "_selected_action": [claim_workflow.pk, broken.pk]},
        follow=True,
    )
    text = messages_of(response) or [str(m) for m in response.context["messages"]]
    assert any(m.startswith("Claim Processing: valid") for m in text)
    assert any(m.startswith("Broken: 1 problem") for m in text)


# --------------------------------------------------------------------------- instance actions


def _act(client, action: str, *instances):
    return client.post(
        url(WorkflowInstance, "changelist"),
        {"action": action, "_selected_action": [i.pk for i in instances]},
    )


def test_hold_resume_cancel_actions_call_the_services(client, admin_user, claim_workflow, claim):
    instance = services.start_workflow_instance("Claim Processing", claim)

    response = _act(client, "hold", instance)
    assert response.status_code == 302
    instance.refresh_from_db()
    assert instance.state == "ON_HOLD"
    assert instance.current_step_status.name == "On Hold"

    _act(client, "resume", instance)
    instance.refresh_from_db()
    assert instance.state == "ACTIVE"
    assert instance.current_step_status.name == "Draft"

    _act(client, "cancel", instance)
    instance.refresh_from_db()
    assert instance.state == "CANCELLED"

    events = list(WorkflowEvent.objects.filter(instance=instance).order_by("sequence"))
    assert [e.kind for e in events] == ["STARTED", "ON_HOLD", "RESUMED", "CANCELLED"]
    assert [e.actor_id for e in events[1:]] == [admin_user.pk] * 3
    assert instance.version == 4


def test_actions_report_each_failure_with_its_code(client, claim_workflow, claim):
    from claims.models import Claim

    done = services.start_workflow_instance("Claim Processing", claim)
    services.cancel_workflow_instance(done)
    other = Claim.objects.create(title="Fence", claimant="Bob", amount=10)
    active = services.start_workflow_instance("Claim Processing", other)

    response = _act(client, "cancel", done, active)
    text = messages_of(response)
    assert any(f"Instance {done.pk}: INSTANCE_FINISHED" in m for m in text), text
    assert any("1 instance(s) cancelled" in m for m in text), text
    active.refresh_from_db()
    assert active.state == "CANCELLED"
    assert WorkflowEvent.objects.filter(instance=done).count() == 2  # nothing added

    response = _act(client, "resume", active)
    assert any("INSTANCE_FINISHED" in m for m in messages_of(response))
    fresh = services.start_workflow_instance("Claim Processing", other)
    response = _act(client, "resume", fresh)
    assert any(f"Instance {fresh.pk}: NOT_ON_HOLD" in m for m in messages_of(response))


def test_migrate_action_shows_the_dry_run_then_migrates(client, admin_user, claim_workflow, claim):
    from claims.models import Claim

    on_review = services.start_workflow_instance("Claim Processing", claim)
    services.update_workflow_step_status(on_review, "Submitted")
    other = Claim.objects.create(title="Fence", claimant="Bob", amount=10)
    on_submit = services.start_workflow_instance("Claim Processing", other)
    doc = export_workflow(claim_workflow)
    doc["steps"] = [s for s in doc["steps"] if s["name"] != "Review Claim"]
    doc["transitions"] = [{"from_step": "Submit Claim", "to_step": "Approve/Reject"}]
    import_workflow(doc, replace=True)

    response = _act(client, "migrate_to_latest", on_review, on_submit)
    assert response.status_code == 200  # the confirmation page
    page = response.content.decode()
    assert "UNMAPPED_STEP" in page and "Submit Claim / Draft" in page
    on_submit.refresh_from_db()
    assert on_submit.definition_version.number == 1  # nothing changed yet

    response = client.post(
        url(WorkflowInstance, "changelist"),
        {
            "action": "migrate_to_latest",
            "apply": "yes",
            "_selected_action": [on_review.pk, on_submit.pk],
        },
    )
    assert response.status_code == 302
    assert any("1 instance(s) migrated" in m for m in messages_of(response))
    on_submit.refresh_from_db()
    on_review.refresh_from_db()
    assert (on_submit.definition_version.number, on_review.definition_version.number) == (2, 1)
    event = on_submit.events.order_by("sequence").last()
    assert (event.kind, event.actor, event.definition_version.number) == (
        "MIGRATED",
        admin_user,
        2,
    )


def test_adding_a_retired_name_again_in_the_admin_brings_back_its_row(
    client, claim_workflow, claim
):
    instance = services.start_workflow_instance("Claim Processing", claim)
    step = claim_workflow.steps.get(name="Submit Claim")
    withdrawn = WorkflowStepStatus.objects.get(step=step, name="Withdrawn")
    withdrawn.retire()
    data = form_data(client.get(url(WorkflowStep, "change", step.pk)))
    total = int(data["statuses-TOTAL_FORMS"])
    data.update(
        {
            "statuses-TOTAL_FORMS": str(total + 1),
            f"statuses-{total}-name": "Withdrawn",
            f"statuses-{total}-is_cancellation_status": "on",
        }
    )
    response = client.post(url(WorkflowStep, "change", step.pk), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert WorkflowStepStatus.objects.get(step=step, name="Withdrawn").pk == withdrawn.pk
    services.cancel_workflow_instance(instance)
    assert instance.current_step_status.pk == withdrawn.pk
