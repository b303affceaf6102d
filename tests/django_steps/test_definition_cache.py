"""The per-process definition cache only ever serves committed definitions.

Compiled versions are cached by the version itself (its pk and content hash): these tests
commit for real (``transaction=True``) and never clear a cache: a worker process keeps its
caches for its whole life, so must the tests.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from django_steps import compiled
from django_steps.definitions import export_workflow, import_workflow
from django_steps.models import Workflow, WorkflowTransition
from django_steps.services import start_workflow_instance, update_workflow_step_status
from django_steps.versions import publish_workflow
from tests.conftest import make_workflow
from tests.django_steps.test_services import routing
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


def _set_condition(workflow: Workflow, to_step: str, condition: str) -> None:
    """Edit through the ORM (a draft) and publish it."""
    transition = WorkflowTransition.objects.get(workflow=workflow, to_step__name=to_step)
    transition.condition = condition
    transition.save()
    publish_workflow(workflow, validate=False)  # a fixture with unreachable steps


def _route(amount: str) -> str:
    instance = start_workflow_instance("Routing", Document.objects.create(amount=Decimal(amount)))
    return update_workflow_step_status(instance, "Done").current_step.name


def test_a_rolled_back_edit_is_never_served_to_a_later_committed_edit():
    """The reported bug: the rolled-back edit was read (and cached) inside its transaction; the
    next committed edit reached the same version number (and, on SQLite, the same version row
    id) and was served the rolled-back rows."""
    workflow = make_workflow(
        "Routing", routing([("Fast", "document.amount > 1000", 10), ("Slow", "", 0)])
    )
    assert _route("5000") == "Fast"
    version = Workflow.objects.get(pk=workflow.pk).definition_version

    with pytest.raises(Rollback), transaction.atomic():
        _set_condition(workflow, "Fast", "document.amount > 0")  # never commits
        assert _route("5") == "Fast"  # read inside the transaction: it sees its own edit
        raise Rollback

    assert Workflow.objects.get(pk=workflow.pk).definition_version == version
    assert _route("5") == "Slow"  # the rolled-back condition is not used

    _set_condition(workflow, "Fast", "document.amount > 100000")  # committed
    assert (
        Workflow.objects.get(pk=workflow.pk).definition_version == version + 1
    )  # same number as the rolled-back one
    assert _route("5") == "Slow"
    assert _route("5000") == "Slow"  # the committed condition, not the rolled-back "> 0"
    assert _route("500000") == "Fast"


def test_ids_given_back_by_a_rollback_do_not_alias_another_workflow():
    """SQLite hands the id of a rolled-back row out again; PostgreSQL does not (the test holds
    on both). The second workflow must never be served the first one's cached definition."""
    with pytest.raises(Rollback), transaction.atomic():
        first = make_workflow("Routing", routing([("Fast", "", 10)]))  # always Fast
        assert _route("1") == "Fast"  # read and cached inside the doomed transaction
        first_pk = first.pk
        raise Rollback

    second = make_workflow("Routing", routing([("Slow", "", 10)]))  # always Slow
    if connection.vendor == "sqlite":
        assert second.pk == first_pk  # the case reported: the very same id
    assert _route("1") == "Slow"


def test_an_edit_committed_by_someone_else_is_seen_by_the_next_change():
    workflow = make_workflow(
        "Routing", routing([("Fast", "document.amount > 1000", 10), ("Slow", "", 0)])
    )
    assert _route("5000") == "Fast"
    loads = compiled.stats["loads"]
    assert _route("5000") == "Fast"
    assert compiled.stats["loads"] == loads  # served from the cache
    # A bulk update is a draft like any ORM edit; publishing makes it the version new
    # instances run on.
    WorkflowTransition.objects.filter(workflow=workflow, to_step__name="Fast").update(
        condition="false"
    )
    assert _route("5000") == "Fast"
    publish_workflow(workflow, validate=False)  # a fixture with unreachable steps
    assert _route("5000") == "Slow"


def test_the_version_moves_once_per_committed_change(tmp_path):
    path = tmp_path / "routing.yaml"
    doc = {
        "name": "Loaded",
        **routing(
            [("Fast", "document.amount > 1000", 10), ("Slow", "", 0), ("Manual", "false", 0)]
        ),
    }
    path.write_text(json.dumps(doc))
    call_command("load_workflow", str(path), stdout=open(tmp_path / "out", "w"))
    assert (
        Workflow.objects.get(name="Loaded").definition_version == 1
    )  # created with its steps: one change
    doc = export_workflow(Workflow.objects.get(name="Loaded"))

    call_command("load_workflow", str(path), "--replace", stdout=open(tmp_path / "out", "w"))
    assert Workflow.objects.get(name="Loaded").definition_version == 1  # nothing changed

    doc["transitions"][0]["condition"] = "document.amount > 2000"
    doc["steps"][1]["statuses"].append({"name": "Escalated"})
    path.write_text(json.dumps(doc))
    call_command("load_workflow", str(path), "--replace", stdout=open(tmp_path / "out", "w"))
    assert Workflow.objects.get(name="Loaded").definition_version == 2  # one change, several rows

    # Through the models, edits are a draft: each publish of changed content is one version.
    transition = WorkflowTransition.objects.get(workflow__name="Loaded", to_step__name="Fast")
    transition.condition = "document.amount > 3000"
    transition.save()
    assert Workflow.objects.get(name="Loaded").definition_version == 2  # not published yet
    publish_workflow(Workflow.objects.get(name="Loaded"))
    assert Workflow.objects.get(name="Loaded").definition_version == 3
    with transaction.atomic():
        _set_condition(Workflow.objects.get(name="Loaded"), "Fast", "document.amount > 4000")
        _set_condition(Workflow.objects.get(name="Loaded"), "Fast", "document.amount > 3000")
    assert Workflow.objects.get(name="Loaded").definition_version == 5  # two publishes
    publish_workflow(Workflow.objects.get(name="Loaded"))  # nothing new
    assert Workflow.objects.get(name="Loaded").definition_version == 5
    assert (
        import_workflow(
            export_workflow(Workflow.objects.get(name="Loaded")), replace=True
        ).definition_version
        == 5
    )
    assert Workflow.objects.get(name="Loaded").versions.count() == 5
