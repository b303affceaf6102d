"""Hardening: query limits, error masking, the introspection switch.

Limits are configurable in ``settings.DJANGO_STEPS_GRAPHQL``: ``MAX_DEPTH``, ``MAX_ALIASES``,
``MAX_TOKENS`` (validation rules), ``MAX_COST`` (the estimated number of objects an operation may
return; a false value turns the limit off), ``MAX_STRING_LENGTH``, ``MAX_INPUT_VALUES`` and
``MAX_INPUT_DEPTH`` (what the variables and inline arguments may hold); see
:mod:`graphql_api.security.cost`; ``ANONYMOUS_MAX_TOKENS`` and ``ANONYMOUS_MAX_FRAGMENTS``
(documents of callers not logged in, checked before validation); ``MAX_SECONDS`` (the time
budget of a query, a mutation or one subscription event, see
:mod:`graphql_api.security.budget`). Every extension is created per operation (a factory), never
shared between concurrent requests.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.db.models.constants import LOOKUP_SEP
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import (
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
)
from graphql.validation import NoSchemaIntrospectionCustomRule, ValidationContext, ValidationRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types.graphql import OperationType
from strawberry_django.optimizer import DjangoOptimizerExtension

from graphql_api.api.nested_pages import with_page_attrs
from graphql_api.security.budget import (
    Budget,
    current_budget,
    end_budget,
    time_budget,
    timeout_error,
)
from graphql_api.security.cost import (
    InputLimits,
    InputProblem,
    check_input,
    estimate,
    expanded_fields,
)
from graphql_api.security.error_codes import TransportCode
from graphql_api.security.errors import client_error, log_errors, reworded, should_mask
from graphql_api.security.permissions import current_user
from graphql_api.settings import DEFAULTS, graphql_setting  # noqa: F401 (re-exported)


class IntrospectionSwitch(SchemaExtension):
    """Refuse ``__schema`` / ``__type`` queries unless ``DJANGO_STEPS_GRAPHQL["INTROSPECTION"]``."""

    def on_operation(self) -> Iterator[None]:
        if not graphql_setting("INTROSPECTION"):
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield


class MaskUnexpectedErrors(MaskErrors):
    """``MaskErrors`` that shows clients what :func:`~graphql_api.security.errors.client_error`
    makes of
    each error (client errors readable and coded, server faults masked as
    ``INTERNAL_SERVER_ERROR``), without graphql-core's "Did you mean …?" suggestions while
    introspection is off (they name fields and types)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        hide_suggestions = not graphql_setting("INTROSPECTION")
        processed = []
        for error in errors:
            readable = client_error(error)
            if readable is None:
                processed.append(self.anonymise_error(error))
                continue
            if hide_suggestions and _SUGGESTION in readable.message:
                readable = _without_suggestions(readable)
            processed.append(readable)
        return processed

    def _process_result(self, result: object) -> None:
        # MaskErrors checks ``isinstance(result, <runtime Protocol>)``, which costs tens of µs:
        # paid for every event sent to every subscriber. Duck typing does the same job.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": TransportCode.INTERNAL_SERVER_ERROR}
        return masked


#: graphql-core appends its suggestions (``did_you_mean``) at the end of a message.
_SUGGESTION = " Did you mean "


def _without_suggestions(error: GraphQLError) -> GraphQLError:
    return reworded(error, error.message.split(_SUGGESTION, 1)[0])


def _input_limits() -> InputLimits:
    return InputLimits(
        max_string_length=graphql_setting("MAX_STRING_LENGTH"),
        max_values=graphql_setting("MAX_INPUT_VALUES"),
        max_depth=graphql_setting("MAX_INPUT_DEPTH"),
    )


