"""Definition documents: validate, import (create / replace in place), export, delete, examples."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

import django_steps
from claims.models import Claim
from django_steps import services
from django_steps.definitions import (
    delete_workflow,
    dump_document,
    export_workflow,
    import_workflow,
    load_document,
    validate_definition,
)
from django_steps.exceptions import InvalidDefinition, WorkflowInUse
from django_steps.models import (
    Workflow,
    WorkflowEvent,
    WorkflowStep,
    WorkflowStepStatus,
    WorkflowTransition,
)
from tests.conftest import CLAIM_PROCESSING, statuses

pytestmark = pytest.mark.django_db

EXAMPLES = Path(django_steps.__file__).parent / "examples"


def claim_doc(name: str = "Claims") -> dict:
    return {"name": name, **copy.deepcopy(CLAIM_PROCESSING)}


def problems_of(document) -> list[dict[str, str]]:
    with pytest.raises(InvalidDefinition) as info:
        validate_definition(document)
    assert info.value.code == "INVALID_DEFINITION"
    assert info.value.problems, "an InvalidDefinition must list its problems"
    return info.value.problems


def paths_of(document) -> set[str]:
    return {p["path"] for p in problems_of(document)}


def load_example(name: str) -> dict:
    return load_document((EXAMPLES / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- validation


def test_a_valid_document_has_no_problems_and_no_warnings():
    assert validate_definition(claim_doc()) == []


def _step(doc, name):
    return next(s for s in doc["steps"] if s["name"] == name)


def _no_initial(doc):
    _step(doc, "Submit Claim")["is_initial_step"] = False


def _two_initial(doc):
    _step(doc, "Review Claim")["is_initial_step"] = True


def _no_final(doc):
    _step(doc, "Approve/Reject")["is_final_step"] = False


def _no_default(doc):
    _step(doc, "Review Claim")["statuses"][0]["is_default_status"] = False


def _two_defaults(doc):
    _step(doc, "Review Claim")["statuses"][1]["is_default_status"] = True


def _final_without_completion(doc):
    for status in _step(doc, "Approve/Reject")["statuses"]:
        status["is_completion_status"] = False


def _two_cancellations(doc):
    _step(doc, "Review Claim")["statuses"].extend(
        [
            {"name": "Dropped", "is_cancellation_status": True},
            {"name": "Void", "is_cancellation_status": True},
        ]
    )


def _two_on_hold(doc):
    _step(doc, "Review Claim")["statuses"].extend(
        [
            {"name": "Paused", "is_on_hold_status": True},
            {"name": "Waiting", "is_on_hold_status": True},
        ]
    )


def _duplicate_step(doc):
    doc["steps"].append(copy.deepcopy(_step(doc, "Review Claim")))


def _duplicate_status(doc):
    _step(doc, "Review Claim")["statuses"].append({"name": "Approved"})


def _unknown_step(doc):
    doc["transitions"].append({"from_step": "Review Claim", "to_step": "Nowhere"})


def _bad_condition(doc):
    doc["transitions"][0]["condition"] = "claim.amount >"


def _unreachable(doc):
    doc["transitions"] = doc["transitions"][:1]


def _wrong_type(doc):
    doc["steps"][0]["order"] = "first"


def _unknown_key(doc):
    doc["steps"][0]["is_inital_step"] = True


def _missing_name(doc):
    del doc["name"]


def _blank_step_name(doc):
    doc["steps"][1]["name"] = "  "


def _status_with_two_roles(doc):
    _step(doc, "Review Claim")["statuses"][1]["is_cancellation_status"] = True


def _default_on_hold(doc):
    _step(doc, "Review Claim")["statuses"][0]["is_on_hold_status"] = True


def _no_steps(doc):
    doc["steps"] = []
    doc["transitions"] = []


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (_no_initial, "steps", "initial"),
        (_two_initial, "steps", "initial"),
        (_no_final, "steps", "final"),
        (_no_default, "steps[1].statuses", "default"),
        (_two_defaults, "steps[1].statuses", "default"),
        (_final_without_completion, "steps[2].statuses", "completion"),
        (_two_cancellations, "steps[1].statuses", "cancellation"),
        (_two_on_hold, "steps[1].statuses", "on-hold"),
        (_duplicate_step, "steps[3].name", "Review Claim"),
        (_duplicate_status, "steps[1].statuses[3].name", "Approved"),
        (_unknown_step, "transitions[2].to_step", "Nowhere"),
        (_bad_condition, "transitions[0].condition", "Submit Claim → Review Claim"),
        (_unreachable, "steps[2]", "Approve/Reject"),
        (_wrong_type, "steps[0].order", "integer"),
        (_unknown_key, "steps[0].is_inital_step", "unknown"),
        (_missing_name, "name", "required"),
        (_blank_step_name, "steps[1].name", "blank"),
        (_status_with_two_roles, "steps[1].statuses[1]", "role"),
        (_default_on_hold, "steps[1].statuses[0]", "default"),
        (_no_steps, "steps", "step"),
    ],
)
def test_each_kind_of_problem_is_reported_with_its_path(mutate, path, words):
    doc = claim_doc()
    mutate(doc)
    problems = problems_of(doc)
    matching = [p for p in problems if p["path"] == path]
    assert matching, problems
    assert any(words in p["message"] for p in matching), matching


def test_every_problem_is_reported_at_once():
    doc = claim_doc()
    for mutate in (
        _no_final,
        _no_default,
        _duplicate_status,
        _unknown_step,
        _bad_condition,
        _wrong_type,
    ):
        mutate(doc)
    paths = paths_of(doc)
    assert {
        "steps",
        "steps[1].statuses",
        "steps[1].statuses[3].name",
        "transitions[2].to_step",
        "transitions[0].condition",
        "steps[0].order",
    } <= paths


def test_a_document_that_is_not_a_mapping_is_a_problem_not_a_crash():
    assert paths_of(["not", "a", "mapping"]) == {""}
    assert "steps[0]" in paths_of({"name": "x", "steps": ["just a string"]})


def test_null_values_take_the_defaults():
    doc = claim_doc()
    doc["description"] = None
    doc["steps"][1]["order"] = None
    doc["transitions"][0]["condition"] = None
    doc["transitions"][0]["priority"] = None
    assert validate_definition(doc) == []
    workflow = import_workflow(doc)
    exported = export_workflow(workflow)
    assert exported["description"] == ""
    assert exported["steps"][1]["order"] == 2
    assert exported["transitions"][0]["condition"] == ""
    assert exported["transitions"][0]["priority"] == 0


def test_warnings_for_legal_but_suspicious_definitions():
    doc = claim_doc()
    # An unconditional transition of higher priority shadows a later one of the same step.
    doc["steps"].insert(
        2, {"name": "Escalate", "statuses": [{"name": "Open", "is_default_status": True}]}
    )
    doc["transitions"] += [
        {
            "from_step": "Submit Claim",
            "to_step": "Escalate",
            "priority": -1,
            "condition": "claim.amount > 5",
        },
        {"from_step": "Approve/Reject", "to_step": "Review Claim"},
    ]
    warnings = validate_definition(doc)
    text = "\n".join(warnings)
    assert "never fires" in text and "Submit Claim → Escalate" in text
    assert 'Step "Escalate" has no completion status' in text
    assert 'Step "Escalate" is not final and has no outgoing transition' in text
    assert 'final step "Approve/Reject" are never taken' in text


# --------------------------------------------------------------------------- import / export


def test_import_creates_the_workflow_and_it_runs(claim):
    workflow = import_workflow(claim_doc())
    assert workflow.name == "Claims"
    assert list(workflow.steps.values_list("name", flat=True)) == [
        "Submit Claim",
        "Review Claim",
        "Approve/Reject",
    ]
    instance = services.start_workflow_instance("Claims", claim)
    services.update_workflow_step_status(instance, "Submitted")
    assert instance.current_step.name == "Review Claim"
    services.update_workflow_step_status(instance, "Approved")
    services.update_workflow_step_status(instance, "Approved")
    assert instance.state == "COMPLETED"


def test_an_invalid_document_creates_nothing():
    doc = claim_doc()
    _bad_condition(doc)
    with pytest.raises(InvalidDefinition):
        import_workflow(doc)
    assert not Workflow.objects.exists()
    assert not WorkflowStep.objects.exists()


def test_a_condition_reading_a_variable_no_listed_model_has_is_refused_at_import():
    doc = claim_doc()
    doc["transitions"][1]["condition"] = "claim.amount > 10 && clam.amount > 10"
    with pytest.raises(InvalidDefinition) as info:
        import_workflow(doc)
    assert info.value.code == "INVALID_DEFINITION"
    [problem] = info.value.problems
    assert problem["path"] == "transitions[1].condition"
    message = problem["message"]
    assert message.startswith('transition "Review Claim → Approve/Reject": unknown variable ')
    assert "'clam'" in message
    assert "available: amount, amount_approved, claim, claimant, created_at, id, input, " in message
    assert not Workflow.objects.exists()


@pytest.mark.parametrize(
    "condition",
    [
        "claim.amount > 10 && amount_approved == null",  # under the model's name and at the top
        "has(input.reason) && input.items.all(item, item > 1)",  # input; a macro's own variable
        "[1, 2].exists(x, x == priority) && type(amount) == double",  # a type CEL knows
        "timestamp(input.at) < created_at + duration('1h')",  # functions CEL knows
    ],
)
def test_conditions_reading_what_the_listed_models_give_still_load(condition, claim):
    doc = claim_doc()
    doc["transitions"][0]["condition"] = condition
    assert import_workflow(doc).transitions.get(from_step__name="Submit Claim").condition == (
        condition
    )


@pytest.mark.parametrize(
    ("key", "value", "path", "unknown"),
    [
        ("assignees", {"expression": "nope"}, "assignees.expression", "nope"),
        ("assignees", {"expression": "claim.owner", "groups": ["g"]}, None, None),
        ("deadline", {"at": 'nope + duration("1h")'}, "deadline.at", "nope"),
        ("deadline", {"at": 'created_at + duration("1h")'}, None, None),
        # entered by no caller: these expressions have no input to read
        ("assignees", {"expression": "input.reviewer"}, "assignees.expression", "input"),
        ("deadline", {"at": "timestamp(input.due)"}, "deadline.at", "input"),
    ],
)
def test_every_expression_of_a_step_is_checked_for_unknown_variables(key, value, path, unknown):
    doc = claim_doc()
    doc["steps"][1][key] = value
    if path is None:
        validate_definition(doc)
        assert import_workflow(doc).name == "Claims"
        return
    with pytest.raises(InvalidDefinition) as info:
        import_workflow(doc)
    assert info.value.code == "INVALID_DEFINITION"
    [problem] = info.value.problems
    assert problem["path"] == f"steps[1].{path}"
    assert problem["message"].startswith(f"unknown variable {unknown!r}; available: ")
    assert "claim, claimant, created_at" in problem["message"]
    assert "input" not in problem["message"].partition("available: ")[2]
    assert not Workflow.objects.exists()


@pytest.mark.parametrize("name", ["wfc_assign.yaml", "wfc_at.yaml"])
def test_load_workflow_check_refuses_a_typo_in_assignees_or_a_deadline(name, tmp_path):
    key = "assignees: {expression: nope}" if "assign" in name else "deadline: {at: nope}"
    text = f"""name: typo
