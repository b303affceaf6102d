"""CEL conditions: compile (checked, cached), build contexts, evaluate within a budget, and say
what went wrong without ever showing a value. Pure: no ORM access.

cel-python facts this module relies on (checked against cel-python 0.5):

- compiling costs 70-240 µs, so compiled programs are cached per expression text;
- results are ``celtypes.BoolType`` (a Python ``int`` subclass), never ``True``;
- ``Decimal`` is not a CEL value and ``int > double`` has no overload, so values are converted
  and the comparison operators are replaced with ones that compare int/uint/double numerically
  (CEL's heterogeneous numeric comparison);
- its error texts embed whole ``Activation(...)`` reprs (every variable's value), lark
  ``Token(...)`` reprs and the offending values: none of that text ever leaves this module.

Limits when a condition is compiled
===================================

A condition is a definition: over a limit, it is refused when the definition is saved
(:class:`~django_steps.exceptions.ConditionSyntaxError`, ``details["reason"]``), the same way
as a syntax error. In this order, each before anything more expensive runs:

1. its length (``CEL_MAX_LENGTH``) and how deeply brackets nest (``CEL_MAX_NESTING``), read from
   the text before lark sees it: lark needs ~0.1 s and ~7 MB per 2,000 characters of dense
   code (an 800 KB condition took 25 s and 2.2 GB), and a deep tree overflows Python's stack
   at every evaluation (each bracket level is ~10 tree levels of ~4.5 frames each);
2. after parsing, the tree's depth and size (``CEL_MAX_AST_DEPTH``, ``CEL_MAX_AST_NODES``;
   operator chains such as ``a + a + …`` are deep without brackets), its functions (an unknown
   function is refused now rather than failing every evaluation) and its macros' arity;
3. a static **cost estimate**, in the spirit of cel-go's and Kubernetes' CEL cost budgets: one
   step per tree node, plus, for each macro (``all``, ``exists``, ``exists_one``, ``map``,
   ``filter``, ``reduce``), the steps of its body once per item of its list — the length of
   a list literal, else ``CEL_ASSUMED_LIST_SIZE`` — so nested macros multiply. A condition
   whose estimate is over the evaluation budget (``CEL_BUDGET``) is refused: with lists of
   that size it would be stopped at every evaluation. Three macros nested over unknown lists
   are refused this way (20³ × body), two usually pass.

Each check drops what it built before raising (the error is raised outside the ``except``
block, so no traceback keeps a parse tree or the text alive). A condition stored without
validation (a bulk update, a definition saved before these limits) meets the same checks when
it is first evaluated: a ``CONDITION_ERROR`` with the same reason. The limits are read when a
condition is first compiled in a process; the cache of compiled programs is bounded by count
and by their total number of nodes, so hostile definitions cannot grow it without end.

The evaluation budget
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
One step is about one tree node: 7-10 µs here, so the default 20,000 steps stop a condition
after roughly 0.2 s of CPU. ``bench/cel_budget.py`` measures what the meter costs: 0-3 % of
an evaluation here.

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

Errors
======

Evaluation errors are classified by kind (``Reason``: no such variable / key or field, no
matching overload, division by zero, not a boolean, over budget, …), with the line and column
and, when the culprit is an identifier of the expression, its name. :func:`condition_error`
is the one place that turns such a failure into the message clients see; the services (a real
change and the dry run) call it with the transition.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import math
import operator
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
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
    NameContainer,
    base_functions,
    eval_error,
)
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

from .conf import steps_setting
from .exceptions import ConditionError, ConditionSyntaxError, InvalidContext

__all__ = [
    "Reason",
    "activation",
    "check_context",
    "clear_cache",
    "compile_condition",
    "condition_error",
    "context_error",
    "evaluate",
    "is_unconditional",
    "to_cel",
    "to_json",
    "variables",
]


class _FreeSubscript:
    """Subscripted, gives back ``object`` at no cost: see :func:`_erase_typing_in_casts`."""

    def __getitem__(self, item: Any) -> type:
        return object


def _erase_typing_in_casts() -> None:
    """celpy's evaluator writes ``cast(Tuple[Result, Result], …)`` in every operator it
    evaluates; typing builds that alias through its cache each time, hashing the 15-member
    ``Result`` union (nested aliases included): a third of a simple condition's evaluation
    (``bench/engine.py``'s cached condition: 188 → 124 µs). ``cast`` ignores its first
    argument, and in ``celpy.evaluation`` these five names are used at run time only inside
    ``cast`` (signatures and module-level aliases were built at import; local annotations are
    never evaluated), so they are replaced there, and only while they are typing's own."""
    import typing

    import celpy.evaluation

    for name in ("Tuple", "Union", "List", "Dict", "Iterable"):
        if getattr(celpy.evaluation, name, None) is getattr(typing, name):
            setattr(celpy.evaluation, name, _FreeSubscript())


_erase_typing_in_casts()

_NUMERIC = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)
_MAX_DEPTH = 32  # recursion guard of to_cel/to_json (client contexts are held to CONTEXT_MAX_DEPTH)
_SHOWN = 160  # characters of an expression quoted in a message
_INT64 = (-(2**63), 2**63 - 1)