class AnonymousDocumentLimits(SchemaExtension):
    """Tighter document limits for callers who are not logged in, checked before validation (whose
    cost grows with fragments much faster than with the document): at most
    ``ANONYMOUS_MAX_TOKENS`` tokens (the parser stops there, ``GRAPHQL_PARSE_FAILED``) and
    ``ANONYMOUS_MAX_FRAGMENTS`` fragments — definitions, spreads and inline fragments together
    (``QUERY_TOO_COMPLEX``). Logging in needs a few dozen tokens and no fragment."""

    anonymous = False

    def on_operation(self) -> Iterator[None]:
        user = current_user(_ContextOnly(self.execution_context.context))
        self.anonymous = not getattr(user, "is_authenticated", False)
        if self.anonymous:
            options = self.execution_context.parse_options
            limit = int(graphql_setting("ANONYMOUS_MAX_TOKENS"))
            options["max_tokens"] = min(options.get("max_tokens") or limit, limit)
        yield

    def on_parse(self) -> Iterator[None]:
        yield
        document = self.execution_context.graphql_document
        if not self.anonymous or document is None:
            return
        limit = int(graphql_setting("ANONYMOUS_MAX_FRAGMENTS"))
        if _fragments(document) > limit:
            raise GraphQLError(
                f"Requests that are not logged in may hold at most {limit} fragments: "
                "log in first.",
                extensions={
                    "code": TransportCode.QUERY_TOO_COMPLEX,
                    "classification": TransportCode.BAD_USER_INPUT,
                },
            )


class _ContextOnly:
    """What :func:`~graphql_api.security.permissions.current_user` reads of an ``Info``: its
    context."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


def _fragments(document: Any) -> int:
    """Fragment definitions, spreads and inline fragments of ``document`` (a walk of its nodes:
    the parser bounded their number)."""
    count = 0
    stack = list(document.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, (FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode)):
            count += 1
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    return count


class TimeBudget(SchemaExtension):
    """A query or mutation runs for at most ``DJANGO_STEPS_GRAPHQL["MAX_SECONDS"]``, counted from
    when the request reached the schema (parsing and validation included) — or, over HTTP, from
    when it reached our view, which runs the whole request under that budget (the session and
    user it loads included: see :mod:`graphql_api.security.budget`); then its SQL stops and it
    answers ``{"data": null, "errors": [TIMEOUT]}`` (:mod:`graphql_api.security.budget`).
    A subscription's budget is per event, set where each event executes
    (:mod:`graphql_api.live.execution`). Listed last: an extension refusing in its own
    ``on_execute`` after this one entered would leave the budget set (strawberry does not unwind
    hooks already entered), so ``on_operation`` clears it too."""

    budget: Budget | None = None

    def on_operation(self) -> Iterator[None]:
        self.started = time.monotonic()
        try:
            yield
        finally:
            end_budget(self.budget)

    def on_execute(self) -> Iterator[None]:
        seconds = graphql_setting("MAX_SECONDS")
        if not seconds or self.execution_context.operation_type == OperationType.SUBSCRIPTION:
            yield
            return
        enclosing = current_budget()
        if enclosing is not None and enclosing.whole_request:
            # The view's budget for this request (its owner ends it): one deadline, counted from
            # an instant earlier.
            yield
            self._check_spent(enclosing)
            return
        left = max(float(seconds) - (time.monotonic() - self.started), 1e-6)
        with time_budget(left) as budget:
            self.budget = budget
            budget.seconds = float(seconds)  # the message names the setting, not what was left
            yield
        self._check_spent(budget)

    def _check_spent(self, budget: Budget) -> None:
        if budget.spent:
            # Some statement was refused or cut. Code that reads a failed query as "nothing
            # there" (a permission check, say) may have answered wrongly: nothing of the result
            # is kept, the client is told to ask for less.
            error = timeout_error(budget)
            log_errors([error], self.execution_context)
            self.execution_context.result = GraphQLExecutionResult(data=None, errors=[error])


class OperationLimits(SchemaExtension):
    """Before any resolver runs: refuse input the engine cannot process (``BAD_USER_INPUT``
    with ``extensions.field``) and operations whose estimated cost is over
    ``DJANGO_STEPS_GRAPHQL["MAX_COST"]`` (``QUERY_TOO_COMPLEX`` with ``extensions.cost`` and
    ``extensions.maxCost``). See :mod:`graphql_api.security.cost`."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        limits = _input_limits()
        try:
            check_input(context.variables, limits)
            cost = estimate(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
                default_page=context.schema.config.relay_max_results,
                limits=limits,
            )
        except InputProblem as problem:
            raise GraphQLError(
                problem.message,
                extensions={
                    "code": TransportCode.BAD_USER_INPUT,
                    "classification": TransportCode.BAD_USER_INPUT,
                    "field": problem.field,
                },
            ) from None
        max_cost = graphql_setting("MAX_COST")
        if max_cost and cost > max_cost:
            raise GraphQLError(
                f"This operation could return up to {cost:,} objects, more than the limit of "
                f"{max_cost:,}. Ask for smaller pages (`first`/`last`) or fewer nested lists.",
                extensions={
                    "code": TransportCode.QUERY_TOO_COMPLEX,
                    "classification": TransportCode.BAD_USER_INPUT,
                    "cost": cost,
                    "maxCost": max_cost,
                },
            )
        yield