content_types: [claims.claim]
steps:
  - name: A
    is_initial_step: true
    {key}
    statuses:
      - {{name: Wait, is_default_status: true}}
      - {{name: Go, is_completion_status: true}}
  - name: C
    is_final_step: true
    statuses:
      - {{name: Open, is_default_status: true}}
      - {{name: Done, is_completion_status: true}}
transitions:
  - {{from_step: A, to_step: C}}
"""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CommandError) as info:
        call_command("load_workflow", str(path), "--check")
    assert "unknown variable 'nope'" in str(info.value)


def test_without_content_types_an_unknown_variable_is_found_only_when_evaluated(claim):
    doc = claim_doc()
    doc["content_types"] = []
    doc["transitions"][0]["condition"] = "clam.amount > 10"
    assert import_workflow(doc).name == "Claims"


def test_importing_an_existing_name_is_refused_without_replace():
    import_workflow(claim_doc())
    with pytest.raises(InvalidDefinition) as info:
        import_workflow(claim_doc())
    assert info.value.code == "INVALID_DEFINITION"
    assert [p["path"] for p in info.value.problems] == ["name"]
    assert Workflow.objects.count() == 1


def test_export_then_import_round_trips_to_an_equal_definition():
    original = import_workflow(load_example("claim_triage.yaml"))
    exported = export_workflow(original)
    for fmt in ("yaml", "json"):
        text = dump_document(exported, format=fmt)
        doc = load_document(text)
        assert doc == exported
        doc["name"] = f"Copy via {fmt}"
        copy_ = import_workflow(doc)
        again = export_workflow(copy_)
        assert {**again, "name": exported["name"]} == exported


def test_export_gives_every_key_and_the_steps_in_order(claim_workflow):
    doc = export_workflow(claim_workflow)
    assert list(doc) == ["name", "description", "content_types", "steps", "transitions"]
    assert doc["content_types"] == ["claims.claim"]
    assert [s["name"] for s in doc["steps"]] == ["Submit Claim", "Review Claim", "Approve/Reject"]
    assert set(doc["steps"][0]) == {
        "name",
        "description",
        "order",
        "is_initial_step",
        "is_final_step",
        "statuses",
    }
    assert set(doc["steps"][0]["statuses"][0]) == {
        "name",
        "description",
        "is_default_status",
        "is_completion_status",
        "is_cancellation_status",
        "is_on_hold_status",
        "permission",
    }
    assert doc["transitions"][0] == {
        "from_step": "Submit Claim",
        "to_step": "Review Claim",
        "condition": "",
        "priority": 0,
        "description": "",
    }


@pytest.mark.django_db(transaction=True)  # the version moves per committed change
def test_replace_updates_in_place_and_only_new_instances_follow(claim_workflow, claim):
    instance = services.start_workflow_instance("Claim Processing", claim)
    step_ids = dict(WorkflowStep.objects.values_list("name", "id"))
    draft_id = WorkflowStepStatus.objects.get(step__name="Submit Claim", name="Draft").id
    version = claim_workflow.definition_version

    doc = export_workflow(claim_workflow)
    doc["description"] = "Now with an escalation path"
    _step(doc, "Review Claim")["statuses"].append(
        {"name": "Needs Senior", "is_completion_status": True}
    )
    doc["steps"].insert(
        2,
        {"name": "Senior Review", "order": 3, "statuses": statuses("Waiting", "Done")},
    )
    _step(doc, "Approve/Reject")["order"] = 4
    doc["transitions"] = [
        {
            "from_step": "Submit Claim",
            "to_step": "Senior Review",
            "priority": 5,
            "condition": "claim.amount > 1000",
        },
        {"from_step": "Submit Claim", "to_step": "Review Claim"},
        {"from_step": "Review Claim", "to_step": "Approve/Reject"},
        {"from_step": "Senior Review", "to_step": "Approve/Reject"},
    ]
    workflow = import_workflow(doc, replace=True)

    assert workflow.pk == claim_workflow.pk
    assert workflow.description == "Now with an escalation path"
    assert workflow.definition_version > version
    for name, pk in step_ids.items():
        assert WorkflowStep.objects.get(workflow=workflow, name=name).pk == pk
    assert WorkflowStepStatus.objects.get(step__name="Submit Claim", name="Draft").id == draft_id
    assert export_workflow(workflow)["transitions"] == [
        {
            **t,
            "condition": t.get("condition", ""),
            "priority": t.get("priority", 0),
            "description": "",
        }
        for t in doc["transitions"]
    ]
    # The running instance (claim amount 1500) stays on the version it started on...
    services.update_workflow_step_status(instance, "Submitted")
    assert instance.current_step.name == "Review Claim"
    # ...while a new one runs on the new version and takes the new guarded transition.
    other = Claim.objects.create(title="Roof", claimant="Bo", amount=Decimal("1500.00"))
    newer = services.start_workflow_instance("Claim Processing", other)
    services.update_workflow_step_status(newer, "Submitted")
    assert newer.current_step.name == "Senior Review"
    assert (instance.definition_version.number, newer.definition_version.number) == (
        version,
        workflow.definition_version,
    )


def test_replace_can_move_the_default_and_cancellation_flags_between_statuses(claim_workflow):
    doc = export_workflow(claim_workflow)
    statuses = _step(doc, "Submit Claim")["statuses"]  # Draft, Submitted, On Hold, Withdrawn
    statuses[0]["is_default_status"] = False
    statuses[0]["is_cancellation_status"] = True
    statuses[3]["is_cancellation_status"] = False
    statuses[3]["is_default_status"] = True
    workflow = import_workflow(doc, replace=True)
    assert export_workflow(workflow) == doc


def test_replace_removes_unused_parts(claim_workflow):
    doc = export_workflow(claim_workflow)
    _step(doc, "Review Claim")["statuses"] = [
        s for s in _step(doc, "Review Claim")["statuses"] if s["name"] != "Rejected"
    ]
    doc["steps"] = [s for s in doc["steps"] if s["name"] != "Approve/Reject"]
    _step(doc, "Review Claim")["is_final_step"] = True
    doc["transitions"] = doc["transitions"][:1]
    workflow = import_workflow(doc, replace=True)
    assert export_workflow(workflow) == doc
    assert not WorkflowStep.objects.filter(name="Approve/Reject").exists()
    assert WorkflowTransition.objects.filter(workflow=workflow).count() == 1


def test_removing_a_step_in_use_publishes_a_version_and_the_running_instance_finishes_on_its_own(
    claim_workflow, claim
):
    instance = services.start_workflow_instance("Claim Processing", claim)
    services.update_workflow_step_status(instance, "Submitted")  # now on "Review Claim"
    review = WorkflowStep.objects.get(name="Review Claim")
    before = export_workflow(claim_workflow)

    doc = copy.deepcopy(before)
    doc["steps"] = [s for s in doc["steps"] if s["name"] != "Review Claim"]
    doc["transitions"] = [{"from_step": "Submit Claim", "to_step": "Approve/Reject"}]
    workflow = import_workflow(doc, replace=True)
    assert workflow.definition_version == 2
    assert [s["name"] for s in export_workflow(workflow)["steps"]] == [
        "Submit Claim",
        "Approve/Reject",
    ]
    # The step is retired, not deleted: the instance and its history still point at it.
    assert not WorkflowStep.objects.filter(pk=review.pk).exists()
    assert WorkflowStep.all_objects.get(pk=review.pk).retired

    # The running instance finishes on version 1, through the removed step.
    services.update_workflow_step_status(instance, "Approved")
    assert instance.current_step.name == "Approve/Reject"
    services.update_workflow_step_status(instance, "Approved")
    assert instance.state == "COMPLETED"
    assert instance.definition_version.number == 1
    assert [e.definition_version.number for e in instance.events.order_by("sequence")] == [1] * 4

    # Adding the step again brings back the same row (its id, so its global ID, is stable).
    workflow = import_workflow(before, replace=True)
    assert workflow.definition_version == 3
    assert WorkflowStep.objects.get(name="Review Claim").pk == review.pk
    assert export_workflow(workflow) == before


def test_an_identical_re_import_publishes_no_version(claim_workflow):
    doc = export_workflow(claim_workflow)
    first = import_workflow(doc, replace=True)
    assert first.definition_version == 1
    assert import_workflow(copy.deepcopy(doc), replace=True).definition_version == 1
    assert claim_workflow.versions.count() == 1
    # Lists in another order are the same definition.
    doc["steps"][0]["statuses"].reverse()
    assert import_workflow(doc, replace=True).definition_version == 1


def test_replace_with_an_invalid_document_changes_nothing(claim_workflow):
    before = export_workflow(claim_workflow)
    doc = copy.deepcopy(before)
    _no_final(doc)
    with pytest.raises(InvalidDefinition):
        import_workflow(doc, replace=True)
    assert export_workflow(claim_workflow) == before


# --------------------------------------------------------------------------- text


def test_load_document_reads_json_and_yaml():
    doc = claim_doc()
    assert load_document(dump_document(doc, "json")) == doc
    assert load_document(dump_document(doc, "yaml")) == doc


@pytest.mark.parametrize(
    "text", ["name: [unclosed", '{"name": "x",', "", "- a\n- b\n", "just words"]
)
def test_load_document_refuses_what_is_not_a_mapping(text):
    with pytest.raises(InvalidDefinition) as info:
        load_document(text)
    assert info.value.code == "INVALID_DEFINITION"
    assert info.value.problems


def test_dump_document_refuses_an_unknown_format():
    with pytest.raises(ValueError):
        dump_document({}, format="xml")


# --------------------------------------------------------------------------- delete


def test_delete_workflow_refuses_when_instances_exist(claim_workflow, claim):
    instance = services.start_workflow_instance("Claim Processing", claim)
    services.cancel_workflow_instance(instance)  # even finished instances keep their history
    with pytest.raises(WorkflowInUse) as info:
        delete_workflow(claim_workflow)
    assert info.value.code == "WORKFLOW_IN_USE"
    assert Workflow.objects.filter(pk=claim_workflow.pk).exists()
    assert WorkflowEvent.objects.filter(instance=instance).count() == 2


def test_delete_workflow_deletes_an_unused_definition(claim_workflow):
    delete_workflow(claim_workflow)
    assert not Workflow.objects.exists()
    assert not WorkflowStep.objects.exists()
    assert not WorkflowTransition.objects.exists()


# --------------------------------------------------------------------------- examples


def test_claim_processing_example_is_the_readme_workflow(claim_workflow):
    doc = load_example("claim_processing.yaml")
    assert validate_definition(doc) == []
    workflow = import_workflow({**doc, "name": "From the example"})
    ours, theirs = export_workflow(workflow), export_workflow(claim_workflow)

    # The example adds the demo's permissions to some statuses, an on-hold and a cancellation
    # status (reviewers' only) to the steps that had none, and a deadline to the review; the
    # README's workflow has none of these.
    added = {
        ("Review Claim", "On Hold"),
        ("Review Claim", "Closed"),
        ("Approve/Reject", "On Hold"),
        ("Approve/Reject", "Closed"),
    }

    def shape(d):
        ignored = ("description", "permission")
        return {
            "content_types": d["content_types"],
            "steps": [
                # assignees (who acts, issue 23) and deadline were added to the example
                {k: v for k, v in s.items() if k not in ("description", "assignees", "deadline")}
                | {
                    "statuses": [
                        {k: v for k, v in st.items() if k not in ignored}
                        for st in s["statuses"]
                        if (s["name"], st["name"]) not in added
                    ]
                }
                for s in d["steps"]
            ],
            "transitions": d["transitions"],
        }

    assert shape(ours) == shape(theirs)


def test_claim_triage_example_routes_large_claims_to_senior_review():
    from claims.models import Claim

    doc = load_example("claim_triage.yaml")
    assert validate_definition(doc) == []
    import_workflow(doc)
    big = Claim.objects.create(title="Roof", claimant="Ada", amount=Decimal("1000.01"))
    small = Claim.objects.create(title="Window", claimant="Bob", amount=Decimal("1000.00"))
    routes = {}
    for claim in (big, small):
        instance = services.start_workflow_instance("Claim Triage", claim)
        services.update_workflow_step_status(instance, "Triaged")
        routes[claim.title] = instance.current_step.name
        last = WorkflowEvent.objects.filter(instance=instance).order_by("sequence").last()
        assert last.kind == "ADVANCED"
    assert routes == {"Roof": "Senior Review", "Window": "Fast Track"}

    services.update_workflow_step_status(instance, "Checked")
    services.update_workflow_step_status(instance, "Paid")
    assert instance.state == "COMPLETED"


def test_examples_are_shipped_as_package_data():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == [
        "claim_processing.yaml",
        "claim_triage.yaml",
    ]


def test_replace_keeps_transitions_that_only_changed_priority_or_condition(claim_workflow, claim):
    instance = services.start_workflow_instance("Claim Processing", claim)
    services.update_workflow_step_status(instance, "Submitted")
    taken = WorkflowEvent.objects.get(instance=instance, kind="ADVANCED").transition
    ids = set(WorkflowTransition.objects.values_list("id", flat=True))

    doc = export_workflow(claim_workflow)
    doc["transitions"][0].update(priority=3, condition="claim.amount >= 0", description="reworded")
    workflow = import_workflow(doc, replace=True)

    assert export_workflow(workflow) == doc
    assert set(WorkflowTransition.objects.values_list("id", flat=True)) == ids
    event = WorkflowEvent.objects.get(instance=instance, kind="ADVANCED")
    assert event.transition_id == taken.id
    assert event.transition.priority == 3


# --------------------------------------------------------------------------- integers too large


HUGE = "9" * 900_000  # Python refuses to convert more than 4300 digits: a bare ValueError


def _document(priority: str) -> str:
    return (
        "name: Huge\n"
        "content_types: [claims.claim]\n"
        "steps:\n"
        "  - {name: A, is_initial_step: true, is_final_step: true, statuses: "
        "[{name: Open, is_default_status: true}, {name: Done, is_completion_status: true}]}\n"
        f"transitions:\n  - {{from_step: A, to_step: A, priority: {priority}}}\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        _document(HUGE),
        _document("0x" + "f" * 100_000),  # no digit limit, but a number of any size
        _document("3000000000"),  # fits Python, not the database column
        json.dumps({"name": "Huge", "steps": [{"name": "A", "order": 0}]}).replace(
            '"order": 0', f'"order": {HUGE}'
        ),
    ],
    ids=["yaml-decimal", "yaml-hexadecimal", "yaml-beyond-32-bits", "json"],
)
def test_a_document_with_an_integer_too_large_is_an_invalid_definition_with_a_path(
    db, tmp_path, text
):
    with pytest.raises(InvalidDefinition) as refused:
        validate_definition(load_document(text))
    paths = [p["path"] for p in refused.value.problems]
    assert ("transitions[0].priority" in paths) or ("steps[0].order" in paths), paths
    assert all(len(p["message"]) < 200 for p in refused.value.problems)

    path = tmp_path / "huge.yaml"
    path.write_text(text)
    with pytest.raises(CommandError) as failed:
        call_command("load_workflow", str(path))
    assert "priority" in str(failed.value) or "order" in str(failed.value)
    assert len(str(failed.value)) < 2000


def test_a_huge_integer_anywhere_else_is_named_by_its_path_without_its_digits(db):
    document = load_document(f"name: {HUGE}\nsteps: []\n")  # read: a value, not a crash
    with pytest.raises(InvalidDefinition) as refused:
        validate_definition(document)
    assert refused.value.problems[0] == {"path": "name", "message": "must be a string, not int"}
    assert HUGE[:50] not in json.dumps(refused.value.problems)
    with pytest.raises(InvalidDefinition) as top:
        load_document(HUGE)
    assert top.value.problems == [{"path": "", "message": "must be a mapping, not an int"}]
