"""The admin of work items: who must act on which instance now, read-only and filtered by the
visibility rule (claiming and handing over go through the services: the API, or a host's
views)."""

from __future__ import annotations

from django.contrib import admin

from .. import authorization
from ..models import WorkflowInstance, WorkItem


@admin.register(WorkItem)
class WorkItemAdmin(admin.ModelAdmin):
    list_display = ("id", "instance", "step", "claimed_by", "opened_at", "closed_at", "due_at")
    list_filter = (("closed_at", admin.EmptyFieldListFilter), "step__workflow")
    list_select_related = ("instance", "instance__workflow", "step", "claimed_by")
    search_fields = ("instance__object_id", "claimed_by__username")
    fields = (
        "instance",
        "step",
        "candidates",
        "candidate_groups",
        "claimed_by",
        "opened_at",
        "closed_at",
        "due_at",
        "opened_event",
        "closed_event",
    )
    readonly_fields = fields

    @admin.display(description="candidate users")
    def candidates(self, obj: WorkItem) -> str:
        return ", ".join(user.get_username() for user in obj.candidate_users.all()) or "—"

    def get_queryset(self, request):
        visible = authorization.visible_instances(request.user, WorkflowInstance.objects.all())
        return super().get_queryset(request).filter(instance__in=visible.values("pk"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
