"""What an operation may cost, decided before any resolver runs.

An operation is checked once it has passed validation (so it is well formed, its fragments do
not cycle and its depth is at most ``MAX_DEPTH``) and before it executes. Two things are checked,
in one pass over the operation that will run:

**Input** (:func:`check_input`, and the literals met by the cost walk). What the client sent must
be something the engine can hold: numbers finite and within a signed 64-bit integer (Python's
``json`` parses ``NaN``, ``Infinity`` and ``1e400``; CEL integers are 64-bit), strings of at most
``MAX_STRING_LENGTH`` characters, at most ``MAX_INPUT_VALUES`` values nested at most
``MAX_INPUT_DEPTH`` deep, offset cursors (``arrayconnection:<n>``) that decode to a position a
page can start from. A problem is an :class:`InputProblem`: ``BAD_USER_INPUT`` with the field
(variable path or argument) it was found in, never the value.

**Cost** (:func:`estimate`): the largest number of objects the response can hold. Every field
whose type is an object, interface or union counts one object per value it can return, times
the number of values its ancestors can return:

* a field returning one object: ``1 + cost(selection)``;
* a list field: ``bound × (1 + cost(selection))``. The bound is declared per field, as
  ``strawberry.field(metadata={MAX_ITEMS: n})`` or in :data:`LIST_BOUNDS` (``"Type.field"``);
  an undeclared list counts :data:`DEFAULT_LIST_BOUND` items. The lists of a definition (its
  steps, a step's statuses, transitions …, :data:`DEFINITION_BOUNDS`) are bounded by the
  engine's ``DEFINITION_MAX_*`` settings, which definition validation enforces: they are read
  at each estimate, so one setting moves both the limit and the estimate;
* a connection field (a strawberry relay ``Connection``): its ``edges``/``nodes`` lists count
  the page size: ``first``/``last`` when given (variables resolved, the smaller of the two), the
  field's ``max_results`` (``MAX_PAGE_SIZE``) when absent, none when out of range (the field
  refuses it and returns nothing);
* a field that does work of its own for each value it returns (a query the optimizer cannot
  join, a rendering) declares it as ``metadata={WORK: n}``: each value
  counts ``n`` more (``Workflow.mermaid``), leaf or not. Work done in the query that loads the
  rows (``instanceCounts``: counts through an index, joined by the optimizer) counts nothing more;
* other scalars, enums and ``__typename`` count nothing. Introspection (``__schema``, ``__type``) is
  not counted: its size is bounded by the schema, and it is off in production.

Fragments count where they are spread (named ones are costed once per page size and reused, so
a fan-out of spreads costs linear time here); aliases count as separate fields; ``@skip`` and
``@include`` are ignored (the worst case counts them). A subscription counts the objects of one
event. The estimate is an upper bound under the declared list bounds, not a prediction: a page
of 100 instances counts 100 even when the table holds 3.

Why hand-written: strawberry ships depth, alias and token limiters but no cost analysis. On PyPI,
``graphql-complexity`` (the one maintained package with a strawberry extension) reads ``first``
only on list fields (so relay connections count 1), fails on variables without a default,
evaluates a named fragment again for every spread (exponential on nested spreads), and has no
way to declare a list's bound. The walk below is small and costs tens of microseconds per
operation (``bench/graphql_cost.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    is_leaf_type,
)
from graphql.utilities import get_operation_ast, value_from_ast_untyped
from strawberry import relay
from strawberry_django.relay import DjangoCursorConnection, DjangoCursorEdge

# The tables live in their own module; they stay importable from here (docs name
# ``graphql_api.cost.WORK``, ``LIST_BOUNDS``, ``DEFINITION_BOUNDS``).
from graphql_api.security.cost_bounds import (
    DEFAULT_LIST_BOUND,
    DEFINITION_BOUNDS,
    LIST_BOUNDS,
    MAX_ITEMS,
    WORK,
    list_bounds,
)

__all__ = [
    "DEFAULT_LIST_BOUND",
    "DEFINITION_BOUNDS",
    "LIST_BOUNDS",
    "MAX_ITEMS",
    "WORK",
    "InputLimits",
    "InputProblem",
    "parse_json_int",
    "check_input",
    "estimate",
    "expanded_fields",
    "list_bounds",
]

#: The range of an offset cursor's position (strawberry's ``arrayconnection:<n>``): GraphQL's
#: ``Int``. Outside it, SQL ``OFFSET`` overflows or Django refuses a negative index.
MAX_OFFSET = 2**31 - 1

_INT64 = 2**63

#: Selection sets nested deeper than this are not descended into by :func:`expanded_fields`
#: (a document that deep is refused by the depth limit; Python's recursion limit is 1000).
_MAX_NESTING = 200
_CONNECTION_LISTS = frozenset({"edges", "nodes"})


# ----------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class InputLimits:
    max_string_length: int = 100_000
    max_values: int = 10_000
    max_depth: int = 32


class InputProblem(Exception):
    """Something the client sent that cannot be processed; ``field`` says where, never what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class HugeInteger:
    """An integer literal of a JSON body too long to be a 64-bit integer (Python refuses to
    convert more than 4300 digits at all); :func:`check_input` reports where it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<huge integer>"


HUGE_INTEGER = HugeInteger()


def parse_json_int(text: str) -> int | HugeInteger:
    """``parse_int`` for ``json.loads``: the integer, or :data:`HUGE_INTEGER` past 20 digits."""
    return HUGE_INTEGER if len(text) > 20 else int(text)


def _number_problem(field: str, value: int | float | HugeInteger) -> InputProblem | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, HugeInteger):
        return InputProblem(field, f"`{field}`: integers must fit in 64 bits.")
    if isinstance(value, float) and not math.isfinite(value):
        return InputProblem(field, f"`{field}` must be a finite number.")
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        return InputProblem(field, f"`{field}`: integers must fit in 64 bits.")
    return None


def check_input(variables: Mapping[str, Any] | None, limits: InputLimits) -> None:
    """Raise :class:`InputProblem` for the first value of ``variables`` (raw, as decoded from the
    request) that is not finite, out of range, too long, too deep, or one value too many."""
    if not variables or not isinstance(variables, Mapping):
        return  # not an object: the view refuses it
    if len(variables) > limits.max_values:
        raise InputProblem("variables", f"Too many input values (more than {limits.max_values}).")
    count = 0
    stack: list[tuple[str, Any, int]] = [
        (_segment(name), value, 1) for name, value in reversed(variables.items())
    ]
    while stack:
        field, value, depth = stack.pop()
        count += 1
        if isinstance(value, (int, float, HugeInteger)):
            problem = _number_problem(field, value)
            if problem:
                raise problem
        elif isinstance(value, str):
            if len(value) > limits.max_string_length:
                raise InputProblem(
                    field, f"`{field}` is longer than {limits.max_string_length} characters."
                )
        elif isinstance(value, (dict, list)):
            if depth >= limits.max_depth:
                raise InputProblem(
                    field, f"`{field}` is nested more than {limits.max_depth} levels deep."
                )
            if count + len(stack) + len(value) > limits.max_values:
                raise InputProblem(field, f"Too many input values (more than {limits.max_values}).")
            if isinstance(value, dict):
                for key in value:
                    if len(key) > limits.max_string_length:
                        raise InputProblem(
                            field,
                            f"A key in `{field}` is longer than {limits.max_string_length} "
                            "characters.",
                        )
                children = [
                    (f"{field}.{_segment(key)}", item, depth + 1) for key, item in value.items()
                ]
            else:
                children = [
                    (f"{field}.{index}", item, depth + 1) for index, item in enumerate(value)
                ]
            stack.extend(reversed(children))


def _segment(key: str) -> str:
    """A key as it appears in a field path: cut, so that a message never echoes much input."""
    return key if len(key) <= 40 else key[:39] + "…"


def _literal_problem(field: str, node: ValueNode, limits: InputLimits) -> InputProblem | None:
    """The first problem of an inline argument value (variables inside it are checked apart)."""
    stack = [(field, node)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, FloatValueNode):
            problem = _number_problem(path, float(value.value))
        elif isinstance(value, IntValueNode):
            digits = value.value.lstrip("-")
            too_long = len(digits) > 19  # Python refuses int() of more than 4300 digits
            problem = (
                InputProblem(path, f"`{path}`: integers must fit in 64 bits.")
                if too_long
                else _number_problem(path, int(value.value))
            )
        elif isinstance(value, StringValueNode):
            too_long = len(value.value) > limits.max_string_length
            problem = (
                InputProblem(
                    path, f"`{path}` is longer than {limits.max_string_length} characters."
                )
                if too_long
                else None
            )
        elif isinstance(value, ObjectValueNode):
            stack.extend((f"{path}.{f.name.value}", f.value) for f in value.fields)
            continue
        elif isinstance(value, ListValueNode):
            stack.extend((f"{path}.{i}", v) for i, v in enumerate(value.values))
            continue
        else:
            continue
        if problem:
            return problem
    return None


# ------------------------------------------------------------------------------------ cost


@dataclass(frozen=True)
class _FieldFacts:
    """What the schema says about one field, for the estimate (computed once per field)."""

    leaf: bool
    lists: int  # list wrappers around the named type ([[T]] → 2)
    named: Any  # the named GraphQL type
    connection: bool  # the named type is a relay Connection
    offset_cursors: bool  # ... whose cursors are offsets (a ListConnection)
    keyset_cursors: bool  # ... whose cursors are ordering values (a DjangoCursorConnection)
    max_results: int | None  # connection fields: the largest page
    declared_bound: int | None  # list fields: metadata[MAX_ITEMS]
    work: int  # metadata[WORK]: extra objects counted per value


_FACTS: dict[int, tuple[GraphQLSchema, dict[tuple[str, str], _FieldFacts | None]]] = {}


def _schema_facts(schema: GraphQLSchema) -> dict[tuple[str, str], _FieldFacts | None]:
    entry = _FACTS.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _FACTS[id(schema)] = (schema, {})
    return entry[1]


def _strawberry_origin(named: Any) -> type | None:
    definition = (getattr(named, "extensions", None) or {}).get("strawberry-definition")
    return getattr(definition, "origin", None)


def _field_facts(parent: Any, name: str) -> _FieldFacts | None:
    fields = getattr(parent, "fields", None)
    field = fields.get(name) if fields else None
    if field is None:
        return None
    type_ = field.type
    lists = 0
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        if isinstance(type_, GraphQLList):
            lists += 1
        type_ = type_.of_type
    origin = _strawberry_origin(type_)
    connection = isinstance(origin, type) and issubclass(origin, relay.Connection)
    definition = (field.extensions or {}).get("strawberry-definition")
    max_results = None
    for extension in getattr(definition, "extensions", None) or ():
        max_results = getattr(extension, "max_results", None) or max_results
    metadata = getattr(definition, "metadata", None) or {}
    return _FieldFacts(
        leaf=is_leaf_type(type_),
        lists=lists,
        named=type_,
        connection=connection,
        offset_cursors=connection and issubclass(origin, relay.ListConnection),
        keyset_cursors=connection and issubclass(origin, DjangoCursorConnection),
        max_results=max_results,
        declared_bound=metadata.get(MAX_ITEMS),
        work=int(metadata.get(WORK, 0)),
    )


class _Walk:
    """One estimate: the operation's fragments and variables, and the fragments costed so far."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: Any,
        variables: Mapping[str, Any],
        default_page: int,
        limits: InputLimits,
    ) -> None:
        self.facts = _schema_facts(schema)
        self.schema = schema
        self.roots = {schema.query_type, schema.mutation_type, schema.subscription_type} - {None}
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = dict(variables)
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in self.variables and definition.default_value is not None:
                self.variables[name] = value_from_ast_untyped(definition.default_value)
        self.default_page = default_page
        self.limits = limits
        self.bounds = list_bounds()
        self.memo: dict[tuple[str, int | None], int] = {}

    def facts_of(self, parent: Any, name: str) -> _FieldFacts | None:
        key = (parent.name, name)
        try:
            return self.facts[key]
        except KeyError:
            facts = self.facts[key] = _field_facts(parent, name)
            return facts

    def value(self, node: ValueNode) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, IntValueNode):
            return int(node.value) if len(node.value) <= 20 else None
        if isinstance(node, StringValueNode):
            return node.value
        if isinstance(node, NullValueNode):
            return None
        return node  # not a value the checks below accept

    def selection_set(
        self, selection_set: SelectionSetNode | None, parent: Any, page: int | None
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_set(selection.selection_set, target or parent, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, page)
        return total

    def fragment(self, name: str, page: int | None) -> int:
        key = (name, page)
        cost = self.memo.get(key)
        if cost is None:
            definition = self.fragments.get(name)
            if definition is None:
                return 0
            target = self.schema.get_type(definition.type_condition.name.value)
            cost = self.memo[key] = self.selection_set(definition.selection_set, target, page)
        return cost

    def field(self, node: FieldNode, parent: Any, page: int | None) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0  # __typename; introspection is not counted (see the module docstring)
        for argument in node.arguments or ():
            problem = _literal_problem(argument.name.value, argument.value, self.limits)
            if problem:
                raise problem
        facts = self.facts_of(parent, name)
        if facts is None or (facts.leaf and not facts.work):
            return 0
        count = 1
        if facts.lists:
            if page is not None and name in _CONNECTION_LISTS:
                bound = page
            elif facts.declared_bound is not None:
                bound = facts.declared_bound
            else:
                bound = self.bounds.get(f"{parent.name}.{name}", DEFAULT_LIST_BOUND)
            count = bound**facts.lists
        if facts.leaf:
            return count * facts.work
        child_page = None
        if facts.connection:
            child_page = self.page_size(node, parent, facts)
        inner = self.selection_set(node.selection_set, facts.named, child_page)
        return count * (1 + facts.work + inner)

    def page_size(self, node: FieldNode, parent: Any, facts: _FieldFacts) -> int:
        largest = facts.max_results or self.default_page
        arguments = {argument.name.value: argument.value for argument in node.arguments or ()}
        for name in ("after", "before"):
            if name in arguments and (facts.offset_cursors or facts.keyset_cursors):
                check = (
                    self.check_offset_cursor if facts.offset_cursors else self.check_keyset_cursor
                )
                check(name, self.value(arguments[name]), f"{parent.name}.{node.name.value}")
        sizes = []
        for name in ("first", "last"):
            if name not in arguments:
                continue
            size = self.value(arguments[name])
            if size is None:
                continue
            if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= largest:
                return 0  # the field refuses it (BAD_USER_INPUT) and returns no item
            sizes.append(size)
        if not sizes and facts.keyset_cursors and parent not in self.roots:
            # Paged in SQL by strawberry-django's optimizer from the arguments as written: without
            # them it would read every row of every parent (see graphql_api/connections.py).
            where = f"{parent.name}.{node.name.value}"
            raise InputProblem("first", f"`{where}` needs `first` or `last` (at most {largest}).")
        return min(sizes) if sizes else largest

    @staticmethod
    def check_offset_cursor(argument: str, cursor: Any, where: str) -> None:
        if cursor is None or cursor == "":
            return  # strawberry reads an empty cursor as none
        position = None
        if isinstance(cursor, str) and len(cursor) <= 200:
            try:
                prefix, raw = relay.from_base64(cursor)
            except ValueError:
                prefix = raw = ""
            if prefix == relay.types.PREFIX and raw.isascii() and raw.isdigit() and len(raw) <= 10:
                position = int(raw)
        if position is None or position > MAX_OFFSET:
            raise InputProblem(
                argument, f"`{argument}` of `{where}` is not a cursor of this connection."
            )

    @staticmethod
    def check_keyset_cursor(argument: str, cursor: Any, where: str) -> None:
        """A keyset cursor is base64 of ``orderedcursor:`` and a JSON list of the row's ordering
        values (strings or nulls); whether each value fits its column is checked when it is
        used (and is ``BAD_USER_INPUT`` then too). An event's cursor (digits) is read by the
        connections of events (:mod:`graphql_api.api.event_cursors`) and refused by the others."""
        if cursor is None or cursor == "":
            return
        if isinstance(cursor, str) and cursor.isascii() and cursor.isdigit() and len(cursor) <= 39:
            return
        values = None
        if isinstance(cursor, str) and len(cursor) <= 1000:
            try:
                prefix, raw = relay.from_base64(cursor)
                if prefix == DjangoCursorEdge.CURSOR_PREFIX:
                    values = json.loads(raw)
            except ValueError:
                values = None
        if not (
            isinstance(values, list)
            and 0 < len(values) <= 10
            and all(
                value is None or (isinstance(value, str) and len(value) <= 100) for value in values
            )
        ):
            raise InputProblem(
                argument, f"`{argument}` of `{where}` is not a cursor of this connection."
            )


def expanded_fields(document: DocumentNode) -> int:
    """How many field selections the document's operations hold once every fragment spread is
    replaced by its fragment. Linear in the document (each fragment is counted once), however
    often fragments spread each other: the number bounds the work of validation rules that
    expand fragments (strawberry's depth and alias limiters do, once per spread). A spread
    that cycles back counts nothing (validation reports the cycle)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}
    pending: set[str] = set()

    def size(selection_set: SelectionSetNode | None, depth: int) -> int:
        if selection_set is None or depth > _MAX_NESTING:
            return 0  # deeper than any limit: the depth rule reports it
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += 1 + size(selection.selection_set, depth + 1)
            elif isinstance(selection, InlineFragmentNode):
                total += size(selection.selection_set, depth + 1)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment(selection.name.value, depth + 1)
        return total

    def fragment(name: str, depth: int) -> int:
        if name in sizes:
            return sizes[name]
        definition = fragments.get(name)
        if definition is None or name in pending:
            return 0
        pending.add(name)
        sizes[name] = size(definition.selection_set, depth)
        pending.discard(name)
        return sizes[name]

    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return sum(size(operation.selection_set, 0) for operation in operations)


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
    *,
    default_page: int = 100,
    limits: InputLimits | None = None,
) -> int:
    """The largest number of objects the operation's response can hold (see the module
    docstring). Raises :class:`InputProblem` for an inline argument value or an offset cursor
    that cannot be processed. An operation that cannot be selected costs 0 (execution reports
    it)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }.get(operation.operation)
    if root is None:
        return 0
    walk = _Walk(
        schema,
        document,
        operation,
        variables if isinstance(variables, Mapping) else {},
        default_page,
        limits or InputLimits(),
    )
    return walk.selection_set(operation.selection_set, root, None)
