"""Domain signals (the seam the GraphQL layer listens on)."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent once per history row, only after the transaction that wrote it has committed.
#: Arguments: ``event`` (:class:`~django_steps.models.WorkflowEvent`) and ``instance``
#: (the :class:`~django_steps.models.WorkflowInstance` as it was left by the change).
#: A rolled-back change sends nothing.
workflow_event_committed = Signal()
