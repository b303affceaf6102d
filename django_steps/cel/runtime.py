"""The evaluation budget
=====================

A condition evaluated at run time may still meet lists far larger than assumed (a client may
send ``context`` with a list of 1000 items: ``l.all(a, l.all(b, …))`` is then 10⁶ steps), so
every evaluation is metered and stopped once it used ``CEL_BUDGET`` steps: a
``CONDITION_ERROR`` with reason ``OVER_BUDGET``, never a hang.

How it is metered, after reading celpy's evaluator (``celpy.evaluation.Evaluator``, a lark
``Interpreter``): all the work that is not bounded by the size of the tree happens in macros,
which celpy evaluates by building a closure per macro call (``build_macro_eval``,
``build_ss_macro_eval``, ``build_reduce_macro_eval``) and calling it once per item. A subclass
of the evaluator wraps those closures: each call charges the body's node count (computed once,
at compile time) plus the cost of the scope celpy copies per item, and raises when the budget
is spent. The tree's own size is charged once up front. So the meter costs one Python call per
macro item and nothing per node: counting every node visit instead (overriding ``visit``)
would add a frame to each of the ~20-80 node visits of a plain condition, and estimating the
worst case from the activation's list sizes before evaluating cannot see lists built during
evaluation (``map``, ``+``) nor know which branch runs. The few operators whose work grows
with their operands' size — ``==``/``!=`` on lists and maps, ``in``, ``+`` on lists and text,
``contains``, ``matches``, ``string()`` — charge that size too (one step per element, or per
256 characters), so ``l == l && l == l && …`` or ``reduce`` growing a string is bounded too.
One step is about one tree node, so the default 20,000 steps stop a condition after a fraction
of a second of CPU. ``bench/cel_budget.py`` measures a step and what the meter costs (figures in
``bench/RESULTS.md``).

Three more things celpy would otherwise let run long, found while reading it:

- its error messages render the whole activation (``f"... {self.activation}"``), once per
  failing item inside a macro: the activations this module's evaluator creates render as
  ``Activation(…)``;
- ``||``, ``&&``, ``all`` and ``exists`` fold with ``celtypes.logical_or``/``logical_and``,
  which put ``repr()`` of both operands into a TypeError when neither is a boolean — earlier
  errors included, so the text doubles per failing item or term (30 failing items: over a
  gigabyte, whatever the budget): they fold with quiet versions that keep the first error;
- ``duration()`` parses with a backtracking regular expression that takes exponential time on
  a crafted string: strings are first checked with re2 (linear), as ``matches()`` already is.

And one thing it would let out: re2 logs a pattern it cannot parse to stderr, pattern and all,
and ``matches()``'s pattern may be a value of the object (``claimant.matches(title)``): it
runs with re2's own logging off (the error is ``INVALID_PATTERN``, naming no value).
"""

from __future__ import annotations

import contextvars
import operator
from functools import reduce
from typing import Any

import celpy
import lark
import re2
from celpy import celtypes
from celpy.evaluation import (
    Activation,
    CELEvalError,
    Evaluator,
    base_functions,
    boolean,
    eval_error,
)

from .common import _NUMERIC
from .fast import plain_names

# --------------------------------------------------------------------------- metering


class _OverBudget(Exception):
    """Raised inside an evaluation that spent its budget (never a CELEvalError, so celpy's
    short-circuit operators cannot absorb it)."""


