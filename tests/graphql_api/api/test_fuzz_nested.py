"""Property-based fuzz of valid queries nested several levels deep: whatever fields a client
selects together, at whatever depth, the server answers without a server error
(``INTERNAL_SERVER_ERROR``). Per-operation fuzzing (``test_fuzz.py``) varies arguments; the
faults found here were combinations of fields: two fields loading the same relation differently
(#17 item 10: ``availableStatuses`` next to ``currentStep { instanceCounts }``).

Two generators, both run against the demo's data (``demo_setup``) as the demo's users:

* **nested selections** (:func:`selections`): a subset of an object type's fields, each object
  field selected in turn down to :data:`MAX_LEVELS` levels, connections with a small ``first``,
  the same field sometimes twice under two aliases with different selections;
* **hypothesis-graphql** (``queries``): any query the schema allows, arguments drawn from their
  types (most are refused as bad input: the answer must still be a client error).

``FUZZ_NESTED_EXAMPLES`` sets the examples per test (default 60: about 20 s in ``make test``; with
the fix of item 10 undone, the default run finds it);
``FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from graphql import (
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLUnionType,
    is_leaf_type,
)
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from graphql_api.schema import schema
from tests.graphql_api.conftest import client_for

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_NESTED_EXAMPLES", "60"))
SEED = int(os.environ.get("FUZZ_SEED", "20261207"))
#: Object levels below the root field (a connection's edges/node count as one).
MAX_LEVELS = 3

GRAPHQL = schema._schema

#: Root fields and the arguments that make them return the demo's data.
ROOTS = {
    "workflowInstances": "(first: {n})",
    "workflows": "(first: {n})",
    "workflowEvents": "(first: {n})",
    "workflow": '(name: "Claim Processing")',
    "me": "",
}

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
)


def _named(type_):
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        type_ = type_.of_type
    return type_


def _required_arguments(field) -> bool:
    return any(isinstance(a.type, GraphQLNonNull) for a in field.args.values())


def _connection(type_) -> bool:
    return (
        isinstance(type_, GraphQLObjectType)
        and "edges" in type_.fields
        and "pageInfo" in (type_.fields)
    )


@st.composite
def selections(draw, type_, levels: int) -> str:
    """A selection set of ``type_`` (an object, interface or union type)."""
    if isinstance(type_, GraphQLUnionType):
        members = draw(st.lists(st.sampled_from(type_.types), min_size=1, unique=True))
        inner = [f"... on {m.name} {draw(selections(m, levels))}" for m in members]
        return "{ __typename " + " ".join(inner) + " }"
    fields = {name: field for name, field in type_.fields.items() if not _required_arguments(field)}
    leaves = [n for n, f in fields.items() if is_leaf_type(_named(f.type))]
    objects = [n for n, f in fields.items() if not is_leaf_type(_named(f.type))]
    chosen = draw(st.lists(st.sampled_from(leaves), max_size=3, unique=True)) if leaves else []
    parts = list(chosen) or ["__typename"]
    if levels > 0 and objects:
        names = draw(st.lists(st.sampled_from(objects), max_size=4, unique=True))
        for name in names:
            parts.append(name + draw(_field_tail(fields[name], levels - 1)))
        if names and levels >= MAX_LEVELS - 1 and draw(st.booleans()):
            # the same field again, selected differently (aliases are limited: near the top only)
            name = draw(st.sampled_from(names))
            parts.append(f"again: {name}" + draw(_field_tail(fields[name], levels - 1)))
    return "{ " + " ".join(parts) + " }"


@st.composite
def _field_tail(draw, field, levels: int) -> str:
    target = _named(field.type)
    if _connection(target):
        node = _named(_named(target.fields["edges"].type).fields["node"].type)
        first = draw(st.integers(min_value=0, max_value=3))
        page = (
            "{ pageInfo { hasNextPage } edges { cursor node "
            f"{draw(selections(node, levels))} }} }}"
        )
        if "totalCount" in target.fields and draw(st.booleans()):
            page = page[:-1] + " totalCount }"
        return f"(first: {first}) {page}"
    if isinstance(target, (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)):
        return " " + draw(selections(target, levels))
    return ""


@st.composite
def nested_queries(draw) -> str:
    roots = draw(st.lists(st.sampled_from(sorted(ROOTS)), min_size=1, max_size=3))
    parts = []
    for i, name in enumerate(roots):
        field = GRAPHQL.query_type.fields[name]
        target = _named(field.type)
        arguments = ROOTS[name].format(n=draw(st.integers(min_value=1, max_value=3)))
        if name == "workflowEvents":
            body = "{{ cursor edges {{ cursor node {} }} }}".format(
                draw(
                    selections(
                        _named(target.fields["edges"].type).fields["node"].type.of_type, MAX_LEVELS
                    )
                )
            )
        elif _connection(target):
            node = _named(_named(target.fields["edges"].type).fields["node"].type)
            body = f"{{ edges {{ node {draw(selections(node, MAX_LEVELS))} }} }}"
        else:
            body = draw(selections(target, MAX_LEVELS))
        parts.append(f"r{i}: {name}{arguments} {body}")  # at most 3 aliases here
    return "query { " + " ".join(parts) + " }"


@pytest.fixture
def demo_clients(db):
    call_command("demo_setup", stdout=StringIO())
    users = get_user_model().objects.filter(username__in=("alice", "rita", "demo"))
    return {user.username: client_for(user) for user in users}


def _server_errors(result: dict) -> list[dict]:
    return [
        error
        for error in result.get("errors") or ()
        if error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    ]


@pytest.mark.parametrize("username", ["alice", "rita", "demo"])
def test_nested_selections_never_answer_a_server_error(demo_clients, username):
    client = demo_clients[username]

    @FUZZ_SETTINGS
    @seed(SEED)
    @given(query=nested_queries())
    def answers(query: str) -> None:
        result = client(query)
        assert not _server_errors(result), query
        assert result.get("data") is not None or result.get("errors"), query

    answers()


def test_generated_queries_never_answer_a_server_error(demo_clients):
    client = demo_clients["demo"]

    @FUZZ_SETTINGS
    @seed(SEED)
    @given(query=queries(GRAPHQL, allow_x00=False))
    def answers(query: str) -> None:
        assert not _server_errors(client(query)), query

    answers()
