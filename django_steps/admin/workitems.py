"""The admin of work items: who must act on which instance now, read-only and filtered by the
visibility rule (claiming and handing over go through the services: the API, or a host's
views)."""

from __future__ import annotations

from django.contrib import admin

from .. import authorization
from ..models import WorkItem
from .instances import ReadOnlyAdminMixin, VisibleWorkflowFilter


@admin.register(WorkItem)
class WorkItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "instance", "step", "claimed_by", "opened_at", "closed_at", "due_at")
    list_filter = (
        ("closed_at", admin.EmptyFieldListFilter),
        ("step__workflow", VisibleWorkflowFilter),
    )
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
        return authorization.visible_work_items(request.user, super().get_queryset(request))
