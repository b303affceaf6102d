"""Limits when a condition is compiled
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
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

from ..exceptions import ConditionSyntaxError
from . import fast
from .common import Reason, _failure, _limit, _shown
from .runtime import _KNOWN_FUNCTIONS, _MACROS, FUNCTIONS, _Evaluator, _Runner

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
            f"its estimated cost is {shape.estimate} steps with lists of {assumed} items, "
            f"over the evaluation budget of {budget}; "
            "nest fewer macros (all, exists, exists_one, map, filter) over lists",
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
        program.fast = _direct(program)
        while _programs and (
            len(_programs) >= _MAX_CACHED or _cached_nodes + shape.nodes > _MAX_CACHED_NODES
        ):
            _cached_nodes -= _programs.pop(next(iter(_programs))).nodes
        _programs[expression] = program
        _cached_nodes += shape.nodes
        stats["compiled"] += 1
    return program


def _direct(program: _Runner) -> Any:
    """The closure of :mod:`.fast` for ``program``, or None when its tree needs celpy's
    interpreter."""
    activation = program.base_activation()

    def literal(tree: lark.Tree) -> Any:  # as celpy's evaluator builds it
        return _Evaluator(tree, activation, None, {}).visit(tree)

    reserved = frozenset(name.partition(".")[0] for name in program.environment.annotations)
    try:
        return fast.build(program.ast, activation.functions, literal, reserved)
    except (fast.Unsupported, RecursionError):
        return None


def clear_cache() -> None:
    global _cached_nodes
    with _lock:
        _programs.clear()
        _cached_nodes = 0