class Reason:
    """Why a condition was refused or failed (``details["reason"]``): stable codes."""

    SYNTAX = "SYNTAX"
    TOO_LONG = "TOO_LONG"
    TOO_DEEP = "TOO_DEEP"
    TOO_LARGE = "TOO_LARGE"
    TOO_COSTLY = "TOO_COSTLY"
    UNKNOWN_FUNCTION = "UNKNOWN_FUNCTION"
    NO_SUCH_VARIABLE = "NO_SUCH_VARIABLE"
    NO_SUCH_KEY = "NO_SUCH_KEY"
    NO_MATCHING_OVERLOAD = "NO_MATCHING_OVERLOAD"
    DIVISION_BY_ZERO = "DIVISION_BY_ZERO"
    INVALID_VALUE = "INVALID_VALUE"
    INDEX_OUT_OF_RANGE = "INDEX_OUT_OF_RANGE"
    INVALID_PATTERN = "INVALID_PATTERN"
    NOT_A_BOOLEAN = "NOT_A_BOOLEAN"
    OVER_BUDGET = "OVER_BUDGET"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    ERROR = "ERROR"


def _limit(name: str) -> int:
    return int(steps_setting(name))


def _shown(expression: str) -> str:
    """The expression as quoted in messages: cut when long."""
    return expression if len(expression) <= _SHOWN else expression[: _SHOWN - 1] + "…"


def _failure(
    cls: type[ConditionError] | type[ConditionSyntaxError],
    expression: str,
    reason: str,
    description: str,
    *,
    line: int | None = None,
    column: int | None = None,
    prefix: str = "",
    suffix: str = "",
) -> Any:
    """A condition error whose message and details hold no value: the (cut) expression, the
    reason code, a fixed description and the position. ``error.description`` keeps the
    description (with the position) for :func:`condition_error`."""
    details: dict[str, Any] = {"expression": _shown(expression), "reason": reason}
    if line and column and line > 0:
        description = f"{description} (line {line}, column {column})"
        details.update(line=line, column=column)
    error = cls(f"{prefix}{description}{suffix}", **details)
    error.description = description
    return error


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

    def new_activation(self) -> Activation:
        return _QuietActivation(
            package=self.environment.package,
            annotations=self.environment.annotations,
            functions=self.functions,
        )

    def evaluate(self, context: Any) -> Any:
        evaluator = _Evaluator(self.ast, self.new_activation(), _METER.get(), self.bodies)
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


