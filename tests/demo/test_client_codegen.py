"""The example client operations (client/*.graphql) against the committed schema.graphql.

1. graphql-core validates every operation against the schema, so a breaking schema change (a
   removed or renamed field, a changed argument) fails `make test`.
2. ariadne-codegen generates a typed Python client from the same files into a temporary
   directory, and the generated package is imported and used to parse a response.

ariadne-codegen pins graphql-core<3.3 while strawberry needs >=3.3, so it runs from a venv of
its own (.venv/codegen-tool, created here on first use from client/requirements-codegen.txt, or
given as ARIADNE_CODEGEN_PYTHON).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
SCHEMA = ROOT / "schema.graphql"
TOOL_VENV = ROOT / ".venv" / "codegen-tool"


def client_files() -> list[Path]:
    return sorted(CLIENT.glob("*.graphql"))


def client_document():
    return parse("\n".join(p.read_text(encoding="utf-8") for p in client_files()))


def errors_against(schema_sdl: str) -> list[str]:
    return [e.message for e in validate(build_schema(schema_sdl), client_document())]


def test_every_example_operation_is_valid_against_the_committed_schema():
    assert client_files(), "client/*.graphql holds the example operations"
    assert errors_against(SCHEMA.read_text(encoding="utf-8")) == []


def test_the_operations_a_frontend_needs_are_there():
    names = {
        d.name.value
        for d in client_document().definitions
        if d.kind == "operation_definition" and d.name is not None
    }
    assert {
        "Login",
        "Logout",
        "Workflows",
        "WorkflowInstances",
        "InstanceHistory",
        "StartWorkflowInstance",
        "SetWorkflowInstanceStatus",
        "HoldWorkflowInstance",
        "ResumeWorkflowInstance",
        "CancelWorkflowInstance",
        "InstanceEvents",
    } <= names


def test_a_breaking_schema_change_is_caught():
    schema = SCHEMA.read_text(encoding="utf-8")
    assert "availableStatuses" in schema
    broken = schema.replace("availableStatuses", "allowedStatuses")
    errors = errors_against(broken)
    assert any("availableStatuses" in e for e in errors), errors


# ----------------------------------------------------------------------------- ariadne-codegen


@pytest.fixture(scope="session")
def codegen_python() -> str:
    given = os.environ.get("ARIADNE_CODEGEN_PYTHON")
    if given:
        return given
    python = TOOL_VENV / "bin" / "python"
    stamp = TOOL_VENV / ".installed"
    requirements = CLIENT / "requirements-codegen.txt"
    if not stamp.exists() or stamp.stat().st_mtime < requirements.stat().st_mtime:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(TOOL_VENV)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
            check=True,
            timeout=600,
        )
        stamp.touch()
    return str(python)


def generate(codegen_python: str, schema: Path, target: Path) -> subprocess.CompletedProcess:
    config = target / "codegen.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [tool.ariadne-codegen]
            schema_path = "{schema}"
            queries_path = "{CLIENT}"
            target_package_name = "django_steps_client"
            target_package_path = "{target}"
            client_name = "DjangoStepsClient"
            async_client = true

            [tool.ariadne-codegen.scalars.DateTime]
            type = "datetime.datetime"

            [tool.ariadne-codegen.scalars.JSON]
            type = "typing.Any"
            """
        )
    )
    return subprocess.run(
        [codegen_python, "-m", "ariadne_codegen", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ariadne_codegen_generates_an_importable_typed_client(codegen_python, tmp_path):
    # The settings the test uses are those of `make client`, pointed at a temporary directory.
    committed = (CLIENT / "ariadne-codegen.toml").read_text()
    assert 'queries_path = "client"' in committed and 'schema_path = "schema.graphql"' in committed

    result = generate(codegen_python, SCHEMA, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    check = textwrap.dedent(
        """
        import datetime, inspect, sys
        sys.path.insert(0, sys.argv[1])
        from django_steps_client import DjangoStepsClient
        from django_steps_client.set_workflow_instance_status import SetWorkflowInstanceStatus
        from django_steps_client.input_types import SetWorkflowInstanceStatusInput

        for method in ("login", "workflows", "workflow_instances", "set_workflow_instance_status",
                       "hold_workflow_instance", "resume_workflow_instance",
                       "cancel_workflow_instance", "instance_events", "workflow_versions",
                       "workflow_diff", "migrate_workflow_instances"):
            assert inspect.iscoroutinefunction(getattr(DjangoStepsClient, method)) or \\
                inspect.isasyncgenfunction(getattr(DjangoStepsClient, method)), method

        SetWorkflowInstanceStatusInput(
            instanceId="V29ya2Zsb3dJbnN0YW5jZTox", status={"name": "Submitted"}
        )
        status = {"id": "s", "name": "Draft", "isDefaultStatus": True, "isCompletionStatus": False,
                  "isCancellationStatus": False, "isOnHoldStatus": False}
        parsed = SetWorkflowInstanceStatus.model_validate({"setWorkflowInstanceStatus": {
            "__typename": "WorkflowInstance", "id": "i", "state": "ACTIVE", "version": 2,
            "contentType": "claims.claim", "objectId": "1", "subject": {"label": "Broken window"},
            "startedAt": "2026-01-01T00:00:00+00:00", "updatedAt": "2026-01-01T00:00:01+00:00",
            "completedAt": None, "isAwaitingTransition": False, "definitionVersion": 1,
            "workflow": {"id": "w", "name": "Claim Processing", "version": 2},
            "currentStep": {"id": "st", "name": "Submit Claim", "order": 1},
            "currentStepStatus": status, "availableStatuses": [status],
            "viewerCan": {"statuses": [status], "hold": True, "resume": False, "cancel": True,
                          "advance": False}}})
        result = parsed.set_workflow_instance_status
        assert result.version == 2 and result.state.value == "ACTIVE"
        assert result.subject.label == "Broken window"
        assert isinstance(result.updated_at, datetime.datetime)
        assert result.viewer_can.hold and [s.name for s in result.viewer_can.statuses] == ["Draft"]
        assert result.definition_version < result.workflow.version  # an older version: migrate
        print("typed client ok")
        """
    )
    imported = subprocess.run(
        [codegen_python, "-c", check, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "typed client ok" in imported.stdout


def test_ariadne_codegen_fails_on_a_breaking_schema_change(codegen_python, tmp_path):
    broken = tmp_path / "schema.graphql"
    broken.write_text(
        SCHEMA.read_text(encoding="utf-8").replace("availableStatuses", "allowedStatuses")
    )
    out = tmp_path / "out"
    out.mkdir()
    result = generate(codegen_python, broken, out)
    assert result.returncode != 0
    assert "availableStatuses" in result.stdout + result.stderr
