"""compose_schema(): a host's root types merged with ours, clashes settled or refused with a
hint (examples/host_project exercises a composed schema end to end)."""

from __future__ import annotations

from typing import Optional

import pytest
import strawberry
import strawberry_django
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from strawberry_django.optimizer import DjangoOptimizerExtension

from graphql_api.composition import SharedEventExecutionContext, compose_schema
from graphql_api.schemas import load_schema
from graphql_api.security.extensions import QuerysetOptimizer


@strawberry_django.type(get_user_model(), name="User")
class HostUser:
    username: strawberry.auto
    email: strawberry.auto


@strawberry.type
class HostQuery:
    @strawberry_django.field
    def staff(self) -> list[HostUser]:
        return get_user_model().objects.filter(is_staff=True)


@strawberry.type
class HostMe:
    @strawberry.field
    def me(self) -> Optional[str]:
        return "the host's me"


def test_a_host_user_type_needs_ours_renamed_and_gets_a_hint():
    with pytest.raises(ImproperlyConfigured, match=r"rename=\{'User': 'WorkflowUser'\}"):
        compose_schema(query=HostQuery)
    sdl = str(compose_schema(query=HostQuery, rename={"User": "WorkflowUser"}))
    assert "type User {\n  username: String!\n  email: String!\n}" in sdl
    assert (
        "type WorkflowUser implements Node {" in sdl
        and "union LoginPayload = WorkflowUser | OperationInfo" in sdl
    )
    assert "staff: [User!]!" in sdl and "me: WorkflowUser" in sdl


def test_renames_must_name_our_types():
    with pytest.raises(ImproperlyConfigured, match="no type of django-steps: \\['Invoice'\\]"):
        compose_schema(query=HostQuery, rename={"User": "WorkflowUser", "Invoice": "X"})
    with pytest.raises(ImproperlyConfigured, match="same name"):
        compose_schema(rename={"User": "X", "WorkflowEventKind": "X"})
    sdl = str(compose_schema(rename={"WorkflowInstanceState": "StepsState"}))
    assert "enum StepsState {" in sdl and "state: StepsState!" in sdl


def test_a_root_field_both_define_is_refused_unless_replaced():
    with pytest.raises(ImproperlyConfigured, match=r"Query\.me .*replace=\['Query\.me'\]"):
        compose_schema(query=HostMe)
    schema = compose_schema(query=HostMe, replace=["Query.me"])
    assert schema.execute_sync("{ me }").data == {"me": "the host's me"}
    with pytest.raises(ImproperlyConfigured, match="do not share"):
        compose_schema(query=HostQuery, rename={"User": "WorkflowUser"}, replace=["Query.nothing"])


def test_our_extensions_and_execution_context_apply_once():
    def optimizers(schema):
        return [
            e
            for e in schema.extensions
            if issubclass(e if isinstance(e, type) else type(e), DjangoOptimizerExtension)
        ]

    assert optimizers(compose_schema(query=HostQuery, rename={"User": "WorkflowUser"})) == [
        QuerysetOptimizer
    ]
    # a host's own optimizer runs in place of ours, once
    schema = compose_schema(
        query=HostQuery,
        rename={"User": "WorkflowUser"},
        extensions=[DjangoOptimizerExtension, DjangoOptimizerExtension()],
    )
    assert optimizers(schema) == [DjangoOptimizerExtension]
    assert schema.execution_context_class is SharedEventExecutionContext
    deep = (
        "{ staff { username } "
        + "workflows { edges { node { steps { workflow { " * 3
        + "name"
        + " } } } } }" * 3
        + " }"
    )
    assert "exceeds maximum operation depth" in schema.execute_sync(deep).errors[0].message

    class NotOurs:
        pass

    with pytest.raises(ImproperlyConfigured, match="execution context"):
        compose_schema(execution_context_class=NotOurs)


def test_schemas_are_named_by_object_dotted_path_or_callable():
    from graphql_api.schema import schema

    assert load_schema(None) is schema
    assert load_schema(schema) is schema
    assert load_schema("graphql_api.schema:schema") is schema
    assert load_schema("graphql_api.schema.schema") is schema
    assert load_schema(lambda: schema) is schema
    with pytest.raises(ImproperlyConfigured, match="has no attribute 'nope'"):
        load_schema("graphql_api.schema:nope")
    with pytest.raises(ImproperlyConfigured, match="not a strawberry Schema"):
        load_schema("graphql_api.schema:__name__")
    with pytest.raises(ImproperlyConfigured, match="not int"):
        load_schema(42)


def test_renamed_node_types_keep_working_global_ids(db, claim_workflow, claim):
    """A global ID carries its type's GraphQL name: in a schema that renamed ours, IDs use the new
    name, and node(), lookups and mutations read them."""
    from django.contrib.auth.models import User
    from django.test import RequestFactory
    from strawberry import relay
    from strawberry.django.context import StrawberryDjangoContext

    from django_steps.services import start_workflow_instance

    schema = compose_schema(
        query=HostQuery, rename={"User": "WorkflowUser", "WorkflowInstance": "StepsInstance"}
    )
    boss = User.objects.create_superuser("boss", "b@example.com", "pw")
    instance = start_workflow_instance("Claim Processing", claim)

    def run(query: str, **variables):
        request = RequestFactory().post("/graphql/")
        request.user = boss
        result = schema.execute_sync(
            query, variables, context_value=StrawberryDjangoContext(request, None)
        )
        assert result.errors is None, result.errors
        return result.data

    me = run("{ me { id } }")["me"]["id"]
    assert relay.GlobalID.from_id(me).type_name == "WorkflowUser"
    assert run("query($id: ID!) { node(id: $id) { __typename id } }", id=me)["node"] == {
        "__typename": "WorkflowUser",
        "id": me,
    }
    instance_id = relay.to_base64("StepsInstance", instance.pk)
    assert run("query($id: ID!) { workflowInstance(id: $id) { id } }", id=instance_id)[
        "workflowInstance"
    ] == {
        "id": instance_id,
    }
    held = run(
        "mutation($id: ID!) { setWorkflowOnHold(input: {instanceId: $id}) { __typename ... on "
        "StepsInstance { state } } }",
        id=instance_id,
    )["setWorkflowOnHold"]
    assert held == {"__typename": "StepsInstance", "state": "ON_HOLD"}