#: The functions conditions are evaluated with, before metering (the bench's baseline).
BASE_FUNCTIONS: dict[str, Any] = {
    **{
        name: _numeric_aware(op, base_functions[name])
        for name, op in (
            ("_<_", operator.lt),
            ("_<=_", operator.le),
            ("_>_", operator.gt),
            ("_>=_", operator.ge),
        )
    },
    **{
        name: _null_aware(op, _numeric_aware(op, base_functions[name]))
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
    "matches": _charging(
        base_functions["matches"], lambda text, pattern: _weight(text) + _weight(pattern)
    ),
    "string": _charging(base_functions["string"], lambda value, *_: _weight(value)),
}

#: Macros celpy evaluates item by item (``min`` takes no body).
_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one", "reduce"})
_KNOWN_FUNCTIONS = (
    frozenset(FUNCTIONS) | frozenset(base_functions) | _MACROS | {"min", "has", "dyn"}
)


# --------------------------------------------------------------------------- compile

_lock = threading.Lock()
_environment: celpy.Environment | None = None
_programs: dict[str, _Runner] = {}
_cached_nodes = 0
_MAX_CACHED = 4096
_MAX_CACHED_NODES = 250_000  # ~700 B per node: the cache stays under ~200 MB however hostile
stats = {
    "compiled": 0
}  # how many times an expression was really compiled (tests and bench read it)


def _env() -> celpy.Environment:
    global _environment
    if _environment is None:
        with _lock:
            if _environment is None:
                _environment = celpy.Environment(runner_class=_Runner)
    return _environment


def is_unconditional(expression: str | None) -> bool:
    return not expression or expression.isspace()


def variables(expression: str) -> frozenset[str]:
    """The variables ``expression`` reads — ``{"claim", "input"}`` for ``claim.amount >
    input.limit`` — macro variables left out; none for an empty condition. The services build
    only what a condition reads (an object's fields are not loaded for a condition reading
    ``input`` alone). Raises :class:`ConditionSyntaxError` as :func:`compile_condition` does."""
    if is_unconditional(expression):
        return frozenset()
    return (_programs.get(expression) or compile_condition(expression)).names


def _nesting(text: str) -> int:
    """How deeply ``()``, ``[]`` and ``{}`` nest, outside string literals and comments."""
    depth = deepest = 0
    i, end = 0, len(text)
    while i < end:
        ch = text[i]
        if ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            i += len(quote)
            while i < end and not text.startswith(quote, i):
                i += 2 if text[i] == "\\" else 1
            i += len(quote)
            continue
        if ch == "/" and text.startswith("//", i):
            newline = text.find("\n", i)
            i = end if newline < 0 else newline
            continue
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def _check_text(expression: str) -> ConditionSyntaxError | None:
    max_length = _limit("CEL_MAX_LENGTH")
    if len(expression) > max_length:
        return _refusal(
            expression,
            Reason.TOO_LONG,
            f"it is {len(expression)} characters long, over the limit of {max_length}",
        )
    max_nesting = _limit("CEL_MAX_NESTING")
    nesting = _nesting(expression)
    if nesting > max_nesting:
        return _refusal(
            expression,
            Reason.TOO_DEEP,
            f"its brackets nest {nesting} deep, over the limit of {max_nesting}",
        )
    return None


def _refusal(
    expression: str, reason: str, description: str, **position: Any
) -> ConditionSyntaxError:
    verb = "does not compile" if reason == Reason.SYNTAX else "is refused"
    return _failure(
        ConditionSyntaxError,
        expression,
        reason,
        description,
        prefix=f"The CEL condition {_shown(expression)!r} {verb}: ",
        suffix=".",
        **position,
    )


def _parse_problem(exc: celpy.CELParseError) -> tuple[str, dict[str, int]]:
    """A short description of a syntax error (never lark's reprs) and its position."""
    cause = exc.__context__
    if isinstance(cause, UnexpectedToken):
        token = cause.token
        if token.type == "$END":
            what = "unexpected end of the condition"
        else:
            text = str(token)
            what = f"unexpected {text[:20]!r}" if text else "unexpected token"
    elif isinstance(cause, UnexpectedCharacters):
        what = f"unexpected character {cause.char!r}"
    else:
        what = "it does not parse"
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    position = (
        {"line": line, "column": column}
        if isinstance(line, int) and isinstance(column, int)
        else {}
    )
    return what, position


@dataclass
class _Shape:
    nodes: int
    depth: int
    estimate: int
    bodies: dict[int, int]
    unknown_function: str | None
    bad_macro: str | None
    names: frozenset[str] = frozenset()  # the variables it reads (macro variables left out)


def _is_macro(tree: lark.Tree) -> bool:
    children = tree.children
    return (
        tree.data == "member_dot_arg"
        and len(children) == 3
        and isinstance(children[1], lark.Token)
        and children[1].value in _MACROS
    )


def _literal_length(member: Any) -> int | None:
    """The number of items of a list literal (``[1, 2, 3].all(…)``), else None."""
    if not (isinstance(member, lark.Tree) and member.data == "member" and member.children):
        return None
    primary = member.children[0]
    if not (isinstance(primary, lark.Tree) and primary.data == "primary" and primary.children):
        return None
    literal = primary.children[0]
    if not (isinstance(literal, lark.Tree) and literal.data == "list_lit"):
        return None
    return len(literal.children[0].children) if literal.children else 0


def _macro_variables(tree: lark.Tree) -> tuple[str, ...]:
    """The names a macro call binds (``x`` in ``l.all(x, …)``; ``r, i`` in ``l.reduce(r, i, 0,
    …)``), found as celpy finds them: the first identifier of each variable argument."""
    args = tree.children[2].children
    count = 2 if str(tree.children[1]) == "reduce" else 1
    names = []
    for var in args[:count]:
        ident = next(iter(var.find_data("ident")), None) if isinstance(var, lark.Tree) else None
        if ident is not None and ident.children:
            names.append(str(ident.children[0]))
    return tuple(names)


def _analyse(ast: lark.Tree, assumed_list_size: int) -> _Shape:
    """Depth, size, cost estimate, per-item macro costs and the variables read of a parse
    tree, iteratively (the tree may be deeper than Python's stack).

    A variable is an identifier that is not a macro's own (``x`` in ``l.all(x, x > 1)`` is
    bound inside the macro's body only; a reduce's start value is read outside it)."""
    order: list[lark.Tree] = []
    depth = 0
    empty: frozenset[str] = frozenset()
    # (tree, level, names bound by enclosing macros, whether it declares a macro variable)
    stack: list[tuple[lark.Tree, int, frozenset[str], bool]] = [(ast, 1, empty, False)]
    unknown = bad_macro = None
    names: set[str] = set()
    macro_args: dict[int, tuple[int, frozenset[str], frozenset[str]]] = {}
    while stack:
        tree, level, bound, declaring = stack.pop()
        order.append(tree)
        depth = max(depth, level)
        children = tree.children
        scope = macro_args.get(id(tree))
        for index, child in enumerate(children):
            if not isinstance(child, lark.Tree):
                continue
            if scope is None:
                stack.append((child, level + 1, bound, declaring))
                continue
            count, outer, inner = scope  # the arguments of a macro call
            if index < count:
                stack.append((child, level + 1, outer, True))
            elif count == 2 and index == 2:  # reduce's start value: outside the macro's scope
                stack.append((child, level + 1, outer, False))
            else:
                stack.append((child, level + 1, inner, False))
        if (tree.data == "ident" or tree.data == "dot_ident") and not declaring and children:
            name = str(children[0])
            if name not in bound:
                names.add(name)
        if _is_macro(tree) and isinstance(children[2], lark.Tree):
            variables = _macro_variables(tree)
            macro_args[id(children[2])] = (
                2 if str(children[1]) == "reduce" else 1,
                bound,
                bound | frozenset(variables),
            )
        if tree.data == "ident_arg" or tree.data == "dot_ident_arg":
            name = str(children[0])
            if name not in _KNOWN_FUNCTIONS and unknown is None:
                unknown = name
        elif tree.data == "member_dot_arg" and len(children) >= 2:
            name = str(children[1])
            if name in _MACROS:
                wanted = 4 if name == "reduce" else 2
                args = (
                    children[2].children
                    if len(children) == 3 and isinstance(children[2], lark.Tree)
                    else []
                )
                if len(args) != wanted and bad_macro is None:
                    bad_macro = name
            elif name not in _KNOWN_FUNCTIONS and unknown is None:
                unknown = name
    size: dict[int, int] = {}
    extra: dict[int, int] = {}  # steps beyond one per node: macro items
    bodies: dict[int, int] = {}
    for tree in reversed(order):  # children before their parent
        steps, more = 1, 0
        for child in tree.children:
            if isinstance(child, lark.Tree):
                steps += size[id(child)]
                more += extra[id(child)]
        if _is_macro(tree) and bad_macro is None:
            body = tree.children[2].children[-1]
            items = _literal_length(tree.children[0])
            per_item = size[id(body)] + 1
            bodies[id(tree)] = per_item
            count = assumed_list_size if items is None else items
            # The body's own macros run once per item, not once.
            more += count * (per_item + extra[id(body)]) - extra[id(body)]
        size[id(tree)] = steps
        extra[id(tree)] = more
    root = id(ast)
    return _Shape(
        len(order), depth, size[root] + extra[root], bodies, unknown, bad_macro, frozenset(names)
    )


def _shape_problem(expression: str, shape: _Shape) -> ConditionSyntaxError | None:
    max_depth, max_nodes = _limit("CEL_MAX_AST_DEPTH"), _limit("CEL_MAX_AST_NODES")
    if shape.depth > max_depth:
        return _refusal(
            expression,
            Reason.TOO_DEEP,
            f"it nests too deeply ({shape.depth} levels, over the limit of {max_depth})",
        )
    if shape.nodes > max_nodes:
        return _refusal(
            expression,
            Reason.TOO_LARGE,
            f"it is too large ({shape.nodes} parse nodes, over the limit of {max_nodes})",
        )
    if shape.unknown_function is not None:
        return _refusal(
            expression, Reason.UNKNOWN_FUNCTION, f"unknown function {shape.unknown_function[:64]!r}"
        )
    if shape.bad_macro is not None:
        arguments = (
            "an accumulator, a variable, a start value and an expression"
            if shape.bad_macro == "reduce"
            else "a variable and an expression"
        )
        return _refusal(
            expression, Reason.SYNTAX, f"the macro {shape.bad_macro!r} takes {arguments}"
        )
    budget, assumed = _limit("CEL_BUDGET"), _limit("CEL_ASSUMED_LIST_SIZE")
    if shape.estimate > budget:
        return _refusal(
            expression,
            Reason.TOO_COSTLY,
            f"its estimated cost is {shape.estimate} steps with lists of {assumed} items, over the evaluation "
            f"budget of {budget}; nest fewer macros (all, exists, exists_one, map, filter) over lists",
        )
    return None


def compile_condition(expression: str) -> celpy.Runner:
    """Return the compiled program for ``expression``, compiling it once per process.

    Raises :class:`ConditionSyntaxError` when the expression does not parse or is over a
    limit (``details["reason"]``: see the module docstring).
    """
    global _cached_nodes
    program = _programs.get(expression)
    if program is not None:
        return program
    problem = _check_text(expression)  # before the lock and before lark
    if problem is not None:
        raise problem
    env = _env()
    # Compiled under the lock: the parser is not documented as thread-safe, compiling is rare
    # and bounded by the limits above, and two threads meeting a new expression at once
    # compile it only once.
    with _lock:
        program = _programs.get(expression)
        if program is not None:
            return program
        ast = None
        try:
            ast = env.compile(expression)
        except celpy.CELParseError as exc:
            what, position = _parse_problem(exc)
            problem = _refusal(expression, Reason.SYNTAX, what, **position)
        except RecursionError:
            problem = _refusal(expression, Reason.TOO_DEEP, "it nests too deeply")
        if problem is None:
            shape = _analyse(ast, _limit("CEL_ASSUMED_LIST_SIZE"))
            problem = _shape_problem(expression, shape)
        if problem is not None:
            ast = None  # drop the tree before raising
            raise problem
        program = env.program(ast, functions=FUNCTIONS)
        program.steps = shape.nodes
        program.nodes = shape.nodes
        program.bodies = shape.bodies
        program.names = shape.names
        while _programs and (
            len(_programs) >= _MAX_CACHED or _cached_nodes + shape.nodes > _MAX_CACHED_NODES
        ):
            _cached_nodes -= _programs.pop(next(iter(_programs))).nodes
        _programs[expression] = program
        _cached_nodes += shape.nodes
        stats["compiled"] += 1
    return program


def clear_cache() -> None:
    global _cached_nodes
    with _lock:
        _programs.clear()
        _cached_nodes = 0


# --------------------------------------------------------------------------- context


def check_context(context: Any) -> None:
    """Refuse a client-supplied context (``context_data``, GraphQL ``context``) that CEL should
    not see: not a mapping, more than ``CONTEXT_MAX_ITEMS`` values or ``CONTEXT_MAX_LENGTH``
    characters of text and keys, nested deeper than ``CONTEXT_MAX_DEPTH``, holding a number
    CEL cannot represent (NaN, ±Infinity, an integer outside 64 bits), or text a database cannot
    store (a NUL character or an unpaired surrogate in a string or key: the context is stored
    with the event, and PostgreSQL's ``jsonb`` refuses both — refused on every database, so a
    context valid on one is valid on all). Raises :class:`InvalidContext`; the message names
    the rule, never a key or a value. Stops at the first problem, so its cost is bounded by the
    limits."""
    if not isinstance(context, Mapping):
        raise InvalidContext(
            "The context must be a mapping of names to values.", reason="NOT_A_MAPPING"
        )
    max_items, max_length, max_depth = (
        _limit("CONTEXT_MAX_ITEMS"),
        _limit("CONTEXT_MAX_LENGTH"),
        _limit("CONTEXT_MAX_DEPTH"),
    )
    items = length = 0
    stack: list[tuple[Any, int]] = [(context, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping) or isinstance(value, (list, tuple, set, frozenset)):
            if depth > max_depth:
                raise InvalidContext(
                    f"The context is nested more than {max_depth} levels deep.",
                    reason="TOO_DEEP",
                    limit=max_depth,
                )
            if items + len(value) > max_items:
                raise InvalidContext(
                    f"The context holds more than {max_items} values.",
                    reason="TOO_MANY_ITEMS",
                    limit=max_items,
                )
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if isinstance(key, str):
                        length += len(key)
                        if length <= max_length:
                            _check_storable(key)
                    else:
                        length += 1
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, (str, bytes)):
            length += len(value)
            if isinstance(value, str) and length <= max_length:
                _check_storable(value)
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise InvalidContext(
                    "The context holds an integer outside the 64-bit range CEL supports.",
                    reason="INT_OUT_OF_RANGE",
                )
        elif isinstance(value, (float, Decimal)):
            if not (value.is_finite() if isinstance(value, Decimal) else True) or not math.isfinite(
                float(value)
            ):
                raise InvalidContext(
                    "The context holds a number that is not finite (NaN or Infinity).",
                    reason="NOT_FINITE",
                )
        if value is not context:
            items += 1
        if items > max_items:
            raise InvalidContext(
                f"The context holds more than {max_items} values.",
                reason="TOO_MANY_ITEMS",
                limit=max_items,
            )
        if length > max_length:
            raise InvalidContext(
                f"The context's text (strings and keys) is longer than {max_length} characters.",
                reason="TOO_LONG",
                limit=max_length,
            )


def _check_storable(text: str) -> None:
    if "\x00" in text or _has_surrogate(text):
        raise InvalidContext(
            "The context holds text with a NUL character or an unpaired surrogate, which cannot be stored.",
            reason="UNSTORABLE_TEXT",
        )


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def to_cel(value: Any, _depth: int = 0) -> Any:
    """Convert a Python value (from ``context_data`` or a model field) to a CEL value.

    Decimal → double, int → int, date/datetime → timestamp (a date is midnight UTC),
    timedelta → duration, UUID → string, mappings → map, lists/tuples/sets → list.
    """
    if _depth > _MAX_DEPTH:
        raise ValueError("context is nested too deeply (or refers to itself)")
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, Decimal):
        return celtypes.DoubleType(float(value))
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, bytes):
        return celtypes.BytesType(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return celtypes.TimestampType(value)
    if isinstance(value, dt.date):
        return celtypes.TimestampType(
            dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
        )
    if isinstance(value, dt.timedelta):
        return celtypes.DurationType(value)
    if isinstance(value, uuid.UUID):
        return celtypes.StringType(str(value))
    if isinstance(value, Mapping):
        return celtypes.MapType(
            {celtypes.StringType(str(k)): to_cel(v, _depth + 1) for k, v in value.items()}
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        return celtypes.ListType([to_cel(v, _depth + 1) for v in value])
    return celtypes.StringType(str(value))


def to_json(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of a context (what the history stores as "the context used")."""
    if _depth > _MAX_DEPTH:
        raise ValueError("context is nested too deeply (or refers to itself)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): to_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v, _depth + 1) for v in value]
    return str(value)


def activation(context: Mapping[str, Any]) -> dict[str, Any]:
    """The CEL variables of a context. Keys that are not CEL names (``"my-field"``) cannot be
    referred to by a condition and would make celpy refuse the whole context: they are left out."""
    names = NameContainer.extended_name_path
    return {str(key): to_cel(value) for key, value in context.items() if names.match(str(key))}


# --------------------------------------------------------------------------- evaluate

_CEL_TYPE_NAMES = {
    celtypes.BoolType: "bool",
    celtypes.IntType: "int",
    celtypes.UintType: "uint",
    celtypes.DoubleType: "double",
    celtypes.StringType: "string",
    celtypes.BytesType: "bytes",
    celtypes.ListType: "list",
    celtypes.MapType: "map",
    celtypes.TimestampType: "timestamp",
    celtypes.DurationType: "duration",
    type(None): "null",
}


def _identifier(exc: CELEvalError) -> str | None:
    """The identifier of the expression an error is about (a name the author wrote, never a
    value), when there is one."""
    tree, token = exc.tree, None
    if isinstance(tree, lark.Tree):
        if tree.data == "member_dot" and len(tree.children) == 2:
            token = tree.children[1]
        elif (
            tree.data == "primary"
            and tree.children
            and getattr(tree.children[0], "data", None) == "ident"
        ):
            token = tree.children[0].children[0]
    elif exc.token is not None:
        token = exc.token
    if isinstance(token, lark.Token) and token.type == "IDENT":
        return str(token)[:64]
    return None


def _classify(exc: CELEvalError) -> tuple[str, str]:
    """(reason, description) of a celpy evaluation error, from its exception class and the
    start of its text only."""
    args = exc.args
    text = args[0] if args and isinstance(args[0], str) else ""
    cause = args[1] if len(args) > 1 and isinstance(args[1], type) else None
    name = _identifier(exc)
    quoted = f" {name!r}" if name else ""
    if cause is not None and issubclass(cause, KeyError):
        if text.startswith("undeclared reference"):
            if exc.token is not None:
                return Reason.UNKNOWN_FUNCTION, f"unknown function{quoted}"
            description = (
                f"no variable{quoted} in the context" if name else "a name is not in the context"
            )
            return Reason.NO_SUCH_VARIABLE, description
        return Reason.NO_SUCH_KEY, f"no such key or field{quoted}"
    if cause is not None and issubclass(cause, TypeError):
        return (
            Reason.NO_MATCHING_OVERLOAD,
            "no matching overload: the operand types do not fit the operator or function",
        )
    if cause is not None and issubclass(cause, ZeroDivisionError):
        return Reason.DIVISION_BY_ZERO, "division by zero"
    if cause is not None and issubclass(cause, IndexError):
        return Reason.INDEX_OUT_OF_RANGE, "an index is out of range"
    if cause is not None and issubclass(cause, re2.error):
        return Reason.INVALID_PATTERN, "a regular expression is invalid"
    if cause is not None and issubclass(cause, (ValueError, OverflowError)):
        return Reason.INVALID_VALUE, "a value is out of range or malformed"
    return Reason.ERROR, "it could not be evaluated"


def evaluate(expression: str, cel_context: Mapping[str, Any], *, budget: int | None = None) -> bool:
    """Evaluate a condition against an already converted context (see :func:`activation`),
    within ``budget`` steps (default ``CEL_BUDGET``).

    An empty condition is true. Raises :class:`ConditionError` (``details["reason"]``) when
    evaluation fails, runs over budget or the result is not a boolean, and
    :class:`ConditionSyntaxError` when the condition does not compile.
    """
    if not expression or expression.isspace():  # is_unconditional, inlined (hot path)
        return True
    program = _programs.get(expression) or compile_condition(expression)
    meter = _Meter(steps_setting("CEL_BUDGET") if budget is None else budget)
    failure: tuple[str, str, dict[str, int]] | None = None
    token = _METER.set(meter)
    try:
        meter.charge(program.steps)
        result = program.evaluate(dict(cel_context))
    except CELEvalError as exc:
        reason, description = _classify(exc)
        position = {"line": exc.line, "column": exc.column} if exc.line and exc.column else {}
        failure = (reason, description, position)
    except _OverBudget:
        failure = (
            Reason.OVER_BUDGET,
            f"it ran over the evaluation budget of {meter.budget} steps and was stopped",
            {},
        )
    except RecursionError:
        failure = (Reason.TOO_DEEP, "it nests too deeply to be evaluated", {})
    except Exception:  # noqa: BLE001 - celpy raises plain Python errors in a few corners
        failure = (Reason.ERROR, "it could not be evaluated", {})
    finally:
        _METER.reset(token)
    # Raised here, outside the except blocks: celpy's error (whose text renders values) is
    # neither chained nor kept alive by a traceback.
    if failure is not None:
        reason, description, position = failure
        raise _failure(ConditionError, expression, reason, description, **position)
    if not isinstance(result, celtypes.BoolType):
        kind = _CEL_TYPE_NAMES.get(type(result), "value of another type")
        raise _failure(
            ConditionError,
            expression,
            Reason.NOT_A_BOOLEAN,
            f"the result is a {kind}, not a boolean",
        )
    return bool(result)


def context_error() -> ConditionError:
    """The failure of converting a context built from the content object (a value CEL cannot
    hold): names no value."""
    return _failure(
        ConditionError, "", Reason.INVALID_CONTEXT, "the context cannot be converted to CEL values"
    )


def condition_error(
    failure: ConditionError | ConditionSyntaxError,
    *,
    transition: str,
    expression: str,
    transition_id: int | None = None,
) -> ConditionError:
    """The one formatter of condition errors: ``failure`` (from :func:`evaluate`,
    :func:`compile_condition` or :func:`context_error`) reported for ``transition`` (its
    label), with the kind of failure, its position and the expression cut to a bounded length
    — never a value from the context or the object, never a library's text."""
    shown = _shown(expression)
    reason = failure.details.get("reason", Reason.ERROR)
    description = failure.description or "it could not be evaluated"
    details: dict[str, Any] = {
        "transition_id": transition_id,
        "expression": shown,
        "reason": reason,
    }
    for key in ("line", "column"):
        if key in failure.details:
            details[key] = failure.details[key]
    error = ConditionError(
        f"The condition of transition {transition} failed to evaluate: {description}. "
        f"Expression: {shown!r}. Nothing was changed.",
        **details,
    )
    error.description = description
    return error
