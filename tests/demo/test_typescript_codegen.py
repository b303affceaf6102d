"""The example client operations as a TypeScript team compiles them (client-typescript/).

`npm run check` there runs graphql-codegen's client preset (strictScalars) on schema.graphql +
client/*.graphql, relay-compiler on the Relay equivalents in client-typescript/relay/,
`tsc --strict --noEmit` over the generated code and the typed code that uses it, and
apollo/check-cache.mjs (the documented Apollo type policies against the schema and Apollo's cache).

Each run happens in a temporary copy of the layout (schema.graphql, client/, client-typescript/
with its node_modules linked), so a test can swap in a changed schema and nothing is written
into the checkout. Breaking changes are shown to fail at each stage: a removed field (codegen
and relay-compiler), an enum value gone and a field turned nullable (tsc --strict).

Needs Node.js and the pinned packages (`npm ci` in client-typescript/; .ci/run does): marker
``typescript``. Without them the tests skip with the reason; with
DJANGO_STEPS_REQUIRE_SERVICES=1 (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from graphql import GraphQLScalarType, build_schema, parse, print_ast, specified_scalar_types

from tests.e2e.tools import node_finds

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "client-typescript"
CLIENT = ROOT / "client"
SCHEMA = ROOT / "schema.graphql"

#: What `npm run check` runs (installed by `npm ci` in client-typescript/).
PACKAGES = [
    "@graphql-codegen/cli",
    "@graphql-codegen/client-preset",
    "@apollo/client",
    "relay-compiler",
    "typescript",
]

#: The fragment line that turns `@refetchable` on for `User` (see relay/UserBadge.ts).
USER_REFETCHABLE = (
    'fragment UserBadge_user on User @refetchable(queryName: "UserBadgeRefetchQuery") {'
)


def missing_typescript_tools() -> str | None:
    """``None`` when node, npm and the pinned packages are installed, else why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "needs Node.js and npm for the TypeScript check (client-typescript/)"
    if not node_finds(node, PACKAGES, PROJECT):
        return "needs the pinned npm packages: run `npm ci` in client-typescript (.ci/run does)"
    return None


def layout(tmp_path: Path, schema: str | None = None) -> Path:
    """A copy of schema.graphql, client/*.graphql and client-typescript/ (generated output left
    out, node_modules linked); returns the copy of client-typescript/."""
    root = tmp_path / "checkout"
    (root / "client").mkdir(parents=True)
    for path in CLIENT.glob("*.graphql"):
        shutil.copy(path, root / "client" / path.name)
    if schema is None:
        schema = SCHEMA.read_text(encoding="utf-8")
    (root / "schema.graphql").write_text(schema)
    project = root / "client-typescript"
    outputs = shutil.ignore_patterns(
        "node_modules", "gql", "possible-types.json", "schema-enums.ts", "__generated__"
    )
    shutil.copytree(PROJECT, project, ignore=outputs)
    (project / "node_modules").symlink_to(PROJECT / "node_modules", target_is_directory=True)
    return project


def npm_run(project: Path, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["npm", "run", "--silent", script],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1", "npm_config_update_notifier": "false"},
    )


def output(result: subprocess.CompletedProcess) -> str:
    # relay-compiler colours its messages even without a terminal.
    return re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)


def changed_schema(type_name: str, member: str, *, nullable: bool = False) -> str:
    """schema.graphql with one field or enum value of ``type_name`` removed (or, with
    ``nullable``, the field's non-null wrapper dropped)."""
    document = parse(SCHEMA.read_text(encoding="utf-8"))  # frozen nodes: rebuilt with replace()
    definitions = list(document.definitions)
    names = [getattr(getattr(d, "name", None), "value", None) for d in definitions]
    index = names.index(type_name)
    definition = definitions[index]
    attribute = "values" if definition.kind == "enum_type_definition" else "fields"
    members = getattr(definition, attribute)
    (found,) = [m for m in members if m.name.value == member]
    if nullable:
        assert found.type.kind == "non_null_type", f"{type_name}.{member} is already nullable"
        members = tuple(replace(m, type=m.type.type) if m is found else m for m in members)
    else:
        members = tuple(m for m in members if m is not found)
    definitions[index] = replace(definition, **{attribute: members})
    return print_ast(replace(document, definitions=tuple(definitions)))


@pytest.mark.typescript
def test_the_operations_compile_to_strict_typescript_and_relay_artifacts(tmp_path):
    project = layout(tmp_path)
    result = npm_run(project, "check")
    assert result.returncode == 0, output(result)
    assert "without them 2 warnings, with them none" in result.stdout  # apollo/check-cache.mjs

    generated = (project / "src" / "gql" / "graphql.ts").read_text()
    # One typed document per client operation, scalars mapped (no `any` for DateTime/JSON).
    for name in (
        "WorkflowsDocument",
        "WorkflowDiagramDocument",
        "SetWorkflowInstanceStatusDocument",
        "InstanceEventsDocument",
        "WorkflowCountsLiveDocument",
    ):
        assert f"export const {name} " in generated, name
    assert "startedAt: string," in generated and "context?: unknown;" in generated
    assert not re.search(r"\bany\b", generated)

    artifacts = {p.name for p in (project / "relay" / "__generated__").iterdir()}
    assert {
        "WorkflowInstanceCardRefetchQuery.graphql.ts",  # @refetchable on a Node type
        "InstanceListPaginationQuery.graphql.ts",  # the connection's pagination query
        "SetStatusMutation.graphql.ts",
        "InstanceEventsSubscription.graphql.ts",
    } <= artifacts


