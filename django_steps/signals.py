"""Domain signals (the seam the GraphQL layer listens on) and definition-cache invalidation."""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal, receiver

from .models import Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition

#: Sent once per history row, only after the transaction that wrote it has committed.
#: Arguments: ``event`` (:class:`~django_steps.models.WorkflowEvent`) and ``instance``
#: (the :class:`~django_steps.models.WorkflowInstance` as it was left by the change).
#: A rolled-back change sends nothing.
workflow_event_committed = Signal()


def _workflow_id_of(sender, instance) -> int | None:
    if sender is WorkflowStepStatus:
        step = (
            WorkflowStep.objects.filter(pk=instance.step_id)
            .values_list("workflow_id", flat=True)
            .first()
        )
        return step
    return instance.workflow_id


@receiver(post_save, sender=WorkflowStep)
@receiver(post_save, sender=WorkflowStepStatus)
@receiver(post_save, sender=WorkflowTransition)
@receiver(post_delete, sender=WorkflowStep)
@receiver(post_delete, sender=WorkflowStepStatus)
@receiver(post_delete, sender=WorkflowTransition)
def _definition_changed(sender, instance, **kwargs) -> None:
    from .compiled import bump_definition_version

    workflow_id = _workflow_id_of(sender, instance)
    if workflow_id is not None:
        bump_definition_version(workflow_id, using=kwargs.get("using"))


@receiver(post_save, sender=Workflow)
def _workflow_created(sender, instance, created, using, **kwargs) -> None:
    """A new workflow's steps, saved in the same transaction, do not move its version."""
    if created:
        from .compiled import note_definition_written

        note_definition_written(instance.pk, instance.definition_token, using)


@receiver(m2m_changed, sender=Workflow.content_types.through)
def _content_types_changed(sender, instance, action, reverse, pk_set, using, **kwargs) -> None:
    """The models a workflow may be started on are part of its definition."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    from .compiled import bump_definition_version

    workflow_ids = pk_set if reverse else {instance.pk}
    for workflow_id in workflow_ids or ():
        bump_definition_version(workflow_id, using=using)
