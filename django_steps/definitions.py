"""Workflow definitions as one document: validate, import, export, delete.

The document's keys mirror the model fields::

    name: Claim Processing
    description: ""
    content_types: [claims.claim]      # the models it may be started on ("app_label.model")
    steps:
      - name: Submit Claim
        description: ""
        order: 1                       # default: the step's position (1-based)
        is_initial_step: true
        is_final_step: false
        deadline: {after: P2D}         # optional: see django_steps.deadlines
        statuses:
          - name: Draft
            description: ""
            is_default_status: true
            is_completion_status: false
            is_cancellation_status: false
            is_on_hold_status: false
            permission: ""             # "app_label.codename" needed to set it; "" = none
    transitions:
      - from_step: Submit Claim        # steps are named, never numbered by id
        to_step: Review Claim
        condition: ""                  # CEL; empty = always
        priority: 0                    # higher first
        description: ""

Omitted keys (and keys given as ``null``) take the defaults shown. Unknown keys are refused, so
a typo such as ``is_inital_step`` is reported instead of silently ignored.

``content_types`` lists the models the workflow may be started on; a workflow listing none
cannot be started (see :mod:`django_steps.authorization`), which validation warns about.

Validation (:func:`validate_definition`) reports *every* problem at once, each with a path
(``steps[1].statuses[0].name``) and a message. It refuses:

- wrong types, missing names, unknown keys, names longer than 255 characters;
- ``content_types`` entries that name no installed model, status permissions that are not
  ``"app_label.codename"``;
- duplicate step names, duplicate status names within a step;
- not exactly one initial step, no final step;
- not exactly one default status per step, more than one cancellation or on-hold status per
  step, a status with more than one of the completion / cancellation / on-hold roles, a
  default status that is also a cancellation or on-hold status (an instance would arrive
  "cancelled" or "on hold" without being either);
- a final step without a completion status (instances could never complete there);
- definitions over a size limit: more than ``DEFINITION_MAX_STEPS`` steps (20),
  ``DEFINITION_MAX_STATUSES_PER_STEP`` statuses in a step (10), ``DEFINITION_MAX_TRANSITIONS``
  transitions (60) or ``DEFINITION_MAX_TRANSITIONS_PER_STEP`` transitions leaving one step (10).
  The GraphQL cost estimate counts a definition's lists with these bounds
  (:mod:`graphql_api.security.cost`), so they are what makes it true;
- transitions naming unknown steps, conditions that do not compile or are over a CEL limit
  (length, nesting, size, estimated cost: see :mod:`django_steps.cel`; the problem names the
  transition "From → To"), conditions totalling more than ``DEFINITION_MAX_CONDITIONS_LENGTH``
  characters; when ``content_types`` are listed, conditions — and a step's ``assignees``
  expression and deadline ``at``, which read the object alone, no ``input``
  (:func:`django_steps.context.on_entry`) — reading a variable none of those models gives
  (:func:`django_steps.context.root_variables`; names CEL resolves by itself, such as ``int``,
  are fine), the problem naming the variable and those there are;
- **unreachable steps** (no path of transitions from the initial step leads to them). These
  are refused rather than merely warned about: an unreachable step is almost always a
  forgotten transition, and a definition is cheap to fix before it is imported, while an
  instance can never get there afterwards.

It returns warnings for things that are legal but probably unintended: a non-final step with
no outgoing transition or no completion status (instances reaching it can only be cancelled),
transitions out of a final step (never taken: a completion status there completes the
instance), and transitions that can never fire because an unconditional transition of the
same step is tried before them.

:func:`import_workflow` is atomic and publishes the result as a new version (see
:mod:`django_steps.versions`; identical content publishes nothing). With ``replace=True`` an
existing workflow is updated in place: steps are matched by name, statuses by (step, name) and
transitions by (from step, to step, priority), else by (from step, to step), in document order,
so running instances and history keep pointing at the same rows (and GraphQL ids stay stable).
Parts missing from the document are **retired**, not deleted: published versions and history
still refer to them, running instances pinned to an older version finish on it, and adding the
name again brings back the same row.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import ProtectedError

from .documents import (
    _check,
    _content_type,
    _strip_paths,
    dump_document,
    load_document,
    normalize_document,
    validate_definition,
)
from .exceptions import InvalidDefinition, WorkflowInUse
from .models import (
    Workflow,
    WorkflowInstance,
    WorkflowStep,
    WorkflowStepStatus,
    WorkflowTransition,
)
from .shape import ONE_PER_STEP_FLAGS, STATUS, STEP, TRANSITION, WORKFLOW
from .snapshots import snapshot_workflow, strip_ids
from .versions import publish_workflow

__all__ = [
    "validate_definition",
    "import_workflow",
    "export_workflow",
    "snapshot_workflow",
    "strip_ids",
    "delete_workflow",
    "load_document",
    "dump_document",
    "normalize_document",
    "check_workflow",
]


def check_workflow(workflow: Workflow) -> tuple[list[dict[str, str]], list[str]]:
    """Validate a stored workflow without raising: ``(problems, warnings)``."""
    _doc, problems, warnings = _check(export_workflow(workflow))
    return problems, warnings


# --------------------------------------------------------------------------- export


def export_workflow(workflow: Workflow) -> dict:
    """The definition document of ``workflow``'s current rows (every key given, steps in
    order; retired parts left out). A published version's is ``strip_ids(version.document)``."""
    return strip_ids(snapshot_workflow(workflow))


