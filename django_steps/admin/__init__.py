"""Django admin for workflow definitions, instances and their history.

Definitions
    The workflow page edits the workflow with its steps and transitions inline; each step row
    links to the step page, which edits that step's statuses inline (Django has no nested
    inlines). Transition step choices are limited to the workflow's own steps, so steps are
    saved before transitions can point at them.

    After a save (main form *and* inlines, in the admin's transaction), the whole workflow is
    validated as a definition document (:func:`django_steps.definitions.check_workflow`):

    - **valid**: it is published as the workflow's next version
      (:func:`django_steps.versions.publish_workflow`, the acting user as its author; nothing
      new if the content is that of the latest version) and new instances run on it;
    - **invalid**: the save is kept as a **draft** (often built over several pages: statuses
      live on the step pages) and nothing is published; the remaining problems are shown as a
      warning. Running instances are unaffected either way: they run on their own version;
    - a save that goes over a size limit (``DEFINITION_MAX_*``: steps, statuses per step,
      transitions, transitions leaving a step) is rolled back even in a draft — no later page
      could make it valid, and the GraphQL cost estimate relies on the limits. A workflow
      already over a limit (e.g. after the limit was lowered) can still be edited.

    Deleting a step, status or transition in the inlines retires it (versions and history keep
    referring to it); the workflow page lists its published versions, read-only.

Instances and history
    Read-only, and only what the visibility rule shows the user
    (:func:`django_steps.authorization.visible_instances` / ``visible_events``: the changelists,
    the change and history pages, the running-instance counts of the workflow list); an event's
    stored context only to users who may view the object (``may_view_object``). Instances show
    their version and their history inline; the actions "Put on hold", "Resume" and "Cancel"
    call :mod:`django_steps.services` with ``actor=request.user`` and report each instance that
    could not be changed with its error code. "Migrate to the latest version" shows the dry run
    (:func:`django_steps.versions.plan_migration`, no mapping: names kept, defaults) on a
    confirmation page, then migrates the movable ones.
"""

from __future__ import annotations

# Importing the modules registers their model admins (Django imports django_steps.admin).
from .definitions import (
    DefinitionGuardMixin,
    RetireOnDeleteMixin,
    WorkflowAdmin,
    WorkflowStepAdmin,
    WorkflowStepInline,
    WorkflowStepStatusInline,
    WorkflowTransitionInline,
    WorkflowVersionInline,
)
from .instances import WorkflowEventAdmin, WorkflowEventInline, WorkflowInstanceAdmin
from .workitems import WorkItemAdmin

__all__ = [
    "DefinitionGuardMixin",
    "RetireOnDeleteMixin",
    "WorkflowAdmin",
    "WorkflowStepAdmin",
    "WorkflowStepInline",
    "WorkflowStepStatusInline",
    "WorkflowTransitionInline",
    "WorkflowVersionInline",
    "WorkflowEventAdmin",
    "WorkflowEventInline",
    "WorkflowInstanceAdmin",
    "WorkItemAdmin",
]
