"""The CEL context stored with an event (``{"object": …, "input": …}``) is bounded: over
``HISTORY_CONTEXT_MAX_SIZE`` bytes of JSON the largest part is stored as a marker (too large, and
its size) instead, never part of its value; the change itself decides on the whole context."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from django_steps.conf import DEFAULTS
from django_steps.models import WorkflowEvent
from django_steps.services import start_workflow_instance, update_workflow_step_status
from tests.conftest import fork, make_workflow
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

LIMIT = DEFAULTS["HISTORY_CONTEXT_MAX_SIZE"]


def json_size(value) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def routing(condition: str) -> dict:
    """Intake → Fast when ``condition`` holds, else Slow (both final)."""
    return fork("Intake", "Fast", "Slow", condition, priority=10)


def stored_context(instance):
    return WorkflowEvent.objects.get(pk=instance.last_event.pk).context


def test_a_client_context_over_the_limit_is_stored_as_a_marker_and_still_decides():
    make_workflow("Routing", routing("input.amount > 1000 && size(input.notes) > 0"))
    context = {"amount": 1500, "notes": "x" * LIMIT}
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", Document.objects.create()), "Done", context
    )
    assert instance.current_step.name == "Fast"  # decided on the whole context
    assert stored_context(instance) == {
        "input": {"_omitted": "TOO_LARGE", "size": json_size(context), "maxSize": LIMIT}
    }
    assert json_size(stored_context(instance)) < 100


def test_the_larger_part_gives_way_and_the_other_is_kept_whole():
    make_workflow(
        "Routing", routing("document.amount > 1000 && input.amount > 1000 && size(input.notes) > 0")
    )
    context = {"amount": 1500, "notes": "x" * LIMIT}
    doc = Document.objects.create(amount=Decimal("5000"))
    instance = update_workflow_step_status(start_workflow_instance("Routing", doc), "Done", context)
    assert instance.current_step.name == "Fast"
    stored = stored_context(instance)
    assert stored["input"] == {
        "_omitted": "TOO_LARGE",
        "size": json_size(context),
        "maxSize": LIMIT,
    }
    assert stored["object"]["amount"] == "5000.00"


def test_a_context_within_the_limit_is_stored_whole():
    make_workflow("Routing", routing("input.amount > 1000"))
    context = {"amount": 1500, "notes": "x" * (LIMIT - 100)}
    assert json_size({"input": context}) <= LIMIT
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", Document.objects.create()), "Done", context
    )
    assert stored_context(instance) == {"input": context}


def test_the_size_is_counted_as_sent_to_clients_non_ascii_escaped():
    make_workflow("Routing", routing("input.amount > 1000"))
    # 40 KB of UTF-8, but each "é" travels as "\\u00e9" in the JSON of a GraphQL response
    context = {"amount": 1500, "notes": "é" * (LIMIT // 3)}
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", Document.objects.create()), "Done", context
    )
    assert stored_context(instance)["input"]["_omitted"] == "TOO_LARGE"
    assert (
        stored_context(instance)["input"]["size"]
        > LIMIT
        > len(json.dumps(context, ensure_ascii=False).encode())
    )


def test_the_attached_objects_fields_are_bounded_too(settings):
    limit = 250
    settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, "HISTORY_CONTEXT_MAX_SIZE": limit}
    make_workflow("Routing", routing("document.amount > 1000"))
    small = Document.objects.create(title="t", amount=Decimal("5000"))
    instance = update_workflow_step_status(start_workflow_instance("Routing", small), "Done")
    assert stored_context(instance)["object"]["amount"] == "5000.00"  # the object's fields, whole
    assert json_size(stored_context(instance)) <= limit

    large = Document.objects.create(title="t" * 100, amount=Decimal("5000"))
    instance = update_workflow_step_status(start_workflow_instance("Routing", large), "Done")
    assert instance.current_step.name == "Fast"
    marker = stored_context(instance)["object"]
    assert marker["_omitted"] == "TOO_LARGE" and marker["size"] > limit
    assert marker["maxSize"] == limit


def test_no_limit_when_the_setting_is_none(settings):
    settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, "HISTORY_CONTEXT_MAX_SIZE": None}
    make_workflow("Routing", routing("input.amount > 1000"))
    context = {"amount": 1500, "notes": "x" * (LIMIT + 1)}
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", Document.objects.create()), "Done", context
    )
    assert stored_context(instance) == {"input": context}