# --------------------------------------------------------------------------- import


def _assign(obj: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


def import_workflow(document: dict, *, replace: bool = False, actor: Any = None) -> Workflow:
    """Create a workflow from ``document`` or, with ``replace=True``, update the existing one
    of that name in place, and publish the result (a new version unless the content is that of
    the latest one; ``actor`` is recorded as its author). Atomic: on any error nothing
    changes."""
    doc, problems, _warnings = _check(document)
    if problems:
        validate_definition(document)  # raises with the full message
    doc = _strip_paths(doc)
    using = router.db_for_write(Workflow)
    with transaction.atomic(using=using):
        workflow = (
            Workflow.objects.using(using).select_for_update().filter(name=doc["name"]).first()
        )
        if workflow is not None and not replace:
            raise InvalidDefinition(
                f'A workflow named "{doc["name"]}" already exists '
                "(import with replace to update it).",
                problems=[
                    {"path": "name", "message": f'a workflow named "{doc["name"]}" already exists'}
                ],
            )
        if workflow is None:
            try:
                with transaction.atomic(using=using):
                    workflow = Workflow.objects.using(using).create(**WORKFLOW.column_values(doc))
            except IntegrityError as exc:  # created concurrently by someone else
                raise InvalidDefinition(
                    f'A workflow named "{doc["name"]}" already exists.',
                    problems=[
                        {
                            "path": "name",
                            "message": f'a workflow named "{doc["name"]}" already exists',
                        }
                    ],
                ) from exc
        else:
            changes = WORKFLOW.column_values(doc, without=("name",))
            if _assign(workflow, changes):
                workflow.save(update_fields=[*changes, "updated_at"])
            if _canonical(export_workflow(workflow)) == _canonical(doc):
                # nothing to change in the rows; a draft left by ORM edits is published
                publish_workflow(workflow, actor=actor)
                workflow.refresh_from_db()
                return workflow
        _apply(workflow, doc, using)
        publish_workflow(workflow, actor=actor)
    workflow.refresh_from_db()
    return workflow


def _canonical(doc: dict[str, Any]) -> tuple:
    """What :func:`_apply` would make of a document, independent of the order of its lists."""
    steps = sorted(
        (
            step["name"],
            step["description"],
            step["order"],
            step["is_initial_step"],
            step["is_final_step"],
            json.dumps(step.get("assignees"), sort_keys=True),
            json.dumps(step.get("deadline"), sort_keys=True),
            tuple(sorted(tuple(sorted(status.items())) for status in step["statuses"])),
        )
        for step in doc["steps"]
    )
    transitions = sorted(tuple(sorted(t.items())) for t in doc["transitions"])
    return (
        doc["description"],
        tuple(sorted(doc.get("content_types", []))),
        tuple(steps),
        tuple(transitions),
    )


def _apply(workflow: Workflow, doc: dict[str, Any], using: str) -> None:
    """Make ``workflow``'s rows say what ``doc`` says (see the module docstring on matching)."""
    wanted_types = [_content_type(label) for label in doc["content_types"]]
    if {ct.pk for ct in workflow.content_types.all()} != {ct.pk for ct in wanted_types}:
        workflow.content_types.set(wanted_types)
    steps = _apply_steps(workflow, doc["steps"], using)
    _apply_transitions(workflow, doc["transitions"], steps, using)


def _apply_steps(
    workflow: Workflow, wanted: list[dict[str, Any]], using: str
) -> dict[str, WorkflowStep]:
    """Steps and their statuses, matched by name; returns the live steps by name."""
    # Retired rows too: adding a name again brings its row back (with its id).
    existing_steps = {
        s.name: s for s in WorkflowStep.all_objects.using(using).filter(workflow=workflow)
    }
    existing_statuses: dict[tuple[str, str], WorkflowStepStatus] = {
        (st.step.name, st.name): st
        for st in WorkflowStepStatus.all_objects.using(using)
        .filter(step__workflow=workflow)
        .select_related("step")
    }
    wanted_steps = {s["name"] for s in wanted}
    wanted_statuses = {(s["name"], st["name"]) for s in wanted for st in s["statuses"]}

    # Clear the per-step role flags first so that moving "default" from one status to another
    # never collides with the one-default-per-step constraint mid-way (retired statuses keep
    # them cleared: their roles live on in the versions that have them).
    cleared = dict.fromkeys(ONE_PER_STEP_FLAGS, False)
    WorkflowStepStatus.all_objects.using(using).filter(step__workflow=workflow).update(**cleared)
    for st in existing_statuses.values():
        _assign(st, cleared)
    # Parts no longer wanted are retired, never deleted: versions and history refer to them.
    retire = {"retired": True}
    WorkflowStepStatus.all_objects.using(using).filter(
        pk__in=[st.pk for key, st in existing_statuses.items() if key not in wanted_statuses]
    ).update(**retire)
    WorkflowStep.all_objects.using(using).filter(
        pk__in=[s.pk for name, s in existing_steps.items() if name not in wanted_steps]
    ).update(**retire)

    steps: dict[str, WorkflowStep] = {}
    for spec in wanted:
        values = STEP.column_values(spec, without=("name",))
        step = existing_steps.get(spec["name"])
        if step is None:
            step = WorkflowStep.objects.using(using).create(
                workflow=workflow, name=spec["name"], **values
            )
        elif _assign(step, {**values, "retired": False}):
            step.save(using=using)
        steps[spec["name"]] = step
        for st_spec in spec["statuses"]:
            st_values = STATUS.column_values(st_spec, without=("name",))
            status = existing_statuses.get((spec["name"], st_spec["name"]))
            if status is None:
                WorkflowStepStatus.objects.using(using).create(
                    step=step, name=st_spec["name"], **st_values
                )
            elif _assign(status, {**st_values, "retired": False}):
                status.save(using=using)
    return steps


def _apply_transitions(
    workflow: Workflow,
    specs: list[dict[str, Any]],
    steps: dict[str, WorkflowStep],
    using: str,
) -> None:
    """Transitions, each paired with an existing one of the same (from, to, priority), else of
    the same (from, to), in order, so history rows keep pointing at "their" transition when only
    its priority, condition or description changes."""
    existing = list(
        WorkflowTransition.all_objects.using(using)
        .filter(workflow=workflow)
        .order_by("retired", "id")  # live ones first
    )
    wanted = [(spec, steps[spec["from_step"]], steps[spec["to_step"]]) for spec in specs]
    matched: dict[int, WorkflowTransition] = {}
    for exact in (True, False):
        for index, (spec, from_step, to_step) in enumerate(wanted):
            if index in matched:
                continue
            for t in existing:
                if (
                    t.from_step_id == from_step.id
                    and t.to_step_id == to_step.id
                    and (not exact or t.priority == spec["priority"])
                ):
                    matched[index] = t
                    existing.remove(t)
                    break
    WorkflowTransition.all_objects.using(using).filter(pk__in=[t.pk for t in existing]).update(
        retired=True
    )
    for index, (spec, from_step, to_step) in enumerate(wanted):
        values = TRANSITION.column_values(spec)
        t = matched.get(index)
        if t is None:
            WorkflowTransition.objects.using(using).create(
                workflow=workflow, from_step=from_step, to_step=to_step, **values
            )
        elif _assign(t, {**values, "retired": False}):
            t.save(using=using)


# --------------------------------------------------------------------------- delete


def delete_workflow(workflow: Workflow) -> None:
    """Delete a workflow definition; refused with :class:`WorkflowInUse` if any instance
    (finished or not) exists, since their history refers to it."""
    using = router.db_for_write(Workflow)
    with transaction.atomic(using=using):
        count = WorkflowInstance.objects.using(using).filter(workflow_id=workflow.pk).count()
        if count:
            raise WorkflowInUse(
                f'Workflow "{workflow.name}" has {count} instance{"s" if count != 1 else ""} '
                "and cannot be deleted.",
                workflow_name=workflow.name,
                instances=count,
            )
        try:
            workflow.delete(using=using)
        except ProtectedError as exc:
            raise WorkflowInUse(
                f'Workflow "{workflow.name}" is still referenced and cannot be deleted.',
                workflow_name=workflow.name,
            ) from exc
