"""A nested connection read for a whole page of parents (an instance's ``history`` under
``workflowInstances``) answers, for each parent, exactly what that parent's own query answers:
the same edges, cursors, page info and ``totalCount``, for every way of paging, two aliases with
different arguments side by side, an empty page included — and one such connection costs a
number of SQL queries that does not grow with the parents (its page is prefetched as one list
per parent). (Two aliases of it are read per parent, before this change as after.)"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from claims.models import Claim
from django_steps import services
from django_steps.models import WorkflowInstance
from tests.graphql_api.conftest import gid

pytestmark = pytest.mark.django_db

PAGE = """
  totalCount
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  edges { cursor node { id sequence kind cursor } }
"""

#: Every instance of a page, each with two pages of its history.
PAGE_OF_INSTANCES = f"""query Page($n: Int!, $a: Int, $aAfter: String, $aLast: Int,
  $aBefore: String, $b: Int, $bAfter: String, $bLast: Int, $bBefore: String) {{
  workflowInstances(first: $n) {{
    edges {{ node {{ id
      a: history(first: $a, after: $aAfter, last: $aLast, before: $aBefore) {{ {PAGE} }}
      b: history(first: $b, after: $bAfter, last: $bLast, before: $bBefore) {{ {PAGE} }}
    }} }}
  }}
}}"""

#: A workflow's instances (a nested connection, itself prefetched), each with its history.
WORKFLOW_INSTANCES = f"""query Nested($n: Int!, $a: Int, $aAfter: String, $aLast: Int,
  $aBefore: String) {{
  workflow(name: "Claim Processing") {{
    instances(first: $n) {{ totalCount edges {{ cursor node {{ id
      a: history(first: $a, after: $aAfter, last: $aLast, before: $aBefore) {{ {PAGE} }}
    }} }} }}
  }}
}}"""

#: Every instance of a page, with one page of its history.
ONE_PAGE_EACH = f"""query Page($n: Int!, $last: Int, $before: String) {{
  workflowInstances(first: $n) {{
    edges {{ node {{ id history(last: $last, before: $before) {{ {PAGE} }} }} }}
  }}
}}"""

#: One instance alone, with the same two pages.
ONE_INSTANCE = f"""query One($id: ID!, $a: Int, $aAfter: String, $aLast: Int, $aBefore: String,
  $b: Int, $bAfter: String, $bLast: Int, $bBefore: String) {{
  workflowInstance(id: $id) {{ id
    a: history(first: $a, after: $aAfter, last: $aLast, before: $aBefore) {{ {PAGE} }}
    b: history(first: $b, after: $bAfter, last: $bLast, before: $bBefore) {{ {PAGE} }}
  }}
}}"""


def with_history(title: str, holds: int) -> WorkflowInstance:
    claim = Claim.objects.create(title=title, claimant="x", amount=Decimal("1"))
    instance = services.start_workflow_instance("Claim Processing", claim)
    for _ in range(holds):
        services.set_workflow_on_hold(instance)
        services.resume_workflow_instance(instance)
    return instance


def _alone(client, instance_id: str, variables: dict) -> dict:
    return client.data(ONE_INSTANCE, {"id": instance_id, **variables})["workflowInstance"]


@pytest.fixture
def instances(claim_workflow):
    # 1, 3, 5 and 7 events: pages that are full, partial and empty
    return [with_history(f"c{i}", i) for i in range(4)]


def _cursors(client, instance) -> tuple[str, str]:
    """The cursors of the second and of the newest event of ``instance``."""
    edges = _alone(client, gid("WorkflowInstance", instance.pk), {"a": 100, "b": 0})["a"]["edges"]
    return edges[1]["cursor"], edges[-1]["cursor"]


PAGINGS = [
    pytest.param({"a": 2}, {"bLast": 2}, True, id="first-and-last"),
    pytest.param(
        {"a": 1, "aAfter": "second"}, {"bLast": 3, "bBefore": "newest"}, True, id="cursors"
    ),
    pytest.param({"a": 3, "aAfter": "newest"}, {"b": 0}, False, id="empty-pages"),
    pytest.param(
        {"a": 3, "aLast": 2, "aAfter": "second"}, {"b": 1}, True, id="first-and-last-together"
    ),
    pytest.param({"a": 100}, {"bLast": 100}, True, id="largest-pages"),
]


@pytest.mark.parametrize(("a", "b", "events"), PAGINGS)
def test_each_parent_of_a_page_gets_what_it_gets_alone(as_viewer, instances, a, b, events):
    second, newest = _cursors(as_viewer, instances[-1])  # the longest history, the newest
    named = {"second": second, "newest": newest}
    variables = {k: named.get(v, v) if isinstance(v, str) else v for k, v in {**a, **b}.items()}
    page = as_viewer.data(PAGE_OF_INSTANCES, {"n": len(instances), **variables})
    nodes = [edge["node"] for edge in page["workflowInstances"]["edges"]]
    assert len(nodes) == len(instances)
    for node in nodes:
        assert node == _alone(as_viewer, node["id"], variables)
    # not vacuous: the pages hold events, and the counts are whole histories
    assert {n["a"]["totalCount"] for n in nodes} == {1, 3, 5, 7}
    assert any(n["a"]["edges"] or n["b"]["edges"] for n in nodes) is events


def test_the_queries_do_not_grow_with_the_parents(as_viewer, claim_workflow):
    instances = [with_history(f"c{i}", 2) for i in range(5)]
    _second, newest = _cursors(as_viewer, instances[-1])  # the others come before it
    variables = {"last": 2, "before": newest}
    counted = []
    for n in (2, 5):
        as_viewer.data(ONE_PAGE_EACH, {"n": n, **variables})  # warm the per-process caches
        with CaptureQueriesContext(connection) as queries:
            page = as_viewer.data(ONE_PAGE_EACH, {"n": n, **variables})
        counted.append(len(queries))
        histories = [edge["node"]["history"] for edge in page["workflowInstances"]["edges"]]
        assert [len(h["edges"]) for h in histories] == [2] * n
        assert all(h["totalCount"] == 5 and h["pageInfo"]["hasPreviousPage"] for h in histories)
    assert counted[0] == counted[1]


def test_a_connection_nested_two_deep_gets_what_each_parent_gets_alone(as_viewer, instances):
    second, _newest = _cursors(as_viewer, instances[-1])
    variables = {"a": 2, "aAfter": second}
    page = as_viewer.data(WORKFLOW_INSTANCES, {"n": 3, **variables})["workflow"]["instances"]
    assert page["totalCount"] == len(instances) and len(page["edges"]) == 3
    for edge in page["edges"]:
        alone = _alone(as_viewer, edge["node"]["id"], {**variables, "b": 0})
        assert edge["node"]["a"] == alone["a"]
