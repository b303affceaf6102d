"""A direct path for the conditions most definitions hold
=========================================================

celpy evaluates a condition by walking its lark tree with an ``Interpreter`` and builds an
``Activation`` (name containers, annotations, a clone per evaluation) before it starts: for
``claim.amount > 1000 && claim.count >= 1`` that is some thirty node visits and more set-up than
arithmetic. Conditions made only of literals, variables, field selection on maps, parentheses
and the operators ``|| && < <= > >= == != in + - * / % ! -`` are compiled here, once, into
nested Python closures that make the same function calls, in the same order, with the same
arguments as celpy's evaluator (``Evaluator.conditionalor`` … ``Evaluator.primary``: both
operands evaluated, then the operator function of the runner's table) — so when they succeed
they return what celpy would.

They only ever *succeed* on the easy path: at the first error of any kind (an operator returning
or raising an error, a missing variable or key, a value that is not a map, a spent budget) they
give up, the meter is put back where it was, and celpy's interpreter evaluates the condition
from the start. Every failure, and every result that absorbs one (``error || true``), therefore
comes from celpy itself, with its classification, position and budget, exactly as before.
What needs celpy's own name resolution is left to it too: variables named like a root of the
environment's annotations (``google``), and contexts whose names are not plain identifiers
(dotted names build nested containers in celpy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError

__all__ = ["Plain", "Unsupported", "build", "is_plain", "plain_names"]

Closure = Callable[[Mapping[str, Any]], Any]

_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")

_BINARY = {
    "conditionalor": None,  # its operator is "_||_", not a child's name
    "conditionaland": None,
    "relation": {
        "relation_lt": "_<_",
        "relation_le": "_<=_",
        "relation_ge": "_>=_",
        "relation_gt": "_>_",
        "relation_eq": "_==_",
        "relation_ne": "_!=_",
        "relation_in": "_in_",
    },
    "addition": {"addition_add": "_+_", "addition_sub": "_-_"},
    "multiplication": {
        "multiplication_mul": "_*_",
        "multiplication_div": "_/_",
        "multiplication_mod": "_%_",
    },
}
_LOGICAL = {"conditionalor": "_||_", "conditionaland": "_&&_"}
_UNARY = {"unary_not": "!_", "unary_neg": "-_"}


class Unsupported(Exception):
    """Raised while building: the tree holds something left to celpy's interpreter."""


class _GiveUp(Exception):
    """Raised while evaluating: celpy's interpreter decides (see the module docstring)."""


class Plain(dict):  # type: ignore[type-arg]
    """A context whose names were all found plain identifiers when it was built (by a plan
    worked out once for its keys, see :class:`.values.Plan`): :func:`plain_names` need not
    check them again. Only a context built that way may be one."""

    __slots__ = ()


def is_plain(name: Any) -> bool:
    return type(name) is str and _IDENT.fullmatch(name) is not None


def plain_names(context: Mapping[str, Any]) -> bool:
    """Whether every name of ``context`` is a plain identifier, the only names the closures
    resolve as celpy does."""
    if type(context) is Plain:
        return True
    match = _IDENT.fullmatch
    return all(type(name) is str and match(name) for name in context)


def build(
    tree: lark.Tree,
    functions: Mapping[str, Any],
    literal: Callable[[lark.Tree], Any],
    reserved: frozenset[str],
) -> Closure:
    """The closure of ``tree`` (a parsed condition), or :class:`Unsupported`. ``functions``:
    the operator table celpy's activation resolves; ``literal(tree)``: a literal's value as
    celpy builds it; ``reserved``: names celpy resolves to something other than the context's
    value."""
    return _Builder(functions, literal, reserved).node(tree)


class _Builder:
    def __init__(self, functions: Mapping[str, Any], literal: Any, reserved: frozenset[str]):
        self.functions = functions
        self.literal = literal
        self.reserved = reserved

    def function(self, name: str) -> Any:
        try:
            return self.functions[name]
        except KeyError:
            raise Unsupported(name) from None

    def node(self, tree: Any) -> Closure:
        if not isinstance(tree, lark.Tree):
            raise Unsupported(type(tree).__name__)
        kind, children = tree.data, tree.children
        if kind in ("expr", "member") and len(children) == 1:
            return self.node(children[0])
        if kind in _BINARY or kind == "unary":
            if len(children) == 1:
                return self.node(children[0])
            if len(children) != 2:
                raise Unsupported(kind)
            if kind in _LOGICAL:
                left = self.node(children[0])
                return _binary(self.function(_LOGICAL[kind]), left, self.node(children[1]))
            operator_tree, right_tree = children
            if not isinstance(operator_tree, lark.Tree):
                raise Unsupported(kind)
            if kind == "unary":
                if operator_tree.data not in _UNARY or operator_tree.children:
                    raise Unsupported(kind)
                return _unary(self.function(_UNARY[operator_tree.data]), self.node(right_tree))
            name = _BINARY[kind].get(operator_tree.data)
            if name is None or len(operator_tree.children) != 1:
                raise Unsupported(kind)
            left = self.node(operator_tree.children[0])
            return _binary(self.function(name), left, self.node(right_tree))
        if kind == "member_dot" and len(children) == 2:
            member, name = children
            if not isinstance(name, lark.Token):
                raise Unsupported(kind)
            return _select(self.node(member), name.value)
        if kind == "primary" and len(children) == 1:
            return self.primary(children[0])
        raise Unsupported(kind)

    def primary(self, child: Any) -> Closure:
        kind = getattr(child, "data", None)
        if kind == "paren_expr" and len(child.children) == 1:
            return self.node(child.children[0])
        if kind == "ident" and len(child.children) == 1:
            name = child.children[0].value
            if name in self.reserved:
                raise Unsupported(name)
            return _variable(name)
        if kind == "literal":
            try:
                value = self.literal(child)
            except Exception:
                raise Unsupported(kind) from None
            if isinstance(value, CELEvalError):
                raise Unsupported(kind)
            return lambda context: value
        raise Unsupported(str(kind))


def _checked(value: Any) -> Any:
    """An operator's result; an error value gives up (celpy's interpreter then decides)."""
    if isinstance(value, CELEvalError):
        raise _GiveUp
    return value


def _binary(function: Any, left: Closure, right: Closure) -> Closure:
    def evaluate(context: Mapping[str, Any]) -> Any:
        # both operands first, as celpy's visit_children does (for || and && too)
        a = left(context)
        return _checked(function(a, right(context)))

    return evaluate


def _unary(function: Any, operand: Closure) -> Closure:
    def evaluate(context: Mapping[str, Any]) -> Any:
        return _checked(function(operand(context)))

    return evaluate


def _select(member: Closure, name: str) -> Closure:
    def evaluate(context: Mapping[str, Any]) -> Any:
        value = member(context)
        # celpy: a MessageType reads with .get, a MapType by key; anything else is an error
        if not isinstance(value, celtypes.MapType) or isinstance(value, celtypes.MessageType):
            raise _GiveUp
        return value[name]  # a KeyError gives up too

    return evaluate


def _variable(name: str) -> Closure:
    def evaluate(context: Mapping[str, Any]) -> Any:
        return context[name]  # a KeyError gives up: celpy also looks at functions and types

    return evaluate
