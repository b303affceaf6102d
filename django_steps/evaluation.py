"""What a definition says about one instance: its compiled step, a step's default status, and
which transition's condition holds. Shared by the changes (:mod:`django_steps.services`) and the
dry run (:func:`django_steps.selectors.evaluate_transitions`), so both decide alike."""

from __future__ import annotations

from typing import Any

from . import cel, compiled
from .compiled import CompiledWorkflow, StatusDef, StepDef, TransitionDef
from .context import Context
from .exceptions import ConditionError, ConditionSyntaxError, InstanceNotFound, InvalidDefinition
from .models import WorkflowInstance


def missing(pk: Any) -> InstanceNotFound:
    """The one refusal for an instance that does not exist and for one the actor may not see."""
    return InstanceNotFound(f"Workflow instance {pk} does not exist.", instance_id=pk)


def definition_of(instance: WorkflowInstance) -> tuple[CompiledWorkflow, StepDef]:
    definition = compiled.for_instance(instance)  # the version it is pinned to
    step = definition.steps.get(instance.current_step_id)
    if step is None:  # pragma: no cover - an instance's step is one of its version's
        raise InvalidDefinition(
            f"The current step of instance {instance.pk} is not in its version."
        )
    return definition, step


def default_status(definition: CompiledWorkflow, step: StepDef) -> StatusDef:
    status = step.default_status
    if status is None:
        raise InvalidDefinition(
            f'Step "{step.name}" of workflow "{definition.name}" has no default status.',
            problems=[{"path": f"steps.{step.name}", "message": "no default status"}],
        )
    return status


def describe(definition: CompiledWorkflow, t: TransitionDef) -> str:
    return (
        f'"{definition.step_name(t.from_step_id)}" → "{definition.step_name(t.to_step_id)}" '
        f"(priority {t.priority})"
    )


def evaluate(definition: CompiledWorkflow, t: TransitionDef, context: Context) -> bool:
    """Whether ``t``'s condition holds; a failure (including a stored condition that does not
    compile or is over a limit) is a :class:`ConditionError` formatted by
    :func:`django_steps.cel.condition_error`."""
    if cel.is_unconditional(t.condition):
        return True
    try:
        return cel.evaluate(t.condition, context.activation(t.condition))
    except (ConditionError, ConditionSyntaxError) as exc:
        failure = exc
    raise cel.condition_error(
        failure, transition=describe(definition, t), expression=t.condition, transition_id=t.id
    )


def choose(definition: CompiledWorkflow, step: StepDef, context: Context) -> TransitionDef | None:
    for t in step.transitions:
        if evaluate(definition, t, context):
            return t
    return None
