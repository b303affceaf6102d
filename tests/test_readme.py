"""The README's GraphQL examples work as written (that they validate against schema.graphql:
``tests/test_docs.py``)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.servers import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```graphql\n(.*?)```", README, flags=re.S)


def block(start: str) -> str:
    return next(b for b in BLOCKS if b.lstrip().startswith(start))


def test_readme_has_a_query_a_mutation_and_a_subscription():
    kinds = {b.lstrip().split(None, 1)[0] for b in BLOCKS}
    assert {"query", "mutation", "subscription"} <= kinds


@pytest.mark.django_db
def test_readme_login_query_and_mutation_work_as_written(client):
    from claims.models import Claim
    from django_steps.services import start_workflow_instance

    call_command("demo_setup", stdout=open("/dev/null", "w"))
    client.get("/graphql/")

    def post(query, variables=None):
        response = client.post(
            "/graphql/",
            json.dumps({"query": query, "variables": variables or {}}),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
        )
        assert response.status_code == 200, response.content
        return response.json()

    assert post(block("mutation {\n  login"))["data"]["login"] == {"username": "demo"}
    page = post(block("query {"))["data"]["workflowInstances"]
    assert page["totalCount"] >= 1
    assert all(edge["node"]["state"] == "ACTIVE" for edge in page["edges"])

    claim = Claim.objects.create(title="README", claimant="Ada", amount=Decimal("5600.00"))
    instance = start_workflow_instance("Claim Triage", claim)
    from strawberry.relay import to_base64

    result = post(block("mutation Update"), {"id": to_base64("WorkflowInstance", instance.pk)})
    moved = result["data"]["setWorkflowInstanceStatus"]
    assert moved["version"] == 2
    assert moved["currentStep"]["name"] == "Senior Review"  # the CEL branch: 5600 > 1000


@pytest.mark.django_db
def test_readme_versions_query_and_migration_preview_work_as_written(client):
    from django.contrib.auth import get_user_model

    from django_steps.definitions import export_workflow, import_workflow
    from django_steps.models import Workflow, WorkflowInstance

    call_command("demo_setup", stdout=open("/dev/null", "w"))
    client.force_login(get_user_model().objects.get(username="demo"))
    client.get("/graphql/")
    # Version 2 of "Claim Triage": a higher threshold, one status renamed.
    document = export_workflow(Workflow.objects.get(name="Claim Triage"))
    for transition in document["transitions"]:
        if transition["condition"]:
            transition["condition"] = "claim.amount > 5000"
    intake = next(step for step in document["steps"] if step["name"] == "Intake")
    for status in intake["statuses"]:
        if status["name"] == "Waiting for Documents":
            status["name"] = "Documents Requested"
    import_workflow(document, replace=True)

    def post(query):
        response = client.post(
            "/graphql/",
            json.dumps({"query": query}),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
        )
        assert response.status_code == 200, response.content
        assert "errors" not in response.json(), response.json()
        return response.json()["data"]

    workflow = post(block("query Versions"))["workflow"]
    assert workflow["version"] == 2
    assert [e["node"]["number"] for e in workflow["versions"]["edges"]] == [2, 1]
    parts = {(c["part"], c["change"], c["name"]) for c in workflow["diff"]}
    assert ("TRANSITION", "CHANGED", "Intake → Senior Review") in parts
    assert ("STATUS", "ADDED", "Intake / Documents Requested") in parts

    preview = post(block("mutation Migrate"))["migrateWorkflowInstances"]
    running = WorkflowInstance.objects.filter(workflow__name="Claim Triage").unfinished()
    assert preview["__typename"] == "WorkflowMigration"
    assert len(preview["moves"]) == running.count() > 0
    assert not running.filter(definition_version__number=2).exists()  # a dry run


# --------------------------------------------------------------------- Use it in your project

SECTION = README[README.index("## Use it in your project") : README.index("## Configuration")]
#: (language, text) of each code block of the section, in order.
STEPS = re.findall(r"```(python|sh)\n(.*?)```", SECTION, flags=re.S)
EXAMPLE = ROOT / "examples" / "host_project"


def block_file(text: str) -> str:
    """The file a Python block is for: its first line names it."""
    match = re.match(r"# ([\w/]+\.py)\b", text)
    assert match, f"a Python block of 'Use it in your project' must start with '# <file>':\n{text}"
    return match.group(1)


def python_blocks() -> list[tuple[str, str]]:
    return [(block_file(text), text) for language, text in STEPS if language == "python"]


def test_the_example_project_is_what_the_readme_describes():
    """examples/host_project's settings hold every settings block; its other files are the last
    block for them, as written."""
    settings = (EXAMPLE / "mysite" / "settings.py").read_text()
    final: dict[str, str] = {}
    for path, text in python_blocks():
        if path.endswith("settings.py"):
            assert text in settings, text
        else:
            final[path] = text
    assert set(final) == {
        "mysite/urls.py",
        "mysite/asgi.py",
        "invoices/schema.py",
        "invoices/visibility.py",
        "mysite/schema.py",
    }
    for path, text in final.items():
        assert (EXAMPLE / path).read_text() == text, path
    # The YAML excerpts are the example workflow's own lines.
    workflow = (EXAMPLE / "invoices" / "workflows" / "invoice_approval.yaml").read_text()
    excerpts = re.findall(r"```yaml\n(.*?)```", SECTION, flags=re.S)
    assert excerpts
    for excerpt in excerpts:
        assert excerpt in workflow, excerpt


def test_the_install_commands_name_the_wheel_the_build_makes_and_real_extras():
    """The install block's commands are the ones `make dist-check` (CI) runs: `python -m build`,
    then the wheel with extras into a fresh virtualenv."""
    import tomllib

    install = next(text for language, text in STEPS if language == "sh" and "pip install" in text)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wheel = f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"
    assert "python -m build\n" in install
    [(path, extras)] = re.findall(r'pip install "dist/([^"\[]+)\[([^\]]+)\]"', install)
    assert path == wheel
    assert set(extras.split(",")) <= set(project["optional-dependencies"])
    recipe = (ROOT / "Makefile").read_text().split("dist-check:", 1)[1].split("\n\n", 1)[0]
    assert "-m build" in recipe and "$$(ls dist/*.whl)[" in recipe
    ci_extras = re.search(r"\$\$\(ls dist/\*\.whl\)\[([^\]]+)\]", recipe).group(1)
    assert set(extras.split(",")) <= set(ci_extras.split(","))


def _probe_runserver(command: list[str], cwd: Path, env: dict) -> None:
    """Run `manage.py runserver` (on a free port) and use it: GraphiQL and its static files over
    HTTP, and a GraphQL WebSocket."""
    import subprocess
    import time
    import urllib.error
    import urllib.request

    from websockets.sync.client import connect

    port = free_port()
    process = subprocess.Popen(
        [*command, f"127.0.0.1:{port}", "--noreload"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read().decode()[-3000:]
            try:
                page = (
                    urllib.request.urlopen(
                        urllib.request.Request(
                            f"http://127.0.0.1:{port}/graphql/", headers={"Accept": "text/html"}
                        ),
                        timeout=2,
                    )
                    .read()
                    .decode()
                )
                break
            except OSError:
                assert time.monotonic() < deadline, "runserver did not start"
                time.sleep(0.2)
        assert "graphiql" in page.lower()  # DEBUG is on in a new project
        script = re.search(
            r'src="(/static/graphql_api/vendor/graphiql/graphiql-[^"]+\.js)"', page
        ).group(1)
        assert (
            len(urllib.request.urlopen(f"http://127.0.0.1:{port}{script}", timeout=10).read())
            > 100_000
        )
        with connect(
            f"ws://127.0.0.1:{port}/graphql/",
            subprotocols=["graphql-transport-ws"],
            open_timeout=10,
        ) as socket:
            socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(socket.recv(timeout=10))["type"] == "connection_ack"
    finally:
        stop(process)


def test_a_fresh_project_set_up_as_the_readme_says(tmp_path):
    """`django-admin startproject mysite`, the example's `invoices` app, then every code block
    of 'Use it in your project' in order: Python blocks into their files (settings blocks
    appended, the others written), `python manage.py …` commands run (`check` must find no
    issue; `runserver` is started and used). The install block is `make dist-check`'s (above)."""
    import os
    import shutil
    import subprocess
    import sys

    project = tmp_path / "mysite"
    project.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(project)],
        check=True,
        env=env,
    )
    shutil.copytree(
        EXAMPLE / "invoices",
        project / "invoices",
        ignore=shutil.ignore_patterns("schema.py", "visibility.py", "__pycache__"),
    )

    ran = []
    for language, text in STEPS:
        if language == "python":
            path = block_file(text)
            target = project / path
            if path.endswith("settings.py"):
                target.write_text(target.read_text() + "\n\n" + text)
            else:
                target.write_text(text)
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line.startswith("python manage.py"):
                continue  # the install commands: make dist-check runs them
            command = [sys.executable, *line.split()[1:]]
            if command[2] == "runserver":
                _probe_runserver(command, project, env)
            else:
                result = subprocess.run(
                    command, cwd=project, env=env, capture_output=True, text=True, timeout=300
                )
                assert result.returncode == 0, result.stdout + result.stderr
                if command[2] == "check":
                    assert "System check identified no issues" in result.stdout, (
                        result.stdout + result.stderr
                    )
            ran.append(command[2])
    assert ran == ["migrate", "check", "runserver", "load_workflow", "migrate", "check"]