class _Meter:
    __slots__ = ("budget", "left")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.left = budget

    def charge(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise _OverBudget


#: The meter of the evaluation running in this thread/task (operators read it to charge).
_METER: contextvars.ContextVar[_Meter | None] = contextvars.ContextVar(
    "django_steps_cel_meter", default=None
)


class _QuietActivation(Activation):
    """An activation whose repr shows nothing: celpy puts ``repr(activation)`` (every variable's
    value) into error texts, once per failing macro item. Its clones (one per macro item, made
    by ``Evaluator.set_activation``) are quiet too."""

    def __repr__(self) -> str:
        return "Activation(…)"

    def clone(self) -> Activation:
        # celpy's Activation.clone, building this class instead of Activation.
        clone = _QuietActivation()
        clone.identifiers = self.identifiers.clone()
        clone.functions = self.functions.copy()
        clone.package = self.package
        return clone


class _Evaluator(Evaluator):
    """celpy's evaluator, metered: every macro item charges its body's steps (see the module
    docstring)."""

    def __init__(
        self, ast: lark.Tree, activation: Activation, meter: _Meter | None, bodies: dict[int, int]
    ) -> None:
        super().__init__(ast, activation)
        self._meter = meter
        self._bodies = bodies

    def sub_evaluator(self, ast: lark.Tree) -> Evaluator:
        return _Evaluator(ast, self.activation, self._meter, self._bodies)

    def _metered(self, macro: lark.Tree, function: Any) -> Any:
        meter = self._meter
        if meter is None:
            return function
        # celpy copies the scope's top-level names for each item (Evaluator.set_activation):
        # ~1/32 of a node's cost per name.
        steps = self._bodies.get(id(macro), 1) + len(self.activation.identifiers) // 32

        def metered(*args: Any) -> Any:
            meter.left -= steps  # _Meter.charge, inlined: this runs once per macro item
            if meter.left < 0:
                raise _OverBudget
            return function(*args)

        return metered

    def build_macro_eval(self, child: lark.Tree) -> Any:
        return self._metered(child, super().build_macro_eval(child))

    def member_dot_arg(self, tree: lark.Tree) -> Any:
        """celpy's, except ``all`` and ``exists``: celpy folds their items with
        ``celtypes.logical_and``/``logical_or``, which render both operands into a TypeError
        when neither is a boolean — errors of earlier items included, so the text doubles with
        each failing item (30 items: over a gigabyte). They fold with the quiet versions."""
        name = tree.children[1] if len(tree.children) >= 2 else None
        if not (isinstance(name, lark.Token) and name.value in ("all", "exists")):
            return super().member_dot_arg(tree)
        items = self.visit(tree.children[0])
        if isinstance(items, CELEvalError):
            return items
        sub_expr = self.build_ss_macro_eval(tree)
        if name.value == "all":
            return reduce(_FOLD_AND, map(sub_expr, items), celtypes.BoolType(True))
        return reduce(_FOLD_OR, map(sub_expr, items), celtypes.BoolType(False))

    def build_ss_macro_eval(self, child: lark.Tree) -> Any:
        return self._metered(child, super().build_ss_macro_eval(child))

    def build_reduce_macro_eval(self, child: lark.Tree) -> Any:
        function, init = super().build_reduce_macro_eval(child)
        return self._metered(child, function), init


class _Runner(celpy.InterpretedRunner):
    """The interpreted runner (safe to share across threads) with the metered evaluator."""

    steps: int = 0  # the tree's node count, charged once per evaluation
    bodies: dict[int, int] = {}  # id(macro call node) -> steps per item (set by compile_condition)
    nodes: int = 0
    names: frozenset[str] = frozenset()  # the variables the condition reads

    fast: Any = None  # the direct closure of :mod:`.fast`, when the condition allows one
    _base: Activation | None = None

    def new_activation(self) -> Activation:
        return _QuietActivation(
            package=self.environment.package,
            annotations=self.environment.annotations,
            functions=self.functions,
        )

    def base_activation(self) -> Activation:
        """The activation every evaluation starts from, built once: celpy's evaluator only
        clones it (``Evaluator.set_activation``), never changes it."""
        base = self._base
        if base is None:
            base = self._base = self.new_activation()
        return base

    def evaluate(self, context: Any) -> Any:
        meter = _METER.get()
        if self.fast is not None and plain_names(context):
            left = meter.left if meter is not None else 0
            try:
                return self.fast(context)
            except Exception:
                if meter is not None:
                    meter.left = left
        evaluator = _Evaluator(self.ast, self.base_activation(), meter, self.bodies)
        return evaluator.evaluate(context)


def _weight(value: Any) -> int:
    """Steps an operator spends on a value: one per element of lists and maps (nested ones
    included, cached on the value), one per 256 characters of text."""
    if isinstance(value, (str, bytes)):
        return 1 + (len(value) >> 8)
    if not isinstance(value, (list, dict)):
        return 1
    known = getattr(value, "_steps_weight", None)
    if known is not None:
        return known
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, dict)):
            cached = getattr(item, "_steps_weight", None) if item is not value else None
            if cached is not None:
                total += cached
                continue
            total += 1 + len(item)
            stack.extend(item.values() if isinstance(item, dict) else item)
        elif isinstance(item, (str, bytes)):
            total += 1 + (len(item) >> 8)
        else:
            total += 1
    try:
        value._steps_weight = total
    except AttributeError:  # a plain list/dict (celpy's "+" returns one)
        pass
    return total


def _charging(function: Any, weigh: Any) -> Any:
    def charged(*args: Any) -> Any:
        meter = _METER.get()
        if meter is not None:
            meter.charge(weigh(*args))
        return function(*args)

    charged.__name__ = getattr(function, "__name__", "charged")
    return charged


def _compare_weight(left: Any, right: Any) -> int:
    if isinstance(left, (list, dict, str, bytes)) and isinstance(right, (list, dict, str, bytes)):
        return min(_weight(left), _weight(right))
    return 0


def _in_weight(item: Any, container: Any) -> int:
    if isinstance(container, dict):
        return _weight(item)
    if isinstance(container, list):
        return _weight(container) + (
            len(container) * _weight(item) if isinstance(item, (list, dict)) else 0
        )
    return _weight(container)


def _add_weight(left: Any, right: Any) -> int:
    if isinstance(left, list) and isinstance(right, list):
        return 1 + len(left) + len(right)
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        return 1 + ((len(left) + len(right)) >> 8)
    return 0


