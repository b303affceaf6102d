"""Definition size limits: at most ``DEFINITION_MAX_STEPS`` steps, ``…_STATUSES_PER_STEP``
statuses in a step, ``…_TRANSITIONS`` transitions and ``…_TRANSITIONS_PER_STEP`` transitions
leaving one step — whichever way a definition arrives (a document, GraphQL ``createWorkflow``,
the admin row by row) — and the GraphQL cost estimate counts a definition's lists with the same
settings, so it stays an upper bound."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import include, path, reverse
from graphql import parse

from django_steps.conf import DEFAULTS
from django_steps.definitions import export_workflow, import_workflow, validate_definition
from django_steps.exceptions import InvalidDefinition
from django_steps.models import Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition
from tests.conftest import camel

urlpatterns = [path("admin/", admin.site.urls), path("", include("graphql_api.urls"))]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

MAX_STEPS = DEFAULTS["DEFINITION_MAX_STEPS"]
MAX_STATUSES = DEFAULTS["DEFINITION_MAX_STATUSES_PER_STEP"]
MAX_TRANSITIONS = DEFAULTS["DEFINITION_MAX_TRANSITIONS"]
MAX_OUTGOING = DEFAULTS["DEFINITION_MAX_TRANSITIONS_PER_STEP"]


# --------------------------------------------------------------------------- documents


def document(
    *,
    steps: int = 3,
    statuses: int = 2,
    transitions: int | None = None,
    fan_out: int = 1,
    name: str = "Big",
) -> dict:
    """A valid-in-shape definition: ``steps`` steps in a chain (every step reachable), the first
    one with ``statuses`` statuses, ``transitions`` transitions in all (the chain, then jumps
    spread over the steps: at most 4 leave one step for up to 70) and ``fan_out`` transitions
    leaving the first step."""
    names = [f"Step {i}" for i in range(steps)]
    pairs = [(names[i], names[i + 1]) for i in range(steps - 1)]
    pairs += [(names[0], names[j]) for j in range(2, fan_out + 1)]
    jumps = [(names[i], names[i + gap]) for gap in range(2, steps) for i in range(1, steps - gap)]
    if transitions is not None:
        pairs += [pair for pair in jumps if pair not in pairs][: transitions - len(pairs)]
        assert len(pairs) == transitions, "not enough steps for that many transitions"

    def step_statuses(count: int) -> list[dict]:
        base = [
            {"name": "Open", "is_default_status": True},
            {"name": "Done", "is_completion_status": True},
        ]
        return base + [{"name": f"Extra {k}"} for k in range(count - 2)]

    return {
        "name": name,
        "content_types": ["claims.claim"],
        "steps": [
            {
                "name": step,
                "is_initial_step": i == 0,
                "is_final_step": i == steps - 1,
                "statuses": step_statuses(statuses if i == 0 else 2),
            }
            for i, step in enumerate(names)
        ],
        "transitions": [{"from_step": a, "to_step": b} for a, b in pairs],
    }


#: (limit, the largest document allowed, the smallest refused, where the problem is reported)
CASES = {
    "steps": ("DEFINITION_MAX_STEPS", {"steps": MAX_STEPS}, {"steps": MAX_STEPS + 1}, "steps"),
    "statuses": (
        "DEFINITION_MAX_STATUSES_PER_STEP",
        {"statuses": MAX_STATUSES},
        {"statuses": MAX_STATUSES + 1},
        "steps[0].statuses",
    ),
    "transitions": (
        "DEFINITION_MAX_TRANSITIONS",
        {"steps": MAX_STEPS, "transitions": MAX_TRANSITIONS},
        {"steps": MAX_STEPS, "transitions": MAX_TRANSITIONS + 1},
        "transitions",
    ),
    "outgoing": (
        "DEFINITION_MAX_TRANSITIONS_PER_STEP",
        {"steps": MAX_OUTGOING + 2, "fan_out": MAX_OUTGOING},
        {"steps": MAX_OUTGOING + 2, "fan_out": MAX_OUTGOING + 1},
        "steps[0]",
    ),
}


def limit_problems(problems: list[dict]) -> list[dict]:
    return [p for p in problems if "limit" in p]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_document_at_a_limit_is_imported_and_one_over_it_is_refused(case):
    setting, largest, too_big, where = CASES[case]
    assert validate_definition(document(**largest)) is not None  # valid (warnings only)
    workflow = import_workflow(document(**largest, name="Largest"))
    assert export_workflow(workflow)["steps"]  # stored

    with pytest.raises(InvalidDefinition) as caught:
        import_workflow(document(**too_big))
    # The limit is the one problem: the rest of the document is fine.
    assert caught.value.problems == limit_problems(caught.value.problems)
    [problem] = caught.value.problems
    assert problem["path"] == where and problem["limit"] == setting
    assert "at most" in problem["message"]
    assert caught.value.code == "INVALID_DEFINITION"
    assert not Workflow.objects.filter(name="Big").exists()  # nothing half-imported


def test_every_limit_is_reported_at_once():
    doc = document(steps=MAX_STEPS + 1, statuses=MAX_STATUSES + 1, transitions=MAX_TRANSITIONS + 1)
    doc["transitions"] += [
        {"from_step": "Step 0", "to_step": f"Step {j}"} for j in range(6, 6 + MAX_OUTGOING)
    ]
    with pytest.raises(InvalidDefinition) as caught:
        validate_definition(doc)
    assert {p["limit"] for p in limit_problems(caught.value.problems)} == {
        "DEFINITION_MAX_STEPS",
        "DEFINITION_MAX_STATUSES_PER_STEP",
        "DEFINITION_MAX_TRANSITIONS",
        "DEFINITION_MAX_TRANSITIONS_PER_STEP",
    }


def test_the_limits_are_settings(settings):
    settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, "DEFINITION_MAX_STEPS": 2}
    with pytest.raises(InvalidDefinition) as caught:
        validate_definition(document(steps=3))
    assert [p["message"] for p in caught.value.problems] == ["a workflow may have at most 2 steps"]
    settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, "DEFINITION_MAX_STEPS": 30}
    validate_definition(document(steps=25))


# --------------------------------------------------------------------------- GraphQL

CREATE_WORKFLOW = """
mutation CreateWorkflow($input: WorkflowDefinitionInput!) {
  createWorkflow(input: $input) {
    __typename
    ... on Workflow { name steps { name } }
    ... on OperationInfo { messages { kind code field message } }
  }
}
"""


@pytest.fixture
def designer():
    return get_user_model().objects.create_superuser("designer", "designer@example.com", "pw")


def create_workflow(user, doc: dict) -> dict:
    client = Client()
    client.force_login(user)
    response = client.post(
        "/graphql/",
        data=json.dumps({"query": CREATE_WORKFLOW, "variables": {"input": camel(doc)}}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    result = response.json()
    assert "errors" not in result, result
    return result["data"]["createWorkflow"]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_create_workflow_refuses_a_definition_over_a_limit(designer, case):
    setting, largest, too_big, where = CASES[case]
    payload = create_workflow(designer, document(**too_big))
    assert payload["__typename"] == "OperationInfo"
    [message] = payload["messages"]
    assert message["code"] == "INVALID_DEFINITION" and message["kind"] == "VALIDATION"
    assert message["field"] == where and "at most" in message["message"]
    assert not Workflow.objects.exists()
    # the largest allowed is created
    assert (
        create_workflow(designer, document(**largest, name="Largest"))["__typename"] == "Workflow"
    )


# --------------------------------------------------------------------------- the admin


@pytest.fixture
def admin_client(designer):
    client = Client()
    client.force_login(designer)
    return client


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:django_steps_{model._meta.model_name}_{view}", args=args)


def change_form(client, model, obj) -> dict:
    """What a browser posts back from an admin change page, unchanged."""
    response = client.get(admin_url(model, "change", obj.pk))
    data: dict = {}

    def add(form):
        for name in form.fields:
            value = form[name].value()
            if value is True:
                data[form.add_prefix(name)] = "on"
            elif value is not False:
                data[form.add_prefix(name)] = "" if value is None else value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        for form in inline.formset.initial_forms:
            add(form)
    return data


def assert_refused(response, message: str) -> None:
    assert response.status_code == 200, "saved"  # the form again, with the problems
    page = response.content.decode()
    assert "Not saved: the workflow would be over a size limit." in page
    assert message in page


def add_rows(data: dict, prefix: str, rows: list[dict]) -> None:
    start = int(data[f"{prefix}-TOTAL_FORMS"])
    for k, row in enumerate(rows, start=start):
        data.update({f"{prefix}-{k}-{key}": value for key, value in row.items()})
    data[f"{prefix}-TOTAL_FORMS"] = str(start + len(rows))


def new_workflow_form(steps: int) -> dict:
    data = {
        "name": "Hand made",
        "description": "",
        "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0",
        "steps-TOTAL_FORMS": "0",
        "steps-INITIAL_FORMS": "0",
    }
    add_rows(data, "steps", [{"name": f"Step {i}", "order": str(i)} for i in range(steps)])
    return data


def test_a_new_workflow_with_too_many_steps_is_not_saved_even_as_a_draft(admin_client):
    response = admin_client.post(admin_url(Workflow, "add"), new_workflow_form(MAX_STEPS + 1))
    assert_refused(response, f"a workflow may have at most {MAX_STEPS} steps")
    assert not Workflow.objects.exists() and not WorkflowStep.objects.exists()
    # a draft within the limits is saved (its other problems shown as a warning)
    assert (
        admin_client.post(admin_url(Workflow, "add"), new_workflow_form(MAX_STEPS)).status_code
        == 302
    )
    assert WorkflowStep.objects.filter(workflow__name="Hand made").count() == MAX_STEPS


def test_a_step_added_over_the_limit_is_rolled_back(admin_client):
    workflow = import_workflow(document(steps=MAX_STEPS))
    before = export_workflow(workflow)
    data = change_form(admin_client, Workflow, workflow)
    data["description"] = "edited"
    add_rows(data, "steps", [{"name": "One too many", "order": "99"}])
    response = admin_client.post(admin_url(Workflow, "change", workflow.pk), data)
    assert_refused(response, f"a workflow may have at most {MAX_STEPS} steps")
    assert response.context["adminform"].form.data["description"] == "edited"  # the input is kept
    workflow.refresh_from_db()
    assert export_workflow(workflow) == before  # nothing saved, the description neither


def test_a_status_added_over_the_limit_is_rolled_back(admin_client):
    workflow = import_workflow(document(statuses=MAX_STATUSES))
    step = workflow.steps.get(name="Step 0")
    data = change_form(admin_client, WorkflowStep, step)
    add_rows(data, "statuses", [{"name": "One too many"}])
    response = admin_client.post(admin_url(WorkflowStep, "change", step.pk), data)
    assert_refused(response, f"may have at most {MAX_STATUSES} statuses")
    assert WorkflowStepStatus.objects.filter(step=step).count() == MAX_STATUSES


@pytest.mark.parametrize("case", ["transitions", "outgoing"])
def test_transitions_added_over_a_limit_are_rolled_back(admin_client, case):
    setting, largest, _too_big, _where = CASES[case]
    workflow = import_workflow(document(**largest))
    steps = {s.name: s.pk for s in workflow.steps.all()}
    taken = set(
        WorkflowTransition.objects.filter(workflow=workflow).values_list(
            "from_step__name", "to_step__name"
        )
    )
    if case == "outgoing":
        new = ("Step 0", f"Step {MAX_OUTGOING + 1}")
    else:
        new = next(
            (f"Step {i}", f"Step {j}")
            for i in range(MAX_STEPS)
            for j in range(MAX_STEPS)
            if i != j and (f"Step {i}", f"Step {j}") not in taken
        )
    data = change_form(admin_client, Workflow, workflow)
    add_rows(
        data,
        "transitions",
        [{"from_step": steps[new[0]], "to_step": steps[new[1]], "priority": "0", "condition": ""}],
    )
    assert_refused(admin_client.post(admin_url(Workflow, "change", workflow.pk), data), "at most")
    assert WorkflowTransition.objects.filter(workflow=workflow).count() == len(
        document(**largest)["transitions"]
    )


def test_a_workflow_already_over_a_limit_can_still_be_edited(admin_client, settings):
    workflow = import_workflow(document(steps=4))
    settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, "DEFINITION_MAX_STEPS": 3}  # lowered later
    data = change_form(admin_client, Workflow, workflow)
    data["description"] = "still editable"
    assert admin_client.post(admin_url(Workflow, "change", workflow.pk), data).status_code == 302
    workflow.refresh_from_db()
    assert workflow.description == "still editable"


# --------------------------------------------------------------------------- the cost estimate

STEPS_OF_ONE = (
    "{ workflows(first: 1) { edges { node { steps { id statuses { id } } transitions { id } } } } }"
)
CURRENT_STEP_LISTS = """query($id: ID!) { workflowInstance(id: $id) {
  availableStatuses { id } viewerCan { statuses { id } } currentStep { outgoingTransitions { id } }
    } }"""


def estimated(document_text: str) -> int:
    from graphql_api.schema import schema
    from graphql_api.security.cost import estimate

    return estimate(schema._schema, parse(document_text), None, {})


def test_the_estimate_counts_a_definition_with_the_limits(settings):
    # workflows: the connection, one edge, its node, then the steps (each with its statuses)
    # and the transitions at their limits
    assert estimated(STEPS_OF_ONE) == 1 + 1 * (
        1 + 1 + MAX_STEPS * (1 + MAX_STATUSES) + MAX_TRANSITIONS
    )
    assert estimated(CURRENT_STEP_LISTS) == 1 + MAX_STATUSES + 1 + MAX_STATUSES + 1 + MAX_OUTGOING

    # one setting moves the limit and the estimate together
    settings.DJANGO_STEPS = {
        **settings.DJANGO_STEPS,
        "DEFINITION_MAX_STEPS": 5,
        "DEFINITION_MAX_STATUSES_PER_STEP": 3,
        "DEFINITION_MAX_TRANSITIONS": 7,
        "DEFINITION_MAX_TRANSITIONS_PER_STEP": 2,
    }
    assert estimated(STEPS_OF_ONE) == 1 + 1 * (1 + 1 + 5 * (1 + 3) + 7)
    assert estimated(CURRENT_STEP_LISTS) == 1 + 3 + 1 + 3 + 1 + 2
    with pytest.raises(InvalidDefinition):
        validate_definition(document(steps=6))


def test_the_estimate_is_an_upper_bound_for_the_largest_definition(admin_client):
    """The largest definition the limits allow, read through GraphQL: no list holds more than
    the estimate assumed."""
    doc = document(steps=MAX_STEPS, statuses=MAX_STATUSES, transitions=MAX_TRANSITIONS)
    import_workflow(doc)
    response = admin_client.post(
        "/graphql/", data=json.dumps({"query": STEPS_OF_ONE}), content_type="application/json"
    )
    node = response.json()["data"]["workflows"]["edges"][0]["node"]
    objects = (
        1
        + 1
        + 1
        + len(node["steps"])
        + sum(len(s["statuses"]) for s in node["steps"])
        + len(node["transitions"])
    )
    assert len(node["steps"]) == MAX_STEPS and len(node["transitions"]) == MAX_TRANSITIONS
    assert objects <= estimated(STEPS_OF_ONE)
