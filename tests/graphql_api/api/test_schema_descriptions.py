"""Every element of the schema says what it is: the descriptions are the documentation client
developers read (GraphiQL, their IDE, generated code). The schema is walked by introspection,
as those tools see it, deprecated elements included."""

from __future__ import annotations

from typing import Any

from graphql import introspection_from_schema, specified_directives, specified_scalar_types

from graphql_api.schema import schema

#: GraphQL's own scalars and directives: described by the specification, not by us.
BUILT_IN_TYPES = set(specified_scalar_types)
BUILT_IN_DIRECTIVES = {directive.name for directive in specified_directives}


def _introspection() -> dict[str, Any]:
    return introspection_from_schema(
        schema._schema,
        descriptions=True,
        directive_is_repeatable=True,
        input_value_deprecation=True,
    )


def _undescribed(element: dict[str, Any]) -> bool:
    return not (element.get("description") or "").strip()


def undocumented(introspection: dict[str, Any]) -> list[str]:
    """Every element without a description: types (with scalars, unions, interfaces), fields and
    their arguments, input fields, enum values, and our directives and their arguments."""
    missing: list[str] = []
    for named in introspection["__schema"]["types"]:
        name = named["name"]
        if name.startswith("__") or name in BUILT_IN_TYPES:
            continue
        if _undescribed(named):
            missing.append(f"{named['kind'].lower()} {name}")
        for field in named.get("fields") or ():
            if _undescribed(field):
                missing.append(f"{name}.{field['name']}")
            missing += [
                f"{name}.{field['name']}({arg['name']})"
                for arg in field["args"]
                if _undescribed(arg)
            ]
        missing += [
            f"{name}.{field['name']}"
            for field in named.get("inputFields") or ()
            if _undescribed(field)
        ]
        missing += [
            f"{name}.{value['name']}"
            for value in named.get("enumValues") or ()
            if _undescribed(value)
        ]
    for directive in introspection["__schema"]["directives"]:
        if directive["name"] in BUILT_IN_DIRECTIVES:
            continue
        if _undescribed(directive):
            missing.append(f"@{directive['name']}")
        missing += [
            f"@{directive['name']}({a['name']})" for a in directive["args"] if _undescribed(a)
        ]
    return missing


def test_every_schema_element_is_described():
    missing = undocumented(_introspection())
    assert missing == [], f"{len(missing)} schema elements without a description: {missing}"


def test_the_walk_sees_every_kind_of_element():
    """The walk reaches each kind of element it checks: a description removed from any of them
    is reported (so the test above cannot pass by looking at nothing)."""
    introspection = _introspection()
    types = {t["name"]: t for t in introspection["__schema"]["types"]}
    mutation = {f["name"]: f for f in types["Mutation"]["fields"]}
    targets = {
        "union StartWorkflowInstancePayload": types["StartWorkflowInstancePayload"],
        "Mutation.startWorkflowInstance(input)": mutation["startWorkflowInstance"]["args"][0],
        "enum Ordering": types["Ordering"],
        "Ordering.ASC": next(v for v in types["Ordering"]["enumValues"] if v["name"] == "ASC"),
        "WorkflowFilter.OR": next(
            f for f in types["WorkflowFilter"]["inputFields"] if f["name"] == "OR"
        ),
        "scalar DateTime": types["DateTime"],
        "interface Node": types["Node"],
        "Mutation.setWorkflowOnHold": mutation["setWorkflowOnHold"],  # deprecated, still walked
    }
    for label, element in targets.items():
        element["description"] = None
        assert label in undocumented(introspection), label
