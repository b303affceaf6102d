"""`WorkflowInstance.subject` (#20 point 3): the attached object's label (the host's hook, by
default `str()`) for readers who may view the object — the one rule — and, in a schema with a
`Node` type for its model, the object itself; null for anyone else and for a deleted object."""

from __future__ import annotations

from decimal import Decimal

import pytest
import strawberry
import strawberry_django
from django.contrib.auth.models import User
from django.test import RequestFactory
from strawberry import relay
from strawberry.django.context import StrawberryDjangoContext

from claims.models import Claim
from django_steps import services
from graphql_api.composition import compose_schema
from tests.graphql_api.conftest import VIEW, client_for, gid, make_user

pytestmark = pytest.mark.django_db

SUBJECTS = """{ workflowInstances(first: 10) { edges { node {
  objectId subject { label contentType objectId node { id } } } } } }"""


def start(title: str, owner=None):
    claim = Claim.objects.create(title=title, claimant="x", amount=Decimal("450"), owner=owner)
    return claim, services.start_workflow_instance("Claim Processing", claim)


def subjects(client) -> dict[str, dict | None]:
    edges = client.data(SUBJECTS)["workflowInstances"]["edges"]
    return {edge["node"]["objectId"]: edge["node"]["subject"] for edge in edges}


def test_a_reader_who_may_view_the_object_gets_its_label(as_viewer, claim_workflow):
    claim, _instance = start("Broken window")
    claim.refresh_from_db()  # its amount as stored: 450.00
    assert subjects(as_viewer) == {
        str(claim.pk): {
            "label": "Broken window (450.00)",
            "contentType": "claims.claim",
            "objectId": str(claim.pk),
            "node": None,  # the demo's schema has no type for claims
        }
    }


def test_a_reader_who_may_not_view_the_object_gets_null(settings, claim_workflow):
    # Everyone who may read instances sees all of them here; the claims stay their owners'.
    settings.DJANGO_STEPS = {
        **getattr(settings, "DJANGO_STEPS", {}),
        "VISIBLE_INSTANCES": "tests.graphql_api.api.test_subject.every_instance",
    }
    alice = make_user("alice", *VIEW)
    hers, _ = start("hers", owner=alice)
    theirs, _ = start("theirs")
    found = subjects(client_for(alice))
    assert found[str(hers.pk)]["label"] == "hers (450.00)"
    assert found[str(theirs.pk)] is None


def every_instance(user, queryset):
    return queryset


def test_the_host_names_its_objects(settings, as_viewer, claim_workflow):
    settings.DJANGO_STEPS = {
        **getattr(settings, "DJANGO_STEPS", {}),
        "SUBJECT_LABEL": "tests.graphql_api.api.test_subject.claim_label",
    }
    claim, _ = start("Broken window")
    assert subjects(as_viewer)[str(claim.pk)]["label"] == "Claim: Broken window"


def claim_label(obj) -> str:
    return f"Claim: {obj.title}"


def test_a_deleted_object_is_null(as_viewer, claim_workflow):
    claim, _ = start("gone")
    pk = claim.pk
    Claim.objects.filter(pk=pk).delete()
    assert subjects(as_viewer)[str(pk)] is None


@strawberry_django.type(Claim, name="Claim")
class ClaimType(relay.Node):
    _id_attr = "pk"
    title: str = strawberry_django.field()


@strawberry.type
class HostQuery:
    @strawberry.field
    def host_ready(self) -> bool:
        return True


def test_in_a_host_schema_with_a_type_for_the_model_the_subject_is_the_object(claim_workflow):
    schema = compose_schema(query=HostQuery, types=[ClaimType], rename={"User": "WorkflowUser"})
    boss = User.objects.create_superuser("boss", "b@example.com", "pw")
    claim, instance = start("Broken window")
    request = RequestFactory().post("/graphql/")
    request.user = boss
    result = schema.execute_sync(
        """query($id: ID!) { workflowInstance(id: $id) { subject { label node {
          __typename id ... on Claim { title } } } } }""",
        {"id": gid("WorkflowInstance", instance.pk)},
        context_value=StrawberryDjangoContext(request, None),
    )
    assert result.errors is None, result.errors
    assert result.data["workflowInstance"]["subject"] == {
        "label": "Broken window (450.00)",
        "node": {"__typename": "Claim", "id": gid("Claim", claim.pk), "title": "Broken window"},
    }