@functools.cache
def _limit_rules(max_depth: int, max_aliases: int, max_fields: int) -> tuple[type, ...]:
    """The validation rule of the depth and alias limits, built once per limit values (so that
    the rules of an operation are identical from one request to the next and
    ``ValidationCache`` can hit).

    strawberry's depth and alias limiters walk each fragment again at every spread: fragments
    that spread the next one twice, 20 deep, took 26 s to validate. The rule first counts the
    operation's fields with fragments expanded (:func:`~graphql_api.security.cost.expanded_fields`,
    linear) and refuses more than ``max_fields`` (``QUERY_TOO_COMPLEX``); only then do the
    limiters run. (They do all their work when created and visit nothing afterwards.)"""
    limiters = (
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    )

    class OperationSizeLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            if expanded_fields(context.document) > max_fields:
                context.report_error(
                    GraphQLError(
                        f"This operation selects more than {max_fields:,} fields once its "
                        "fragments are expanded.",
                        extensions={
                            "code": TransportCode.QUERY_TOO_COMPLEX,
                            "classification": TransportCode.BAD_USER_INPUT,
                        },
                    )
                )
                return
            for limiter in limiters:
                limiter(context)

    return (OperationSizeLimit,)


def _query_limits() -> AddValidationRules:
    rules = _limit_rules(
        graphql_setting("MAX_DEPTH"), graphql_setting("MAX_ALIASES"), graphql_setting("MAX_TOKENS")
    )
    return AddValidationRules(list(rules))


class QuerysetOptimizer(DjangoOptimizerExtension):
    """strawberry-django's optimizer without its per-field ``resolve`` hook.

    Every list, connection and node lookup of our schema is a strawberry-django field, and those
    optimize their own querysets (``get_queryset_hook`` / ``resolve_model_nodes`` find the
    optimizer through the context variable ``on_execute`` sets). The hook only re-checked the
    value of *every* field for a QuerySet it had not seen: a graphql-core middleware call per
    resolved field, 2,400 on a page of 100 instances with 10 events each, about a fifth of the
    request (``bench/graphql_list.py``). The SQL is the same with or without it
    (``tests/graphql_api/api/test_query_counts.py``). A host's own plain
    ``@strawberry.field`` returning a QuerySet is not optimized by this one: give it
    ``strawberry_django.field``, or pass ``DjangoOptimizerExtension`` to
    :func:`graphql_api.composition.compose_schema`, which then runs instead of this one.
    """

    resolve = SchemaExtension.resolve

    def __init__(self, *, prefetch_custom_queryset: bool = True, **options: Any) -> None:
        # Prefetched lists read the default manager, as ``workflow.steps.all()`` does: the steps,
        # statuses and transitions a later version removed (kept as retired rows for history)
        # are not part of the definition any more (strawberry-django reads the base manager).
        super().__init__(prefetch_custom_queryset=prefetch_custom_queryset, **options)

    def optimize(self, qs: Any, info: Any, *, store: Any = None) -> Any:
        return consistent_prefetches(super().optimize(qs, info, store=store))


