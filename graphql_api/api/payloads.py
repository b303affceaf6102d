"""What a mutation returns, typed so a client can switch on it exhaustively.

Each mutation returns ``<Name>Payload``: the union of its object, ``OperationInfo`` and, for the
mutations that take ``expectedVersion``, ``VersionConflict`` (the instance as now committed, so a
client can show it and retry with its ``version``, with no refetch and no message to parse).

Each mutation declares the codes its ``OperationInfo`` can carry once, in :func:`mutation`'s
``codes``. From that one declaration come the list in the mutation's description and a
schema enum ``<Name>ErrorCode`` (the same names as ``WorkflowErrorCode``, only these), which
graphql-codegen emits so a client switches on exactly those. A code outside the declaration is
still returned (``OperationInfo.messages[].code`` stays ``WorkflowErrorCode``) but logged at
ERROR: it is a bug of the declaration (tests/graphql_api/api/test_typed_errors.py drives each
mutation into its errors).
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Union

import strawberry
import strawberry_django
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from django_steps.exceptions import VersionConflict
from django_steps.models import WorkflowInstance
from graphql_api.api.ids import not_found
from graphql_api.api.types import WorkflowInstanceType
from graphql_api.security import permissions
from graphql_api.security.error_codes import ErrorCode, WorkflowErrorCode
from graphql_api.security.error_codes import OperationInfoType as OperationInfo
from graphql_api.security.errors import permission_denied, to_operation_info
from graphql_api.security.permissions import has_perm

logger = logging.getLogger("graphql_api")


@strawberry.type(
    name="VersionConflict",
    description=(
        "The change was refused because the instance is no longer at `expectedVersion`: someone "
        "changed it meanwhile. `current` is the instance as now committed: show it, and retry "
        "with `current.version` if the change still makes sense. Nothing was changed."
    ),
)
class VersionConflictType:
    current: WorkflowInstanceType = strawberry.field(
        description="The instance as now committed (as the viewer may see it)."
    )
    code: WorkflowErrorCode = strawberry.field(description="Always `VERSION_CONFLICT`.")
    message: str = strawberry.field(description="What happened, for people.")


CONFLICT_MESSAGE = (
    "The instance changed since the version you expected was read (by you or another): "
    "`current` is it as now committed. Nothing was changed."
)


def _conflict(info: Info, error: VersionConflict) -> VersionConflictType:
    """The payload of a version conflict: the instance as the viewer may see it now (one the
    viewer can no longer see is INSTANCE_NOT_FOUND, as for any hidden instance)."""
    visible = permissions.visible_instances(
        WorkflowInstance.objects.filter(pk=error.details.get("instance_id")), info
    )
    current = visible.select_related("workflow", "current_step", "current_step_status").first()
    if current is None:
        raise not_found("WorkflowInstance", "instanceId")
    return VersionConflictType(
        current=current,
        code=WorkflowErrorCode.VERSION_CONFLICT,
        message=CONFLICT_MESSAGE,
    )


#: The input a not-found code is about, for the messages that name none (the engine's: the row
#: went away between the lookup and the lock, or a work item closed meanwhile).
_INPUT_OF = {
    ErrorCode.INSTANCE_NOT_FOUND: ("instance_id", "instanceId"),
    ErrorCode.WORK_ITEM_NOT_FOUND: ("work_item_id", "workItemId"),
}


def _with_fields(payload: OperationInfo, input: Any) -> OperationInfo:
    """``payload`` with ``field`` set on the not-found messages that lack it, when the mutation's
    input has the field they are about."""
    for message in payload.messages:
        python_name, name = _INPUT_OF.get(message.code.name, (None, None))
        if message.field is None and python_name and hasattr(input, python_name):
            message.field = name
    return payload


def _takes_expected_version(resolver: Callable[..., Any]) -> bool:
    """Whether the mutation's ``input`` has ``expectedVersion`` (so it can conflict)."""
    input_type = typing.get_type_hints(resolver).get("input")
    definition = getattr(input_type, "__strawberry_definition__", None)
    return definition is not None and any(
        field.python_name == "expected_version" for field in definition.fields
    )


def _codes_enum(type_name: str, field_name: str, codes: Iterable[ErrorCode]) -> Any:
    """The schema enum of one mutation's codes: the members of ``WorkflowErrorCode`` it lists."""
    described = {v.name: v.description for v in WorkflowErrorCode.__strawberry_definition__.values}
    members = {
        code.name: strawberry.enum_value(code.value, description=described[code.name])
        for code in sorted(codes, key=list(WorkflowErrorCode.__members__).index)
    }
    return strawberry.enum(
        enum.Enum(type_name, members),
        name=type_name,
        description=(
            f"The codes `{field_name}` can return in `OperationInfo.messages[].code`: the members "
            "of `WorkflowErrorCode` with these names, and no other."
        ),
    )