# --------------------------------------------------------------------- Python API


def python_api_block() -> str:
    section = README[README.index("## Python API") : README.index("## GraphQL")]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


@pytest.mark.django_db
def test_the_python_api_example_runs_as_written():
    """The block runs as it is, with a claim, and a request from a reviewer (``actor``):
    its comments say what each line gives."""
    from types import SimpleNamespace

    from django.contrib.auth import get_user_model

    from claims.models import Claim
    from django_steps.models import WorkflowInstance

    call_command("demo_setup", "--no-claims", stdout=open("/dev/null", "w"))
    claim = Claim.objects.create(title="README", claimant="Ada", amount=Decimal("450.00"))
    request = SimpleNamespace(user=get_user_model().objects.get(username="rita"))
    namespace = {"claim": claim, "request": request}
    exec(compile(python_api_block(), "README.md (Python API)", "exec"), namespace)

    instance = namespace["instance"]
    assert instance.current_step.name == "Approve/Reject"
    # A freshly read instance has the newest event (no service set it on that object).
    fresh = WorkflowInstance.objects.get(pk=instance.pk)
    assert fresh.last_event == instance.last_event and fresh.last_event.kind == "ON_HOLD"
    # What the comments say: the approval advanced, as rita; the second hold is refused.
    approval = instance.events.get(sequence=3)
    assert approval.kind == "ADVANCED" and approval.actor == request.user
    from django_steps.exceptions import WorkflowError
    from django_steps.services import set_workflow_on_hold

    with pytest.raises(WorkflowError) as refused:  # (Python unbinds `exc` after the block)
        set_workflow_on_hold(instance)
    assert refused.value.code == "INSTANCE_ON_HOLD"
    assert refused.value.message == f"Workflow instance {instance.pk} is already on hold."