def consistent_prefetches(qs: Any) -> Any:
    """``qs`` with prefetches Django accepts whatever fields were selected together.

    strawberry-django merges its own ``Prefetch`` of a relation with the fields' hints, but it
    lists plain lookups first and may also join the same relation: a field hinting
    ``"current_step__statuses"`` next to ``currentStep { instanceCounts }`` (which prefetches the
    step with annotations) made Django refuse the query ("lookup was already seen with a
    different queryset"), and a joined relation makes Django skip a ``Prefetch`` of it, with its
    nested lookups (one query per object later). So: a relation prefetched with a queryset is
    not joined as well, prefetches with a queryset come first (shallowest first), and the same
    holds inside every nested prefetch. A nested connection's page is prefetched to a list on
    each parent (:func:`~graphql_api.api.nested_pages.with_page_attrs`)."""
    if not isinstance(qs, QuerySet):
        return qs
    lookups = list(qs._prefetch_related_lookups)
    if not lookups:
        return qs
    fixed = with_page_attrs([_consistent_prefetch(lookup) for lookup in lookups])
    fixed.sort(key=_prefetch_order)  # stable: the optimizer's order otherwise
    # Relations (not to_attr names) prefetched with a queryset of their own.
    prefetched = {
        lookup.prefetch_through
        for lookup in fixed
        if isinstance(lookup, Prefetch)
        and lookup.queryset is not None
        and LOOKUP_SEP not in lookup.prefetch_through
    }
    joined = qs.query.select_related
    unjoin = prefetched & set(joined) if isinstance(joined, dict) else set()
    # A related manager's queryset (``instance.history`` read off an object, not prefetched)
    # hands every row the parent it was read from; Django then takes that relation as fetched
    # and skips its ``Prefetch`` with everything nested in it: ``history { node { instance {
    # history } } }`` read the inner page once per row. Such a relation is prefetched instead
    # (one more query for the parent, and the nested lookups run).
    known = qs._known_related_objects
    forget = {field for field in known if field.name in prefetched}
    if fixed == lookups and not unjoin and not forget:
        return qs
    qs = qs._chain()
    if forget:  # a new dict: clones share it
        qs._known_related_objects = {f: v for f, v in known.items() if f not in forget}
    if unjoin:
        qs.query.select_related = {k: v for k, v in joined.items() if k not in unjoin}
        names, defer = qs.query.deferred_loading
        if not defer:  # only(): keep the foreign key, drop the columns of the unjoined rows
            kept = {n for n in names if n.split(LOOKUP_SEP, 1)[0] not in unjoin}
            qs.query.deferred_loading = (frozenset(kept | unjoin), False)
    qs._prefetch_related_lookups = tuple(fixed)
    return qs


def _prefetch_order(lookup: Any) -> tuple[int, int]:
    if isinstance(lookup, Prefetch) and lookup.queryset is not None:
        return (0, lookup.prefetch_to.count(LOOKUP_SEP))
    return (1, 0)


def _consistent_prefetch(lookup: Any) -> Any:
    if not isinstance(lookup, Prefetch) or lookup.queryset is None:
        return lookup
    inner = consistent_prefetches(lookup.queryset)
    if inner is lookup.queryset:
        return lookup
    return Prefetch(lookup.prefetch_through, queryset=inner, to_attr=lookup.to_attr)


#: Parsed documents and validation results of recent operations (module-level LRU caches in
#: strawberry, shared by the per-request extension instances). A dashboard or SPA sends the
#: same few operations over and over; this skips re-parsing and re-validating them.
CACHED_OPERATIONS = 256


def schema_extensions() -> list[Any]:
    """The extension factories of the schema (each called once per operation)."""
    return [
        _query_limits,
        lambda: MaxTokensLimiter(max_token_count=graphql_setting("MAX_TOKENS")),
        AnonymousDocumentLimits,  # after MaxTokensLimiter (it lowers its limit), before the caches
        lambda: ParserCache(maxsize=CACHED_OPERATIONS),
        lambda: ValidationCache(maxsize=CACHED_OPERATIONS),
        IntrospectionSwitch,
        MaskUnexpectedErrors,
        OperationLimits,  # before the optimizer: its on_execute must not have run when this refuses
        QuerysetOptimizer,
        TimeBudget,  # last: see its docstring
    ]