@pytest.mark.typescript
def test_a_removed_field_the_operations_use_fails_codegen_and_relay(tmp_path):
    # `availableStatuses` is selected by client/fragments.graphql and relay/WorkflowInstanceCard.ts.
    project = layout(tmp_path, changed_schema("WorkflowInstance", "availableStatuses"))

    codegen = npm_run(project, "codegen")
    assert codegen.returncode != 0
    assert "availableStatuses" in output(codegen)

    relay = npm_run(project, "relay")
    assert relay.returncode != 0
    assert "availableStatuses" in output(relay)


@pytest.mark.typescript
@pytest.mark.parametrize(
    ("type_name", "member", "nullable", "expected"),
    [
        # An enum value gone: the exhaustive Record<WorkflowInstanceState, string> in usage.ts.
        ("WorkflowInstanceState", "ON_HOLD", False, "'ON_HOLD' does not exist in type"),
        # A field turned nullable: usage.ts compares versions without a null check.
        ("WorkflowInstance", "version", True, "possibly 'null'"),
        # The typed conflict: usage.ts reads `current.version` of a VersionConflict.
        ("VersionConflict", "current", True, "possibly 'null'"),
        # A code a mutation no longer returns: its case in the exhaustive switch of usage.ts.
        (
            "SetWorkflowInstanceStatusErrorCode",
            "UNKNOWN_STATUS",
            False,
            "'\"UNKNOWN_STATUS\"' is not comparable",
        ),
    ],
    ids=["enum-value-removed", "field-turned-nullable", "conflict-current", "mutation-code-gone"],
)
def test_a_breaking_change_that_still_generates_fails_tsc_strict(
    tmp_path, type_name, member, nullable, expected
):
    project = layout(tmp_path, changed_schema(type_name, member, nullable=nullable))

    for step in ("codegen", "relay"):
        result = npm_run(project, step)
        assert result.returncode == 0, output(result)  # the documents are still valid ...
    typecheck = npm_run(project, "typecheck")
    assert typecheck.returncode != 0  # ... but the code using them no longer compiles
    errors = [line for line in output(typecheck).splitlines() if "error TS" in line]
    assert any(line.startswith("src/usage.ts") and expected in line for line in errors), errors


@pytest.mark.typescript
def test_a_code_added_to_a_mutation_fails_its_exhaustive_switch(tmp_path):
    # usage.ts switches over SetWorkflowInstanceStatusErrorCode with a `never` default: a code the
    # mutation starts to return must be handled there before the client compiles.
    schema = SCHEMA.read_text(encoding="utf-8")
    start = schema.index("enum SetWorkflowInstanceStatusErrorCode {")
    added = schema[:start] + schema[start:].replace("{", "{\n  WORKFLOW_IN_USE\n", 1)
    project = layout(tmp_path, added)
    assert npm_run(project, "codegen").returncode == 0
    typecheck = npm_run(project, "typecheck")
    assert typecheck.returncode != 0
    errors = [line for line in output(typecheck).splitlines() if "error TS" in line]
    assert any(
        line.startswith("src/usage.ts") and "'\"WORKFLOW_IN_USE\"'" in line and "'never'" in line
        for line in errors
    ), errors


@pytest.mark.typescript
def test_relay_refetches_a_user_by_its_global_id(tmp_path):
    schema = build_schema(SCHEMA.read_text(encoding="utf-8"))
    assert any(i.name == "Node" for i in schema.type_map["User"].interfaces)
    project = layout(tmp_path)
    assert USER_REFETCHABLE in (project / "relay" / "UserBadge.ts").read_text()
    relay = npm_run(project, "relay")
    assert relay.returncode == 0, output(relay)
    assert (project / "relay" / "__generated__" / "UserBadgeRefetchQuery.graphql.ts").exists()


def test_every_custom_scalar_has_a_typescript_type_in_both_configs():
    # strictScalars (codegen) and requireCustomScalarTypes (relay-compiler) refuse an unmapped
    # scalar that an operation selects; this also catches one no operation selects yet.
    schema = build_schema(SCHEMA.read_text(encoding="utf-8"))
    custom = {
        name
        for name, type_ in schema.type_map.items()
        if isinstance(type_, GraphQLScalarType) and name not in specified_scalar_types
    }
    assert custom, "schema.graphql declares custom scalars (DateTime, JSON)"
    relay = json.loads((PROJECT / "relay.config.json").read_text())
    assert relay["requireCustomScalarTypes"] is True
    assert set(relay["customScalarTypes"]) == custom
    codegen = (PROJECT / "codegen.ts").read_text()
    assert "strictScalars: true" in codegen
    assert {name for name in custom if re.search(rf"^\s+{name}: \"", codegen, re.M)} == custom