@pytest.mark.django_db
def test_last_event_is_none_before_any_change_and_follows_changes_made_elsewhere():
    from claims.models import Claim
    from django_steps.models import WorkflowInstance
    from django_steps.services import start_workflow_instance, update_workflow_step_status

    call_command("demo_setup", "--no-claims", stdout=open("/dev/null", "w"))
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"))
    assert WorkflowInstance(pk=None).last_event is None
    started = start_workflow_instance("Claim Processing", claim)
    assert started.last_event.kind == "STARTED"
    update_workflow_step_status(WorkflowInstance.objects.get(pk=started.pk), "Submitted")
    assert started.last_event.kind == "STARTED"  # what this object's own call wrote
    started.refresh_from_db()
    assert started.last_event.kind == "ADVANCED"  # re-read


@pytest.mark.django_db
def test_the_context_fields_example_is_a_valid_setting_that_does_what_its_comments_say(settings):
    """The CONTEXT_FIELDS block of "Conditions": only the named user fields are read; a claim's
    "exclude" leaves out the named field (the demo's Claim has no "notes": nothing else goes)."""
    from django.contrib.auth import get_user_model

    from claims.models import Claim
    from django_steps.context import readable_fields

    section = README[README.index("## Conditions") : README.index("## Python API")]
    [text] = [
        b for b in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "CONTEXT_FIELDS" in b
    ]
    namespace: dict = {}
    exec(compile(text, "README.md (Conditions)", "exec"), namespace)
    settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, **namespace["DJANGO_STEPS"]}
    user_fields = {f.name for f in readable_fields(get_user_model())}
    assert user_fields == {"username", "is_staff", "date_joined"}
    claim_fields = {f.name for f in readable_fields(Claim)}
    assert {"amount", "owner", "title"} <= claim_fields and "notes" not in claim_fields


