"""The shape of a workflow definition, declared once.

A definition document (YAML/JSON for ``load_workflow``, the GraphQL ``WorkflowDefinitionInput``,
the admin's forms, the stored rows) has four parts — the workflow, its steps, each step's
statuses, the transitions — and each part has keys. This module says, for every key: its type,
its default when a document leaves it out, whether it is required, the range an integer must be
in, and whether it is a column of the part's model under the same name.

Everything that walks the keys of a part reads them from here rather than spelling them out:

* :mod:`django_steps.definitions` type-checks documents, fills in defaults, exports stored
  workflows and writes the columns on import;
* :mod:`django_steps.compiled` builds its snapshot (``StatusDef`` …) from the columns;
* ``graphql_api`` adds a field for each key to the definition input and for each column to the
  output types (``WorkflowStep`` …), typed, defaulted and described as declared here, and turns
  the input into a document key by key;
* the admin lists the columns in its forms.

What cannot be derived — the model fields, which need a migration, and GraphQL fields of nested
values (``deadline`` …) — is checked against this module by the tests
(``tests/django_steps/test_shape.py``), which name what is missing. Adding a key is therefore
one :class:`Key` here plus its semantics (a validation rule in ``documents._check``, its effect
in the services) and a model field and its migration.

Plain frozen dataclasses: the shape is read by code, never parsed from input (validation must
report *every* problem with its path, and keep the values it could not use out; a pydantic or
attrs model would stop at the first or convert silently), and nothing here needs a dependency.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps


@dataclass(frozen=True)
class Key:
    """One key of a definition part."""

    name: str
    type: type
    #: The value when a document leaves the key out (``None``: the part's normaliser decides,
    #: e.g. a step's ``order`` is its position). Immutable or copied: see :meth:`Part.fill`.
    default: Any = None
    required: bool = False
    #: ``(low, high)`` an integer must lie in: what the database column holds on every backend.
    range: tuple[int, int] | None = None
    #: Stored as the model field of the same name (not: nested parts, names of other rows).
    column: bool = True
    #: Left out of documents (exports, published versions) while unset: documents and versions
    #: written before the key existed keep their content, and so their hash.
    optional: bool = False
    #: What the value means, for the people who read or write it: the GraphQL types and inputs
    #: of the parts (``WorkflowStep``, ``WorkflowStepInput`` …) describe their field with it.
    #: Empty: each type words it for its context (``name``) or declares it (nested values).
    description: str = ""


@dataclass(frozen=True)
class Part:
    """One part of a definition: its keys in document order (export writes them in it)."""

    name: str
    #: The django_steps model that stores one of these parts.
    model_name: str
    keys: tuple[Key, ...]
    #: The keys holding this part's children, if any (``steps``, ``statuses`` …).
    children: tuple[str, ...] = field(default=())

    @property
    def model(self) -> type:
        return apps.get_model("django_steps", self.model_name)

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __getitem__(self, name: str) -> Key:
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys)

    @property
    def columns(self) -> tuple[str, ...]:
        """The keys stored as model fields of the same name."""
        return tuple(key.name for key in self.keys if key.column)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys if key.required)

    def types(self) -> dict[str, type]:
        return {key.name: key.type for key in self.keys}

    def fill(self, given: dict[str, Any], **defaults: Any) -> dict[str, Any]:
        """The part's keys other than its children, in order: the value ``given`` has, else the
        default passed here, else the key's own default."""
        filled = {}
        for key in self.keys:
            if key.name in self.children:
                continue
            if key.name in given:
                filled[key.name] = given[key.name]
            elif key.name in defaults:
                filled[key.name] = defaults[key.name]
            else:
                filled[key.name] = list(key.default) if key.type is list else key.default
        return filled

    def values_of(self, row: Any, **given: Any) -> dict[str, Any]:
        """The document of one stored row (children left out), in order: the columns read from
        ``row``, the other keys from ``given`` (a transition's step names …)."""
        # a data migration's historical row may predate a key: its default
        values = {
            key.name: given[key.name] if key.name in given else getattr(row, key.name, key.default)
            for key in self.keys
            if key.name not in self.children and (key.column or key.name in given)
        }
        return {
            name: value
            for name, value in values.items()
            if value is not None or not self[name].optional
        }

    def read(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The columns of one part of a version's document (an optional key it lacks: unset)."""
        return {key.name: spec.get(key.name, key.default) for key in self.keys if key.column}

    def column_values(self, part: dict[str, Any], *, without: tuple[str, ...] = ()) -> dict:
        """The model fields a normalised part sets (its columns, less ``without``)."""
        return {name: part[name] for name in self.columns if name not in without}


#: What ``PositiveIntegerField`` / ``IntegerField`` hold on every supported database.
_POSITIVE_INT = (0, 2**31 - 1)
_INT = (-(2**31), 2**31 - 1)
#: A workflow, a step and a status are found by name (unique among their siblings) and may
#: say what they are for.
_DESCRIPTION = Key("description", str, "", description="Free text shown to users.")
_NAMED = (Key("name", str, "", required=True), _DESCRIPTION)

STATUS = Part(
    "status",
    "WorkflowStepStatus",
    (
        *_NAMED,
        Key("is_default_status", bool, False, description="Set when an instance enters the step."),
        Key(
            "is_completion_status",
            bool,
            False,
            description="Setting it completes the step: transitions are tried, or the instance "
            "completes on a final step.",
        ),
        Key("is_cancellation_status", bool, False, description="Setting it cancels the instance."),
        Key("is_on_hold_status", bool, False, description="Setting it puts the instance on hold."),
        Key(
            "permission",
            str,
            "",
            description='Permission needed to set it ("app_label.codename"), checked for the '
            "attached object; empty: anyone who may change the instance.",
        ),
    ),
)

STEP = Part(
    "step",
    "WorkflowStep",
    (
        *_NAMED,
        Key(
            "order",
            int,
            None,  # the step's position
            range=_POSITIVE_INT,
            description="Position of the step in the workflow (ascending).",
        ),
        Key("is_initial_step", bool, False, description="New instances start on this step."),
        Key(
            "is_final_step",
            bool,
            False,
            description="A completion status set on this step completes the instance.",
        ),
        # who acts on the step: {"groups": [names], "expression": CEL giving user ids/usernames}
        # (see django_steps.workitems); None: anyone who may change the instance
        Key("assignees", dict, None, optional=True),
        # {after: "P2D" | at: "<CEL timestamp>", status: "<a status of the step>",
        #  remind_before: "PT4H"}: see django_steps.deadlines.
        Key("deadline", dict, None, optional=True),
        Key("statuses", list, (), column=False),
    ),
    children=("statuses",),
)

TRANSITION = Part(
    "transition",
    "WorkflowTransition",
    (
        Key("from_step", str, "", required=True, column=False),  # the step's name
        Key("to_step", str, "", required=True, column=False),
        Key(
            "condition",
            str,
            "",
            description="CEL expression evaluated against the context; empty means always.",
        ),
        Key("priority", int, 0, range=_INT, description="Higher priorities are tried first."),
        _DESCRIPTION,
    ),
)

WORKFLOW = Part(
    "workflow",
    "Workflow",
    (
        *_NAMED,
        Key("content_types", list, (), column=False),  # "app_label.model" labels
        Key("steps", list, (), required=True, column=False),
        Key("transitions", list, (), column=False),
    ),
    children=("content_types", "steps", "transitions"),
)

#: The status flags that give a status a role; a status has at most one of them.
ROLE_FLAGS = ("is_completion_status", "is_cancellation_status", "is_on_hold_status")
#: Flags at most one status of a step may have (constraints of the model; import clears them
#: before it sets them again, so moving one never collides mid-way).
ONE_PER_STEP_FLAGS = ("is_default_status", "is_cancellation_status", "is_on_hold_status")
