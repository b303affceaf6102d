"""Management commands: load_workflow, export_workflow, workflow_diagram, scrub_history_context."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

import django_steps
from django_steps import services
from django_steps.definitions import export_workflow
from django_steps.models import Workflow, WorkflowEvent

pytestmark = pytest.mark.django_db

EXAMPLES = Path(django_steps.__file__).parent / "examples"


def run(*args, **kwargs) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("example", ["claim_processing.yaml", "claim_triage.yaml"])
def test_load_workflow_loads_the_shipped_examples(example):
    out, _ = run("load_workflow", str(EXAMPLES / example))
    name = yaml.safe_load((EXAMPLES / example).read_text())["name"]
    assert f'Loaded workflow "{name}"' in out
    assert Workflow.objects.filter(name=name).exists()


def test_load_workflow_reads_json_and_replace_updates(tmp_path):
    run("load_workflow", str(EXAMPLES / "claim_processing.yaml"))
    doc = export_workflow(Workflow.objects.get(name="Claim Processing"))
    doc["description"] = "from JSON"
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(doc))

    with pytest.raises(CommandError, match="already exists"):
        run("load_workflow", str(path))
    run("load_workflow", str(path), "--replace")
    assert Workflow.objects.get(name="Claim Processing").description == "from JSON"
    assert Workflow.objects.count() == 1


def test_load_workflow_lists_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: Bad\n"
        "steps:\n"
        "  - name: A\n"
        "    statuses: [{name: x}]\n"
        "transitions:\n"
        "  - {from_step: A, to_step: B, condition: 'a >'}\n"
    )
    with pytest.raises(CommandError) as info:
        run("load_workflow", str(path))
    text = str(info.value)
    for path_ in (
        "steps[0].statuses",
        "transitions[0].to_step",
        "transitions[0].condition",
        "steps:",
    ):
        assert path_ in text
    assert "initial" in text and "final" in text
    assert not Workflow.objects.exists()


def test_load_workflow_check_only_validates(tmp_path):
    out, _ = run("load_workflow", str(EXAMPLES / "claim_triage.yaml"), "--check")
    assert "is valid" in out
    assert not Workflow.objects.exists()


def test_load_workflow_reports_unreadable_and_unparsable_files(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run("load_workflow", str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(CommandError, match="neither valid JSON nor YAML"):
        run("load_workflow", str(broken))


def test_load_workflow_replace_removing_a_status_in_use_publishes_a_version_without_it(
    tmp_path, claim_workflow, claim
):
    instance = services.start_workflow_instance("Claim Processing", claim)  # on Draft, v1
    doc = export_workflow(claim_workflow)
    doc["steps"][0]["statuses"] = [s for s in doc["steps"][0]["statuses"] if s["name"] != "Draft"]
    doc["steps"][0]["statuses"][0]["is_default_status"] = True
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(doc))
    out, _ = run("load_workflow", str(path), "--replace")
    assert "published version 2" in out
    assert export_workflow(Workflow.objects.get(name="Claim Processing")) == doc
    # The running instance stays on version 1, where Draft exists.
    services.update_workflow_step_status(instance, "Draft")
    assert instance.current_step_status.name == "Draft"
    assert instance.definition_version.number == 1


@pytest.mark.parametrize("fmt, parse", [("yaml", yaml.safe_load), ("json", json.loads)])
def test_export_workflow_prints_the_document(claim_workflow, fmt, parse):
    out, _ = run("export_workflow", "Claim Processing", "--format", fmt)
    assert parse(out) == export_workflow(claim_workflow)


def test_export_then_load_round_trips(claim_workflow, tmp_path):
    out, _ = run("export_workflow", "Claim Processing")
    path = tmp_path / "copy.yaml"
    path.write_text(out.replace("name: Claim Processing", "name: Claim Copy", 1))
    run("load_workflow", str(path))
    copy_ = export_workflow(Workflow.objects.get(name="Claim Copy"))
    assert {**copy_, "name": "Claim Processing"} == export_workflow(claim_workflow)


def test_workflow_diagram_prints_mermaid(claim_workflow):
    out, _ = run("workflow_diagram", "Claim Processing")
    assert out.splitlines()[1] == "flowchart TD"
    assert '    s3((("Approve/Reject")))' in out


@pytest.mark.parametrize("command", ["export_workflow", "workflow_diagram"])
def test_unknown_workflow_names_are_command_errors(command):
    with pytest.raises(CommandError, match="No workflow is named"):
        run(command, "Nope")


def test_scrub_history_context_removes_secrets_stored_by_earlier_versions(db):
    from django.contrib.auth import get_user_model

    from tests.django_steps.test_engine_trust import two_steps

    User = get_user_model()
    two_steps("user.is_active", content_types=["auth.user"])
    member = User.objects.create_user("member", password="pw-of-member")
    instance = services.start_workflow_instance("Guarded", member)
    services.update_workflow_step_status(instance, "Done", {"note": "kept", "password": "typed"})
    event = WorkflowEvent.objects.get(pk=instance.last_event.pk)
    # what an earlier version stored: every field, at the top level and under the model's name
    old = {"username": "member", "password": member.password}
    WorkflowEvent.objects.filter(pk=event.pk).update(context={**old, "user": dict(old)})
    out = io.StringIO()
    call_command("scrub_history_context", "--dry-run", stdout=out)
    assert "1 events" in out.getvalue()
    assert WorkflowEvent.objects.get(pk=event.pk).context["password"] == member.password
    call_command("scrub_history_context", stdout=io.StringIO())
    assert WorkflowEvent.objects.get(pk=event.pk).context == {
        "username": "member",
        "user": {"username": "member"},
    }
    # events of this version: the object's part is already clean, a caller's input is theirs
    WorkflowEvent.objects.filter(pk=event.pk).update(
        context={"object": {**old}, "input": {"password": "typed"}}
    )
    call_command("scrub_history_context", stdout=io.StringIO())
    assert WorkflowEvent.objects.get(pk=event.pk).context == {
        "object": {"username": "member"},
        "input": {"password": "typed"},
    }
