"""`first` and `last` are each checked, also when both are given (found by schemathesis:
`workflows(first: 5, last: -254)` was an internal error)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

CASES = [
    ("{ workflows(first: 5, last: -254) { totalCount } }", "last"),
    ("{ workflows(first: -5, last: 3) { totalCount } }", "first"),
    ("{ workflows(first: 3, last: 101) { totalCount } }", "last"),
    ("{ workflowInstances(first: 2, last: -1) { totalCount } }", "last"),
    (
        '{ workflow(name: "Claim Processing") { instances(first: 2, last: -1) { totalCount } } }',
        "last",
    ),
]


@pytest.mark.parametrize("query, field", CASES)
def test_each_page_argument_is_checked(as_admin, claim_workflow, query, field):
    [error] = as_admin(query)["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"].get("field") == field, error
    # and the server answers a normal request right after
    assert (
        as_admin.data("{ workflows(first: 2, last: 1) { totalCount edges { cursor } } }")[
            "workflows"
        ]["totalCount"]
        == 1
    )
