"""The work item tables (see :mod:`django_steps.workitems`): one row per instance and assigned
step entered, and its candidates. Registered through :mod:`django_steps.models`."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .models import WorkflowEvent, WorkflowInstance, WorkflowStep

__all__ = ["WorkItem", "WorkItemCandidate"]


class WorkItem(models.Model):
    """The work of one assigned step for one instance: opened when the instance enters the step,
    closed when it leaves it (see :mod:`django_steps.workitems`)."""

    instance = models.ForeignKey(
        WorkflowInstance, on_delete=models.CASCADE, related_name="work_items"
    )
    step = models.ForeignKey(WorkflowStep, on_delete=models.PROTECT, related_name="+")
    candidate_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="WorkItemCandidate",
        through_fields=("item", "user"),
        related_name="+",
        blank=True,
    )
    candidate_groups = models.JSONField(default=list, blank=True, help_text="Group names.")
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    opened_event = models.ForeignKey(
        WorkflowEvent, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    closed_event = models.ForeignKey(
        WorkflowEvent, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta:
        permissions = [
            (
                "override_workitem",
                "Can act on assigned steps without being a candidate or the claimant",
            )
        ]
        indexes = [
            # the open item of an instance (one at a time: the instance's row lock serialises
            # its changes; no unique constraint, so one statement can close one and open the next)
            models.Index(
                fields=["instance"],
                condition=Q(closed_at__isnull=True),
                name="django_steps_item_open",
            ),
            models.Index(
                fields=["claimed_by", "id"],
                condition=Q(closed_at__isnull=True),
                name="django_steps_item_claimed",
            ),
        ]

    def __str__(self) -> str:
        return f"work item {self.pk} of instance {self.instance_id}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class WorkItemCandidate(models.Model):
    """One candidate of a work item: a user, or a group by name (for "my groups' items")."""

    item = models.ForeignKey(WorkItem, on_delete=models.CASCADE, related_name="candidates")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    group = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["user", "item"], name="django_steps_cand_user"),
            models.Index(fields=["group", "item"], name="django_steps_cand_group"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id}" if self.user_id else f"group {self.group}"