def _quiet(logical: Any) -> Any:
    """``celtypes.logical_and``/``logical_or`` without rendering their operands: when neither
    is a boolean celpy raises ``TypeError(f"{x!r} ... {y!r}")`` — values, and earlier errors
    whose text grows at each step of a fold. Here an error operand is the result (CEL lets
    ``error || error`` be either error; the first one says best what went wrong), and two
    non-boolean values are "no such overload"."""

    def combine(x: Any, y: Any) -> Any:
        if not isinstance(x, celtypes.BoolType) and not isinstance(y, celtypes.BoolType):
            if isinstance(x, CELEvalError):
                return x
            if isinstance(y, CELEvalError):
                return y
            raise TypeError("no such overload")
        return logical(x, y)

    combine.__name__ = logical.__name__
    return combine


_FOLD_AND = eval_error("no such overload", TypeError)(_quiet(celtypes.logical_and))
_FOLD_OR = eval_error("no such overload", TypeError)(_quiet(celtypes.logical_or))


def _numeric_aware(op, fallback):
    def compare(left, right):
        if (
            isinstance(left, _NUMERIC)
            and isinstance(right, _NUMERIC)
            and type(left) is not type(right)
        ):
            return celtypes.BoolType(op(float(left), float(right)))
        return fallback(left, right)

    return compare


def _is_null(value: Any) -> bool:
    return value is None or isinstance(value, celtypes.NullType)


def _null_aware(op, fallback):
    """``==`` / ``!=`` with ``null`` on either side: CEL compares values of different types as
    unequal (``1 == null`` is false, ``1 != null`` true), but celpy has no int or double
    overload with null and fails. A nullable field of the object (a foreign key reads its
    primary key, or null when empty) must be testable with ``x != null`` whatever it holds."""

    def compare(left, right):
        if _is_null(left) or _is_null(right):
            return celtypes.BoolType(op(_is_null(left), _is_null(right)))
        return fallback(left, right)

    return compare


_DURATION = re2.compile(r"[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+")


def _duration(seconds: Any, *args: Any) -> celtypes.DurationType:
    """``duration()``: celpy matches strings with a backtracking regular expression that is
    exponential on e.g. ``"1aaaaaaaaaaaaaaaaaaaaaaaaa!"``; check them with re2 first."""
    if isinstance(seconds, str) and (len(seconds) > 256 or not _DURATION.fullmatch(seconds)):
        raise ValueError("invalid duration")
    return celtypes.DurationType(seconds, *args)


_QUIET = re2.Options()
_QUIET.log_errors = False


def _matches(text: Any, pattern: Any) -> Any:
    """celpy's ``matches()`` (``celpy.evaluation.function_matches``), with re2's error log off:
    it would write the pattern to stderr (see the module docstring)."""
    try:
        found = re2.search(pattern, text, options=_QUIET)
    except re2.error as error:
        return CELEvalError("match error", error.__class__, error.args)
    return celtypes.BoolType(found is not None)


def _comparison(name: str, op: Any) -> Any:
    """celpy's comparison ``name``. Its own (``bool_lt`` …) is ``boolean(op)(a, b)``: it wraps
    ``op`` anew, ``functools.wraps`` included, on every call; that wrapper is built once here
    instead — the same function. Any other function in celpy's table is kept as it is."""
    function = base_functions[name]
    if function.__module__ == "celpy.evaluation" and function.__name__ == f"bool_{op.__name__}":
        return boolean(op)
    return function


#: The functions conditions are evaluated with, before metering (the bench's baseline).
BASE_FUNCTIONS: dict[str, Any] = {
    **{
        name: _numeric_aware(op, _comparison(name, op))
        for name, op in (
            ("_<_", operator.lt),
            ("_<=_", operator.le),
            ("_>_", operator.gt),
            ("_>=_", operator.ge),
        )
    },
    **{
        name: _null_aware(op, _numeric_aware(op, _comparison(name, op)))
        for name, op in (("_==_", operator.eq), ("_!=_", operator.ne))
    },
    "duration": _duration,
    "_&&_": _quiet(celtypes.logical_and),
    "_||_": _quiet(celtypes.logical_or),
}

FUNCTIONS: dict[str, Any] = {
    **BASE_FUNCTIONS,
    "_==_": _charging(BASE_FUNCTIONS["_==_"], _compare_weight),
    "_!=_": _charging(BASE_FUNCTIONS["_!=_"], _compare_weight),
    "_in_": _charging(base_functions["_in_"], _in_weight),
    "_+_": _charging(base_functions["_+_"], _add_weight),
    "contains": _charging(base_functions["contains"], lambda container, *_: _weight(container)),
    "matches": _charging(_matches, lambda text, pattern: _weight(text) + _weight(pattern)),
    "string": _charging(base_functions["string"], lambda value, *_: _weight(value)),
}

#: Macros celpy evaluates item by item (``min`` takes no body).
_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one", "reduce"})
_KNOWN_FUNCTIONS = (
    frozenset(FUNCTIONS) | frozenset(base_functions) | _MACROS | {"min", "has", "dyn"}
)