def _described(description: str, codes: Iterable[str], conflict: bool, enum_name: str) -> str:
    listed = ", ".join(f"`{code}`" for code in codes)
    text = f"{description}\n\nCodes in `OperationInfo` (`{enum_name}`): {listed}."
    if conflict:
        text += (
            " A stale `expectedVersion` returns `VersionConflict` (with the instance as now "
            "committed) instead of `OperationInfo`."
        )
    return text


def mutation(
    description: str, *, perm: str | None, codes: Iterable[ErrorCode]
) -> Callable[[Callable[..., Any]], Any]:
    """A mutation that needs ``perm`` (``None``: anyone) and returns ``<Name>Payload``, the union
    of its object and ``OperationInfo`` (and ``VersionConflict`` if its input has
    ``expectedVersion``): expected errors (the engine's, this layer's, Django's
    ``PermissionDenied`` and ``ValidationError``) become ``OperationInfo`` with one of ``codes``;
    anything else is a bug and is raised (masked and logged)."""
    codes = tuple(dict.fromkeys(codes))

    def decorate(resolver: Callable[..., Any]) -> Any:
        name = to_camel_case(resolver.__name__)
        title = name[0].upper() + name[1:]
        conflict = _takes_expected_version(resolver)
        declared = frozenset(codes)
        enum_name = f"{title}ErrorCode"

        @functools.wraps(resolver)
        def guarded(self: Any, info: Info, **kwargs: Any) -> Any:
            try:
                permissions.recheck_socket_user(
                    info
                )  # over a WebSocket: the user as of now, exactly
                if perm is not None and not has_perm(info, perm):
                    raise permission_denied()
                try:
                    return resolver(self, info, **kwargs)
                except VersionConflict as error:
                    if not conflict:
                        raise
                    return _conflict(info, error)
            except Exception as error:
                payload = _with_fields(to_operation_info(error), kwargs.get("input"))
                stray = [m.code.name for m in payload.messages if m.code.name not in declared]
                if stray:
                    logger.error(
                        "Mutation %s returned codes it does not declare: %s (add them to its "
                        "codes=, or fix the error)",
                        name,
                        ", ".join(stray),
                    )
                return payload

        returns = typing.get_type_hints(resolver)["return"]
        if not isinstance(returns, type):  # e.g. `UserType | OperationInfo` written out already
            returns = next(t for t in typing.get_args(returns) if t is not OperationInfo)
        members = (
            (returns, OperationInfo, VersionConflictType) if conflict else (returns, OperationInfo)
        )
        union = Annotated[
            Union[members],
            strawberry.union(f"{title}Payload", description=payload_description(name)),
        ]
        guarded.__signature__ = inspect.signature(resolver).replace(return_annotation=union)
        guarded.error_code_enum = _codes_enum(enum_name, name, codes)  # see error_code_enums()
        guarded.declared = (description, perm, codes)  # see same_mutation()
        text = _described(description, codes, conflict, enum_name)
        return strawberry_django.mutation(description=text)(guarded)

    return decorate


def payload_description(mutation_name: str) -> str:
    """The description of the payload union of the mutation ``mutation_name`` (camelCase)."""
    return (
        f"What `{mutation_name}` returns: its result when it succeeded, otherwise why it did not "
        "(each member says which it is: select `__typename`)."
    )


def deprecated(field: Any, reason: str) -> Any:
    """``field`` (a mutation) marked ``@deprecated(reason: ...)``: an old name kept working."""
    field.deprecation_reason = reason
    return field


def same_mutation(field: Any, name: str, input_type: type) -> Any:
    """The mutation ``field`` (made by :func:`mutation`) under a second name ``name``
    (snake_case), taking ``input_type`` (an input with the same fields): the same resolver,
    description, permission and codes; its own payload union and ``<Name>ErrorCode`` enum. How
    a mutation is renamed: the old name stays, :func:`deprecated`."""
    guarded = field.base_resolver.wrapped_func
    resolver = guarded.__wrapped__  # under `mutation`'s guard
    description, perm, codes = guarded.declared
    (argument,) = (a for a in field.arguments if a.python_name == "input")

    def renamed(self: Any, info: Info, input: Any) -> Any:
        return resolver(self, info, input)

    renamed.__name__ = renamed.__qualname__ = name
    renamed.__annotations__ = {
        "info": Info,
        "input": Annotated[input_type, strawberry.argument(description=argument.description)],
        "return": typing.get_type_hints(resolver)["return"],
    }
    return mutation(description, perm=perm, codes=codes)(renamed)


def error_code_enums(mutation_type: type) -> list[Any]:
    """The ``<Name>ErrorCode`` enums of the fields of ``mutation_type`` made by :func:`mutation`
    (a host's too): the schema includes them so generated clients get them, although no field
    returns them."""
    enums = []
    for field in mutation_type.__strawberry_definition__.fields:
        resolver = getattr(field.base_resolver, "wrapped_func", None)
        if hasattr(resolver, "error_code_enum"):
            enums.append(resolver.error_code_enum)
    return enums
