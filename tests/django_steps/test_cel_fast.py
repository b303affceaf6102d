"""CEL's direct path (django_steps/cel/fast.py) decides as celpy's own interpreter does: same
values, same failures, same budget; conditions it cannot take are left to the interpreter."""

from __future__ import annotations

from decimal import Decimal

import celpy
import pytest
from celpy.evaluation import CELEvalError

from django_steps import cel
from django_steps.cel.compiler import compile_condition
from django_steps.cel.runtime import FUNCTIONS
from django_steps.exceptions import ConditionError

CONTEXT = {
    "amount": Decimal("1500.50"),
    "count": 3,
    "zero": 0,
    "name": "Ada",
    "flag": True,
    "empty": None,
    "claim": {"amount": 1200, "tags": ["a", "b"], "owner": {"name": "Bo"}, "none": None},
    "input": {"limit": 1000, "note": "ok"},
}

#: Conditions the direct path takes; they succeed or fail with this context.
DIRECT = [
    "amount > 1000",
    "amount > 1000.0 && count >= 1",
    "claim.amount > input.limit || flag",
    "(count + 2) * 3 - 1 == 14",
    "count / 2 == 1 && count % 2 == 1",
    "-count < 0 && !flag == false",
    '"a" in claim.tags',
    "claim.owner.name == name || name == 'Ada'",
    "empty == null && claim.none != 1",
    "count > 2.5 && amount != 1500",
    "1u == 1u",
    "true",
    "b'x' == b'x'",
    "name + 'x' == 'Adax'",
    # failing or absorbed: the interpreter decides, as before
    "claim.missing > 1",
    "claim.missing > 1 || true",
    "false && claim.missing > 1",
    "missing > 1",
    "name > 1",
    "count / zero > 1",
    "claim.amount.x == 1",
    "empty < 1",
    "count + name == 1",
    "9223372036854775807 + count > 0",
    "amount",
    "name == 'Ada' && count",
]

#: Conditions left to the interpreter from the start.
INTERPRETED = [
    "size(name) == 3",
    "has(claim.amount)",
    "claim.tags.exists(t, t == 'a')",
    "claim['amount'] > 1",
    "flag ? count > 1 : false",
    "[1, 2][0] == 1",
    "google.protobuf.Int32Value == 1",
]


def stock_celpy(expression: str, activation: dict) -> tuple[str, object]:
    """What unpatched celpy's interpreter says, with the same operator table."""
    environment = celpy.Environment()
    program = environment.program(environment.compile(expression), functions=FUNCTIONS)
    try:
        return "value", program.evaluate(dict(activation))
    except CELEvalError:
        return "error", None


def ours(expression: str, activation: dict) -> tuple[str, object]:
    try:
        return "value", cel.evaluate_value(expression, activation)
    except ConditionError as error:
        return "error", error.details


@pytest.mark.parametrize("expression", DIRECT)
def test_direct_conditions_agree_with_celpy(expression):
    activation = cel.activation(CONTEXT)
    assert compile_condition(expression).fast is not None
    kind, value = ours(expression, activation)
    expected_kind, expected = stock_celpy(expression, activation)
    assert kind == expected_kind
    if kind == "value":
        assert type(value) is type(expected)
        assert value == expected


@pytest.mark.parametrize("expression", INTERPRETED)
def test_other_conditions_are_left_to_the_interpreter_and_still_agree(expression):
    activation = cel.activation(CONTEXT)
    assert compile_condition(expression).fast is None
    kind, value = ours(expression, activation)
    expected_kind, expected = stock_celpy(expression, activation)
    assert (kind, kind == "error" or value == expected) == (expected_kind, True)


def test_a_failure_reports_the_reason_and_position_the_interpreter_gives():
    # the first operand fails at line 1, column 1; the direct path gives up on it
    with pytest.raises(ConditionError) as caught:
        cel.evaluate("name > 1 && count > 1", cel.activation(CONTEXT))
    assert caught.value.details["reason"] == "NO_MATCHING_OVERLOAD"
    assert (caught.value.details["line"], caught.value.details["column"]) == (1, 1)
    with pytest.raises(ConditionError) as caught:
        cel.evaluate("count > 1 && claim.nope == 1", cel.activation(CONTEXT))
    assert caught.value.details["reason"] == "NO_SUCH_KEY"


def test_the_budget_is_charged_once_when_the_direct_path_gives_up():
    # comparing two lists of 300 charges 601 steps (the list and its items); failing late, the
    # interpreter runs it again from a meter put back where it was: the same budget passes as
    # through the interpreter alone
    activation = cel.activation({"items": list(range(300)), "name": "x"})
    expression = "items == items && name > 1 || true"
    steps = compile_condition(expression).steps
    assert cel.evaluate(expression, activation, budget=steps + 601) is True
    with pytest.raises(ConditionError) as caught:
        cel.evaluate(expression, activation, budget=steps + 600)
    assert caught.value.details["reason"] == "OVER_BUDGET"


def test_dotted_names_in_a_context_are_resolved_by_the_interpreter():
    # celpy nests "claim.amount" under "claim", ahead of the map bound to "claim"
    activation = {"claim": cel.to_cel({"amount": 1}), "claim.amount": cel.to_cel(5)}
    assert cel.evaluate("claim.amount == 5", activation) is True