def cel_examples() -> list[tuple[str, str]]:
    """(condition, its comment) of each line of the CEL block in "Conditions" / "Values"."""
    section = README[README.index("## Conditions") : README.index("## Python API")]
    [block] = re.findall(r"```text\n(.*?)```", section, flags=re.S)
    lines = [(line.split("//", 1) + [""])[:2] for line in block.strip().splitlines()]
    return [(text.strip(), comment.strip()) for text, comment in lines]


@pytest.mark.parametrize("owner", [None, 42], ids=["no owner", "owner 42"])
def test_the_readme_cel_examples_hold_with_a_nullable_key_empty_and_set(owner):
    """Every condition of the block evaluates without error whether the foreign key is empty
    or set, and the null tests say what their comments say."""
    from django_steps import cel

    context = cel.activation(
        {
            "claim": {"owner": owner, "priority": 2},
            "ticket": {"assignee": owner},
            "input": {"reason": "checked by phone with the claimant"},
        }
    )
    results = {text: cel.evaluate(text, context) for text, _comment in cel_examples()}
    assert results["claim.owner != null"] is (owner is not None)
    assert results["claim.owner == null || claim.priority < 3"] is True
    assert results["ticket.assignee == 42"] is (owner == 42)
    assert results["has(input.reason) && size(input.reason) > 10"] is True


@pytest.mark.django_db
def test_the_definition_document_imports_as_written_and_exports_every_key_it_shows():
    """The sample under "Definitions as documents" is a whole, valid workflow (its comments
    name the rules), and ``export_workflow`` gives back each of its keys."""
    import yaml

    from django_steps.definitions import export_workflow, import_workflow

    text = re.search(r"\*\*Definitions as documents\.\*\*.*?```yaml\n(.*?)```", README, re.S)
    document = yaml.safe_load(text.group(1))
    workflow = import_workflow(document)
    exported = export_workflow(workflow)

    def keys(node) -> set[str]:
        if isinstance(node, dict):
            return set(node).union(*(keys(value) for value in node.values()))
        if isinstance(node, list):
            return set().union(*(keys(value) for value in node))
        return set()

    assert keys(document) <= keys(exported)
    review = next(step for step in exported["steps"] if step["name"] == "Review Claim")
    assert review["is_final_step"] and not review.get("is_initial_step")


def test_every_file_the_docs_link_to_exists():
    """A relative link in README.md or docs/*.md names a file or folder of the repository."""
    broken = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []
