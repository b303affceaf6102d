"""The cost estimate's tables: the metadata keys a field declares its list bound or work with,
and the declared bounds of this schema's list fields (:mod:`graphql_api.security.cost` walks
an operation with them)."""

from __future__ import annotations

from django_steps.conf import steps_setting

#: Key of a strawberry field's ``metadata`` declaring the most items its list returns.
MAX_ITEMS = "max_items"

#: Key of a strawberry field's ``metadata`` declaring the work its resolver does per value, in
#: objects (see the module docstring): counted even on a scalar field.
WORK = "work"

#: Items counted for a list field that declares no bound: as many as the largest page.
DEFAULT_LIST_BOUND = 100

#: Declared bounds of the plain (non-connection) list fields of this schema, as
#: ``"Type.field": most items`` (the definition lists are in :data:`DEFINITION_BOUNDS`).
#: ``WorkflowInstance.history`` counts one page.
LIST_BOUNDS: dict[str, int] = {
    "WorkflowInstance.history": 100,
    "OperationInfo.messages": 50,
    # django_steps.workitems.MAX_CANDIDATES
    "WorkItem.candidateUsers": 50,
    "WorkItem.candidateGroups": 50,
}

#: The list fields of a definition, each bounded by the engine setting
#: (``settings.DJANGO_STEPS``) that definition validation enforces
#: (:mod:`django_steps.definitions`): ``"Type.field": setting``. They take precedence over
#: :data:`LIST_BOUNDS`.
DEFINITION_BOUNDS: dict[str, str] = {
    "Workflow.steps": "DEFINITION_MAX_STEPS",
    "Workflow.transitions": "DEFINITION_MAX_TRANSITIONS",
    "WorkflowStep.statuses": "DEFINITION_MAX_STATUSES_PER_STEP",
    "WorkflowStep.outgoingTransitions": "DEFINITION_MAX_TRANSITIONS_PER_STEP",
    # the current step's statuses, and the transitions leaving it
    "WorkflowInstance.availableStatuses": "DEFINITION_MAX_STATUSES_PER_STEP",
    "WorkflowInstanceActions.statuses": "DEFINITION_MAX_STATUSES_PER_STEP",
    "TransitionDryRun.evaluations": "DEFINITION_MAX_TRANSITIONS_PER_STEP",
    # a workflow's figures: one series per step of the definition
    "WorkflowStats.instancesOnStep": "DEFINITION_MAX_STEPS",
    "WorkflowStats.timeOnStep": "DEFINITION_MAX_STEPS",
}


def diff_bound() -> int:
    """Most changes ``Workflow.diff`` lists: each step, status and transition of either version
    once, the workflow itself, and its models (counted as a plain list)."""
    steps = int(steps_setting("DEFINITION_MAX_STEPS"))
    statuses = int(steps_setting("DEFINITION_MAX_STATUSES_PER_STEP"))
    transitions = int(steps_setting("DEFINITION_MAX_TRANSITIONS"))
    return 2 * (steps * (1 + statuses) + transitions) + 1 + DEFAULT_LIST_BOUND


def list_bounds() -> dict[str, int]:
    """The bound of every declared list field, with the definition lists read from the
    settings now."""
    return {
        **LIST_BOUNDS,
        "Workflow.diff": diff_bound(),
        **{field: int(steps_setting(name)) for field, name in DEFINITION_BOUNDS.items()},
        # one series per status of every step
        "WorkflowStats.instancesOnStatus": int(steps_setting("DEFINITION_MAX_STEPS"))
        * int(steps_setting("DEFINITION_MAX_STATUSES_PER_STEP")),
    }
